"""Locally constrained decoding as a transformers ``LogitsProcessor``, by rejection sampling.

Overview: :class:`AWRSLogitsProcessor` works in any ``model.generate`` call or pipeline.
For each row it finds one valid next token by adaptive rejection sampling (tokens checked
in the order of a sample without replacement from the row's scores) instead of masking
the whole vocabulary, and forces it. It is **locally constrained decoding**: every
output is valid, but the distribution is biased like all masking (a processor sees only
scores: it cannot carry weights or resample). For the unbiased posterior use
:func:`~awrs_adapters.integrations.transformers.smc_generate`.
:func:`token_id_list` reads the forms an ``eos_token_id`` setting takes.

Example::

    >>> from awrs_adapters.constraints import Regex
    >>> from awrs_adapters.integrations.transformers import AWRSLogitsProcessor
    >>> from awrs_adapters.models import load
    >>> lm = load()                      # the embedded SmolLM2 (a TransformersLM)
    >>> model, tok = lm.model, lm.tokenizer
    >>> lcd = AWRSLogitsProcessor(Regex(r" [0-9]{4}"), tok)
    >>> out = model.generate(**tok("Year:", return_tensors="pt"), logits_processor=[lcd],
    ...                      do_sample=True, max_new_tokens=8)
    >>> print(tok.decode(out[0]), lcd.unfinished_rows(out))   # rows cut before complete
    Year: ... [...]
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

try:
    from transformers import LogitsProcessor
except ImportError as e:  # pragma: no cover
    raise ImportError("this integration needs transformers: pip install transformers") from e

from ..api import make_rng
from ..awrs import AWRS
from ..errors import ConfigError
from ..lm.base import merge_end_tokens
from ..lm.tokenizer_bytes import end_token_ids, vocabulary_from_tokenizer
from ..protocol import as_constraint, split

__all__ = ["AWRSLogitsProcessor", "token_id_list"]

# the public module's logger, where users configure this integration's logging
logger = logging.getLogger(f"{__package__}.transformers")


def token_id_list(x: Any) -> list[int]:
    """Token ids from None, an int, a sequence of ints or a tensor (any shape), as a list."""
    if x is None:
        return []
    if isinstance(x, torch.Tensor):
        return [int(i) for i in x.reshape(-1).tolist()]
    if isinstance(x, int):
        return [x]
    return [int(i) for i in x]


class AWRSLogitsProcessor(LogitsProcessor):
    """Locally constrained decoding as a ``LogitsProcessor``, by adaptive rejection sampling.

    For each row, one valid next token is found without masking the vocabulary: tokens
    are checked in the order of a sample without replacement from the row's scores
    (``do_sample=True``), or in decreasing score (``do_sample=False``: the highest-scoring
    valid token), and the returned scores force it. EOS is allowed only where the
    constraint accepts the text as complete. This is locally constrained decoding:
    valid, but biased like all masking; ``smc_generate`` samples the true posterior.

    Args:
        constraint: any constraint of the library (or an Outlines type / pydantic class).
        tokenizer: the model's tokenizer (for the token bytes).
        do_sample: match the ``do_sample`` of the generate call.
        temperature: applied to the scores before sampling (generate applies its own
            temperature, top-k and top-p after user processors, so set it here).
        seed: int or ``numpy.random.Generator`` (default: drawn from torch's generator).
        eos_token_id: end tokens (default: the tokenizer's).

    One instance can be reused across ``generate`` calls: a new call is detected from
    ``input_ids`` (its rows do not extend the last call's rows by one token) and resets
    the state. Beam search (``num_beams > 1``) reorders rows between steps, which per-row
    state cannot follow: it raises ``ConfigError``.
    ``dead_rows`` lists the rows of the last call that reached a dead end (no valid
    token: the row is ended and its text is not accepted); ``checks`` counts checks.
    A row cut by ``max_new_tokens`` is a valid prefix, not a valid output:
    ``unfinished_rows(out)`` lists (and warns about) the rows of an output that the
    constraint does not accept as complete.
    """

    #: per-row state follows one generate call's rows in place: not for continuous
    #: batching (transformers checks this attribute) nor beam search (refused at run time)
    supports_continuous_batching = False

    def __init__(
        self,
        constraint: Any,
        tokenizer: Any,
        *,
        do_sample: bool = True,
        temperature: float = 1.0,
        seed: int | np.random.Generator | None = None,
        eos_token_id: int | Sequence[int] | None = None,
    ) -> None:
        if not isinstance(do_sample, bool):
            raise ConfigError(f"do_sample={do_sample!r}; pass True or False (match the "
                              "generate call's do_sample)")
        if not (isinstance(temperature, int | float) and temperature > 0 and math.isfinite(temperature)):
            raise ConfigError(f"temperature={temperature!r}; pass a finite number > 0")
        if tokenizer is None or not (hasattr(tokenizer, "convert_ids_to_tokens") or callable(tokenizer)):
            raise ConfigError(
                f"tokenizer={tokenizer!r}; pass the model's tokenizer "
                "(AutoTokenizer.from_pretrained(...)): the processor reads the tokens' bytes")
        self.constraint = as_constraint(constraint)
        if split(self.constraint)[1]:
            raise ConfigError(
                "a logits processor cannot apply a Potential (it carries no weights); use "
                "smc_generate for soft potentials"
            )
        self.tokenizer = tokenizer
        self.do_sample = do_sample
        self.temperature = float(temperature)
        self.rng = make_rng(seed if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
        self.ends = token_id_list(eos_token_id) or end_token_ids(tokenizer)
        self.sampler = AWRS("improper", greedy=not do_sample)
        self._width: int | None = None
        self._last_len: int | None = None
        self._prev: torch.Tensor | None = None  # the last call's input_ids (on CPU)
        self.checks = 0

    def _setup(self, width: int) -> None:
        self.vocab = vocabulary_from_tokenizer(self.tokenizer, self.ends, vocab_size=width)
        self.bound = self.constraint.bind(self.vocab)
        self.eos = self.vocab.eos_token_id
        self._end_idx = torch.tensor(self.ends, dtype=torch.long)
        self._width = width

    def unfinished_rows(self, sequences: torch.Tensor, *, warn: bool = True) -> list[int]:
        """Rows of ``generate``'s output whose text the constraint does not accept.

        A row that ended with an end token is complete; a row cut by ``max_new_tokens``
        (or another stopping criterion) is only a valid *prefix*, and a dead-end row is
        not valid at all. Pass the ``sequences`` of the last call (prompt included); with
        ``warn`` a warning names the rows. Raise ``max_new_tokens`` for the cut ones.
        """
        if self._last_len is None:
            raise ConfigError("unfinished_rows: no generate call has used this processor yet")
        out = []
        for b, row in enumerate(sequences[:, self._prompt_len:].tolist()):
            if b in self.dead_rows:
                out.append(b)
                continue
            state, ended = self.bound.initial_state(), False
            for t in row:
                if t in self.ends:
                    ended = True
                    break
                state = self.bound.advance(state, int(t))
            if not ended and not self.bound.check(state, self.eos):
                out.append(b)
        if out and warn:
            warnings.warn(
                f"AWRSLogitsProcessor: row(s) {out} stopped before the constraint was complete "
                "(cut by max_new_tokens or a stopping criterion, or a dead end): their text is "
                "a valid prefix only. Raise max_new_tokens.", stacklevel=2)
        return out

    def reset(self) -> None:
        """Forget the current generation (done automatically when a new one starts)."""
        self._last_len = None
        self._prev = None

    def _continues(self, ids: torch.Tensor) -> bool:
        """Whether ``ids`` extends the last call's rows by one token each, in place; a new
        generate call otherwise. Rows that extend the last rows in another order are beam
        search reordering them, which per-row state cannot follow: refused."""
        prev = self._prev
        if prev is None or ids.shape[1] != prev.shape[1] + 1:
            return False
        head = ids[:, :-1]
        if ids.shape[0] == prev.shape[0] and torch.equal(head, prev):
            return True
        moved = all(bool((prev == head[b]).all(dim=1).any()) for b in range(ids.shape[0]))
        if moved:
            raise ConfigError(
                "AWRSLogitsProcessor: the rows were reordered between steps (beam search, "
                "num_beams > 1); the processor keeps one constraint state per row. Use "
                "num_beams=1 (sampling or greedy), or smc_generate")
        return False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        B, L = input_ids.shape
        if self._width != scores.shape[-1]:
            self._setup(scores.shape[-1])
        ids = input_ids.detach().cpu()
        fresh = not self._continues(ids)
        self._prev = ids
        if fresh:
            self.states = [self.bound.initial_state()] * B
            self.done = [False] * B
            self.dead_rows: set[int] = set()
            self._prompt_len = L  # a new generate call: its prompt ends here
        else:
            for b in range(B):
                if self.done[b]:
                    continue
                y = int(input_ids[b, -1])
                if y in self.ends:
                    self.done[b] = True
                else:
                    self.states[b] = self.bound.advance(self.states[b], y)
        self._last_len = L
        lp = torch.log_softmax(scores.detach().float().cpu() / self.temperature, dim=-1)
        merge_end_tokens(lp, self.eos, self._end_idx)
        out = torch.full_like(scores, -math.inf)
        live = [b for b in range(B) if not self.done[b]]
        draws = self.sampler.sample(lp[live], self.bound, [self.states[b] for b in live], self.rng) if live else []
        for b, d in zip(live, draws):
            self.checks += d.checks
            if d.token is None:
                # a dead end: no token keeps the text valid. generate has no notion of a
                # dead particle, so the row is ended and recorded in dead_rows
                self.dead_rows.add(b)
                if len(self.dead_rows) == 1:
                    logger.warning(
                        "AWRSLogitsProcessor: row %d reached a dead end (no valid next token) "
                        "and was ended; its text is not accepted. Masking cannot look ahead: "
                        "use smc_generate, or a constraint whose prefix check rejects dead ends", b
                    )
            out[b, d.token if d.token is not None else self.eos] = 0.0
        for b in range(B):
            if self.done[b]:
                out[b, self.eos] = 0.0
        return out
