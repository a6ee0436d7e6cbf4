"""Lazy sampling without replacement by Gumbel keys, batched over particles.

Overview: ``key(y) = log p(y) + Gumbel noise``; visiting tokens in decreasing key is a
sample without replacement from p. Keys are drawn once per step for every row
(``[n, V]``), and each row's order is taken lazily with ``torch.topk`` in growing
chunks, never a full sort of V per draw. Tokens with p = 0 have key -inf and are never
visited.

Example::

    >>> import numpy as np, torch
    >>> from awrs_adapters.gumbel import gumbel_orders
    >>> logp = torch.log(torch.tensor([[0.5, 0.3, 0.2, 0.0]]))
    >>> order = gumbel_orders(logp, np.random.default_rng(0))[0]
    >>> print([order.get(i) for i in range(4)])   # a permutation of 0, 1, 2 then None
    [1, 2, 0, None]
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["LazyOrder", "gumbel_keys", "gumbel_orders"]

FIRST_CHUNK = 8


def gumbel_keys(logp: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """``logp + Gumbel(0, 1)`` noise, same shape and dtype; -inf stays -inf."""
    gen = torch.Generator(device=logp.device)
    gen.manual_seed(int(rng.integers(0, 2**63 - 1)))
    e = torch.empty_like(logp).exponential_(1.0, generator=gen)
    return logp - torch.log(e)


class LazyOrder:
    """The tokens of one row in decreasing key, materialised on demand.

    Args:
        keys: ``[V]`` Gumbel keys of one row (-inf = never visited).
        ids, vals: an already computed top-k prefix of the order (optional).
    """

    __slots__ = ("_ids", "exhausted", "keys")

    def __init__(
        self,
        keys: torch.Tensor,
        ids: torch.Tensor | None = None,
        vals: torch.Tensor | None = None,
    ) -> None:
        self.keys = keys
        self.exhausted = False
        self._ids: list[int] = []
        if ids is not None and vals is not None:
            self._take(ids, vals)

    def _take(self, ids: torch.Tensor, vals: torch.Tensor) -> None:
        finite = torch.isfinite(vals)
        n_fin = int(finite.sum())
        self._ids = ids[:n_fin].tolist()
        if n_fin < len(vals) or len(vals) >= self.keys.numel():
            self.exhausted = True

    def get(self, i: int) -> int | None:
        """The i-th token of the order, or None when fewer than i+1 tokens have p > 0."""
        while i >= len(self._ids):
            if self.exhausted:
                return None
            k = min(self.keys.numel(), max(4 * len(self._ids), 64))
            vals, ids = torch.topk(self.keys, k)
            self._take(ids, vals)
        return self._ids[i]


def gumbel_orders(
    logp: torch.Tensor,
    rng: np.random.Generator,
    first_chunk: int = FIRST_CHUNK,
    *,
    greedy: bool = False,
) -> list[LazyOrder]:
    """One :class:`LazyOrder` per row of ``logp`` (``[n, V]``), first chunk in one top-k.

    ``greedy=True`` drops the noise: tokens are visited in decreasing probability.
    """
    if logp.shape[0] == 0:
        return []
    keys = logp if greedy else gumbel_keys(logp, rng)
    k = min(first_chunk, keys.shape[1])
    vals, ids = torch.topk(keys, k, dim=1)
    return [LazyOrder(keys[r], ids[r], vals[r]) for r in range(keys.shape[0])]
