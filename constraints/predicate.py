"""Slow-path checks on decoded text: Boolean predicates and soft potentials.

Overview: :class:`Predicate` is a Boolean check on text; the sampler runs it only on
the candidate tokens it draws (rejection), never over the whole vocabulary.
:class:`Potential` is a soft log-weight on text, applied by SMC as an importance weight
(a twist on prefixes, the complete score at the end). Both cache results by text.

Where each check runs:

* ``Predicate(prefix=...)``: in the proposal, on every candidate token. ``prefix`` must
  be *sound*: it may reject a prefix only if no completion of it can be accepted.
* ``Predicate(complete=...)``: in the proposal, when EOS is the candidate.
* ``Potential``: as a critic; never rejects in the proposal, so it may be soft or expensive.

Example::

    from awrs_adapters.constraints import Predicate, Potential
    ends_a = Predicate(complete=lambda s: s.endswith("a"))
    short = Potential(complete=lambda s: -0.5 * len(s))     # log-weight
    both = ends_a & short
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from ..caching import LRUCache
from ..constraint import BoundConstraint, Constraint
from ..errors import ConfigError, ConstraintError
from ..vocab import Vocabulary, split_pending

__all__ = ["Potential", "Predicate"]

_RAISED = object()  # what _call returns for a raising function under errors="reject"

#: Most characters an exhaustive sweep tries for one unfinished character.
SWEEP_LOOKAHEAD = 4096


@functools.lru_cache(maxsize=512)
def likely_first(chars: range) -> Sequence[int]:
    """The code points of ``chars``, assigned characters first, then private use, then
    unassigned: a prefix function that accepts some character usually accepts an
    assigned one, so the search stops early (U+10000.. holds 65k unassigned points)."""
    if len(chars) <= 64:
        return chars
    rank = {"Cn": 2, "Co": 1, "Cs": 1}
    return sorted(chars, key=lambda cp: rank.get(unicodedata.category(chr(cp)), 0))


def _call(fn: Callable[[str], Any], text: str, what: str, errors: str, name: str) -> Any:
    try:
        return fn(text)
    except Exception as e:  # a user's check raised: report it with the text it saw
        if errors == "reject":
            return _RAISED
        raise ConstraintError(
            f"{name}'s {what} check raised {type(e).__name__}: {e} on text {text!r}; fix the "
            f"function, or create the {name} with errors='reject' to treat errors as rejection"
        ) from e


class Predicate(Constraint):
    """A Boolean check on decoded text.

    Args:
        complete: ``fn(text) -> bool`` on a finished output.
        prefix: ``fn(text) -> bool`` on an unfinished output. Must be sound (see module
            doc). Default: accept. When a token ends inside a multi-byte character, the
            prefix is kept if ``prefix(text + ch)`` holds for some character ``ch`` it can
            still become, or for U+FFFD (what an unfinished character decodes to), so a
            byte fragment of "é" or "中" is rejected at once where only ASCII may follow.
            Bytes that can never form a character are read as U+FFFD, as the finished
            text will be.
        errors: ``"raise"`` (default) reports a check that raises as
            :class:`~awrs_adapters.errors.ConstraintError`; ``"reject"`` treats it as False.
        name: used in error messages.
        lookahead: most characters tried for one unfinished character when a drawn
            token is checked (stopping at the first that fits; assigned characters are
            tried first). One byte short there are at most 64, two bytes short 4,096,
            three short (a lone 4-byte lead such as ``b"\\xf0"``) up to 262,144: the
            default tries them all, so no token that begins a character is kept unless
            the character can be finished (that would be a dead end one step later).
            Where nothing fits, a lone lead costs one call per character (about 0.5 s
            for ``b"\\xf0"`` with a compiled-regex prefix function); only drawn tokens
            pay it, and rarely: a lone lead is drawn where nearly all the valid mass is
            gone. Past the bound the character is held back (accepted for now: still
            sound). An exhaustive sweep (``mask-smc``) tries at most 4,096 for a token
            that begins its character and holds back the rest. Results are cached per
            text.
        lookahead_budget: most calls all look-aheads of one bound constraint (one
            generation) may spend on characters more than one byte short; once spent,
            such characters are held back. Bounds the worst case of a slow prefix
            function: rejecting SmolLM2's three lone 4-byte leads costs 524,288 calls
            per text. Default 1,048,576: two such rejections per generation.
    """

    def __init__(
        self,
        complete: Callable[[str], bool],
        prefix: Callable[[str], bool] | None = None,
        *,
        errors: Literal["raise", "reject"] = "raise",
        name: str | None = None,
        lookahead: int = 262_144,
        lookahead_budget: int = 1_048_576,
    ) -> None:
        if not callable(complete):
            raise ConfigError(f"complete={complete!r} is not callable; pass fn(text) -> bool")
        if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 0:
            raise ConfigError(f"lookahead={lookahead!r}; pass an int >= 0 (default 262144: every character)")
        if prefix is not None and not callable(prefix):
            raise ConfigError(f"prefix={prefix!r} is not callable; pass fn(text) -> bool or None")
        if errors not in ("raise", "reject"):
            raise ConfigError(f"errors={errors!r}; use 'raise' or 'reject'")
        self.complete_fn = complete
        self.prefix_fn = prefix
        self.errors = errors
        self.name = name or getattr(complete, "__name__", "Predicate")
        if (isinstance(lookahead_budget, bool) or not isinstance(lookahead_budget, int)
                or lookahead_budget < 0):
            raise ConfigError(f"lookahead_budget={lookahead_budget!r}; pass an int >= 0 "
                              "(default 1048576)")
        self.lookahead = lookahead
        self.lookahead_budget = lookahead_budget

    def accepts(self, text: str) -> bool:
        v = _call(self.complete_fn, text, "complete", self.errors, self.name)
        return v is not _RAISED and bool(v)

    def check_prefix(self, text: str) -> bool:
        """The prefix check on ``text`` (True when no prefix function was given)."""
        if self.prefix_fn is None:
            return True
        v = _call(self.prefix_fn, text, "prefix", self.errors, self.name)
        return v is not _RAISED and bool(v)

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        return _PredicateBound(self, vocab)

    def __repr__(self) -> str:
        return f"Predicate({self.name})"


class _PredicateBound(BoundConstraint):
    """State: the bytes generated so far (immutable)."""

    has_slow = True

    def __init__(self, pred: Predicate, vocab: Vocabulary) -> None:
        self.pred = pred
        self.vocab = vocab
        self._tokens = vocab.tokens
        self._eos = vocab.eos_token_id
        self._special = vocab.special_ids
        self._prefix_cache: LRUCache[bool] = LRUCache()
        self._pending_cache: LRUCache[bool] = LRUCache(maxsize=4096)
        self._complete_cache: LRUCache[bool] = LRUCache()
        self._budget = pred.lookahead_budget  # calls left for characters > 1 byte short

    def initial_state(self) -> bytes:
        return b""

    def viable(self, data: bytes, start: int = 0, sweep: bool = False) -> bool:
        """Whether the output bytes ``data`` may still be completed (the prefix check).

        Text that ends inside a character is viable iff some way to finish that character
        is: one of the characters it can become, or U+FFFD (what it decodes to if the
        output ends or breaks it). Sound: a sound prefix function rejects ``text + ch``
        only if nothing extends it. ``start``: how many bytes of ``data`` earlier tokens
        wrote. ``sweep``: the cheaper look-ahead of an exhaustive sweep (see
        :class:`Predicate`'s ``lookahead``): a character that earlier tokens began is
        resolved only one byte short there, or every continuation byte would cost up to
        4,096 calls.
        """
        text, chars = split_pending(data)
        settled = self._prefix_cache.get_or(text, self.pred.check_prefix)
        if chars is None or not settled:  # a dead text stays dead whatever char follows
            return settled
        limit = self.pred.lookahead
        if sweep:
            lead = len(data) - 1
            while data[lead] < 0xC0:
                lead -= 1
            limit = min(limit, SWEEP_LOOKAHEAD) if lead >= start or len(chars) <= 64 else 0
        if len(chars) > limit:  # past the bound: hold it back without trying a part
            limit = 0
        if len(chars) > 64 and len(chars) > self._budget:  # spent: hold it back (sound)
            limit = 0
        return self._pending_cache.get_or(
            (text, chars.start, chars.stop, limit),
            lambda _: self._some_char_fits(text, chars, limit),
        )

    def _some_char_fits(self, text: str, chars: range, limit: int) -> bool:
        fits = self.pred.check_prefix
        if limit:
            for n, cp in enumerate(likely_first(chars), 1):
                if fits(text + chr(cp)):
                    if len(chars) > 64:
                        self._budget -= n
                    return True
            if len(chars) > 64:
                self._budget -= len(chars)
        if fits(text + "\ufffd"):
            return True
        # too many characters to try them all: hold the character back (sound, less
        # sharp); the text itself passed already
        return limit == 0

    def check(self, state: bytes, token_id: int) -> bool:
        if token_id == self._eos:
            return self._complete_cache.get_or(state.decode("utf-8", errors="replace"),
                                               self.pred.accepts)
        if token_id in self._special:
            return False
        if self.pred.prefix_fn is None:
            return True
        return self.viable(state + self._tokens[token_id], len(state))

    def sweep_check(self, state: bytes, token_id: int) -> bool:
        if token_id == self._eos or token_id in self._special or self.pred.prefix_fn is None:
            return self.check(state, token_id)
        return self.viable(state + self._tokens[token_id], len(state), sweep=True)

    def dead_prefix(self, state: bytes, token_id: int) -> int | None:
        tok = self._tokens[token_id]
        if self.pred.prefix_fn is None or not tok:
            return None
        # probe the token's first byte (when its look-ahead is small) and first character:
        # one call that fails there rejects every token starting the same way
        if len(tok) > 1:
            data = state + tok[:1]
            chars = split_pending(data)[1]
            if (chars is None or len(chars) <= 64) and not self.viable(data, len(state)):
                return 1
            if chars is not None:  # the first character is longer than a byte
                for n in range(2, len(tok)):
                    if split_pending(state + tok[:n])[1] is None:
                        if not self.viable(state + tok[:n], len(state)):
                            return n
                        break
        return len(tok)

    def advance(self, state: bytes, token_id: int) -> bytes:
        if token_id == self._eos:
            return state
        return state + self._tokens[token_id]


class Potential(Constraint):
    """A soft log-weight on text, used by SMC as a critic (importance weight).

    Args:
        complete: ``fn(text) -> float``, the log-weight of a finished output
            (``-inf`` rejects it).
        prefix: ``fn(text) -> float``, an estimate of the log-weight a prefix will end
            with (the twist); default 0. A good twist lowers variance, any twist keeps the
            target the same, as long as it is ``-inf`` only where ``complete`` must be.
        errors: ``"raise"`` or ``"reject"`` (a raising function gives ``-inf``).
    """

    is_critic = True

    def __init__(
        self,
        complete: Callable[[str], float],
        prefix: Callable[[str], float] | None = None,
        *,
        errors: Literal["raise", "reject"] = "raise",
        name: str | None = None,
    ) -> None:
        if not callable(complete):
            raise ConfigError(f"complete={complete!r} is not callable; pass fn(text) -> float")
        if prefix is not None and not callable(prefix):
            raise ConfigError(f"prefix={prefix!r} is not callable; pass fn(text) -> float")
        if errors not in ("raise", "reject"):
            raise ConfigError(f"errors={errors!r}; use 'raise' or 'reject'")
        self.complete_fn = complete
        self.prefix_fn = prefix
        self.errors = errors
        self.name = name or getattr(complete, "__name__", "Potential")
        self._cache: LRUCache[float] = LRUCache()

    def _score(self, fn: Callable[[str], float], text: str, what: str) -> float:
        def compute(key: tuple[str, str]) -> float:
            v = _call(fn, text, what, self.errors, self.name)
            if v is _RAISED:
                return -math.inf
            if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer):
                # None (a missing return) or a bool would silently read as a weight
                raise ConstraintError(
                    f"{self.name}'s {what} function returned {v!r} on text {text!r}; return a "
                    "log-weight (a float; -inf rejects, 0.0 is neutral). A Boolean check is a "
                    "Predicate, not a Potential")
            v = float(v)
            if math.isnan(v) or v == math.inf:
                raise ConstraintError(
                    f"{self.name}'s {what} score is {v} on text {text!r}; return a finite "
                    "log-weight or -inf"
                )
            return v

        return self._cache.get_or((what, text), compute)

    def log_prefix(self, text: str) -> float:
        """Twist on an unfinished output (0 when no prefix function was given)."""
        if self.prefix_fn is None:
            return 0.0
        return self._score(self.prefix_fn, text, "prefix")

    def log_complete(self, text: str) -> float:
        """Log-weight of a finished output."""
        return self._score(self.complete_fn, text, "complete")

    def accepts(self, text: str) -> bool:
        return self.log_complete(text) > -math.inf

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        raise ConfigError(
            "a Potential is a critic, not a proposal constraint; pass it as "
            "constraint=... to generate, which applies it as an importance weight"
        )

    def __repr__(self) -> str:
        return f"Potential({self.name})"
