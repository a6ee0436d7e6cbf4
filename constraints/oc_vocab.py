"""The outlines-core vocabulary of a byte vocabulary, with the end sentinel's tokens.

Overview: outlines-core compiles a pattern against its own ``Vocabulary`` (EOS id plus a
bytes -> ids table). :func:`oc_vocabulary` builds it from the ordinary tokens of a
:class:`~awrs_adapters.vocab.Vocabulary` (EOS, special ids and empty tokens left out)
plus the sentinel token and its suffix pseudo-tokens (:mod:`.sentinel`), and keeps the
last few in memory, keyed by the vocabulary's content hash.

Example::

    >>> from awrs_adapters.constraints.oc_vocab import oc_vocabulary
    >>> from awrs_adapters.vocab import Vocabulary
    >>> v = Vocabulary([b"a", b"b", b""], 2)
    >>> ocv = oc_vocabulary(v)
    >>> assert oc_vocabulary(v) is ocv      # cached by content hash
"""

from __future__ import annotations

import threading
from typing import Any

from ..caching import LRUCache
from ..vocab import Vocabulary
from .sentinel import SENTINEL_BYTES, sentinel_id, sentinel_suffix_ids

__all__ = ["clear_vocabulary_cache", "oc_vocabulary"]

_lock = threading.Lock()
_vocabs: LRUCache[Any] = LRUCache(maxsize=4)


def clear_vocabulary_cache() -> None:
    """Drop the outlines-core vocabularies kept in memory."""
    with _lock:
        _vocabs.clear()


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
        return hit
    table = dict(vocab.ordinary_tokens)  # the lists are shared: extended by copy below
    table[SENTINEL_BYTES] = [*table.get(SENTINEL_BYTES, ()), sentinel_id(vocab)]
    for k, i in zip((1, 2, 3), sentinel_suffix_ids(vocab)):
        table[SENTINEL_BYTES[k:]] = [*table.get(SENTINEL_BYTES[k:], ()), i]
    ocv = outlines_core.Vocabulary(vocab.eos_token_id, table)
    with _lock:
        _vocabs.put(key, ocv)
    return ocv
