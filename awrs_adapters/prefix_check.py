"""A shipped checker of the dead-prefix contract: pruned byte-trie subtrees hold no allowed token.

Overview: after ``check(state, y)`` says False, ``BoundConstraint.dead_prefix(state, y)``
may return ``n``, and the sampler then rejects every token of
``vocab.trie.with_prefix(vocab.tokens[y][:n])`` with one call (AWRS's ``_reject``, the
sweep of ``mask-smc``). :func:`check_dead_prefix` verifies that promise exhaustively on a
small vocabulary: it walks every state reachable in fewer than ``depth`` tokens (the
tokens ``check`` or ``sweep_check`` accepts), and for every rejected token with a claim
it decides each token
of the pruned set (the subtree and ``y`` itself) from the *definition* alone: a token is
allowed when some continuation by at most the remaining tokens ends with an output the
constraint's whole-string check (``Constraint.accepts``) accepts, where an output ends at
EOS (the whole text) or, with stop sequences, at the token completing the first stop (the
text before it). None of the sampler's machinery (checks, masks, look-ahead) enters the
reference, so an unsound claim shows up as a :class:`DeadPrefixViolation`.

Example::

    >>> from awrs_adapters.constraints import Predicate
    >>> from awrs_adapters.prefix_check import check_dead_prefix
    >>> from awrs_adapters.vocab import Vocabulary
    >>> v = Vocabulary([b"a", b"b", b"ab", b"ba", b"\\xc3", b"\\xa9", b""], 6)
    >>> c = Predicate(lambda s: s.count("a") == 1, prefix=lambda s: s.count("a") <= 1)
    >>> report = check_dead_prefix(c, v, depth=3)
    >>> report.assert_ok()          # raises AssertionError naming each violation
    >>> assert report.claims > 0    # dead_prefix was exercised, not only trivially passed
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .protocol import BoundConstraint, as_constraint, split
from .stops import StopBound, check_stop
from .vocab import Vocabulary, decode_text

__all__ = ["DeadPrefixReport", "DeadPrefixViolation", "check_dead_prefix"]

_EOS = -1  # a witness step that ends the output with EOS


@dataclass(frozen=True)
class DeadPrefixViolation:
    """A token the definition allows inside a subtree ``dead_prefix`` declared dead.

    Attributes:
        path: the token ids that led to the state.
        text: the output bytes of the state.
        token: ``y``, the token ``check`` rejected.
        n: what ``dead_prefix(state, y)`` returned.
        prefix: the pruned byte prefix, ``vocab.tokens[y][:n]``.
        allowed: ``z``, the allowed token of the pruned set (``y`` itself or a token of
            ``vocab.trie.with_prefix(prefix)``).
        witness: the continuation after ``z`` that ends accepted (token ids; ``-1``
            stands for EOS; empty when ``z`` itself ends the output).
        output: the accepted output that continuation ends with.
    """

    path: tuple[int, ...]
    text: bytes
    token: int
    n: int
    prefix: bytes
    allowed: int
    allowed_bytes: bytes
    witness: tuple[int, ...]
    output: str

    def __str__(self) -> str:
        what = ("the rejected token itself" if self.allowed == self.token
                else f"token {self.allowed} ({self.allowed_bytes!r})")
        steps = ", ".join("EOS" if t == _EOS else str(t) for t in self.witness) or "nothing"
        return (
            f"after {self.text!r} (tokens {list(self.path)}): check rejected token "
            f"{self.token} and dead_prefix returned {self.n}, pruning the subtree "
            f"{self.prefix!r}; but {what} is allowed: followed by [{steps}] it ends with the "
            f"accepted output {self.output!r}"
        )


@dataclass
class DeadPrefixReport:
    """What :func:`check_dead_prefix` found.

    Attributes:
        violations: the allowed tokens found in pruned sets (empty: the contract held).
        states: reachable states visited.
        rejections: ``(state, token)`` pairs ``check`` rejected.
        claims: rejections for which ``dead_prefix`` returned an ``n`` (a pruning).
        pruned: tokens decided from the definition over all claims (with repeats).
        truncated: the walk stopped at the ``states`` bound before reaching ``depth``.
    """

    violations: list[DeadPrefixViolation] = field(default_factory=list)
    states: int = 0
    rejections: int = 0
    claims: int = 0
    pruned: int = 0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """Whether no violation was found."""
        return not self.violations

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` listing the violations (first ten), if any."""
        if self.violations:
            lines = [str(v) for v in self.violations[:10]]
            more = len(self.violations) - len(lines)
            raise AssertionError(
                f"dead_prefix pruned {len(self.violations)} allowed token(s) "
                f"({self.claims} claims over {self.states} states):\n  "
                + "\n  ".join(lines) + (f"\n  ... and {more} more" if more > 0 else "")
            )

    def __str__(self) -> str:
        head = (f"{self.states} states, {self.rejections} rejections, {self.claims} claims, "
                f"{self.pruned} pruned tokens decided")
        return head + ("; sound" if self.ok else f"; {len(self.violations)} violations")


