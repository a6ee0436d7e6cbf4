"""The token -> bytes table of a Hugging Face tokenizer, built from the tokenizer itself.

Overview: :func:`vocabulary_from_tokenizer` returns the :class:`~awrs_adapters.vocab.Vocabulary`
of a tokenizer: the exact bytes each token id stands for, the one EOS id of the core and
the ids of control tokens (``b""``, listed in ``special_ids``). Two families are exact:

* byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen): every character of a token is one byte
  through the GPT-2 byte map (``Ġ`` is a space, ``Ċ`` a newline), as the ``ByteLevel``
  decoder does (a token with a character outside the map is its UTF-8 text);
* SentencePiece style (Llama 2, Gemma, Mistral): ``▁`` is a space and the byte-fallback
  tokens ``<0xNN>`` are that one byte (partial UTF-8 characters stay partial bytes, never
  collapsed to U+FFFD).

Other tokenizers (WordPiece, ...) fall back to decoding each id alone (best effort).
:func:`end_token_ids` lists the model's end tokens (``eos_token_id`` may be a list; the
end-of-turn token of chat models, e.g. ``<|im_end|>`` or ``<end_of_turn>``); the
vocabulary's EOS is the first of them and the others become special ids (the LM merges
their probabilities into the EOS column).

Example::

    >>> from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    >>> from transformers import PreTrainedTokenizerFast
    >>> from awrs_adapters.lm.tokenizer_bytes import vocabulary_from_tokenizer
    >>> t = Tokenizer(models.BPE(vocab={"a": 0, "Ġ": 1, "Ġa": 2, "<eos>": 3}, merges=[("Ġ", "a")]))
    >>> t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    >>> t.decoder = decoders.ByteLevel()
    >>> tok = PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>")
    >>> v = vocabulary_from_tokenizer(tok)
    >>> assert v.tokens[2] == b" a" and v.eos_token_id == 3
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal

from ..errors import VocabularyError
from ..vocab import Vocabulary, decode_text

__all__ = [
    "END_TOKEN_NAMES",
    "end_token_ids",
    "gpt2_byte_decoder",
    "roundtrip_mismatches",
    "source_tokenizer",
    "token_bytes_table",
    "tokenizer_family",
    "vocabulary_from_tokenizer",
]

Family = Literal["byte_level", "sentencepiece", "other"]

#: Names of end-of-text / end-of-turn tokens, merged into EOS when the tokenizer has them
#: as special tokens.
END_TOKEN_NAMES: tuple[str, ...] = (
    "<|im_end|>",
    "<|endoftext|>",
    "<end_of_turn>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<|eom_id|>",
    "</s>",
    "<eos>",
)

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def gpt2_byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's ``bytes_to_unicode``: printable character -> byte."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _backend(tokenizer: Any) -> Any:
    """The ``tokenizers.Tokenizer`` behind ``tokenizer`` (or ``tokenizer`` itself), or None."""
    try:
        import tokenizers
    except ImportError:  # pragma: no cover - tokenizers is a dependency
        return None
    if isinstance(tokenizer, tokenizers.Tokenizer):
        return tokenizer
    b = getattr(tokenizer, "backend_tokenizer", None)
    return b if isinstance(b, tokenizers.Tokenizer) else None


def _component_types(node: Any) -> list[str]:
    """Types of a decoder/pre-tokenizer JSON node, flattening ``Sequence``."""
    if not isinstance(node, dict):
        return []
    out = [str(node.get("type"))]
    for key in ("decoders", "pretokenizers"):
        for sub in node.get(key) or []:
            out += _component_types(sub)
    if node.get("type") == "Replace":
        pat = node.get("pattern", {})
        if isinstance(pat, dict) and pat.get("String") == "▁":
            out.append("ReplaceMetaspace")
    return out


def _state(component: Any) -> Any:
    """The JSON description of a ``tokenizers`` decoder / pre-tokenizer (None if absent)."""
    if component is None:
        return None
    try:
        return json.loads(component.__getstate__())
    except (AttributeError, TypeError, ValueError):
        return None


def tokenizer_family(tokenizer: Any) -> Family:
    """``"byte_level"``, ``"sentencepiece"`` or ``"other"``, from the tokenizer's decoder.

    Without a ``tokenizers`` backend, guessed from the token strings (``Ġ`` vs ``▁``).
    """
    backend = _backend(tokenizer)
    if backend is not None:
        dec = _component_types(_state(backend.decoder))
        if "ByteLevel" in dec:
            return "byte_level"
        if {"ByteFallback", "Metaspace", "ReplaceMetaspace"} & set(dec):
            return "sentencepiece"
        pre = _component_types(_state(backend.pre_tokenizer))
        if "ByteLevel" in pre:
            return "byte_level"
        if "Metaspace" in pre:
            return "sentencepiece"
        return "other"
    toks = [t for t in _token_strings(tokenizer, _size(tokenizer)) if t]
    n_g = sum(t.startswith("Ġ") for t in toks)
    n_s = sum(t.startswith("▁") for t in toks)
    if n_g > n_s and n_g > 0:
        return "byte_level"
    if n_s > 0:
        return "sentencepiece"
    return "other"


def _size(tokenizer: Any) -> int:
    backend = _backend(tokenizer)
    if tokenizer is backend:
        return int(backend.get_vocab_size(with_added_tokens=True))
    return int(len(tokenizer))


def _token_strings(tokenizer: Any, n: int) -> list[str | None]:
    backend = _backend(tokenizer)
    if backend is not None:
        return [backend.id_to_token(i) for i in range(n)]
    return list(tokenizer.convert_ids_to_tokens(list(range(n))))


def _special_ids(tokenizer: Any) -> set[int]:
    """Ids of special added tokens and of the tokenizer's named special tokens (unk too)."""
    out: set[int] = set()
    backend = _backend(tokenizer)
    added = getattr(tokenizer, "added_tokens_decoder", None)
    if added is None and backend is not None:
        added = backend.get_added_tokens_decoder()
    for i, tok in (added or {}).items():
        if getattr(tok, "special", False):
            out.add(int(i))
    for i in getattr(tokenizer, "all_special_ids", None) or []:
        if i is not None:
            out.add(int(i))
    return out


