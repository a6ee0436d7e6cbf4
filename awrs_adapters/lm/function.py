"""An exact language model given by a Python function of the generated prefix.

Overview: :class:`FunctionLM` wraps ``next_logprobs(prefix_ids) -> log-probabilities``.
It is the exact model used by the statistical tests, the docs and the cookbook: small
enough to enumerate every string, so posteriors can be computed exactly
(:func:`awrs_adapters.testing.exact_posterior`).

Example::

    >>> import math
    >>> from awrs_adapters.lm import FunctionLM
    >>> # tokens a, b, EOS; a uniform prior
    >>> lm = FunctionLM([b"a", b"b", b""], 2, lambda prefix: [math.log(1 / 3)] * 3)
    >>> print(lm.start(None, 2).logprobs().shape)   # torch.Size([2, 3])
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import VocabularyError
from ..vocab import Vocabulary
from .base import LanguageModel, ParticleBatch

__all__ = ["FunctionLM"]

NextLogprobs = Callable[[tuple[int, ...]], Any]


class FunctionLM(LanguageModel):
    """Language model defined by ``next_logprobs(prefix_ids)``.

    Args:
        vocab: one ``bytes`` per token id (the EOS entry's bytes are ignored), or a
            :class:`Vocabulary`.
        eos_token_id: id of the end-of-sequence token.
        next_logprobs: maps the tuple of generated token ids to log-probabilities over
            the whole vocabulary (a sequence, numpy array or tensor of length V). They
            are renormalised, so unnormalised log-weights are accepted too. The prompt is
            not passed: a FunctionLM is its own prompt.
    """

    def __init__(
        self,
        vocab: Sequence[bytes] | Vocabulary,
        eos_token_id: int,
        next_logprobs: NextLogprobs,
    ) -> None:
        self.vocab = vocab if isinstance(vocab, Vocabulary) else Vocabulary(vocab, eos_token_id)
        if self.vocab.eos_token_id != eos_token_id:
            raise VocabularyError(
                f"eos_token_id={eos_token_id} differs from the Vocabulary's "
                f"{self.vocab.eos_token_id}; pass the same id"
            )
        self.next_logprobs = next_logprobs
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}
        # results are cached by prefix (exact enumeration revisits them); bounded to
        # about 400 MB of float64 rows so large vocabularies do not exhaust memory
        self._cache_limit = max(16, 50_000_000 // self.vocab.size)

    def logprobs_of(self, prefix: tuple[int, ...]) -> torch.Tensor:
        """Normalised log-probabilities (float64, shape ``[V]``) after ``prefix``."""
        hit = self._cache.get(prefix)
        if hit is not None:
            return hit
        raw = self.next_logprobs(tuple(prefix))
        t = torch.as_tensor(np.asarray(raw, dtype=np.float64) if not torch.is_tensor(raw) else raw)
        t = t.to(torch.float64).reshape(-1)
        if t.numel() != self.vocab.size:
            raise VocabularyError(
                f"next_logprobs returned {t.numel()} values after prefix {prefix}, but the "
                f"vocabulary has {self.vocab.size} tokens; return one log-probability per id"
            )
        if not torch.isnan(t).any() and not torch.isposinf(t).any():
            t = torch.log_softmax(t, dim=-1)  # NaN/+inf are left for the engine to report
        if len(self._cache) < self._cache_limit:
            self._cache[prefix] = t
        return t

    def start(self, prompt: Any, num_particles: int) -> _FunctionBatch:
        return _FunctionBatch(self, [()] * num_particles)


class _FunctionBatch(ParticleBatch):
    def __init__(self, lm: FunctionLM, rows: list[tuple[int, ...]]) -> None:
        self.lm = lm
        self.rows = rows

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def logprobs(self) -> torch.Tensor:
        if not self.rows:
            return torch.empty(0, self.lm.vocab.size, dtype=torch.float64)
        return torch.stack([self.lm.logprobs_of(r) for r in self.rows])

    def extend(self, token_ids: Sequence[int]) -> None:
        if len(token_ids) != len(self.rows):
            raise ValueError(f"extend got {len(token_ids)} tokens for {len(self.rows)} rows")
        self.rows = [r + (int(t),) for r, t in zip(self.rows, token_ids, strict=True)]

    def select(self, rows: Sequence[int]) -> None:
        self.rows = [self.rows[int(i)] for i in rows]
