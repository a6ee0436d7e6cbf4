"""The compiled-index cache: outlines-core indexes in memory and on disk.

Overview: compiling a regex or JSON schema against a 50k-token vocabulary takes from
tens of milliseconds to seconds; the result depends only on the vocabulary (its content
hash, :attr:`Vocabulary.hash <awrs_adapters.vocab.Vocabulary.hash>`) and the pattern.
:func:`compiled_index` keeps the last indexes in memory and writes each one to disk with
outlines-core's own binary serialisation (``Index.from_binary``; no pickle, so loading a
cache file runs no code), so the second use of a schema, even in a new process, costs
milliseconds. Patterns are compiled with the end sentinel (:mod:`.sentinel`) over the
outlines-core vocabulary of :mod:`.oc_vocab`.

The disk cache lives in ``indexes/`` under ``$AWRS_CACHE_DIR`` or
``~/.cache/awrs-adapters`` (the folder the embedded models use too);
``AWRS_INDEX_CACHE=off`` turns it off. Entries are keyed by
``sha256(outlines-core version, vocabulary hash, compiled pattern)``; a corrupt or unreadable
entry is ignored and rebuilt.

Example::

    >>> from awrs_adapters.constraints.index_cache import compiled_index, cache_stats
    >>> from awrs_adapters.vocab import Vocabulary
    >>> v = Vocabulary([b"a", b"b", b""], 2)
    >>> idx = compiled_index(v, "(a|b)+")
    >>> idx = compiled_index(v, "(a|b)+")     # a memory hit
    >>> print(cache_stats())
    {'memory_hits': 1, 'disk_hits': 1, 'compiled': 0, 'disk_writes': 0, 'disk_errors': 0}
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..caching import LRUCache
from ..errors import ConstraintError
from ..vocab import Vocabulary
from .oc_vocab import clear_vocabulary_cache, oc_vocabulary
from .regex_errors import index_error_message
from .sentinel import sentinel_pattern

__all__ = [
    "CacheStats",
    "build_index",
    "cache_dir",
    "cache_stats",
    "clear_memory_cache",
    "compiled_index",
]

_MEMORY_ENTRIES = 32
_lock = threading.Lock()
_indexes: LRUCache[Any] = LRUCache(maxsize=_MEMORY_ENTRIES)


@dataclass
class CacheStats:
    """Counters since start-up (or :func:`clear_memory_cache`)."""

    memory_hits: int = 0
    disk_hits: int = 0
    compiled: int = 0
    disk_writes: int = 0
    disk_errors: int = 0


_stats = CacheStats()


def cache_stats() -> dict[str, int]:
    """The cache counters as a dict."""
    return asdict(_stats)


def clear_memory_cache() -> None:
    """Drop the in-memory indexes and vocabularies and reset the counters."""
    global _stats
    with _lock:
        _indexes.clear()
        clear_vocabulary_cache()
        _stats = CacheStats()


def cache_dir() -> Path | None:
    """The disk cache folder, or None when ``AWRS_INDEX_CACHE=off``."""
    if os.environ.get("AWRS_INDEX_CACHE", "").strip().lower() in ("off", "0", "false", "no"):
        return None
    from ..models import cache_root  # one resolver for the models and the indexes

    return cache_root() / "indexes"


def _oc_version() -> str:
    try:
        from importlib.metadata import version

        return version("outlines-core")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "unknown"


def _disk_path(vocab_hash: str, pattern: str) -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    h = hashlib.sha256()
    for part in (_oc_version(), "sentinel-suffixes", vocab_hash, sentinel_pattern(pattern)):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return d / f"{h.hexdigest()[:40]}.idx"


_MAGIC = b"AWRSIDX1"


def _read_disk(path: Path) -> Any | None:
    import outlines_core

    try:
        blob = path.read_bytes()
    except OSError:
        return None
    head, digest, data = blob[:8], blob[8:24], blob[24:]
    if head != _MAGIC or hashlib.sha256(data).digest()[:16] != digest:
        _stats.disk_errors += 1
        return None
    try:
        return outlines_core.Index.from_binary(data)
    except Exception:
        _stats.disk_errors += 1
        return None


def _write_disk(path: Path, index: Any) -> None:
    try:
        fn, args = index.__reduce__()
        data = args[0]
        if not isinstance(data, bytes):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(data).digest()[:16] + data)
        os.replace(tmp, path)
        _stats.disk_writes += 1
    except Exception:
        _stats.disk_errors += 1


def build_index(vocab: Vocabulary, pattern: str) -> Any:
    """Compile ``(?:pattern)SENTINEL`` over ``vocab`` with no cache (for timing)."""
    import outlines_core

    try:
        return outlines_core.Index(sentinel_pattern(pattern), oc_vocabulary(vocab))
    except Exception as e:
        raise ConstraintError(index_error_message(pattern, e)) from e


def compiled_index(vocab: Vocabulary, pattern: str, *, disk: bool = True) -> Any:
    """The outlines-core ``Index`` of ``(?:pattern)SENTINEL`` over ``vocab``, cached.

    Raises :class:`~awrs_adapters.errors.ConstraintError` with outlines-core's message
    when the pattern cannot be compiled or the vocabulary cannot spell it.
    """
    key = (vocab.hash, pattern)
    with _lock:
        hit = _indexes.get(key)
        if hit is not None:
            _stats.memory_hits += 1
            return hit
    path = _disk_path(vocab.hash, pattern) if disk else None
    index = _read_disk(path) if path is not None and path.exists() else None
    if index is not None:
        _stats.disk_hits += 1
    else:
        index = build_index(vocab, pattern)
        _stats.compiled += 1
        if path is not None:
            _write_disk(path, index)
    with _lock:
        _indexes.put(key, index)
    return index