class _Definition:
    """Allowedness from the definition: complete check, EOS and first-stop cuts only."""

    def __init__(self, vocab: Vocabulary, accepts: Callable[[str], bool],
                 stops: Sequence[bytes]) -> None:
        self.vocab = vocab
        self.accepts = accepts
        self.stops = tuple(stops)
        eos, special = vocab.eos_token_id, vocab.special_ids
        seen: dict[bytes, int] = {}
        for i, t in enumerate(vocab.tokens):  # one id per distinct ordinary byte string
            if i != eos and i not in special and t and t not in seen:
                seen[t] = i
        self.steps = [(t, i) for t, i in seen.items()]
        self._accepts: dict[bytes, bool] = {}
        self._memo: dict[tuple[bytes, int], tuple[tuple[int, ...], str] | None] = {}

    def complete(self, data: bytes) -> bool:
        hit = self._accepts.get(data)
        if hit is None:
            hit = self._accepts[data] = bool(self.accepts(decode_text(data)))
        return hit

    def cut(self, data: bytes) -> int | None:
        """Where the first stop sequence in ``data`` begins, or None."""
        hits = [i for i in (data.find(s) for s in self.stops) if i >= 0]
        return min(hits) if hits else None

    def after(self, data: bytes, remaining: int) -> tuple[tuple[int, ...], str] | None:
        """A continuation of the unfinished output ``data`` by at most ``remaining``
        ordinary tokens that ends accepted: ``(witness, output)``, or None."""
        key = (data, remaining)
        if key in self._memo:
            return self._memo[key]
        found: tuple[tuple[int, ...], str] | None = None
        if self.complete(data):
            found = ((_EOS,), decode_text(data))
        elif remaining > 0:
            for t, i in self.steps:
                r = self.token(data, t, i, remaining - 1)
                if r is not None:
                    found = ((i, *r[0]), r[1])
                    break
        self._memo[key] = found
        return found

    def token(self, data: bytes, tok: bytes, token_id: int,
              remaining: int) -> tuple[tuple[int, ...], str] | None:
        """Whether appending the ordinary token ``tok`` to ``data`` is allowed."""
        new = data + tok
        c = self.cut(new)
        if c is not None:  # this token completes a stop: the output is over
            return ((), decode_text(new[:c])) if self.complete(new[:c]) else None
        return self.after(new, remaining)

    def any_token(self, data: bytes, z: int,
                  remaining: int) -> tuple[tuple[int, ...], str] | None:
        """Whether token id ``z`` (EOS, special, empty or ordinary) is allowed after ``data``."""
        v = self.vocab
        if z == v.eos_token_id:
            return ((), decode_text(data)) if self.complete(data) else None
        if z in v.special_ids:
            return None  # control tokens are never part of an output
        tok = v.tokens[z]
        if not tok:  # an empty ordinary token writes nothing: the text decides
            return self.after(data, remaining)
        return self.token(data, tok, z, remaining)


