"""The end sentinel: how a compiled pattern tells "the text so far matches" exactly.

Overview: outlines-core 0.2.x refuses partial-UTF-8 tokens in states where the pattern
may end (e.g. "é" split into two byte tokens after a complete match of "[éa]*"). Every
pattern P is therefore compiled as ``(?:P)SENTINEL`` (:func:`sentinel_pattern`) over a
vocabulary that has one extra token for :data:`SENTINEL` (id :func:`sentinel_id`, one
past the end) and three for its proper byte suffixes (:func:`sentinel_suffix_ids`). No
state of the pattern proper is final, and "text matches P" becomes "the sentinel step
from the state reaches a final state" (exact: text·s ∈ L(P)·s iff text ∈ L(P)). Real
byte tokens could spell the sentinel after a complete match; the suffix pseudo-tokens
let :class:`~awrs_adapters.constraints.index.IndexBound` spot and reject such a spelling.

Example::

    >>> from awrs_adapters.constraints.sentinel import SENTINEL, sentinel_id, sentinel_pattern
    >>> from awrs_adapters.vocab import Vocabulary
    >>> v = Vocabulary([b"a", b"b", b""], 2)
    >>> assert sentinel_pattern("a+") == "(?:a+)" + SENTINEL and sentinel_id(v) == 3
"""

from __future__ import annotations

from ..vocab import Vocabulary

__all__ = [
    "SENTINEL",
    "SENTINEL_BYTES",
    "sentinel_id",
    "sentinel_pattern",
    "sentinel_suffix_ids",
]

#: A character appended to every compiled pattern, P -> (?:P)SENTINEL.
SENTINEL = "\U0010ffff"
SENTINEL_BYTES = SENTINEL.encode("utf-8")


def sentinel_pattern(pattern: str) -> str:
    """``(?:pattern)SENTINEL``: what is compiled for ``pattern``."""
    return f"(?:{pattern}){SENTINEL}"


def sentinel_id(vocab: Vocabulary) -> int:
    """The token id the sentinel gets in the outlines-core vocabulary (one past the end)."""
    return vocab.size


def sentinel_suffix_ids(vocab: Vocabulary) -> list[int]:
    """Ids of pseudo-tokens for the sentinel's proper byte suffixes ``SENTINEL_BYTES[k:]``,
    k = 1, 2, 3. Real byte tokens can spell the sentinel after a complete match; a state
    from which one of these suffixes reaches a final state is inside such a spelling."""
    return [vocab.size + k for k in (1, 2, 3)]