def _ids_of(x: Any) -> list[int]:
    if x is None:
        return []
    if isinstance(x, int):
        return [int(x)]
    if isinstance(x, Iterable) and not isinstance(x, str | bytes):
        return [int(i) for i in x if i is not None]
    return []


def end_token_ids(
    tokenizer: Any, model: Any = None
) -> list[int]:
    """The model's end tokens, the tokenizer's ``eos_token_id`` first.

    Collected from ``tokenizer.eos_token_id``, ``model.generation_config.eos_token_id``
    and ``model.config.eos_token_id`` (each may be an int or a list), and the
    special tokens named like an end of text or of turn (:data:`END_TOKEN_NAMES`).
    """
    ids: list[int] = []

    def add(xs: Iterable[int]) -> None:
        for i in xs:
            if i not in ids:
                ids.append(i)

    add(_ids_of(getattr(tokenizer, "eos_token_id", None)))
    if model is not None:
        add(_ids_of(getattr(getattr(model, "generation_config", None), "eos_token_id", None)))
        cfg = getattr(model, "config", None)
        if cfg is not None:
            text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
            add(_ids_of(getattr(text_cfg, "eos_token_id", None)))
    special = _special_ids(tokenizer)
    backend = _backend(tokenizer)
    for name in END_TOKEN_NAMES:
        if backend is not None:
            i = backend.token_to_id(name)
        else:
            i = tokenizer.convert_tokens_to_ids(name)
            if i == getattr(tokenizer, "unk_token_id", None) and name != getattr(tokenizer, "unk_token", None):
                i = None
        if i is not None and int(i) in special:
            add([int(i)])
    return ids


