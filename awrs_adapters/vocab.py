"""The byte vocabulary shared by a language model and the constraints bound to it.

Overview: a :class:`Vocabulary` maps each token id to the bytes it stands for and names
the one end-of-sequence id of the core. Constraints compile against it; text is decoded
from it as UTF-8, holding back an incomplete trailing character for prefix checks.

Example::

    >>> from awrs_adapters.vocab import Vocabulary
    >>> v = Vocabulary([b"a", b"b", b""], eos_token_id=2)
    >>> assert v.decode([0, 1, 2]) == "ab"
"""

from __future__ import annotations

import bisect
import codecs
import hashlib
from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np

from .errors import VocabularyError

__all__ = ["ByteTrie", "Vocabulary", "decode_prefix", "decode_text", "split_pending"]


def decode_text(data: bytes) -> str:
    """Decode a finished text: UTF-8 with invalid bytes read as U+FFFD.

    The one reading of bytes as text for complete outputs (results, complete checks,
    references), so every part of the library agrees on what a byte string says.
    """
    return data.decode("utf-8", errors="replace")


def decode_prefix(data: bytes) -> str:
    """Decode UTF-8 ``data``, holding back an incomplete trailing character.

    Invalid bytes in the middle are replaced with U+FFFD (they can never become valid).
    """
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return dec.decode(data, final=False)


# n-byte UTF-8 sequences: (payload mask of the lead byte, smallest and largest code point)
_SEQ = {2: (0x1F, 0x80, 0x7FF), 3: (0x0F, 0x800, 0xFFFF), 4: (0x07, 0x10000, 0x10FFFF)}


def split_pending(data: bytes) -> tuple[str, range | None]:
    """Split UTF-8 ``data`` into settled text and the character still being written.

    Returns ``(text, chars)``: ``text`` can no longer change whatever bytes follow;
    ``chars`` is the range of code points an unfinished trailing character can still
    become (contiguous: a valid partial sequence fixes the high bits), or None when
    ``data`` ends on a character boundary. A trailing sequence that no byte can make
    valid (``b"\xe0\x80"``: overlong; ``b"\xed\xa0"``: a surrogate) is settled as
    U+FFFD, exactly as the finished text will decode.

    Example::

        split_pending(b"a\xe4")      # ('a', range(0x4000, 0x5000))
        split_pending(b"a\xe0\x80")  # ('a\ufffd\ufffd', None)
    """
    n = len(data)
    if not n or data[-1] < 0x80:
        return decode_prefix(data), None
    start = n - 1
    while start > 0 and n - start < 4 and 0x80 <= data[start] < 0xC0:
        start -= 1
    lead = data[start]
    need = 2 if 0xC2 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if 0xF0 <= lead < 0xF5 else 0
    have = n - start
    if need and have < need and all(0x80 <= b < 0xC0 for b in data[start + 1:]):
        mask, lo_cp, hi_cp = _SEQ[need]
        bits = lead & mask
        for b in data[start + 1:]:
            bits = (bits << 6) | (b & 0x3F)
        shift = 6 * (need - have)
        lo, hi = max(bits << shift, lo_cp), min((bits + 1) << shift, hi_cp + 1)
        if need == 3:  # surrogates are not characters
            if 0xD800 <= lo and hi <= 0xE000:
                lo = hi
            elif lo < 0xD800 < hi:
                hi = 0xD800
        if lo < hi:
            return decode_text(data[:start]), range(lo, hi)
    return decode_text(data), None


class ByteTrie:
    """The ordinary tokens (non-empty bytes) sorted by bytes: a byte trie as an array.

    Every token whose bytes start with ``s`` lies in one contiguous run of the sorted
    order, found by two binary searches; a constraint that rejects the text ``x + s``
    rejects that whole subtree at once (prefix checks are sound: nothing extends it).

    Attributes:
        ids: ``[K]`` int64 token ids in increasing byte order (EOS, specials and
            empty tokens excluded).
    """

    def __init__(self, vocab: Vocabulary) -> None:
        pairs = sorted((t, i) for t, ids in vocab.ordinary_tokens.items() for i in ids)
        self._keys = [t for t, _ in pairs]
        self.ids = np.array([i for _, i in pairs], dtype=np.int64)
        self._top = b"\xff" * (max((len(t) for t in self._keys), default=0) + 1)

    def span(self, prefix: bytes) -> tuple[int, int]:
        """``(lo, hi)``: ``ids[lo:hi]`` are the tokens whose bytes start with ``prefix``."""
        lo = bisect.bisect_left(self._keys, prefix)
        hi = bisect.bisect_right(self._keys, prefix + self._top, lo)
        return lo, hi

    def with_prefix(self, prefix: bytes) -> np.ndarray:
        """Token ids whose bytes start with ``prefix`` (``prefix`` non-empty)."""
        lo, hi = self.span(prefix)
        return self.ids[lo:hi]


