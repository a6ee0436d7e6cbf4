"""LRUCache under threads: LangChain's worker threads, the scheduler's thread and a
server's handlers share the module-level caches (grammar tokenizers and templates,
outlines-core vocabularies and indexes)."""

from __future__ import annotations

import sys
import threading

import numpy as np

from awrs_adapters.caching import LRUCache


def test_lru_cache_survives_threads_hammering_it():
    """8 threads of mixed get / put / get_or on a 16-entry cache, with the interpreter
    switching threads every microsecond: no exception, the bound holds, and every value
    read is the one stored under its key. Broken variant caught: the unlocked cache (a
    get whose key another thread evicts between its two dictionary steps raised
    KeyError)."""
    cache: LRUCache[int] = LRUCache(maxsize=16)
    errors: list[BaseException] = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for k in rng.integers(0, 40, size=20_000).tolist():
                op = k % 3
                if op == 0:
                    v = cache.get(k)
                    assert v is None or v == 2 * k
                elif op == 1:
                    cache.put(k, 2 * k)
                else:
                    assert cache.get_or(k, lambda key: 2 * key) == 2 * k
                assert len(cache) <= 16
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    try:
        threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:3]
    assert len(cache) <= 16
