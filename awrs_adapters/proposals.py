"""Reference token proposals that share the AWRS interface, for comparison methods.

Overview: :class:`DirectSampler` draws from p unconstrained and checks the draw once
(``sample-verify``: an invalid draw gets weight 0, i.e. the particle dies).
:class:`MaskSampler` checks every token with p > 0 (the fast mask first, then the slow
checks on what it allows) and draws exactly from ``p·ok/Z`` with weight ``Z``
(``mask-smc``: the locally-constrained-with-weights reference; |V| checks per step for
a slow constraint).

Example::

    >>> import numpy as np, torch
    >>> from awrs_adapters.proposals import MaskSampler
    >>> from awrs_adapters.constraints import Predicate
    >>> from awrs_adapters.vocab import Vocabulary
    >>> b = Predicate(lambda s: True, prefix=lambda s: "b" not in s).bind(Vocabulary([b"a", b"b", b""], 2))
    >>> d = MaskSampler().sample(torch.log(torch.tensor([[0.2, 0.5, 0.3]])), b, [b""],
    ...                          np.random.default_rng(0))[0]
    >>> print(d.token, np.exp(d.log_weight))   # 0 or 2, Z = 0.5
    2 0.499...
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .awrs import AWRS, TokenDraw, TokenSampler, float64_rows
from .gumbel import gumbel_keys, gumbel_orders
from .protocol import BoundConstraint

__all__ = ["DirectSampler", "MaskSampler", "make_proposal"]


class DirectSampler:
    """Unconstrained draw from p; the constraint is a 0/1 weight on the draw."""

    def sample(
        self, logp: torch.Tensor, bound: BoundConstraint, states: Sequence[Any],
        rng: np.random.Generator,
    ) -> list[TokenDraw]:
        out = []
        for r, order in enumerate(gumbel_orders(logp, rng, first_chunk=1)):
            y = order.get(0)
            if y is None:
                out.append(TokenDraw(None, -math.inf, 0))
            elif bound.trivial:
                out.append(TokenDraw(y, 0.0, 0))
            else:
                ok = bound.check(states[r], y)
                out.append(TokenDraw(y if ok else None, 0.0 if ok else -math.inf, 1))
        return out


class MaskSampler:
    """Exact masking: every token with p > 0 is classified; weight log Z.

    A slow constraint is swept in the byte order of the vocabulary's trie, so a dead
    byte prefix (``BoundConstraint.dead_prefix``) rejects its whole subtree with one call.
    """

    def sample(
        self, logp: torch.Tensor, bound: BoundConstraint, states: Sequence[Any],
        rng: np.random.Generator,
    ) -> list[TokenDraw]:
        keys = gumbel_keys(logp, rng)
        lp = float64_rows(logp)
        out = []
        for r in range(lp.shape[0]):
            state = states[r]
            row = lp[r]
            possible = np.isfinite(row)
            masks = 0
            if bound.has_fast:
                possible &= np.asarray(bound.fast_mask(state), dtype=bool)
                masks = 1
            checks = 0
            if bound.has_slow:
                possible, checks = _sweep(bound, state, possible)
            Z = float(np.exp(row[possible]).sum())
            if Z <= 0.0:
                out.append(TokenDraw(None, -math.inf, checks, masks))
                continue
            k = keys[r].masked_fill(~torch.from_numpy(possible).to(keys.device), float("-inf"))
            out.append(TokenDraw(int(torch.argmax(k)), math.log(Z), checks, masks))
        return out


def _sweep(bound: BoundConstraint, state: Any, possible: np.ndarray) -> tuple[np.ndarray, int]:
    """The accepted tokens among ``possible`` ([V] bool) and the number of checks."""
    vocab = bound.vocab
    tokens = vocab.tokens
    trie = vocab.trie
    ok = np.zeros_like(possible)
    checks = 0
    order = trie.ids
    pos, K = 0, len(order)
    while pos < K:
        y = int(order[pos])
        pos += 1
        if not possible[y]:
            continue
        checks += 1
        if bound.sweep_check(state, y):
            ok[y] = True
            continue
        n = bound.dead_prefix(state, y)
        if n:  # every later token starting with these bytes is rejected too
            pos = max(pos, trie.span(tokens[y][:n])[1])
    in_trie = np.zeros_like(possible)
    in_trie[order] = True
    for y in np.flatnonzero(possible & ~in_trie).tolist():  # EOS, specials, empty tokens
        checks += 1
        ok[y] = bound.sweep_check(state, y)
    return ok, checks


def make_proposal(method: str, estimator: str = "recursive", switch: str | int = "adaptive",
                  greedy: bool = False) -> TokenSampler:
    """The token sampler of SMC's ``method`` (already validated).

    ``awrs-smc``: AWRS with ``estimator``'s proper weights; ``lcd``: AWRS's exact draws
    from the locally constrained distribution with improper (unit) weights, what masking
    samples; ``sample-verify``: :class:`DirectSampler`; ``mask-smc``:
    :class:`MaskSampler`. ``greedy`` (temperature 0): the most probable valid token.
    """
    if greedy:
        return AWRS("improper", switch=switch, greedy=True)
    if method == "awrs-smc":
        return AWRS(estimator, switch=switch)  # type: ignore[arg-type]
    if method == "lcd":
        return AWRS("improper", switch=switch)
    if method == "sample-verify":
        return DirectSampler()
    return MaskSampler()
