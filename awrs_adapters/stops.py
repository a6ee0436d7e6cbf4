"""Stop sequences as part of the target: the output is the text before the first stop.

Overview: with stop sequences S, a generation ends at EOS or at the token that completes
the first occurrence of some s ∈ S; the output x is the text before that occurrence
(the stop and any bytes after it in the same token are dropped). The target is
``P(x) ∝ Q(x ends this way)·C(x)``: the constraint's *complete* check applies to x,
however the generation ended. :class:`StopBound` makes the proposal exact for it: a
token that completes a stop is accepted iff its x passes the complete check (as EOS is
iff the text is complete), every other token goes to the constraint as usual, and AWRS
weights the draw as any other. A stop sequence that would cut the output where the
constraint cannot end is therefore never sampled: ``Regex("9[0-9]{2}")`` with
``stop=["99"]`` gives ``"950"``, never ``""``.

Example::

    >>> from awrs_adapters.constraints import Predicate
    >>> from awrs_adapters.stops import StopBound
    >>> from awrs_adapters.vocab import Vocabulary
    >>> v = Vocabulary([b"a", b"\\n", b"b", b""], 3)
    >>> c = Predicate(lambda s: s == "a")
    >>> b = StopBound(c.bind(v), c.accepts, ["\\n"])
    >>> s = b.advance(b.initial_state(), 0)        # "a"
    >>> assert b.check(s, 1) and b.stop_at(s, 1) == 1   # "\\n" ends the output at "a"
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .caching import LRUCache
from .errors import ConfigError
from .protocol import BoundConstraint
from .vocab import decode_text

__all__ = ["StopBound", "check_stop"]


def check_stop(stop: Any) -> tuple[str, ...]:
    """Validate ``stop`` (a list of strings) and drop empty ones."""
    if stop is None:
        return ()
    if isinstance(stop, str | bytes):
        raise ConfigError(
            f"stop={stop!r} is a single string; pass a list of stop sequences, e.g. "
            f"stop=[{stop!r}]"
        )
    out = []
    for s in stop:
        if not isinstance(s, str):
            raise ConfigError(f"stop contains {s!r}; every stop sequence must be a str")
        try:
            s.encode("utf-8")
        except UnicodeEncodeError as e:  # a lone surrogate: no output can contain it
            raise ConfigError(
                f"stop sequence {s!r} has a lone surrogate at position {e.start} (not valid "
                "Unicode text); pass the character itself, e.g. '\\U0001F600', not half "
                "of a UTF-16 pair") from None
        if s:
            out.append(s)
    return tuple(out)


_ENDING = "<ending at a stop>"  # inner state once only a stop can end the output


class StopBound(BoundConstraint):
    """A bound constraint with stop sequences; state ``(inner state, output bytes)``.

    Under stops a text may be kept although the constraint rejects it: when it ends
    inside a stop sequence (``"...9"`` with stop ``"99"``), completing that stop ends
    the output before it, which may be accepted. Such a particle's inner state becomes
    ``_ENDING``: from then on only tokens that complete (or keep writing) a stop whose
    text before it passes can follow.

    Args:
        inner: the bound Boolean constraint.
        complete: the whole-string check applied to the text before a stop
            (``Constraint.accepts``).
        stops: the stop sequences (non-empty strings).
    """

    def __init__(
        self, inner: BoundConstraint, complete: Callable[[str], bool], stops: Sequence[str]
    ) -> None:
        self.inner = inner
        self.vocab = inner.vocab
        self._complete = complete
        self.stops = tuple(s.encode("utf-8") for s in stops)
        self._longest = max(len(s) for s in self.stops)
        self._tokens = inner.vocab.tokens
        self._eos = inner.vocab.eos_token_id
        self.has_fast = inner.has_fast
        # a stop token's check runs the complete check on its text: never in the mask
        self.has_slow = True
        self.trivial = inner.trivial  # everything passes, the text before a stop too
        self._static: np.ndarray | None = None
        self._cache: LRUCache[bool] = LRUCache()

    def initial_state(self) -> tuple[Any, bytes]:
        return (self.inner.initial_state(), b"")

    def stop_at(self, state: tuple[Any, bytes], token_id: int) -> int | None:
        """Length in bytes of the output if ``token_id`` completes a stop, else None."""
        if token_id == self._eos:
            return None
        data = state[1]
        new = data + self._tokens[token_id]
        start = max(0, len(data) - self._longest + 1)  # data itself holds no stop
        hits = [i for i in (new.find(s, start) for s in self.stops) if i >= 0]
        return min(hits) if hits else None

    def _accepts(self, data: bytes) -> bool:
        return self._cache.get_or(
            data, lambda d: bool(self._complete(decode_text(d)))
        )

    def _inside_stop(self, data: bytes) -> bool:
        """Whether ``data`` ends inside a stop whose text before it is accepted."""
        for s in self.stops:
            for k in range(min(len(s) - 1, len(data)), 0, -1):
                if data.endswith(s[:k]) and self._accepts(data[:-k]):
                    return True
        return False

    def _inner_ok(self, state: tuple[Any, bytes], token_id: int, sweep: bool = False) -> bool:
        if state[0] is _ENDING:
            return False
        if sweep:
            return self.inner.sweep_check(state[0], token_id)
        return self.inner.check(state[0], token_id)

    def check(self, state: tuple[Any, bytes], token_id: int, sweep: bool = False) -> bool:
        tok = self._tokens[token_id]
        if token_id == self._eos or not tok:
            return self._inner_ok(state, token_id, sweep)
        cut = self.stop_at(state, token_id)
        new = state[1] + tok
        if cut is not None:
            return self._accepts(new[:cut])
        return self._inner_ok(state, token_id, sweep) or self._inside_stop(new)

    def sweep_check(self, state: tuple[Any, bytes], token_id: int) -> bool:
        return self.check(state, token_id, sweep=True)

    def advance(self, state: tuple[Any, bytes], token_id: int) -> tuple[Any, bytes]:
        if token_id == self._eos:
            return (self.inner.advance(state[0], token_id), state[1])
        new = state[1] + self._tokens[token_id]
        cut = self.stop_at(state, token_id)
        if cut is not None:  # the output is over: the inner state is not needed
            return (state[0], new[:cut])
        if self._inner_ok(state, token_id):
            return (self.inner.advance(state[0], token_id), new)
        return (_ENDING, new)

    def _first_stop(self, data: bytes, head: bytes) -> int | None:
        """Where the first stop in ``head`` (``data`` and more bytes) begins, or None."""
        start = max(0, len(data) - self._longest + 1)  # data itself holds no stop
        hits = [i for i in (head.find(s, start) for s in self.stops) if i >= 0]
        return min(hits) if hits else None

    def _rescued(self, head: bytes, before: int) -> bool:
        """Whether a stop begun but not finished at the end of ``head``, starting before
        ``before``, would end the output at an accepted text if a later token finished it."""
        for s in self.stops:
            for k in range(min(len(s) - 1, len(head)), 0, -1):
                j = len(head) - k
                if j < before and head.endswith(s[:k]) and self._accepts(head[:j]):
                    return True
        return False

    def dead_prefix(self, state: tuple[Any, bytes], token_id: int) -> int | None:
        """The shortest ``n`` such that no token extending ``text + tok[:n]`` ends accepted.

        Every extension of ``head = text + tok[:n]`` ends its output (i) at the first stop
        already complete in ``head``, if any, (ii) at a stop begun inside ``head`` and
        finished later, when that one starts first, or (iii) at EOS or a stop beginning
        after ``head``, which leaves text extending ``head``. ``head`` is dead when the
        text of (i) is rejected (or, with no stop in ``head``, when the inner constraint
        proves every text extending ``head`` dead, which settles (iii)) and no stop of
        (ii) cuts at an accepted text; the shortest such ``n`` is returned, None if none.
        """
        tok = self._tokens[token_id]
        if not tok or token_id == self._eos:
            return None
        data = state[1]
        completes = self.stop_at(state, token_id) is not None
        if state[0] is _ENDING:
            inner_from = 1  # nothing extends the text itself: only a stop can end it
        elif completes:
            inner_from = None  # the inner check was never asked: it promises nothing
        else:
            inner_from = self.inner.dead_prefix(state[0], token_id) or None
            if inner_from is None:
                return None  # no stop in these bytes, nothing promised: keep them
        first = 1 if completes or inner_from is None else inner_from
        for n in range(first, len(tok) + 1):
            head = data + tok[:n]
            cut = self._first_stop(data, head)
            if cut is not None:
                if self._accepts(head[:cut]):
                    continue
                before = cut
            elif inner_from is not None and n >= inner_from:
                before = len(head)
            else:
                continue
            if not self._rescued(head, before):
                return n
        return None

    def fast_mask(self, state: tuple[Any, bytes]) -> np.ndarray | None:
        if self._static is None:  # tokens that contain a stop or end inside one
            heads = tuple(s[:k] for s in self.stops for k in range(1, len(s)))
            self._static = np.array(
                [bool(t) and (any(s in t for s in self.stops) or t.endswith(heads))
                 for t in self._tokens], dtype=bool)
        if state[0] is _ENDING:
            return np.ones(len(self._tokens), dtype=bool)
        inner = self.inner.fast_mask(state[0])
        if inner is None:
            return None
        m: np.ndarray = np.asarray(inner, dtype=bool) | self._static
        data, trie = state[1], self.vocab.trie
        for s in self.stops:  # tokens that go on writing a stop begun in the text
            for j in range(1, len(s)):
                if data.endswith(s[:j]):
                    m[trie.with_prefix(s[j:j + 1])] = True
        return m
