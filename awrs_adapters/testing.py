"""Contract checkers and exact answers, for our tests and for users' own constraints.

Overview:

* :func:`exact_posterior` enumerates every string of a small :class:`FunctionLM` and
  returns the exact target ``P(x) ∝ Q(x)·C(x)`` and its normaliser Z, from the
  definition alone (the complete check; potentials multiply in ``exp(complete score)``),
  so that an unsound prefix check in the sampler shows up as a wrong posterior.
* :func:`exact_lcd` is the distribution that locally constrained decoding samples.
* :func:`check_proper_weighting` runs a token sampler many times and compares the mean
  of ``exp(log w)·1[y = a]`` with ``p(a)·ok(a)`` for every token a.
* :func:`check_potential` checks that a constraint's prefix check is sound on examples:
  every prefix of an accepted string must be accepted.
* :func:`total_variation` between two distributions given as dicts.
* :func:`check_dead_prefix` (from :mod:`awrs_adapters.prefix_check`): every byte-trie
  subtree a constraint's ``dead_prefix`` prunes holds no token the definition allows,
  exhaustively on a small vocabulary.

Example::

    >>> import math
    >>> from awrs_adapters.lm import FunctionLM
    >>> from awrs_adapters.testing import exact_posterior
    >>> lm = FunctionLM([b"a", b"b", b""], 2, lambda p: [math.log(.4), math.log(.4), math.log(.2)])
    >>> post, Z = exact_posterior(lm, lambda s: s.endswith("a"), max_tokens=3)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .lm.function import FunctionLM
from .prefix_check import DeadPrefixReport, DeadPrefixViolation, check_dead_prefix
from .protocol import BoundConstraint, as_constraint, split
from .vocab import decode_prefix, decode_text

__all__ = [
    "DeadPrefixReport",
    "DeadPrefixViolation",
    "ProperWeightingReport",
    "check_dead_prefix",
    "check_potential",
    "check_prefix_soundness",
    "check_proper_weighting",
    "exact_lcd",
    "exact_posterior",
    "total_variation",
]


def _potential_logw(potentials: list[Any], text: str) -> float:
    return float(sum(c.log_complete(text) for c in potentials))


def _rows(lm: FunctionLM, prefix: tuple[int, ...], temperature: float) -> np.ndarray:
    lp = lm.logprobs_of(prefix)
    if temperature != 1.0:
        lp = torch.log_softmax(lp / temperature, dim=-1)
    return lp.numpy()


def exact_posterior(
    lm: FunctionLM,
    constraint: Any,
    max_tokens: int,
    *,
    temperature: float = 1.0,
    stop: Sequence[str] = (),
) -> tuple[dict[str, float], float]:
    """The exact target over complete strings and its normaliser Z, from the definition.

    Every token sequence of at most ``max_tokens`` tokens is enumerated (the end forced
    at ``max_tokens`` exactly as the engine does) and weighted by
    ``Q(x)·C(x)·exp(Σ potentials' complete scores)``, where ``C`` is the Boolean parts'
    whole-string check (``accepts``) of the decoded text. Nothing of the sampler's
    machinery (prefix checks, masks, look-ahead) enters, so an unsound prefix check shows
    up as a difference. Control tokens (``vocab.special_ids``) are never part of an
    output. With ``stop``, an output ends at the token that completes the first stop
    sequence and is the text before it. Exponential in ``max_tokens``: small problems.
    """
    proposal, potentials = split(as_constraint(constraint))
    vocab = lm.vocab
    eos = vocab.eos_token_id
    stops = [x.encode("utf-8") for x in stop if x]
    ordinary = [y for y in range(vocab.size) if y != eos and y not in vocab.special_ids]
    out: dict[str, float] = {}

    def end(data: bytes, logq: float) -> None:
        text = decode_text(data)
        if not proposal.accepts(text):
            return
        lw = logq + (_potential_logw(potentials, text) if potentials else 0.0)
        if lw > -math.inf:
            out[text] = out.get(text, 0.0) + math.exp(lw)

    def visit(prefix: tuple[int, ...], data: bytes, logq: float) -> None:
        lp = _rows(lm, prefix, temperature)
        if lp[eos] > -math.inf:
            end(data, logq + float(lp[eos]))
        if len(prefix) >= max_tokens:
            return
        for y in ordinary:
            if lp[y] == -math.inf:
                continue
            new = data + vocab.tokens[y]
            cuts = [i for i in (new.find(x) for x in stops) if i >= 0]
            if cuts:
                end(new[: min(cuts)], logq + float(lp[y]))
            else:
                visit(prefix + (y,), new, logq + float(lp[y]))

    visit((), b"", 0.0)
    total = sum(out.values())
    if total > 0:
        out = {k: v / total for k, v in out.items() if v > 0}
    return out, total


def exact_lcd(
    lm: FunctionLM, constraint: Any, max_tokens: int, *, temperature: float = 1.0
) -> dict[str, float]:
    """The distribution that locally constrained decoding samples.

    LCD is defined by the sampler's own token checks (renormalise ``p`` over the tokens
    the bound constraint accepts at each step), so unlike :func:`exact_posterior` this
    reference uses them.
    """
    proposal, potentials = split(as_constraint(constraint))
    bound = proposal.bind(lm.vocab)
    eos = lm.vocab.eos_token_id
    out: dict[str, float] = {}

    def visit(prefix: tuple[int, ...], state: Any, logq: float) -> None:
        lp = _rows(lm, prefix, temperature)
        cands = [eos] if len(prefix) >= max_tokens else [
            y for y in range(len(lp)) if lp[y] > -math.inf]
        oks = [y for y in cands if bound.check(state, y)]
        norm = 0.0
        if len(prefix) < max_tokens:
            z = sum(math.exp(lp[y]) for y in oks)
            if z <= 0:
                return
            norm = math.log(z)
        for y in oks:
            lq = logq + float(lp[y]) - norm
            if y == eos:
                text = decode_text(lm.vocab.token_bytes(prefix))
                w = math.exp(lq + (_potential_logw(potentials, text) if potentials else 0.0))
                out[text] = out.get(text, 0.0) + w
            else:
                visit(prefix + (y,), bound.advance(state, y), lq)

    visit((), bound.initial_state(), 0.0)
    total = sum(out.values())
    return {k: v / total for k, v in out.items() if v > 0} if total > 0 else {}


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """``½ Σ |p(x) − q(x)|`` over the union of supports."""
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


@dataclass
class ProperWeightingReport:
    """``estimate[a]`` = mean of ``w·1[y = a]``; ``expected[a]`` = ``p(a)·ok(a)``."""

    estimate: np.ndarray
    expected: np.ndarray
    stderr: np.ndarray
    mean_checks: float

    def assert_ok(self, z: float = 4.5, atol: float = 1e-9) -> None:
        """Raise AssertionError when some token's estimate is off by more than z s.e."""
        diff = np.abs(self.estimate - self.expected)
        bad = np.flatnonzero(diff > z * self.stderr + atol)
        if bad.size:
            a = int(bad[0])
            raise AssertionError(
                f"not properly weighted at token {a}: mean w·1[y=a] = {self.estimate[a]:.5f}, "
                f"p(a)·ok(a) = {self.expected[a]:.5f}, s.e. {self.stderr[a]:.5f}"
            )


