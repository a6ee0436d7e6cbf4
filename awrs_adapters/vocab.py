"""The byte vocabulary shared by a language model and the constraints bound to it.

Overview: a :class:`Vocabulary` maps each token id to the bytes it stands for and names
the one end-of-sequence id of the core. Constraints compile against it; text is decoded
from it as UTF-8, holding back an incomplete trailing character for prefix checks.

Example::

    from awrs_adapters.vocab import Vocabulary
    v = Vocabulary([b"a", b"b", b""], eos_token_id=2)
    assert v.decode([0, 1, 2]) == "ab"
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterable, Sequence
from functools import cached_property

from .errors import VocabularyError

__all__ = ["Vocabulary", "decode_prefix"]


def decode_prefix(data: bytes) -> str:
    """Decode UTF-8 ``data``, holding back an incomplete trailing character.

    Invalid bytes in the middle are replaced with U+FFFD (they can never become valid).
    """
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return dec.decode(data, final=False)


class Vocabulary:
    """Token id -> bytes table with one EOS id.

    Args:
        tokens: one ``bytes`` per token id (the EOS entry's bytes are ignored).
        eos_token_id: the id the core treats as end of sequence.
        special_ids: ids of control tokens that stand for no text (chat markers, padding,
            other end tokens merged into EOS). Their bytes are ``b""``; every constraint
            rejects them, so they never appear inside constrained output.
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
        self.tokens: tuple[bytes, ...] = tuple(bytes(t) for t in tokens)
        self.eos_token_id = int(eos_token_id)
        self.special_ids: frozenset[int] = frozenset(int(i) for i in special_ids) - {self.eos_token_id}

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

    def token_bytes(self, token_ids: Sequence[int]) -> bytes:
        """Concatenated bytes of ``token_ids``, EOS contributing nothing."""
        eos = self.eos_token_id
        return b"".join(self.tokens[i] for i in token_ids if i != eos)

    def decode(self, token_ids: Sequence[int]) -> str:
        """Decode complete output: UTF-8 with invalid bytes replaced by U+FFFD."""
        return self.token_bytes(token_ids).decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"Vocabulary(size={self.size}, eos_token_id={self.eos_token_id})"