def check_dead_prefix(
    constraint: Any,
    vocab: Vocabulary,
    *,
    depth: int = 3,
    stop: Sequence[str] | None = None,
    states: int = 2000,
    bound: BoundConstraint | None = None,
    limit: int = 50,
) -> DeadPrefixReport:
    """Check ``dead_prefix`` exhaustively on a small vocabulary, against the definition.

    For every state reachable by at most ``depth - 1`` tokens that ``check`` or
    ``sweep_check`` accepts (breadth first; at most ``states`` of them), every token ``y``
    that either rejects there and every ``n = dead_prefix(state, y)`` the sampler would
    act on, each
    token ``z`` of ``{y} ∪ vocab.trie.with_prefix(vocab.tokens[y][:n])`` must not be
    allowed: no continuation of the output by ``z`` and at most ``depth - k - 1`` more
    ordinary tokens (``k`` tokens led to the state) may end with an output the
    constraint's ``accepts`` accepts. An output ends at EOS (the whole text, decoded as
    UTF-8 with replacement) or, with ``stop``, at the token that completes the first
    stop sequence (the text before it). EOS and control tokens (``vocab.special_ids``)
    are never part of an output; an empty token writes nothing.

    Args:
        constraint: anything :func:`~awrs_adapters.protocol.as_constraint` accepts; its
            Boolean part's ``accepts`` is the definition.
        vocab: a small :class:`~awrs_adapters.vocab.Vocabulary` (the cost grows like
            ``V ** depth``); use byte fragments, an EOS and special or empty tokens.
        depth: the most tokens of an output considered (as ``max_tokens``).
        stop: stop sequences; the bound is wrapped in
            :class:`~awrs_adapters.stops.StopBound` as the engine does.
        states: the most states walked.
        bound: the bound constraint to test instead of the one the engine would build
            (e.g. a subclass); ``stop`` still defines the reference.
        limit: stop after this many violations.

    Returns:
        A :class:`DeadPrefixReport`; ``report.assert_ok()`` raises ``AssertionError``
        naming the state text, ``y``, ``n`` and the allowed ``z`` of each violation.
    """
    if depth < 1:
        raise ValueError(f"depth={depth}; pass an int >= 1")
    proposal, _ = split(as_constraint(constraint))
    stops = check_stop(stop)
    if bound is None:
        bound = proposal.bind(vocab)
        if stops:
            bound = StopBound(bound, proposal.accepts, stops)
    ref = _Definition(vocab, proposal.accepts, [s.encode("utf-8") for s in stops])
    tokens, eos, trie = vocab.tokens, vocab.eos_token_id, vocab.trie
    report = DeadPrefixReport()
    queue: deque[tuple[tuple[int, ...], bytes, Any]] = deque([((), b"", bound.initial_state())])
    while queue:
        if report.states >= states:
            report.truncated = True
            break
        path, data, st = queue.popleft()
        report.states += 1
        remaining = depth - len(path) - 1
        for y in range(vocab.size):
            # a draw asks check, an exhaustive sweep (mask-smc) sweep_check: walk on
            # what either accepts, test the claim wherever either rejects
            draw, sweep = bound.check(st, y), bound.sweep_check(st, y)
            if draw or sweep:
                if y != eos and len(path) + 1 < depth:
                    new = data + tokens[y]
                    if ref.cut(new) is None:  # an unfinished output: walk on
                        queue.append(((*path, y), new, bound.advance(st, y)))
                if draw and sweep:
                    continue
            report.rejections += 1
            n = bound.dead_prefix(st, y)
            if not n:
                continue
            report.claims += 1
            prefix = tokens[y][:n]
            pruned = [y] + [z for z in trie.with_prefix(prefix).tolist() if z != y]
            for z in pruned:
                report.pruned += 1
                hit = ref.any_token(data, z, remaining)
                if hit is not None:
                    report.violations.append(DeadPrefixViolation(
                        path, data, y, int(n), prefix, z, tokens[z], *hit))
                    if len(report.violations) >= limit:
                        return report
    return report