class Vocabulary:
    """Token id -> bytes table with one EOS id.

    Args:
        tokens: one ``bytes`` per token id (the EOS entry's bytes are ignored: stored as
            ``b""``).
        eos_token_id: the id the core treats as end of sequence.
        special_ids: ids of control tokens that stand for no text (chat markers, padding,
            other end tokens merged into EOS). Their bytes are stored as ``b""`` whatever
            was passed; every constraint rejects them, so they never appear inside
            constrained output.

    EOS and control tokens write no text, so ``tokens[i]`` is ``b""`` for them: no byte
    prefix of theirs can name a subtree of the :class:`ByteTrie` (a rejected EOS given
    the bytes ``b"a"`` would otherwise let ``dead_prefix`` prune every token starting
    with ``a``).
    """

    def __init__(
        self, tokens: Sequence[bytes], eos_token_id: int, special_ids: Iterable[int] = ()
    ) -> None:
        if len(tokens) == 0:
            raise VocabularyError("tokens is empty; pass one bytes value per token id")
        if not 0 <= eos_token_id < len(tokens):
            raise VocabularyError(
                f"eos_token_id={eos_token_id} is outside the vocabulary of size {len(tokens)}; "
                "pass the id of a token in the table"
            )
        bad = [i for i, t in enumerate(tokens) if not isinstance(t, bytes | bytearray)]
        if bad:
            raise VocabularyError(
                f"tokens[{bad[0]}] is {tokens[bad[0]]!r}, not bytes; encode token strings "
                "to bytes (e.g. s.encode('utf-8'))"
            )
        self.eos_token_id = int(eos_token_id)
        self.special_ids: frozenset[int] = frozenset(int(i) for i in special_ids) - {self.eos_token_id}
        control = self.special_ids | {self.eos_token_id}
        self.tokens: tuple[bytes, ...] = tuple(
            b"" if i in control else bytes(t) for i, t in enumerate(tokens))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def size(self) -> int:
        """Number of token ids, EOS included."""
        return len(self.tokens)

    @cached_property
    def hash(self) -> str:
        """A stable content hash (hex), used to key compiled-constraint caches."""
        h = hashlib.sha256()
        h.update(str(self.eos_token_id).encode())
        h.update(repr(sorted(self.special_ids)).encode())
        for t in self.tokens:
            h.update(len(t).to_bytes(4, "little"))
            h.update(t)
        return h.hexdigest()[:32]

    @cached_property
    def ordinary_tokens(self) -> dict[bytes, list[int]]:
        """Bytes -> ids of the ordinary tokens (not EOS, not special, not empty), in id
        order; keys in order of first appearance. Built on first use; do not modify."""
        eos, special = self.eos_token_id, self.special_ids
        table: dict[bytes, list[int]] = {}
        for i, t in enumerate(self.tokens):
            if i != eos and i not in special and t:
                table.setdefault(t, []).append(i)
        return table

    @cached_property
    def trie(self) -> ByteTrie:
        """The :class:`ByteTrie` of the ordinary tokens (built on first use)."""
        return ByteTrie(self)

    def token_bytes(self, token_ids: Sequence[int]) -> bytes:
        """Concatenated bytes of ``token_ids``, EOS contributing nothing."""
        eos = self.eos_token_id
        return b"".join(self.tokens[i] for i in token_ids if i != eos)

    def decode(self, token_ids: Sequence[int]) -> str:
        """Decode complete output: UTF-8 with invalid bytes replaced by U+FFFD."""
        return decode_text(self.token_bytes(token_ids))

    def __repr__(self) -> str:
        return f"Vocabulary(size={self.size}, eos_token_id={self.eos_token_id})"