def check_proper_weighting(
    sampler: Any,
    logp: Sequence[float] | torch.Tensor,
    bound: BoundConstraint,
    state: Any,
    *,
    n: int = 4000,
    rng: np.random.Generator,
) -> ProperWeightingReport:
    """Monte-Carlo check of ``E[w·1[y=a]] = p(a)·ok(a)`` for a token sampler.

    ``sampler`` has ``sample(logp [n, V], bound, states, rng) -> list[TokenDraw]``
    (e.g. :class:`~awrs_adapters.awrs.AWRS`). All ``n`` draws are made in one batch.
    """
    lp = torch.as_tensor(logp, dtype=torch.float64).reshape(1, -1)
    V = lp.shape[1]
    p = torch.exp(lp[0]).numpy()
    ok = np.array([bound.check(state, a) if p[a] > 0 else False for a in range(V)])
    expected = p * ok
    draws = sampler.sample(lp.expand(n, V), bound, [state] * n, rng)
    contrib = np.zeros((n, V))
    for i, d in enumerate(draws):
        if d.token is not None and d.log_weight > -math.inf:
            contrib[i, d.token] = math.exp(d.log_weight)
    est = contrib.mean(axis=0)
    se = contrib.std(axis=0, ddof=1) / math.sqrt(n)
    # AWRS weights are <= 1, so Var(w·1[y=a]) <= E[w·1[y=a]]: a floor for rare tokens
    # whose sample standard error is 0 because they were never drawn
    se = np.maximum(se, np.sqrt(np.maximum(expected, est) / n))
    return ProperWeightingReport(est, expected, se, float(np.mean([d.checks for d in draws])))