def token_bytes_table(
    tokenizer: Any, vocab_size: int | None = None
) -> tuple[list[bytes], set[int]]:
    """``(table, special_ids)``: the bytes of every id and the ids of control tokens.

    ``vocab_size`` (the model's logits width) pads the table with ``b""`` special ids
    when the model has more rows than the tokenizer has tokens.
    """
    n_tok = _size(tokenizer)
    n = max(n_tok, vocab_size or 0)
    family = tokenizer_family(tokenizer)
    strings = _token_strings(tokenizer, n_tok)
    special = _special_ids(tokenizer)
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and family != "byte_level":
        special.add(int(unk))  # SentencePiece <unk> decodes to a placeholder, not text
    table: list[bytes] = [b""] * n
    if family == "byte_level":
        bd = gpt2_byte_decoder()
        for i, s in enumerate(strings):
            if s is None or i in special:
                continue
            try:
                table[i] = bytes(bd[c] for c in s)
            except KeyError:  # as tokenizers' ByteLevel decoder: fall back to the text
                table[i] = s.encode("utf-8")
    elif family == "sentencepiece":
        for i, s in enumerate(strings):
            if s is None or i in special:
                continue
            m = _BYTE_TOKEN.match(s)
            table[i] = bytes([int(m.group(1), 16)]) if m else s.replace("▁", " ").encode("utf-8")
    else:
        for i, s in enumerate(strings):
            if s is None or i in special:
                continue
            table[i] = _decode_one(tokenizer, i).encode("utf-8")
    _fix_added_tokens(tokenizer, table, special)
    special |= {i for i, s in enumerate(strings) if s is None}
    special |= set(range(n_tok, n))
    return table, special


def _added_tokens(tokenizer: Any) -> dict[int, Any]:
    added = getattr(tokenizer, "added_tokens_decoder", None)
    if added is None:
        backend = _backend(tokenizer)
        added = backend.get_added_tokens_decoder() if backend is not None else {}
    return {int(i): t for i, t in added.items()}


def _anchor(tokenizer: Any, table: Sequence[bytes], special: set[int]) -> int | None:
    """An ordinary id whose bytes are one ASCII letter (decodes the same anywhere).

    Byte-fallback tokens (``<0x61>``) are skipped: their decoder groups them with
    neighbouring byte tokens.
    """
    backend = _backend(tokenizer)
    for letter in "aeiostnx":
        i = backend.token_to_id(letter) if backend is not None else None
        if i is None and backend is None:
            i = tokenizer.convert_tokens_to_ids(letter)
        if i is not None and 0 <= i < len(table) and table[i] == letter.encode() and i not in special:
            return int(i)
    return None


def _fix_added_tokens(tokenizer: Any, table: list[bytes], special: set[int]) -> None:
    """Non-special added tokens: their text as the installed ``tokenizers`` decodes it.

    Recent ``tokenizers`` versions output an added token's content as is (not through
    the byte-level map or the ``▁`` replacement); the text is read off a decode after an
    anchor token, so the table follows whatever the installed version does.
    """
    added = {i: t for i, t in _added_tokens(tokenizer).items() if i not in special}
    if not added:
        return
    anchor = _anchor(tokenizer, table, special)
    for i, t in added.items():
        content = str(getattr(t, "content", t))
        text = None
        if anchor is not None:
            head = table[anchor].decode("ascii")
            d = _decode(tokenizer, [anchor, i])
            if d.startswith(head):
                text = d[len(head):]
        table[i] = (content if text is None else text).encode("utf-8")


