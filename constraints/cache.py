"""Compiled-automaton caches: outlines-core indexes in memory and on disk.

Overview: compiling a regex or JSON schema against a 50k-token vocabulary takes from
tens of milliseconds to seconds; the result depends only on the vocabulary (its content
hash, :attr:`Vocabulary.hash <awrs_adapters.vocab.Vocabulary.hash>`) and the pattern.
:func:`compiled_index` keeps the last indexes in memory and writes each one to disk with
outlines-core's own binary serialisation (``Index.from_binary``; no pickle, so loading a
cache file runs no code), so the second use of a schema, even in a new process, costs
milliseconds.

The disk cache lives in ``indexes/`` under ``$AWRS_CACHE_DIR`` or
``~/.cache/awrs-adapters`` (the folder the embedded models use too);
``AWRS_INDEX_CACHE=off`` turns it off. Entries are keyed by
``sha256(outlines-core version, vocabulary hash, compiled pattern)``; a corrupt or unreadable
entry is ignored and rebuilt.

Example::

    from awrs_adapters.constraints.cache import compiled_index, cache_stats
    from awrs_adapters.vocab import Vocabulary
    v = Vocabulary([b"a", b"b", b""], 2)
    idx = compiled_index(v, "(a|b)+")
    idx = compiled_index(v, "(a|b)+")     # a memory hit
    print(cache_stats())
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..errors import ConstraintError
from ..vocab import Vocabulary

__all__ = [
    "SENTINEL",
    "CacheStats",
    "ResultCache",
    "cache_dir",
    "cache_stats",
    "clear_memory_cache",
    "compiled_index",
    "oc_vocabulary",
]

#: A character appended to every compiled pattern, P -> (?:P)SENTINEL. outlines-core
#: 0.2.x refuses partial-UTF-8 tokens in states where the pattern may end (e.g. "é" split
#: into two byte tokens after a complete match of "[éa]*"); with the sentinel no state of
#: the pattern proper is final, and "text matches P" becomes "the sentinel step from the
#: state reaches a final state" (exact: text·s ∈ L(P)·s iff text ∈ L(P)).
SENTINEL = "\U0010ffff"
SENTINEL_BYTES = SENTINEL.encode("utf-8")

_MEMORY_ENTRIES = 32
_lock = threading.Lock()
_indexes: OrderedDict[tuple[str, str], Any] = OrderedDict()
_vocabs: OrderedDict[str, Any] = OrderedDict()


_V = TypeVar("_V")


class ResultCache(Generic[_V]):
    """A bounded least-recently-used map from a key (text) to a check's result.

    Slow-path checks (predicates, potentials, the final JSON-schema check) see the same
    texts again and again across particles and steps; this keeps their results.

    Example::

        c = ResultCache(maxsize=2)
        c.get_or("a", len)   # computes 1
        c.get_or("a", len)   # cached
    """

    def __init__(self, maxsize: int = 65536) -> None:
        self.maxsize = maxsize
        self._d: OrderedDict[Hashable, _V] = OrderedDict()

    def get_or(self, key: Hashable, compute: Callable[[Any], _V]) -> _V:
        """The cached result for ``key``, or ``compute(key)`` stored (evicting the oldest)."""
        d = self._d
        try:
            v = d[key]
        except KeyError:
            v = d[key] = compute(key)
            if len(d) > self.maxsize:
                d.popitem(last=False)
            return v
        d.move_to_end(key)
        return v

    def __len__(self) -> int:
        return len(self._d)


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
        _vocabs.clear()
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


def sentinel_id(vocab: Vocabulary) -> int:
    """The token id the sentinel gets in the outlines-core vocabulary (one past the end)."""
    return vocab.size


def sentinel_suffix_ids(vocab: Vocabulary) -> list[int]:
    """Ids of pseudo-tokens for the sentinel's proper byte suffixes ``SENTINEL_BYTES[k:]``,
    k = 1, 2, 3. Real byte tokens can spell the sentinel after a complete match; a state
    from which one of these suffixes reaches a final state is inside such a spelling."""
    return [vocab.size + k for k in (1, 2, 3)]


def oc_vocabulary(vocab: Vocabulary) -> Any:
    """The outlines-core ``Vocabulary`` for ``vocab`` (cached by content hash).

    Holds every token with non-empty bytes except EOS and the special ids, plus the
    sentinel token (id ``vocab.size``).
    """
    import outlines_core

    key = vocab.hash
    with _lock:
        hit = _vocabs.get(key)
        if hit is not None:
            _vocabs.move_to_end(key)
            return hit
    eos = vocab.eos_token_id
    special = vocab.special_ids
    table: dict[bytes, list[int]] = {}
    for i, t in enumerate(vocab.tokens):
        if i == eos or i in special or not t:
            continue
        table.setdefault(t, []).append(i)
    table.setdefault(SENTINEL_BYTES, []).append(sentinel_id(vocab))
    for k, i in zip((1, 2, 3), sentinel_suffix_ids(vocab)):
        table.setdefault(SENTINEL_BYTES[k:], []).append(i)
    ocv = outlines_core.Vocabulary(eos, table)
    with _lock:
        _vocabs[key] = ocv
        while len(_vocabs) > 4:
            _vocabs.popitem(last=False)
    return ocv


def _disk_path(vocab_hash: str, pattern: str) -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    h = hashlib.sha256()
    for part in (_oc_version(), "sentinel-suffixes", vocab_hash, f"(?:{pattern}){SENTINEL}"):
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
        return outlines_core.Index(f"(?:{pattern}){SENTINEL}", oc_vocabulary(vocab))
    except Exception as e:
        raise ConstraintError(_index_error_message(pattern, e)) from e


def compiled_index(vocab: Vocabulary, pattern: str, *, disk: bool = True) -> Any:
    """The outlines-core ``Index`` of ``(?:pattern)SENTINEL`` over ``vocab``, cached.

    Raises :class:`~awrs_adapters.errors.ConstraintError` with outlines-core's message
    when the pattern cannot be compiled or the vocabulary cannot spell it.
    """
    key = (vocab.hash, pattern)
    with _lock:
        hit = _indexes.get(key)
        if hit is not None:
            _indexes.move_to_end(key)
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
        _indexes[key] = index
        while len(_indexes) > _MEMORY_ENTRIES:
            _indexes.popitem(last=False)
    return index


def _index_error_message(pattern: str, err: Exception) -> str:
    msg = str(err).strip()
    detail = regex_diagnostic(pattern)
    shown = pattern if len(pattern) <= 200 else pattern[:200] + "..."
    out = f"outlines-core cannot compile the pattern {shown!r}: {msg}"
    if detail:
        out += f"\n{detail}"
    if "incompatible" in msg and "characters: []" in msg:
        # no character at all leaves that state: the pattern itself matches nothing there
        out = (f"pattern {shown!r} can match no string: part of it accepts no character at "
               "all (an empty character class such as [^\\s\\S], or an intersection with "
               "nothing in common)\nfix: rewrite that part of the pattern")
    elif "incompatible" in msg:
        out += "\nfix: the vocabulary has no token for some character the pattern needs"
    else:
        out += (
            "\nfix: use the regex syntax of Rust's regex crate without look-around, "
            "backreferences or \\b word boundaries"
        )
    return out


def regex_diagnostic(pattern: str) -> str:
    """llguidance's parser message (with a caret under the offending part), or ''.

    Only syntax errors count: llguidance's own size limits say nothing about whether
    outlines-core can compile the pattern.
    """
    try:
        import llguidance

        g = llguidance.LLMatcher.grammar_from_regex(pattern)
        msg = llguidance.LLMatcher.validate_grammar(g) or ""
    except Exception:  # pragma: no cover - llguidance missing or changed
        return ""
    if any(w in msg for w in ("too big", "limit", "fuel", "too complex")):
        return ""
    return msg