def check_potential(
    constraint: Any, valid_texts: Iterable[str], *, prefixes: str = "chars"
) -> list[str]:
    """Prefix soundness on examples: return the prefixes wrongly rejected (empty = sound).

    For each text the constraint accepts as complete, every prefix (each character
    boundary, or each UTF-8 byte boundary with ``prefixes="bytes"``) must pass the
    prefix check. Boolean constraints are checked through a one-token-per-byte
    vocabulary; potentials must give every prefix a finite log-weight.
    """
    from .vocab import Vocabulary

    c = as_constraint(constraint)
    proposal, potentials = split(c)
    vocab = Vocabulary([bytes([i]) for i in range(256)] + [b""], 256)
    bound = proposal.bind(vocab)
    bad: list[str] = []
    for text in valid_texts:
        if not c.accepts(text):
            bad.append(f"complete check rejects the example {text!r}")
            continue
        data = text.encode("utf-8")
        state = bound.initial_state()
        for k, byte in enumerate(data):
            if not bound.check(state, byte):
                bad.append(decode_prefix(data[: k + 1]) if prefixes == "chars" else repr(data[: k + 1]))
                break
            state = bound.advance(state, byte)
        else:
            if not bound.check(state, 256):
                bad.append(f"EOS rejected after {text!r}")
        for cr in potentials:
            for k in range(len(text) + 1):
                if cr.log_prefix(text[:k]) == -math.inf:  # type: ignore[attr-defined]
                    bad.append(f"potential {cr!r} gives -inf to prefix {text[:k]!r}")
                    break
    return bad


def check_prefix_soundness(
    constraint: Any, vocab: Any, max_tokens: int, *, limit: int = 10
) -> list[str]:
    """Exhaustive prefix soundness on a small vocabulary: return the violations found.

    Every output of at most ``max_tokens`` tokens of ``vocab`` (a
    :class:`~awrs_adapters.vocab.Vocabulary`) that the complete check accepts must have
    every token along the way accepted by the bound constraint, and EOS at its end. Real
    tokenizers split characters: use byte fragments in ``vocab`` to test that too.
    Exponential in ``max_tokens``. Empty list: sound on this vocabulary.
    """
    proposal, _ = split(as_constraint(constraint))
    bound = proposal.bind(vocab)
    eos = vocab.eos_token_id
    ordinary = [y for y in range(vocab.size) if y != eos and y not in vocab.special_ids]
    bad: list[str] = []

    def visit(ids: tuple[int, ...], data: bytes, state: Any, rejected_at: int | None) -> None:
        if len(bad) >= limit:
            return
        if proposal.accepts(decode_text(data)):
            if rejected_at is not None:
                bad.append(f"{data!r} is accepted, but token {rejected_at} of {ids} was "
                           f"rejected after {vocab.token_bytes(ids[:rejected_at])!r}")
            elif not bound.check(state, eos):
                bad.append(f"{data!r} is accepted, but EOS was rejected after it")
        if len(ids) >= max_tokens:
            return
        for y in ordinary:
            new = data + vocab.tokens[y]
            if rejected_at is None and bound.check(state, y):
                visit(ids + (y,), new, bound.advance(state, y), None)
            else:
                visit(ids + (y,), new, None, len(ids) if rejected_at is None else rejected_at)

    visit((), b"", bound.initial_state(), None)
    return bad

