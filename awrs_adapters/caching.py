"""A bounded least-recently-used map: the one cache helper of the library.

Overview: slow-path checks see the same texts again and again across particles and
steps, automata the same states, and compiled indexes, tokenizers and masks are costly
to rebuild; every such cache is an :class:`LRUCache` with a size bound, so memory stays
bounded however long a run is.

Example::

    >>> from awrs_adapters.caching import LRUCache
    >>> c = LRUCache(maxsize=2)
    >>> c.get_or("a", len)   # computes 1
    1
    >>> c.get_or("a", len)   # cached
    1
    >>> c.put("b", 2); c.put("c", 3)
    2
    3
    >>> assert c.get("a") is None and len(c) == 2   # "a" was the least recently used
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["LRUCache"]

_V = TypeVar("_V")


class LRUCache(Generic[_V]):
    """At most ``maxsize`` entries; using an entry makes it the last to be evicted.

    Thread-safe: every operation holds the cache's own lock (the module-level caches are
    shared by LangChain's worker threads, the scheduler's thread and a server's
    handlers). ``get_or`` computes a missing value outside the lock, so two threads may
    compute the same key at once; the last one stored wins.
    """

    def __init__(self, maxsize: int = 65536) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize={maxsize!r}; pass an int >= 1")
        self.maxsize = maxsize
        self._d: OrderedDict[Hashable, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> _V | None:
        """The value for ``key`` (now the most recently used), or None."""
        with self._lock:
            try:
                self._d.move_to_end(key)
            except KeyError:
                return None
            return self._d[key]

    def put(self, key: Hashable, value: _V) -> _V:
        """Store ``value`` under ``key``, evicting the least recently used past the bound."""
        with self._lock:
            d = self._d
            d[key] = value
            d.move_to_end(key)
            if len(d) > self.maxsize:
                d.popitem(last=False)
        return value

    def get_or(self, key: Hashable, compute: Callable[[Any], _V]) -> _V:
        """The cached value for ``key``, or ``compute(key)`` stored."""
        with self._lock:
            d = self._d
            if key in d:
                d.move_to_end(key)
                return d[key]
        return self.put(key, compute(key))

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._d

    def __len__(self) -> int:
        with self._lock:
            return len(self._d)