def _decode(tokenizer: Any, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
    backend = _backend(tokenizer)
    if backend is not None and backend is tokenizer:
        return str(backend.decode(list(ids), skip_special_tokens=skip_special_tokens))
    return str(
        tokenizer.decode(
            list(ids), skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False
        )
    )


def _decode_one(tokenizer: Any, i: int) -> str:
    return _decode(tokenizer, [i])


def vocabulary_from_tokenizer(
    tokenizer: Any,
    eos_ids: Sequence[int] | int | None = None,
    *,
    vocab_size: int | None = None,
    model: Any = None,
) -> Vocabulary:
    """The byte :class:`Vocabulary` of a Hugging Face tokenizer.

    Args:
        tokenizer: a ``transformers`` tokenizer or a ``tokenizers.Tokenizer``.
        eos_ids: the end tokens, merged into one EOS (the first is the core's EOS id);
            default: :func:`end_token_ids` (``model`` adds its configs' EOS ids).
        vocab_size: the model's logits width when larger than the tokenizer (padding
            ids become special ids with ``b""``).
        model: optional model whose ``generation_config``/``config`` EOS ids count.

    Raises:
        VocabularyError: no end token is known (pass ``eos_ids=[...]``) or an id is out
            of range.
    """
    ends = _ids_of(eos_ids) if eos_ids is not None else end_token_ids(tokenizer, model)
    table, special = token_bytes_table(tokenizer, vocab_size)
    if not ends:
        raise VocabularyError(
            "eos_ids=None and the tokenizer has no eos_token_id nor a known end token; pass "
            "eos_ids=[id, ...] (e.g. the id of '</s>' or '<|endoftext|>')"
        )
    bad = [i for i in ends if not 0 <= i < len(table)]
    if bad:
        raise VocabularyError(
            f"eos_ids contains {bad[0]}, outside the vocabulary of size {len(table)}; pass ids "
            "of tokens of this tokenizer"
        )
    for i in ends:
        table[i] = b""
    vocab = Vocabulary(table, ends[0], special_ids=special | set(ends))
    try:
        _SOURCES[vocab.hash] = weakref.ref(tokenizer)
    except TypeError:  # an object without weak references: nothing to remember
        pass
    return vocab


#: the tokenizer each vocabulary was read from (by content hash), while it lives: lets a
#: backend use a library's own reading of the same tokenizer (see :func:`source_tokenizer`)
_SOURCES: dict[str, weakref.ref[Any]] = {}


def source_tokenizer(vocab: Vocabulary) -> Any | None:
    """The Hugging Face tokenizer ``vocab`` was built from by
    :func:`vocabulary_from_tokenizer` in this process, or None (another source, or the
    tokenizer is gone)."""
    ref = _SOURCES.get(vocab.hash)
    return None if ref is None else ref()


def roundtrip_mismatches(
    tokenizer: Any,
    vocab: Vocabulary | None = None,
    *,
    ids: Iterable[int] | None = None,
    n_random: int = 200,
    seq_len: int = 8,
    seed: int = 0,
    limit: int = 20,
) -> list[str]:
    """Check the byte table against the tokenizer's own decoder; return the mismatches.

    For every id in ``ids`` (default: all), ``decode([anchor, id])`` must equal the
    anchor's bytes + the id's bytes decoded as UTF-8 (``errors="replace"``); a special
    id must decode to nothing with ``skip_special_tokens=True``. Then ``n_random``
    random sequences of ordinary tokens whose bytes are valid UTF-8 must decode to
    exactly their concatenated bytes. An empty list means the table is right.
    """
    import random

    v = vocab if vocab is not None else vocabulary_from_tokenizer(tokenizer)
    n_tok = _size(tokenizer)
    special = set(v.special_ids) | {v.eos_token_id}
    anchor = _anchor(tokenizer, v.tokens, special)
    if anchor is None:
        return ["no single-ASCII-letter token to anchor decodes"]
    head = v.tokens[anchor]
    bad: list[str] = []
    todo = range(n_tok) if ids is None else [int(i) for i in ids]
    seqs = [[anchor, i] for i in todo]
    if hasattr(tokenizer, "batch_decode"):
        plain = tokenizer.batch_decode(
            [s for s in seqs if s[1] not in special],
            skip_special_tokens=False,
            clean_up_tokenization_spaces=False,
        )
        skipped = tokenizer.batch_decode(
            [s for s in seqs if s[1] in special],
            skip_special_tokens=True,
            clean_up_tokenization_spaces=False,
        )
    else:
        plain = [_decode(tokenizer, s) for s in seqs if s[1] not in special]
        skipped = [_decode(tokenizer, s, True) for s in seqs if s[1] in special]
    it_plain, it_skip = iter(plain), iter(skipped)
    for s in seqs:
        i = s[1]
        if i in special:
            got = next(it_skip)
            want = head.decode("utf-8")
        else:
            got = next(it_plain)
            want = decode_text(head + v.tokens[i])
        if got != want and len(bad) < limit:
            bad.append(f"id {i}: decode {got!r} != table {want!r}")
    rng = random.Random(seed)
    ordinary = [i for i in range(n_tok) if i not in special]
    tried = attempts = 0
    while tried < n_random and ordinary and len(bad) < limit and attempts < 50 * n_random:
        attempts += 1
        seq = [rng.choice(ordinary) for _ in range(seq_len)]
        data = v.token_bytes(seq)
        try:
            want = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        tried += 1
        got = _decode(tokenizer, [anchor, *seq])
        if got != head.decode("ascii") + want:
            bad.append(f"sequence {seq}: decode {got!r} != table {head.decode() + want!r}")
    return bad
