"""Context-free grammars (Lark syntax) as fast token constraints, through llguidance.

Overview: :class:`Grammar` compiles a grammar in Lark syntax (the dialect of Outlines'
``CFG`` type and of llguidance) into an llguidance matcher over the model's byte
vocabulary. llguidance matchers are *stateful*, so the particle state is a small
immutable wrapper around a matcher that is never changed once made:

* ``check`` asks ``validate_tokens([token])`` (it consumes nothing);
* ``advance`` forks the matcher (``deep_copy``) and consumes the token in the fork;
* resampling copies references only: particles that share a state share one matcher
  that no one mutates.

The fast mask is llguidance's token bitmask, except where the grammar forces bytes: there
llguidance admits only the canonical tokenisation of the forced bytes, and the mask is
rebuilt from the tokens consistent with them, so ``check`` and ``fast_mask`` always
agree and every tokenisation of a valid string is allowed (as for outlines-core). ``accepts(text)`` runs the same grammar
over a one-byte-per-token vocabulary, so it agrees with the token-level automaton and
depends on no tokenizer. :class:`~awrs_adapters.constraints.JSONSchema` uses the same
machinery with ``backend="llguidance"``.

Example::

    >>> from awrs_adapters.constraints import Grammar
    >>> g = Grammar('''
    ...     start: expr
    ...     expr: NUMBER | expr "+" expr | "(" expr ")"
    ...     NUMBER: /[0-9]+/
    ... ''')
    >>> assert g.accepts("(1+2)+3") and not g.accepts("1+")
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..caching import LRUCache
from ..errors import ConstraintError
from ..protocol import BoundConstraint, TokenConstraint
from ..vocab import Vocabulary, decode_text

__all__ = [
    "Grammar",
    "LLGuidanceBound",
    "byte_vocabulary",
    "json_grammar",
    "ll_accepts",
    "ll_check_grammar",
    "ll_token_mismatches",
    "ll_tokenizer",
]

_uid = itertools.count()


class _GreedyTokenizer:
    """The duck-typed tokenizer llguidance's ``TokenizerWrapper`` expects.

    Token bytes come from our :class:`Vocabulary`; control tokens (EOS, special ids,
    empty tokens, tokens starting with byte 0xFF) get llguidance's special-token marker
    ``0xFF`` + name, so the grammar never allows them. Encoding (used by llguidance only
    for internal look-ahead) is greedy longest match.
    """

    def __init__(self, vocab: Vocabulary) -> None:
        eos = vocab.eos_token_id
        special = vocab.special_ids
        self.tokens = [
            b"\xff[" + str(i).encode() + b"]"
            if i == eos or i in special or not t or t[0] == 0xFF else t
            for i, t in enumerate(vocab.tokens)
        ]
        # the first id of each ordinary byte string
        table = {t: ids[0] for t, ids in vocab.ordinary_tokens.items() if t[0] != 0xFF}
        self.eos_token_id = eos
        self.bos_token_id = None
        self.special_token_ids = sorted(special)
        self._table = table
        self._maxlen = max((len(t) for t in table), default=1)

    def __call__(self, s: str | bytes) -> list[int]:
        data = s.encode("utf-8") if isinstance(s, str) else bytes(s)
        out: list[int] = []
        i, n, table = 0, len(data), self._table
        while i < n:
            for k in range(min(self._maxlen, n - i), 0, -1):
                t = table.get(data[i : i + k])
                if t is not None:
                    out.append(t)
                    i += k
                    break
            else:
                i += 1  # a byte no token spells: skipped (llguidance only looks ahead)
        return out


_TOKENIZERS: LRUCache[Any] = LRUCache(maxsize=4)


def ll_tokenizer(vocab: Vocabulary) -> Any:
    """The ``llguidance.LLTokenizer`` for ``vocab`` (cached by content hash).

    llguidance's own (``llguidance.hf.from_tokenizer``) when ``vocab`` was read from a
    Hugging Face fast tokenizer and llguidance reads the same bytes for every token and
    the same control tokens; otherwise the one built from ``vocab``'s bytes
    (:class:`_GreedyTokenizer`). Measured: the same on SmolLM2 and the test tokenizers;
    on Gemma 3 llguidance makes its added HTML tokens (``<table>``...) control tokens,
    which the model can write as text, so ours is used.
    """
    import llguidance

    hit = _TOKENIZERS.get(vocab.hash)
    if hit is not None:
        return hit
    tok = _ll_hf_tokenizer(vocab)
    if tok is None:
        tok = llguidance.LLTokenizer(
            llguidance.TokenizerWrapper(_GreedyTokenizer(vocab)),
            n_vocab=vocab.size,
            eos_token=vocab.eos_token_id,
        )
    return _TOKENIZERS.put(vocab.hash, tok)


def _ll_hf_tokenizer(vocab: Vocabulary) -> Any | None:
    """llguidance's tokenizer for ``vocab``'s source tokenizer, if it reads every token
    as ``vocab`` does (:func:`ll_token_mismatches` is empty); else None."""
    from awrs_adapters.lm.tokenizer_bytes import source_tokenizer

    hf = source_tokenizer(vocab)
    if hf is None:
        return None
    try:
        import llguidance.hf

        tok = llguidance.hf.from_tokenizer(hf, n_vocab=vocab.size, eos_token=vocab.eos_token_id)
    except Exception:  # a slow tokenizer, an unknown layout: ours reads it
        return None
    return tok if not ll_token_mismatches(tok, vocab, limit=1) else None


def ll_token_mismatches(ll: Any, vocab: Vocabulary, limit: int | None = None) -> list[int]:
    """Token ids where llguidance tokenizer ``ll`` and ``vocab`` disagree: a control
    token on one side only (ours: EOS, special ids, empty tokens, tokens starting with
    byte 0xFF, llguidance's control marker), or different bytes. At most ``limit``."""
    out: list[int] = []
    special = vocab.special_ids
    for i, t in enumerate(vocab.tokens):
        ours = i == vocab.eos_token_id or i in special or not t or t[0] == 0xFF
        theirs = bool(ll.is_special_token(i))
        if ours != theirs or (not ours and ll.decode_bytes([i]) != t):
            out.append(i)
            if limit is not None and len(out) >= limit:
                break
    return out


_BYTE_VOCAB: Vocabulary | None = None


def byte_vocabulary() -> Vocabulary:
    """One token per byte value plus EOS (id 256): the tokenizer-free vocabulary."""
    global _BYTE_VOCAB
    if _BYTE_VOCAB is None:
        _BYTE_VOCAB = Vocabulary([bytes([i]) for i in range(256)] + [b""], 256)
    return _BYTE_VOCAB


_TEMPLATES: LRUCache[Any] = LRUCache(maxsize=64)


def ll_accepts(grammar: str, text: str) -> bool:
    """Whether llguidance's ``grammar`` accepts ``text`` as a whole (byte by byte).

    A fresh matcher per grammar is built once and forked per call (microseconds,
    against milliseconds for building one from a large grammar).

    Raises:
        ConstraintError: llguidance cannot run the grammar over bytes (its matcher is in
            error before any text, e.g. the grammar names tokens such as ``<|eos|>`` or
            ``<[1000]>`` that a byte vocabulary lacks); the message carries llguidance's
            error and the start of the grammar. Refusing every text instead would be a
            verdict nobody asked for.
    """
    import llguidance

    base = _TEMPLATES.get(grammar)
    if base is None:
        # generous lexer limits: the regex of a large schema (outlines-core's) is big
        limits = llguidance.LLParserLimits(initial_lexer_fuel=100_000_000,
                                           max_grammar_size=5_000_000)
        base = _TEMPLATES.put(grammar, llguidance.LLMatcher(
            ll_tokenizer(byte_vocabulary()), grammar, log_level=0, limits=limits))
    if base.is_error():
        raise ConstraintError(
            f"llguidance cannot run the grammar on text (over one token per byte): "
            f"{base.get_error().strip()}\ngrammar: {_short(grammar)}\nfix: the whole-text "
            "check (accepts) reads bytes, so the grammar must not name tokens (<|...|>, "
            "<[...]>); check such outputs on the model's tokens (generate), or write the "
            "token's text instead")
    m = base.deep_copy()
    data = text.encode("utf-8")
    if data and not m.consume_tokens(list(data)):
        return False
    return bool(m.is_accepting())


def _short(grammar: str, n: int = 200) -> str:
    """The start of an llguidance grammar (its JSON, or the Lark text inside it)."""
    import json

    try:
        lark = json.loads(grammar)["grammars"][0]["lark_grammar"]
        if isinstance(lark, str):
            grammar = lark
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    text = " ".join(grammar.split())
    return text if len(text) <= n else text[:n] + "..."


def ll_check_grammar(grammar: str, what: str, fix: str) -> list[str]:
    """Validate an llguidance grammar; raise ``ConstraintError`` with its message.

    Returns llguidance's warnings (e.g. keywords ignored in lenient JSON mode).
    """
    import llguidance

    is_error, msgs = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise ConstraintError(f"llguidance cannot compile {what}: {msgs[0] if msgs else '?'}\nfix: {fix}")
    return list(msgs)


class _LLState:
    """An llguidance matcher that nobody mutates, plus the bytes so far (if needed)."""

    __slots__ = ("matcher", "data", "uid")

    def __init__(self, matcher: Any, data: bytes) -> None:
        self.matcher = matcher
        self.data = data
        self.uid = next(_uid)

    def __repr__(self) -> str:
        return f"_LLState(uid={self.uid}, data={self.data!r})"


class LLGuidanceBound(BoundConstraint):
    """An llguidance grammar bound to a vocabulary (used by Grammar and JSONSchema).

    Args:
        grammar: llguidance's grammar JSON (from ``LLMatcher.grammar_from_*``).
        vocab: the byte vocabulary.
        complete: optional extra check of the finished text (run on EOS only).
        what: used in error messages.
    """

    has_fast = True
    has_slow = False

    def __init__(
        self,
        grammar: str,
        vocab: Vocabulary,
        complete: Callable[[str], bool] | None = None,
        what: str = "the grammar",
    ) -> None:
        import llguidance

        self.vocab = vocab
        self.grammar = grammar
        self._complete = complete
        self._eos = vocab.eos_token_id
        self._V = vocab.size
        self._banned = frozenset(
            i for i, t in enumerate(vocab.tokens)
            if i != self._eos and (i in vocab.special_ids or not t or t[0] == 0xFF)
        )
        self._banned_arr = np.fromiter(sorted(self._banned), dtype=np.int64)
        self._what = what
        tok = ll_tokenizer(vocab)
        m = llguidance.LLMatcher(tok, grammar, log_level=0)
        if m.is_error():
            raise ConstraintError(f"llguidance cannot compile {what}: {m.get_error()}")
        self._s0 = _LLState(m, b"")
        self._children: LRUCache[_LLState] = LRUCache(maxsize=1024)
        self._masks: LRUCache[np.ndarray] = LRUCache(maxsize=256)

    def initial_state(self) -> _LLState:
        return self._s0

    def _eos_ok(self, state: _LLState) -> bool:
        if not state.matcher.is_accepting():
            return False
        if self._complete is None:
            return True
        return self._complete(decode_text(state.data))

    def check(self, state: _LLState, token_id: int) -> bool:
        if token_id == self._eos:
            return self._eos_ok(state)
        if token_id in self._banned:
            return False
        return state.matcher.validate_tokens([token_id]) == 1

    def advance(self, state: _LLState, token_id: int) -> _LLState:
        if token_id == self._eos:
            return state
        key = (state.uid, token_id)
        hit = self._children.get(key)
        if hit is not None:
            return hit
        m = state.matcher.deep_copy()  # never mutate a matcher other particles share
        if not m.consume_token(token_id):
            raise ConstraintError(
                f"llguidance rejected token {token_id} ({self.vocab.tokens[token_id]!r}) of "
                f"{self._what} after accepting it in check: {m.get_error()}; advance() must "
                "only be called after check() returned True"
            )
        data = state.data + self.vocab.tokens[token_id] if self._complete is not None else b""
        return self._children.put(key, _LLState(m, data))

    def _forced_mask(self, m: Any, forced: bytes) -> np.ndarray:
        """The byte-level allowed set when the grammar forces the bytes ``forced``.

        llguidance's bitmask then admits only the canonical tokenisation of the forced
        bytes, while ``validate_tokens`` (and this library's semantics: every
        tokenisation of a valid string) admits any token consistent with them: the
        tokens that are prefixes of ``forced``, and the longer tokens that start with it
        and validate.
        """
        mask = np.zeros(self._V, dtype=bool)
        table, tokens, n = self.vocab.ordinary_tokens, self.vocab.tokens, len(forced)
        for k in range(1, n + 1):
            for t in table.get(forced[:k], ()):
                mask[t] = True
        for t in self.vocab.trie.with_prefix(forced).tolist():  # in byte order
            if len(tokens[t]) > n and m.validate_tokens([t]) == 1:
                mask[t] = True
        return mask

    def fast_mask(self, state: _LLState) -> np.ndarray:
        base = self._masks.get(state.uid)
        if base is None:
            m = state.matcher
            forced = m.compute_ff_bytes()
            if forced:
                base = self._forced_mask(m, forced)
            else:
                bits = np.frombuffer(m.compute_bitmask(), dtype=np.uint8)
                base = np.unpackbits(bits, bitorder="little")[: self._V].astype(bool)
            if self._banned_arr.size:
                base[self._banned_arr] = False
            base[self._eos] = False
            self._masks.put(state.uid, base)
        mask = base.copy()
        mask[self._eos] = self._eos_ok(state)
        return mask


class Grammar(TokenConstraint):
    """A context-free grammar in Lark syntax, compiled by llguidance.

    Args:
        lark: the grammar text (``start`` is the start rule), as Outlines' ``CFG`` takes.

    Raises:
        ConstraintError: llguidance's message (line, column, a caret under the offending
            part) when the grammar is invalid.
    """

    def __init__(self, lark: str) -> None:
        import llguidance

        if not isinstance(lark, str) or not lark.strip():
            raise ConstraintError(
                f"lark={lark!r} is not a grammar; pass the grammar text in Lark syntax, "
                "e.g. 'start: \"a\"+'"
            )
        try:
            lark.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ConstraintError(
                f"the Lark grammar has a lone surrogate at position {e.start} ({lark[e.start]!r}, "
                "not valid Unicode text); write the character itself, not half of a UTF-16 "
                "pair") from None
        self.lark = lark
        self.grammar = llguidance.LLMatcher.grammar_from_lark(lark)
        ll_check_grammar(
            self.grammar, "the Lark grammar",
            "correct the grammar at the position shown (llguidance's Lark dialect: "
            "https://github.com/guidance-ai/llguidance/blob/main/docs/syntax.md)",
        )

    def accepts(self, text: str) -> bool:
        return ll_accepts(self.grammar, text)

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        return LLGuidanceBound(self.grammar, vocab, what="the Lark grammar")

    def __repr__(self) -> str:
        short = " ".join(self.lark.split())
        return f"Grammar({short[:60] + '...' if len(short) > 60 else short!r})"


def json_grammar(
    schema_json: str, whitespace_pattern: str | None, lenient: bool
) -> tuple[str, list[str]]:
    """llguidance grammar for a JSON schema, and the keywords it ignored (lenient mode)."""
    import llguidance

    # \uXXXX escapes are valid JSON (json.dumps writes them for every non-ASCII character)
    opts: dict[str, Any] = {"lenient": lenient, "json_allow_general_unicode_escapes": True}
    if whitespace_pattern is not None:
        opts["whitespace_pattern"] = whitespace_pattern
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema_json, defaults=opts)
    except ValueError as e:
        raise ConstraintError(f"llguidance cannot read the schema: {e}") from e
    fix = ("correct the schema where the message points" if lenient else
           "remove or rewrite the keyword named above, or use JSONSchema(..., validate=True) "
           "so unsupported keywords are checked at the end by the jsonschema package")
    warnings = ll_check_grammar(grammar, "the JSON schema", fix)
    return grammar, warnings
