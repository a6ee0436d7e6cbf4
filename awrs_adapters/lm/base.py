"""The language-model interface: a batch of particles that advance one token at a time.

Overview: a :class:`LanguageModel` owns a byte :class:`~awrs_adapters.vocab.Vocabulary`
and starts a :class:`ParticleBatch` from a prompt. The batch gives next-token
log-probabilities for all its rows in one call (one batched forward for a neural
model), extends every row by one token, and selects rows by index (resampling and
compaction; duplicates allowed). The engine never sees more than this.

Example::

    >>> import torch
    >>> from awrs_adapters.lm import FunctionLM
    >>> lm = FunctionLM([b"a", b"b", b""], eos_token_id=2,
    ...                 next_logprobs=lambda prefix: torch.log(torch.tensor([0.4, 0.4, 0.2])))
    >>> batch = lm.start("", num_particles=3)
    >>> lp = batch.logprobs()          # [3, 3]
    >>> batch.extend([0, 1, 0])
    >>> batch.select([2, 2, 0])        # resample: rows 2, 2, 0
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import LMError
from ..vocab import Vocabulary

__all__ = ["LanguageModel", "ParticleBatch", "check_logprobs", "merge_end_tokens"]


class ParticleBatch(ABC):
    """Rows of particles sharing one prompt. Row ``i`` is one particle's context."""

    @property
    @abstractmethod
    def num_rows(self) -> int:
        """Number of rows (live particles)."""

    @abstractmethod
    def logprobs(self) -> torch.Tensor:
        """Next-token log-probabilities, shape ``[num_rows, V]``, normalised over V.

        The EOS column holds the probability of ending (all end tokens merged).
        """

    @abstractmethod
    def extend(self, token_ids: Sequence[int]) -> None:
        """Append ``token_ids[i]`` to row ``i`` (``len(token_ids) == num_rows``)."""

    @abstractmethod
    def select(self, rows: Sequence[int]) -> None:
        """Keep rows ``rows`` in that order; duplicates fork a row, missing rows are freed."""


class LanguageModel(ABC):
    """A source of batched next-token distributions over a byte vocabulary."""

    vocab: Vocabulary
    #: True when ``start(prompt, n, temperature=t)`` applies ``t`` to the raw logits
    #: (before merging several end tokens into EOS), which dividing the merged
    #: log-probabilities cannot reproduce; the engine then leaves temperature to ``start``
    raw_temperature: bool = False

    @property
    def eos_token_id(self) -> int:
        """The core's single end-of-sequence id."""
        return self.vocab.eos_token_id

    @abstractmethod
    def start(self, prompt: Any, num_particles: int) -> ParticleBatch:
        """Condition on ``prompt`` and return a batch of ``num_particles`` identical rows."""

    def prompt_length(self, prompt: Any) -> int:
        """Number of prompt tokens (0 when the model has no tokenizer)."""
        return 0


def merge_end_tokens(lp: torch.Tensor, eos: int, ends: torch.Tensor) -> torch.Tensor:
    """Fold the probability of every end token into the core's one EOS column, in place.

    ``lp``: log-probabilities, shape ``[rows, vocab]``; ``ends``: long tensor of the end
    token ids (``eos`` among them). Column ``eos`` becomes the log-sum-exp of the end
    columns and the other end columns ``-inf``, so each row stays normalised. Returns ``lp``.
    """
    if len(ends) > 1:
        eos_col = torch.logsumexp(lp.index_select(-1, ends), dim=-1)
        others = ends[ends != eos]
        lp.index_fill_(-1, others, -float("inf"))
        lp[:, eos] = eos_col
    return lp


def check_logprobs(logp: torch.Tensor, step: int) -> None:
    """Raise :class:`~awrs_adapters.errors.LMError` if rows ``logp`` ``[rows, V]`` hold a
    NaN or +inf (``step``: the engine's step, for the message)."""
    if torch.isnan(logp).any() or torch.isposinf(logp).any():
        bad = "NaN" if torch.isnan(logp).any() else "+inf"
        raise LMError(
            f"the language model returned {bad} log-probabilities at step {step}; check "
            "the model's dtype (fp16 overflow on CPU is common: use float32), its inputs, "
            "and that no row gives every token probability 0 (normalising an all -inf "
            "row gives NaN)"
        )
