"""Several prompts' particle batches sharing one forward per step (one padded KV cache).

Overview: a :class:`SharedForward` wraps a
:class:`~awrs_adapters.lm.transformers.TransformersLM` and hands out one
:class:`SharedBatch` per prompt (``group.start(prompt, n)``, the
:class:`~awrs_adapters.lm.base.LanguageModel` call the engine makes). Every member's rows
live in one KV cache: prompts of different lengths are left-padded, an attention mask
marks the real positions and each row carries its own position ids, so a row's
next-token distribution is its unbatched one (up to float round-off). Extending a member
only records its tokens; the first member that then asks for rows runs one forward for
every member's pending tokens (the prefill of all prompts at once the first time). A
member that has not extended by then gets a masked slot: its rows stay where they were.
A prompt may join a running group (continuous batching): it is prefilled at the next
forward and its rows appended, the shorter of the two caches padded on the left; that
needs full-attention ``DynamicLayer`` caches (see :attr:`SharedForward.joinable`).

Example::

    >>> from awrs_adapters import models
    >>> from awrs_adapters.lm.shared import SharedForward
    >>> group = SharedForward(models.load())
    >>> a = group.start("Name a fruit.", 4)
    >>> b = group.start([{"role": "user", "content": "Say hi."}], 2)
    >>> a.logprobs().shape, b.logprobs().shape   # one prefill of both prompts
    (torch.Size([4, 49152]), torch.Size([2, 49152]))
    >>> a.extend([1, 2, 3, 4]); b.extend([5, 6])
    >>> a.logprobs().shape                        # one forward of all 6 rows
    torch.Size([4, 49152])
    >>> print(group.forwards)
    2
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import ConfigError
from .base import ParticleBatch
from .transformers import TransformersLM

__all__ = ["SharedBatch", "SharedForward"]

#: token fed into masked slots and left padding (never attended to)
_PAD = 0


class SharedForward:
    """A group of :class:`SharedBatch` members whose rows share one left-padded KV cache.

    Use it where the engine expects a language model: it has ``vocab`` and
    ``raw_temperature`` like the wrapped ``lm`` and its :meth:`start` returns a member.

    Attributes:
        lm: the wrapped :class:`~awrs_adapters.lm.transformers.TransformersLM`.
        forwards: forwards run so far (the shared prefill included).
        rows_per_forward: rows of each forward, in order (pending and masked rows).
    """

    raw_temperature = True

    def __init__(self, lm: TransformersLM) -> None:
        if not isinstance(lm, TransformersLM):
            raise ConfigError(
                f"lm={type(lm).__name__}; SharedForward batches a TransformersLM's forwards "
                "(other models run one batch per prompt: awrs_adapters.batching does that)")
        self.lm = lm
        self.vocab = lm.vocab
        self.members: list[SharedBatch] = []
        self._waiting: list[SharedBatch] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # [B, L] long: 1 where a row has a real token
        self.pos: torch.Tensor | None = None  # [B] long: each row's next position id
        self.logits: torch.Tensor | None = None  # [B, V]: each row's last real logits
        self.forwards = 0
        self.rows_per_forward: list[int] = []
        #: members start from any thread (a scheduler's submitters) while another steps
        #: them: every member method holds this lock
        self.lock = threading.RLock()

    @property
    def eos_token_id(self) -> int:
        return self.vocab.eos_token_id

    def prompt_length(self, prompt: Any) -> int:
        return self.lm.prompt_length(prompt)

    def start(
        self, prompt: Any, num_particles: int, *, temperature: float = 1.0,
        max_tokens: int | None = None,
    ) -> SharedBatch:
        """A member of ``num_particles`` rows conditioned on ``prompt`` (prefilled lazily).

        Raises what :meth:`TransformersLM.start` raises for a bad prompt or argument, and
        :class:`~awrs_adapters.errors.ConfigError` once the group has run a forward.
        """
        if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 0:
            raise ConfigError(f"num_particles={num_particles!r}; pass an int >= 0")
        t = float(temperature)
        if not (t > 0.0 and math.isfinite(t)):
            raise ConfigError(f"temperature={temperature!r}; pass a finite number > 0")
        if not self.joinable:
            raise ConfigError(
                f"this SharedForward's cache ({type(self.cache).__name__} with "
                f"{sorted({type(x).__name__ for x in getattr(self.cache, 'layers', [])})}) "
                "cannot take a new prompt while it runs (only full-attention DynamicLayer "
                "caches can be padded); start a new SharedForward for it")
        ids = self.lm.encode_prompt(prompt, max_tokens=max_tokens)
        with self.lock:
            if not self.joinable:
                raise ConfigError("this SharedForward's cache cannot take a new prompt now; "
                                  "start a new SharedForward for it")
            member = SharedBatch(self, ids, num_particles, t)
            self.members.append(member)
            self._waiting.append(member)
        return member

    @property
    def joinable(self) -> bool:
        """Whether a prompt can join now: before the first forward, once every member has
        left, or while the cache is made of full-attention ``DynamicLayer`` s (padded on
        the left to the longer of the two lengths; sliding-window layers cannot be)."""
        if self.cache is None:
            return True
        layers = getattr(self.cache, "layers", None)
        if not layers:
            return False
        return all(
            type(x).__name__ == "DynamicLayer" and getattr(x, "keys", None) is not None
            and x.keys.dim() == 4 for x in layers)

    # -- forwards -------------------------------------------------------------------
    def _join(self) -> None:
        """Prefill the waiting prompts and append their rows to the running cache."""
        cache, mask, pos, logits = self.cache, self.mask, self.pos, self.logits
        assert mask is not None and pos is not None and logits is not None
        members = list(self._waiting)
        self._prefill()
        assert self.mask is not None and self.pos is not None and self.logits is not None
        lg, lw = mask.shape[1], self.mask.shape[1]
        width = max(lg, lw)
        for old, new in zip(cache.layers, self.cache.layers, strict=True):
            ko, vo = _pad_left(old.keys, width - lg), _pad_left(old.values, width - lg)
            kn, vn = _pad_left(new.keys, width - lw), _pad_left(new.values, width - lw)
            old.keys, old.values = torch.cat([ko, kn]), torch.cat([vo, vn])
        zeros = torch.zeros
        self.mask = torch.cat([torch.cat([zeros(mask.shape[0], width - lg, dtype=mask.dtype), mask], 1),
                               torch.cat([zeros(self.mask.shape[0], width - lw, dtype=mask.dtype),
                                          self.mask], 1)])
        self.pos = torch.cat([pos, self.pos])
        self.logits = torch.cat([logits, self.logits.to(logits.dtype)])
        self.cache = cache
        for m in members:
            m.rows = m.rows + mask.shape[0]

    def _device(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.device == self.lm.device else x.to(self.lm.device)

    def _prefill(self) -> None:
        members, self._waiting = self._waiting, []
        width = max(len(m.ids) for m in members)
        x = torch.tensor([[_PAD] * (width - len(m.ids)) + m.ids for m in members], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(m.ids)) + [1] * len(m.ids) for m in members],
                            dtype=torch.long)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        padded = not bool(mask.all())  # one prompt (or equal lengths): the plain forward
        with torch.inference_mode():
            logits, cache = self.lm.forward(
                self._device(x), None, attention_mask=self._device(mask) if padded else None,
                position_ids=self._device(pos) if padded else None)
        if cache is None:
            raise ConfigError(
                f"{type(self.lm.model).__name__} returned no KV cache (use_cache=True); pass a "
                "causal LM whose forward returns its cache (any transformers decoder)")
        self.cache, self.mask, self.pos, self.logits = cache, mask, mask.sum(-1), logits
        for p, m in enumerate(members):
            m.rows = torch.full((m.n,), p, dtype=torch.long)
            m.length = m.prompt_tokens = len(m.ids)
        self.forwards += 1
        self.rows_per_forward.append(len(members))

    def _compact(self) -> None:
        """Drop the leading positions no remaining row attends to (the prompts and slots
        of rows that left), so a long-lived group's cache stays as long as its oldest
        row's context plus padding, not its whole history."""
        assert self.mask is not None
        if not self.mask.shape[0] or not self.joinable or self.cache is None:
            return
        first = int(self.mask.argmax(dim=1).min())  # earliest real position of any row
        if first > 0:
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, first:, :]
                layer.values = layer.values[:, :, first:, :]
            self.mask = self.mask[:, first:]

    def flush(self, caller: SharedBatch | None = None) -> None:
        """Run the prefill, then one forward of every member's pending tokens, if any.

        ``caller``: the member asking. One with no pending tokens (it only needs its
        prefill) runs no token forward.
        """
        with self.lock:
            if caller is not None and caller.tokens is None:
                if self._waiting:
                    self._prefill() if self.cache is None else self._join()
                return
            self._flush()

    def _flush(self) -> None:
        if self._waiting:
            if self.cache is None:
                self._prefill()
            else:
                self._join()
        for m in self.members:
            if m.n == 0:
                m.tokens = None  # emptied after extending: nothing to run
        if not any(m.tokens is not None for m in self.members):
            return
        live = [m for m in self.members if m.n > 0]
        rows = torch.cat([m.rows for m in live])
        toks = torch.tensor([t for m in live for t in (m.tokens or [_PAD] * m.n)], dtype=torch.long)
        real = torch.tensor([int(m.tokens is not None) for m in live for _ in range(m.n)],
                            dtype=torch.long)
        assert self.mask is not None and self.pos is not None and self.logits is not None
        identity = len(rows) == self.mask.shape[0] and bool(
            torch.equal(rows, torch.arange(len(rows))))
        if not identity:
            idx = self._device(rows)
            reorder = getattr(self.cache, "reorder_cache", None)
            if callable(reorder):
                reorder(idx)
            else:
                self.cache.batch_select_indices(idx)
            self.mask, self.pos = self.mask[rows], self.pos[rows]
            self._compact()
        kept = self.logits.index_select(0, self._device(rows))  # masked rows keep these
        self.mask = torch.cat([self.mask, real[:, None]], dim=1)
        padded = not bool(self.mask.all())
        with torch.inference_mode():
            logits, self.cache = self.lm.forward(
                self._device(toks[:, None]), self.cache, keep_last=False,
                attention_mask=self._device(self.mask) if padded else None,
                position_ids=self._device(self.pos[:, None]) if padded else None)
        hold = self._device(real == 0)
        if bool(hold.any()):
            logits = torch.where(hold[:, None], kept.to(logits.dtype), logits)
        self.logits = logits
        self.pos = self.pos + real
        offset = 0
        for m in live:
            m.rows = torch.arange(offset, offset + m.n)
            offset += m.n
            if m.tokens is not None:
                m.length += 1
            m.tokens = None
            m._lp = None
        self.forwards += 1
        self.rows_per_forward.append(len(rows))
        self.members = [m for m in self.members if m.n > 0 or m in self._waiting]
        if not live:
            self.cache = None


