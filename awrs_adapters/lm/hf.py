"""What every Hugging Face-tokenizer backend shares: vocabulary, end tokens, prompts, rows.

Overview: :class:`HFTokenizerLM` is the base of
:class:`~awrs_adapters.lm.transformers.TransformersLM` and
:class:`~awrs_adapters.lm.vllm.VLLMLM`. From a tokenizer and the width of the model's
logits it builds the byte :class:`~awrs_adapters.vocab.Vocabulary` and the set of end
tokens merged into the one EOS column (:meth:`HFTokenizerLM._init_vocab`); it encodes
prompts (strings, chat messages, token ids) with the same rules and context checks,
validates ``start``'s arguments, and turns a batch of raw logits into normalised
log-probabilities (:meth:`HFTokenizerLM.postprocess`: temperature, padding rows of the
embedding matrix removed, a row with no possible token refused, end tokens merged). A
backend supplies the engine: ``start`` and a way to compute logits.

Example::

    >>> from awrs_adapters import models
    >>> lm = models.load()                       # a TransformersLM, an HFTokenizerLM
    >>> ids = lm.encode_prompt([{"role": "user", "content": "Hi"}])
    >>> print(len(ids), lm.end_token_ids, lm.vocab.eos_token_id)   # <|im_end|> and <|endoftext|>
    31 [2, 0] 2
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError, LMError
from ..vocab import Vocabulary
from .base import LanguageModel, merge_end_tokens
from .prompts import context_message, encode_prompt
from .tokenizer_bytes import end_token_ids, vocabulary_from_tokenizer

__all__ = ["HFTokenizerLM", "check_start_args"]


def check_start_args(num_particles: Any, temperature: Any) -> float:
    """Validate ``start``'s arguments; return the temperature as a float.

    Raises:
        ConfigError: ``num_particles`` not an int >= 0 (0 rows is an empty batch) or
            ``temperature`` not a finite number > 0.
    """
    if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 0:
        raise ConfigError(f"num_particles={num_particles!r}; pass an int >= 0")
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        t = math.nan
    if not (t > 0.0 and math.isfinite(t)):
        raise ConfigError(f"temperature={temperature!r}; pass a finite number > 0")
    return t


class HFTokenizerLM(LanguageModel):
    """Base of the backends that read a Hugging Face tokenizer.

    Subclasses call :meth:`_init_vocab` in their constructor, then set
    ``context_length`` (positions the model reads, or None) and may override
    :meth:`_embedding_rows`.

    Attributes:
        tokenizer: the Hugging Face tokenizer.
        vocab: the byte vocabulary (one column per logits column).
        end_token_ids: the end ids merged into ``vocab.eos_token_id``.
    """

    raw_temperature = True  # start(..., temperature=) divides the raw logits
    tokenizer: Any
    vocab: Vocabulary
    end_token_ids: list[int]

    def _init_vocab(
        self, tokenizer: Any, width: int, eos_token_ids: Sequence[int] | int | None,
        model_for_ends: Any, device: torch.device | str = "cpu",
    ) -> None:
        """Set ``tokenizer``, ``vocab`` and ``end_token_ids`` for logits of ``width`` columns.

        ``eos_token_ids`` None: every end token the tokenizer and ``model_for_ends``'s
        configs name (see :func:`~awrs_adapters.lm.tokenizer_bytes.end_token_ids`), ids
        outside the logits dropped (stale configs).
        """
        if eos_token_ids is None:
            ends = [i for i in end_token_ids(tokenizer, model_for_ends) if 0 <= i < width]
        elif isinstance(eos_token_ids, int):
            ends = [int(eos_token_ids)]
        else:
            ends = [int(i) for i in eos_token_ids]
        ends = list(dict.fromkeys(ends))  # each end token counted once in the merge
        self.tokenizer = tokenizer
        self.vocab = vocabulary_from_tokenizer(tokenizer, ends, vocab_size=width)
        self.end_token_ids = ends
        if self.vocab.size != width:
            raise ConfigError(
                f"the tokenizer has {self.vocab.size} tokens but the model's logits have "
                f"{width} columns; pass the tokenizer that belongs to this model"
            )
        self._eos = self.vocab.eos_token_id
        self._end_idx = torch.tensor(ends, dtype=torch.long, device=device)
        n_tok = len(tokenizer)
        # model rows with no token (embedding padding): never produced
        self._dead_idx = (
            torch.arange(n_tok, width, dtype=torch.long, device=device) if width > n_tok else None
        )

    # -- prompts ------------------------------------------------------------------
    @property
    def context_length(self) -> int | None:
        """Positions the model reads, or None if unknown."""
        return None

    def _embedding_rows(self) -> int:
        """Token ids the model's input embedding accepts (ids at or past it are refused)."""
        return self.vocab.size

    def encode_prompt(self, prompt: Any, *, max_tokens: int | None = None) -> list[int]:
        """Token ids of ``prompt`` (:func:`~awrs_adapters.lm.prompts.encode_prompt`).

        A ``str`` is tokenized as is (with the tokenizer's own special tokens, e.g. BOS);
        a list of ``{"role", "content"}`` messages goes through the chat template with
        ``add_generation_prompt=True``; a list of ints (or an int tensor of shape ``[n]``
        or ``[1, n]``) is used as token ids; ``None`` is the empty prompt. An empty
        prompt becomes ``[bos]`` (or ``[eos]`` without BOS). With ``max_tokens``, a
        prompt that leaves fewer positions than that is refused (ConfigError).
        """
        return encode_prompt(self.tokenizer, prompt, fallback_id=self._eos,
                             rows=self._embedding_rows(), context_length=self.context_length,
                             max_tokens=max_tokens)

    def prompt_length(self, prompt: Any) -> int:
        return len(self.encode_prompt(prompt))

    def check_room(self, length: int, prompt_tokens: int) -> None:
        """Raise LMError when a row of ``length`` positions cannot take one more token."""
        limit = self.context_length
        if limit is not None and length >= limit:
            raise LMError(
                f"generation reached the model's context length after "
                f"{length - prompt_tokens} tokens: " + context_message(prompt_tokens, None, limit))

    # -- rows ---------------------------------------------------------------------
    def postprocess(self, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Normalised log-probabilities ``[B, V]`` float32 with the end tokens merged into EOS.

        ``logits`` ``[B, V]`` raw scores (any float dtype); ``temperature`` divides them.

        Raises:
            LMError: a row whose every score is -inf (nothing possible).
        """
        x = logits if logits.dtype == torch.float32 else logits.float()
        if temperature != 1.0:
            x = x / temperature
        if self._dead_idx is not None:
            x = x.index_fill(-1, self._dead_idx.to(x.device), -math.inf)
        lp = torch.log_softmax(x, dim=-1)
        if lp.shape[0] and torch.isnan(lp[:, 0]).any():  # a NaN row is NaN everywhere
            dead = torch.isneginf(x).all(-1)
            if dead.any():
                raise LMError(
                    f"every token of row(s) {torch.nonzero(dead).flatten().tolist()[:5]} has "
                    "score -inf (probability 0): a logits processor, bias or bad-words list "
                    "removed the whole vocabulary; leave at least one token possible")
        return merge_end_tokens(lp, self._eos, self._end_idx.to(lp.device))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name()!r}, vocab={self.vocab.size}, eos={self.end_token_ids})"

    def _name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "") or "")
