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

    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast
    from awrs_adapters.lm.tokenizer_bytes import vocabulary_from_tokenizer
    t = Tokenizer(models.BPE(vocab={"a": 0, "Ġ": 1, "Ġa": 2, "<eos>": 3}, merges=[("Ġ", "a")]))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>")
    v = vocabulary_from_tokenizer(tok)
    assert v.tokens[2] == b" a" and v.eos_token_id == 3
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal

from ..errors import VocabularyError
from ..vocab import Vocabulary

__all__ = [
    "END_TOKEN_NAMES",
    "end_token_ids",
    "gpt2_byte_decoder",
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


def tokenizer_family(tokenizer: Any) -> Family:
    """``"byte_level"``, ``"sentencepiece"`` or ``"other"``, from the tokenizer's decoder.

    Without a ``tokenizers`` backend, guessed from the token strings (``Ġ`` vs ``▁``).
    """
    backend = _backend(tokenizer)
    if backend is not None:
        spec = json.loads(backend.to_str())
        dec = _component_types(spec.get("decoder"))
        if "ByteLevel" in dec:
            return "byte_level"
        if {"ByteFallback", "Metaspace", "ReplaceMetaspace"} & set(dec):
            return "sentencepiece"
        if "ByteLevel" in _component_types(spec.get("pre_tokenizer")):
            return "byte_level"
        if "Metaspace" in _component_types(spec.get("pre_tokenizer")):
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
    tokenizer: Any, model: Any = None, *, extra: Iterable[int] = ()
) -> list[int]:
    """The model's end tokens, the tokenizer's ``eos_token_id`` first.

    Collected from ``tokenizer.eos_token_id``, ``model.generation_config.eos_token_id``
    and ``model.config.eos_token_id`` (each may be an int or a list), ``extra``, and the
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
    add(_ids_of(list(extra)))
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
    special |= {i for i, s in enumerate(strings) if s is None}
    special |= set(range(n_tok, n))
    return table, special


def _decode_one(tokenizer: Any, i: int) -> str:
    backend = _backend(tokenizer)
    if backend is not None and backend is tokenizer:
        return str(backend.decode([i], skip_special_tokens=False))
    return str(
        tokenizer.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    )


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
    return Vocabulary(table, ends[0], special_ids=special | set(ends))
