"""Outlines-core indexes bound to a vocabulary: the fast automaton of Regex and JSONSchema.

Overview: :class:`IndexBound` wraps an outlines-core ``Index`` compiled over the model's
byte vocabulary (:func:`~.cache.compiled_index`): the particle state is an ``int``, a
check is one ``get_next_state`` call (O(1)), and the exact allowed-token mask is
available for the AWRS switch. EOS is valid exactly when the text so far matches the
whole pattern (the sentinel step, :mod:`.sentinel`). :class:`CheckedIndexBound` adds a
Python check of the finished text (JSONSchema's ``jsonschema`` check) and keeps the mask
exact. :func:`index_accepts` is the tokenizer-free whole-string check.

Example::

    >>> from awrs_adapters.constraints.index_cache import compiled_index
    >>> from awrs_adapters.constraints.index import IndexBound, index_accepts
    >>> from awrs_adapters.vocab import Vocabulary
    >>> v = Vocabulary([b"a", b"b", b"ab", b""], 3)
    >>> b = IndexBound(compiled_index(v, "(ab)+"), v)
    >>> s = b.advance(b.initial_state(), 2)
    >>> assert b.check(s, 3) and not b.check(s, 1)      # EOS allowed after "ab"; "b" not
    >>> assert index_accepts("(ab)+", "abab") and not index_accepts("(ab)+", "aba")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..caching import LRUCache
from ..errors import ConstraintError
from ..protocol import BoundConstraint
from ..vocab import Vocabulary, decode_text
from .index_cache import compiled_index
from .sentinel import SENTINEL_BYTES, sentinel_id, sentinel_suffix_ids

__all__ = ["CheckedIndexBound", "IndexBound", "index_accepts"]

_MASK_CACHE = 256


class IndexBound(BoundConstraint):
    """An outlines-core ``Index`` bound to a vocabulary; the state is an ``int``.

    The index is compiled from ``(?:P)SENTINEL`` (see :mod:`.sentinel`): a state
    is final for P when the sentinel step from it reaches a final state of the index.
    Real byte tokens could spell the sentinel after a complete match; tokens that enter
    such a spelling are rejected (a pattern that itself allows U+10FFxx characters at a
    point where it may also end loses those characters there).
    """

    has_fast = True
    has_slow = False

    def __init__(self, index: Any, vocab: Vocabulary) -> None:
        self.index = index
        self.vocab = vocab
        self._next = index.get_next_state
        self._eos = vocab.eos_token_id
        self._V = vocab.size
        self._sentinel = sentinel_id(vocab)
        self._suffixes = sentinel_suffix_ids(vocab)
        self._partial: dict[int, bool] = {}
        # tokens that may start (or complete) a spelling of the sentinel in real bytes
        starts = tuple(SENTINEL_BYTES[:k] for k in (1, 2, 3))
        self._risky = [i for i, t in enumerate(vocab.tokens)
                       if t.endswith(starts) or SENTINEL_BYTES in t]
        self._risky_set = frozenset(self._risky)
        self._final: dict[int, bool] = {}
        self._masks: LRUCache[np.ndarray] = LRUCache(maxsize=_MASK_CACHE)

    def initial_state(self) -> int:
        return self.index.get_initial_state()

    def is_final(self, state: int) -> bool:
        """Whether the text that led to ``state`` matches the whole pattern."""
        hit = self._final.get(state)
        if hit is None:
            n = self._next(state, self._sentinel)
            hit = n is not None and self.index.is_final_state(n)
            self._final[state] = hit
        return hit

    def _in_sentinel(self, state: int) -> bool:
        """Whether ``state`` is inside a spelling of the sentinel (never valid text)."""
        hit = self._partial.get(state)
        if hit is None:
            hit = self.index.is_final_state(state) or any(
                (n := self._next(state, i)) is not None and self.index.is_final_state(n)
                for i in self._suffixes
            )
            self._partial[state] = hit
        return hit

    def check(self, state: int, token_id: int) -> bool:
        if token_id == self._eos:
            return self.is_final(state)
        if token_id >= self._V:
            return False
        n = self._next(state, token_id)
        if n is None:
            return False
        return token_id not in self._risky_set or not self._in_sentinel(n)

    def dead_prefix(self, state: int, token_id: int) -> int | None:
        # the index keeps live states only: a byte string it rejects has no completion
        # (tokens near a sentinel spelling are rejected for another reason: no promise;
        # EOS and special tokens have no bytes in the Vocabulary: no subtree either)
        if token_id in self._risky_set:
            return None
        return len(self.vocab.tokens[token_id]) or None

    def advance(self, state: int, token_id: int) -> int:
        if token_id == self._eos:
            return state
        n = self._next(state, token_id)
        if n is None:
            raise ConstraintError(
                f"token {token_id} ({self.vocab.tokens[token_id]!r}) is not allowed in "
                f"state {state}; advance() must only follow a check() that returned True"
            )
        return n

    def base_mask(self, state: int) -> np.ndarray:
        """Allowed tokens without the EOS column (cached per state; do not modify)."""
        m = self._masks.get(state)
        if m is not None:
            return m
        allowed = self.index.get_allowed_tokens(state)
        full = np.zeros(self._V + 4, dtype=bool)  # + the sentinel and its suffix ids
        full[np.asarray(allowed, dtype=np.int64)] = True
        m = full[: self._V]
        m[self._eos] = False
        for i in self._risky:
            if m[i] and not self.check(state, i):
                m[i] = False
        return self._masks.put(state, m)

    def fast_mask(self, state: int) -> np.ndarray:
        mask = self.base_mask(state).copy()
        mask[self._eos] = self.is_final(state)
        return mask


class CheckedIndexBound(BoundConstraint):
    """An :class:`IndexBound` plus a Python check of the finished text (EOS only).

    State: ``(int, bytes)``: the automaton state and the bytes so far. The mask stays
    exact (the check runs for the EOS column), so ``has_slow`` is False.
    """

    has_fast = True
    has_slow = False

    def __init__(self, inner: IndexBound, complete: Callable[[str], bool]) -> None:
        self.inner = inner
        self.vocab = inner.vocab
        self._complete = complete
        self._eos = inner._eos
        self._tokens = inner.vocab.tokens

    def initial_state(self) -> tuple[int, bytes]:
        return (self.inner.initial_state(), b"")

    def _eos_ok(self, state: tuple[int, bytes]) -> bool:
        s, data = state
        return self.inner.is_final(s) and self._complete(decode_text(data))

    def check(self, state: tuple[int, bytes], token_id: int) -> bool:
        if token_id == self._eos:
            return self._eos_ok(state)
        return self.inner.check(state[0], token_id)

    def dead_prefix(self, state: tuple[int, bytes], token_id: int) -> int | None:
        return self.inner.dead_prefix(state[0], token_id)

    def advance(self, state: tuple[int, bytes], token_id: int) -> tuple[int, bytes]:
        if token_id == self._eos:
            return state
        return (self.inner.advance(state[0], token_id), state[1] + self._tokens[token_id])

    def fast_mask(self, state: tuple[int, bytes]) -> np.ndarray:
        mask = self.inner.base_mask(state[0]).copy()
        mask[self._eos] = self._eos_ok(state)
        return mask


#: The byte-level bounds of :func:`index_accepts`, by pattern (building one scans the
#: 257 byte tokens for sentinel spellings: about 0.7 ms, far more than a short match).
_ACCEPTORS: LRUCache[IndexBound] = LRUCache(maxsize=64)


def index_accepts(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches ``text`` as a whole: its index over the one-byte-per-
    token vocabulary, run byte by byte (no tokenizer involved)."""
    from .grammar import byte_vocabulary

    bv = byte_vocabulary()
    index = compiled_index(bv, pattern)
    bound = _ACCEPTORS.get(pattern)
    if bound is None or bound.index is not index:
        bound = _ACCEPTORS.put(pattern, IndexBound(index, bv))
    s = bound.initial_state()
    nxt = bound._next
    for b in text.encode("utf-8"):
        s = nxt(s, b)
        if s is None:
            return False
    return bound.is_final(s)