def _pad_left(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x`` ``[B, H, L, D]`` with ``k`` zero positions before its first (masked out)."""
    if k == 0:
        return x
    return torch.cat([x.new_zeros(x.shape[0], x.shape[1], k, x.shape[3]), x], dim=2)


class SharedBatch(ParticleBatch):
    """One prompt's rows inside a :class:`SharedForward` (a :class:`ParticleBatch`)."""

    def __init__(self, group: SharedForward, ids: list[int], n: int, temperature: float) -> None:
        self.group = group
        self.ids = ids
        self.n = n
        self.temperature = temperature
        self.rows = torch.zeros(0, dtype=torch.long)  # this member's rows in the group
        self.tokens: list[int] | None = None  # extended, not yet forwarded
        self._lp: torch.Tensor | None = None
        #: optional ``fn(scores [rows, V] float32 copy) -> scores`` (as TransformersBatch)
        self.logits_processor: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.length = 0
        self.prompt_tokens = 0

    @property
    def num_rows(self) -> int:
        return self.n

    def logprobs(self) -> torch.Tensor:
        with self.group.lock:
            if self.tokens is not None or self in self.group._waiting:
                self.group.flush(self)
            if self._lp is None:
                logits = self.group.logits
                assert logits is not None
                x = logits.index_select(0, self.rows.to(logits.device))
                self._lp = self.group.lm.row_logprobs(x, self.logits_processor, self.temperature)
            return self._lp

    def extend(self, token_ids: Sequence[int]) -> None:
        if len(token_ids) != self.n:
            raise ValueError(f"extend got {len(token_ids)} tokens for {self.n} rows")
        if self.n == 0:
            return
        with self.group.lock:
            if self in self.group._waiting:  # the prompt's rows exist only after the prefill
                self.group.flush(self)
            self.group.lm.check_room(self.length, self.prompt_tokens)
            self.tokens = [int(t) for t in token_ids]
            self._lp = None

    def select(self, rows: Sequence[int]) -> None:
        idx = torch.as_tensor([int(r) for r in rows], dtype=torch.long)
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.n):
            raise IndexError(f"select rows {list(rows)} out of range for {self.n} rows")
        with self.group.lock:
            if self in self.group._waiting:  # not prefilled: every row is the prompt's row
                self.n = len(idx)
                return
            if self.tokens is not None:  # extended, not yet forwarded: the tokens move too
                self.tokens = [self.tokens[int(i)] for i in idx]
            self.rows = self.rows.index_select(0, idx)
            self.n = len(idx)
            if self._lp is not None:
                self._lp = self._lp.index_select(0, idx.to(self._lp.device))
            g = self.group
            if self.n == 0 and not g._waiting and all(m.n == 0 for m in g.members):
                # the last rows left: free the cache now, not at the next call's prefill
                g.cache = g.mask = g.pos = g.logits = None
                g.members = []
