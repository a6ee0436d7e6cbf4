"""Regular expressions and JSON schemas as fast token constraints.

Overview: :class:`Regex` compiles to an outlines-core ``Index`` over the model's byte
vocabulary: the particle state is an ``int``, a check is one ``get_next_state`` call
(O(1)), and the exact allowed-token mask is available for the AWRS switch. EOS is valid
exactly when the text so far matches the whole pattern. Compiled indexes are cached in
memory and on disk (:mod:`.cache`).

:class:`JSONSchema` has two backends: ``"llguidance"`` (schema -> grammar, a stateful
matcher; see :mod:`.grammar`) and ``"outlines-core"`` (schema -> regex -> ``Index``, as
above). The default (``backend="auto"``) is llguidance, chosen by measurement on
JSONSchemaBench (``benchmarks/jsonschemabench.py``): it compiles more schemas, much
faster, and classifies more instances right. With ``validate=True`` (default) the
finished text is also checked with the ``jsonschema`` package, so keywords a backend
cannot express (``not``, ``uniqueItems``, ...) are enforced at the end: the constraint
accepts exactly the schema-valid strings of the backend's language. Both backends fix
the order of object keys to the schema's order.

``accepts(text)`` is the whole-string check, independent of any tokenizer: the same
pattern or grammar run over a one-byte-per-token vocabulary (plus the ``jsonschema``
check).

Regex syntax is that of Rust's ``regex`` crate (as in Outlines), implicitly anchored at
both ends like Python's ``re.fullmatch``; a leading ``^`` and a trailing ``$`` are
dropped; look-around, backreferences and ``\\b`` are not supported.

Example::

    from awrs_adapters.constraints import Regex, JSONSchema
    r = Regex(r"[0-9]{3}-[a-z]+")
    assert r.accepts("123-abc") and not r.accepts("12-abc")
    j = JSONSchema({"type": "object", "properties": {"n": {"type": "integer"}},
                    "required": ["n"]})
    assert j.accepts('{"n": 3}') and not j.accepts('{"n": "3"}')
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ..errors import ConstraintError
from ..vocab import Vocabulary
from .base import BoundConstraint, TokenConstraint
from .cache import (
    SENTINEL_BYTES,
    ResultCache,
    compiled_index,
    regex_diagnostic,
    sentinel_id,
    sentinel_suffix_ids,
)

__all__ = ["DEFAULT_JSON_BACKEND", "JSONSchema", "Regex", "SchemaCheck", "forbid_extra_keys", "schema_dict"]

#: The JSONSchema backend of ``backend="auto"``, chosen by benchmarks/jsonschemabench.py.
DEFAULT_JSON_BACKEND = "llguidance"
JSON_BACKENDS = ("outlines-core", "llguidance")

_MASK_CACHE = 256


# -- the bound automaton ---------------------------------------------------------------
class IndexBound(BoundConstraint):
    """An outlines-core ``Index`` bound to a vocabulary; the state is an ``int``.

    The index is compiled from ``(?:P)SENTINEL`` (see :data:`.cache.SENTINEL`): a state
    is final for P when the sentinel step from it reaches a final state of the index.
    Real byte tokens could spell the sentinel after a complete match; tokens that enter
    such a spelling are rejected (a pattern that itself allows U+10FFxx characters at a
    point where it may also end loses those characters there).
    """

    has_fast = True
    has_slow = False

    def __init__(self, index: Any, vocab: Vocabulary) -> None:
        self.index = index
        self.vocab = vocab
        self._next = index.get_next_state
        self._eos = vocab.eos_token_id
        self._V = vocab.size
        self._sentinel = sentinel_id(vocab)
        self._suffixes = sentinel_suffix_ids(vocab)
        self._partial: dict[int, bool] = {}
        # tokens that may start (or complete) a spelling of the sentinel in real bytes
        starts = tuple(SENTINEL_BYTES[:k] for k in (1, 2, 3))
        self._risky = [i for i, t in enumerate(vocab.tokens)
                       if t.endswith(starts) or SENTINEL_BYTES in t]
        self._risky_set = frozenset(self._risky)
        self._final: dict[int, bool] = {}
        self._masks: OrderedDict[int, np.ndarray] = OrderedDict()

    def initial_state(self) -> int:
        return self.index.get_initial_state()

    def is_final(self, state: int) -> bool:
        """Whether the text that led to ``state`` matches the whole pattern."""
        hit = self._final.get(state)
        if hit is None:
            n = self._next(state, self._sentinel)
            hit = n is not None and self.index.is_final_state(n)
            self._final[state] = hit
        return hit

    def _in_sentinel(self, state: int) -> bool:
        """Whether ``state`` is inside a spelling of the sentinel (never valid text)."""
        hit = self._partial.get(state)
        if hit is None:
            hit = self.index.is_final_state(state) or any(
                (n := self._next(state, i)) is not None and self.index.is_final_state(n)
                for i in self._suffixes
            )
            self._partial[state] = hit
        return hit

    def check(self, state: int, token_id: int) -> bool:
        if token_id == self._eos:
            return self.is_final(state)
        if token_id >= self._V:
            return False
        n = self._next(state, token_id)
        if n is None:
            return False
        return token_id not in self._risky_set or not self._in_sentinel(n)

    def dead_prefix(self, state: int, token_id: int) -> int | None:
        # the index keeps live states only: a byte string it rejects has no completion
        # (tokens near a sentinel spelling are rejected for another reason: no promise)
        if token_id in self._risky_set:
            return None
        return len(self.vocab.tokens[token_id]) or None

    def advance(self, state: int, token_id: int) -> int:
        if token_id == self._eos:
            return state
        n = self._next(state, token_id)
        if n is None:
            raise ConstraintError(
                f"token {token_id} ({self.vocab.tokens[token_id]!r}) is not allowed in "
                f"state {state}; advance() must only follow a check() that returned True"
            )
        return n

    def base_mask(self, state: int) -> np.ndarray:
        """Allowed tokens without the EOS column (cached per state; do not modify)."""
        m = self._masks.get(state)
        if m is not None:
            self._masks.move_to_end(state)
            return m
        allowed = self.index.get_allowed_tokens(state)
        full = np.zeros(self._V + 4, dtype=bool)  # + the sentinel and its suffix ids
        full[np.asarray(allowed, dtype=np.int64)] = True
        m = full[: self._V]
        m[self._eos] = False
        for i in self._risky:
            if m[i] and not self.check(state, i):
                m[i] = False
        self._masks[state] = m
        if len(self._masks) > _MASK_CACHE:
            self._masks.popitem(last=False)
        return m

    def fast_mask(self, state: int) -> np.ndarray:
        mask = self.base_mask(state).copy()
        mask[self._eos] = self.is_final(state)
        return mask


class CheckedIndexBound(BoundConstraint):
    """An :class:`IndexBound` plus a Python check of the finished text (EOS only).

    State: ``(int, bytes)``: the automaton state and the bytes so far. The mask stays
    exact (the check runs for the EOS column), so ``has_slow`` is False.
    """

    has_fast = True
    has_slow = False

    def __init__(self, inner: IndexBound, complete: Callable[[str], bool]) -> None:
        self.inner = inner
        self.vocab = inner.vocab
        self._complete = complete
        self._eos = inner._eos
        self._tokens = inner.vocab.tokens

    def initial_state(self) -> tuple[int, bytes]:
        return (self.inner.initial_state(), b"")

    def _eos_ok(self, state: tuple[int, bytes]) -> bool:
        s, data = state
        return self.inner.is_final(s) and self._complete(data.decode("utf-8", errors="replace"))

    def check(self, state: tuple[int, bytes], token_id: int) -> bool:
        if token_id == self._eos:
            return self._eos_ok(state)
        return self.inner.check(state[0], token_id)

    def dead_prefix(self, state: tuple[int, bytes], token_id: int) -> int | None:
        return self.inner.dead_prefix(state[0], token_id)

    def advance(self, state: tuple[int, bytes], token_id: int) -> tuple[int, bytes]:
        if token_id == self._eos:
            return state
        return (self.inner.advance(state[0], token_id), state[1] + self._tokens[token_id])

    def fast_mask(self, state: tuple[int, bytes]) -> np.ndarray:
        mask = self.inner.base_mask(state[0]).copy()
        mask[self._eos] = self._eos_ok(state)
        return mask


def _byte_accepts(pattern: str, text: str) -> bool:
    from .grammar import byte_vocabulary

    bv = byte_vocabulary()
    bound = IndexBound(compiled_index(bv, pattern), bv)
    s = bound.initial_state()
    nxt = bound._next
    for b in text.encode("utf-8"):
        s = nxt(s, b)
        if s is None:
            return False
    return bound.is_final(s)


# -- Regex -----------------------------------------------------------------------------
def _strip_anchors(pattern: str) -> str:
    """Drop a leading ``^`` / trailing ``$``; reject anchors elsewhere."""
    positions: list[int] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif c in "^$":
            positions.append(i)
        i += 1
    p = pattern
    if positions and positions[-1] == len(p) - 1 and p[-1] == "$":
        p = p[:-1]
        positions.pop()
    if positions and positions[0] == 0 and p[0] == "^":
        p = p[1:]
        positions = [x - 1 for x in positions[1:]]
    if positions:
        raise ConstraintError(
            f"pattern={pattern!r} has an anchor {pattern[positions[0]]!r} at position "
            f"{positions[0]}; patterns always match the whole output, so drop anchors "
            "(a leading ^ and a trailing $ are accepted and ignored)"
        )
    return p


#: Above this many unrolled positions a Regex is refused (a{10000} compiles in 1.8 s here).
MAX_EXPANSION = 10_000


def expansion(pattern: str) -> int:
    """Positions of ``pattern`` with counted repetitions unrolled (0 when Python cannot parse it).

    A proxy for the size of the automaton outlines-core builds eagerly: ``a{100000}``
    is 100,000, ``(ab){3}c`` is 7. Parsed with Python's ``re`` parser, whose syntax
    covers the counted repetitions of Rust's; a pattern it cannot read is not judged.
    """
    try:
        import re._parser as sre  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as sre  # type: ignore[no-redef]
    try:
        tree = sre.parse(pattern)
    except Exception:
        return 0
    cap = MAX_EXPANSION * 1000

    def size(items: Any) -> int:
        total = 0
        for op, av in items:
            name = str(op)
            if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                lo, hi, sub = av
                reps = hi if hi != sre.MAXREPEAT else lo + 1
                total += size(sub) * max(reps, 1)
            elif name == "SUBPATTERN":
                total += size(av[-1])
            elif name == "BRANCH":
                total += sum(size(b) for b in av[1])
            elif name == "ATOMIC_GROUP":
                total += size(av)
            else:
                total += 1
            if total > cap:
                return cap
        return total

    return size(tree)


class Regex(TokenConstraint):
    """The output must match ``pattern`` as a whole (like ``re.fullmatch``).

    Args:
        pattern: a regular expression in the syntax of Rust's ``regex`` crate (Outlines'
            syntax); anchored at both ends.

    Raises:
        ConstraintError: the pattern is invalid or unsupported (look-around,
            backreferences, ``\\b``); the message carries outlines-core's error and a
            caret under the offending part.
    """

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str):
            raise ConstraintError(
                f"pattern={pattern!r} is not a string; pass a regular expression, e.g. "
                "Regex(r'[0-9]+')"
            )
        self.pattern = pattern
        self._compiled = _strip_anchors(pattern)
        self._validate()

    def _validate(self) -> None:
        detail = regex_diagnostic(self._compiled)
        if detail:
            raise ConstraintError(
                f"pattern={self.pattern!r} is not a valid regular expression: {detail}\n"
                "fix: use the syntax of Rust's regex crate without look-around, "
                "backreferences or \\b"
            )
        size = expansion(self._compiled)
        if size > MAX_EXPANSION:
            raise ConstraintError(
                f"pattern={self.pattern!r:.80} unrolls to about {size:,} positions (counted "
                f"repetitions multiply); outlines-core builds the whole automaton up front, "
                f"which past ~{MAX_EXPANSION:,} takes minutes and cannot be interrupted. Lower "
                "the counts, or use Grammar('start: /<pattern>/') (llguidance builds it "
                "lazily)")
        from .grammar import byte_vocabulary

        compiled_index(byte_vocabulary(), self._compiled)  # raises ConstraintError

    def accepts(self, text: str) -> bool:
        return _byte_accepts(self._compiled, text)

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        return IndexBound(compiled_index(vocab, self._compiled), vocab)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


# -- JSON schema -----------------------------------------------------------------------
#: Keywords outlines-core 0.2.x ignores (measured: the generated regex does not change).
OUTLINES_IGNORED = frozenset({
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "uniqueItems", "contains", "minContains", "maxContains", "maxProperties",
    "patternProperties", "propertyNames", "dependentRequired", "dependentSchemas",
    "dependencies", "not", "if", "then", "else", "unevaluatedProperties",
    "unevaluatedItems", "additionalItems",
})
#: String formats outlines-core 0.2.x supports.
OUTLINES_FORMATS = frozenset({"date-time", "date", "time", "uuid", "email", "uri"})
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions",
                   "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
                  "propertyNames", "unevaluatedProperties", "unevaluatedItems",
                  "additionalItems")


_REF_SIBLINGS_IGNORED = re.compile(r"json-schema\.org/(draft-0[3-7])/schema")
#: kept beside a $ref: containers other references may point into, and identity
_REF_KEEP = frozenset({"$ref", "definitions", "$defs", "$id", "id", "$schema"})


def _walk(schema: Any, path: str = "#"):
    """Yield (json-pointer-ish path, subschema dict) for every subschema."""
    if not isinstance(schema, dict):
        return
    yield path, schema
    for k in _SUBSCHEMA_MAPS:
        v = schema.get(k)
        if isinstance(v, dict):
            for name, sub in v.items():
                yield from _walk(sub, f"{path}/{k}/{name}")
    for k in _SUBSCHEMA_LISTS:
        v = schema.get(k)
        if isinstance(v, list):
            for i, sub in enumerate(v):
                yield from _walk(sub, f"{path}/{k}/{i}")
    for k in _SUBSCHEMA_ONE:
        v = schema.get(k)
        if isinstance(v, dict):
            yield from _walk(v, f"{path}/{k}")
        elif k == "items" and isinstance(v, list):
            for i, sub in enumerate(v):
                yield from _walk(sub, f"{path}/items/{i}")


def _outlines_relax(schema: dict) -> tuple[dict, list[str]]:
    """(schema without unsupported formats, 'path: keyword' for what outlines ignores)."""
    found: list[str] = []
    out = json.loads(json.dumps(schema))
    for path, sub in _walk(out):
        for k in sorted(OUTLINES_IGNORED & sub.keys()):
            if k == "additionalItems" and "items" not in sub:
                continue
            found.append(f"{path}: {k}")
        fmt = sub.get("format")
        if isinstance(fmt, str) and fmt not in OUTLINES_FORMATS:
            found.append(f"{path}: format {fmt!r}")
            del sub["format"]
    return out, found


def schema_dict(schema: Any) -> dict:
    """A JSON schema as a dict, from a dict, a JSON string, a pydantic model class, a
    TypedDict, a dataclass or any type pydantic's ``TypeAdapter`` understands."""
    if isinstance(schema, dict):
        try:
            return json.loads(json.dumps(schema))
        except (TypeError, ValueError) as e:
            raise ConstraintError(
                f"schema is not JSON-serialisable ({e}); pass plain dicts, lists, strings, "
                "numbers, booleans and None"
            ) from e
    if isinstance(schema, str):
        try:
            d = json.loads(schema)
        except json.JSONDecodeError as e:
            raise ConstraintError(
                f"schema is not valid JSON: {e.msg} at line {e.lineno} column {e.colno} "
                f"(near {schema[max(0, e.pos - 20) : e.pos + 20]!r}); pass a JSON object"
            ) from e
        if not isinstance(d, dict):
            raise ConstraintError(f"schema={schema!r} is not a JSON object; pass a JSON schema object")
        return d
    if isinstance(schema, type):
        from pydantic import BaseModel, TypeAdapter

        try:
            if issubclass(schema, BaseModel):
                return forbid_extra_keys(schema.model_json_schema())
            return forbid_extra_keys(TypeAdapter(schema).json_schema())
        except Exception as e:
            raise ConstraintError(
                f"cannot derive a JSON schema from {schema!r}: {e}; pass a pydantic model, "
                "a TypedDict, a dataclass or a JSON schema dict"
            ) from e
    raise ConstraintError(
        f"schema={schema!r} is not a JSON schema; pass a dict, a JSON string, a pydantic "
        "model class, a TypedDict or a dataclass"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))")
_TIME = re.compile(r"(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:([A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")


def _is_date_time(x: Any) -> bool:
    import datetime

    if not isinstance(x, str):
        return True
    m = _DATE_TIME.fullmatch(x)
    if not m:
        return False
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    try:
        datetime.date(y, mo, d)
    except ValueError:
        return False
    off_ok = m.group(9) is None or (int(m.group(9)) <= 23 and int(m.group(10)) <= 59)
    return h <= 23 and mi <= 59 and sec <= 60 and off_ok


def _is_time(x: Any) -> bool:
    if not isinstance(x, str):
        return True
    m = _TIME.fullmatch(x)
    if not m:
        return False
    h, mi, sec = (int(g) for g in m.groups()[:3])
    off_ok = m.group(6) is None or (int(m.group(6)) <= 23 and int(m.group(7)) <= 59)
    return h <= 23 and mi <= 59 and sec <= 60 and off_ok


def _is_hostname(x: Any) -> bool:
    if not isinstance(x, str):
        return True
    name = x[:-1] if x.endswith(".") else x
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(p) for p in name.split("."))


def _is_uri(x: Any) -> bool:
    return not isinstance(x, str) or _URI.fullmatch(x) is not None


#: RFC 3339 / RFC 1123 / RFC 3986 checks for formats whose jsonschema checker needs an
#: optional package (rfc3339-validator, fqdn, rfc3987); used only when it is missing.
_FALLBACK_FORMATS = {"date-time": _is_date_time, "time": _is_time,
                     "hostname": _is_hostname, "uri": _is_uri}


class SchemaCheck:
    """The ``jsonschema`` check of a finished text (cached by text)."""

    def __init__(self, schema: dict) -> None:
        import jsonschema
        from jsonschema.exceptions import SchemaError

        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
            raise ConstraintError(
                f"the schema is invalid for {cls.__name__}: {e.message} at {where}; fix the "
                "schema, or pass validate=False to skip the jsonschema check"
            ) from e
        # every format jsonschema can check here (older drafts leave e.g. "date" unchecked),
        # plus fallbacks for those whose checker needs a package that is not installed
        formats = jsonschema.FormatChecker()
        for name, fn in _FALLBACK_FORMATS.items():
            if name not in formats.checkers:
                formats.checks(name)(fn)
        self.validator = cls(schema, format_checker=formats)
        self._cache: ResultCache[bool] = ResultCache(maxsize=4096)

    def __call__(self, text: str) -> bool:
        return self._cache.get_or(text, self._check)

    def _check(self, text: str) -> bool:
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            ok = False
        else:
            try:
                ok = bool(self.validator.is_valid(value))
            except Exception:  # the validator cannot decide (unresolvable $ref, ...):
                ok = True  # leave it to the automaton
        return ok


def forbid_extra_keys(schema: Any) -> Any:
    """``additionalProperties: false`` wherever an object schema with properties leaves
    it unset: the keys of a Python type's schema are all its keys (pydantic would ignore
    extra keys, and a model left free to add keys may write them until max_tokens).
    Outlines' outlines-core backend does the same for every schema."""
    if isinstance(schema, list):
        return [forbid_extra_keys(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: forbid_extra_keys(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out and "patternProperties" not in out:
        out["additionalProperties"] = False
    return out


class JSONSchema(TokenConstraint):
    """The output must be JSON valid under a JSON schema.

    Args:
        schema: a dict, a JSON string, a pydantic model class, a TypedDict or a dataclass.
            A dict or string is taken as written (JSON Schema allows keys a schema does
            not name unless it says ``additionalProperties: false``); the schema of a
            Python type gets ``additionalProperties: false`` wherever it is unset, since
            its fields are all the keys it has.
        backend: ``"auto"`` (:data:`DEFAULT_JSON_BACKEND`), ``"outlines-core"`` or
            ``"llguidance"``.
        whitespace_pattern: regex for the whitespace allowed between JSON tokens; None
            takes the backend's default (outlines-core: ``[ ]?``; llguidance: any JSON
            whitespace). Both accept compact output and ``", "``/``": "`` spacing.
        validate: also check the finished text with the ``jsonschema`` package (default
            True), which makes the constraint exact where the backend approximates.
        relax: ignore keywords the backend cannot express (recorded in ``relaxed``)
            instead of raising; default: ``validate`` (they are then checked at the
            end). Pydantic passes ``validate=False, relax=True`` and checks with
            ``model_validate_json``.
        max_recursion_depth: outlines-core's unrolling depth for recursive schemas.

    Raises:
        ConstraintError: the schema is not JSON, is invalid, or uses a keyword the
            backend cannot express while ``relax`` is False (the keyword is named).
    """

    def __init__(
        self,
        schema: Any,
        *,
        backend: Literal["auto", "outlines-core", "llguidance"] = "auto",
        whitespace_pattern: str | None = None,
        validate: bool = True,
        relax: bool | None = None,
        max_recursion_depth: int = 3,
    ) -> None:
        d = max_recursion_depth
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 64:
            raise ConstraintError(
                f"max_recursion_depth={d!r}; pass an int in [0, 64] (how many levels of a "
                "recursive schema outlines-core unrolls; default 3)")
        try:
            self._init(schema, backend, whitespace_pattern, validate, relax, d)
        except RecursionError:
            raise ConstraintError(
                "the schema is nested too deeply to process (Python's recursion limit); "
                "flatten it: name repeated parts in $defs and point to them with $ref"
            ) from None

    def _init(self, schema: Any, backend: str, whitespace_pattern: str | None, validate: bool,
              relax: bool | None, max_recursion_depth: int) -> None:
        if backend == "auto":
            backend = DEFAULT_JSON_BACKEND  # type: ignore[assignment]
        if backend not in JSON_BACKENDS:
            raise ConstraintError(
                f"backend={backend!r} is unknown; use 'auto', 'outlines-core' or 'llguidance'"
            )
        if whitespace_pattern is not None and not isinstance(whitespace_pattern, str):
            raise ConstraintError(
                f"whitespace_pattern={whitespace_pattern!r}; pass a regex string or None"
            )
        self.schema = schema_dict(schema)
        self.schema_json = json.dumps(self.schema, ensure_ascii=False)
        self.backend = backend
        self.whitespace_pattern = whitespace_pattern
        self.validate = bool(validate)
        self.relax = self.validate if relax is None else bool(relax)
        self.relaxed: list[str] = []
        self._regex_grammar: str | None = None
        self._check = SchemaCheck(self.schema) if self.validate else None
        if backend == "outlines-core":
            self._init_outlines(max_recursion_depth)
        else:
            self._init_llguidance()

    # -- backends ------------------------------------------------------------------
    def _init_outlines(self, depth: int) -> None:
        from outlines_core.json_schema import build_regex_from_schema

        relaxed_schema, found = _outlines_relax(self.schema)
        if found and not self.relax:
            raise ConstraintError(
                f"outlines-core does not support {found[0]}"
                + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
                + "; remove the keyword, use backend='llguidance', or keep validate=True "
                "so the jsonschema package checks it at the end"
            )
        self.relaxed = found
        try:
            regex = build_regex_from_schema(
                json.dumps(relaxed_schema), self.whitespace_pattern, depth
            )
        except (TypeError, ValueError) as e:
            raise ConstraintError(
                f"outlines-core cannot compile the schema: {str(e).strip()}\nfix: rewrite "
                "the part shown, or use backend='llguidance'"
            ) from e
        self.regex = regex
        detail = regex_diagnostic(regex)
        if detail:
            raise ConstraintError(
                f"outlines-core built a regex its engine cannot compile: {detail}\nfix: "
                "rewrite the schema's 'pattern', or use backend='llguidance'"
            )

    def _init_llguidance(self) -> None:
        from .grammar import json_grammar

        if _REF_SIBLINGS_IGNORED.search(str(self.schema.get("$schema", ""))):
            # drafts 4-7: a $ref's sibling keywords are ignored ({"type": "string", "$ref":
            # "#/obj"} is the object); llguidance intersects them, which refused every
            # valid instance of such a schema
            schema = json.loads(self.schema_json)
            for _, sub in _walk(schema):
                if isinstance(sub.get("$ref"), str):
                    for k in [k for k in sub if k not in _REF_KEEP]:
                        del sub[k]
            self.schema_json = json.dumps(schema, ensure_ascii=False)
        try:
            self.grammar, warnings = json_grammar(self.schema_json, self.whitespace_pattern,
                                                  lenient=self.relax)
        except ConstraintError as e:
            if not (self.relax and "regex" in str(e)):
                raise
            # a "pattern" llguidance's regex engine rejects (look-around, ``$`` inside):
            # drop it from the fast path; the jsonschema check enforces it at the end
            schema, dropped = json.loads(self.schema_json), []
            for path, sub in _walk(schema):
                p = sub.get("pattern")
                if isinstance(p, str) and regex_diagnostic(p):
                    dropped.append(f"{path}: pattern {p!r}")
                    del sub["pattern"]
            if not dropped:
                raise
            self.schema_json = json.dumps(schema, ensure_ascii=False)
            self.grammar, warnings = json_grammar(self.schema_json, self.whitespace_pattern,
                                                  lenient=True)
            warnings = dropped + warnings
        if self.relax and any("min/maxProperties only supported" in str(w) for w in warnings):
            # llguidance then writes no object at all there (measured: every valid instance
            # rejected); drop the counts from the automaton, the jsonschema check keeps them
            schema, dropped = json.loads(self.schema_json), []
            for path, sub in _walk(schema):
                req = set(sub.get("required") or [])
                if set(sub.get("properties") or {}) - req or sub.get("additionalProperties", True) is not False:
                    for k in ("minProperties", "maxProperties"):
                        if k in sub:
                            dropped.append(f"{path}: {k} {sub.pop(k)!r} (checked at the end)")
            if dropped:
                self.schema_json = json.dumps(schema, ensure_ascii=False)
                self.grammar, more = json_grammar(self.schema_json, self.whitespace_pattern,
                                                  lenient=True)
                warnings = dropped + more
        unknown = set(re.findall(r"Unknown format: ([^\s(]+)", " ".join(warnings)))
        if unknown:  # lenient mode bans strings of an unknown format: drop the keyword
            schema = json.loads(self.schema_json)
            for _, sub in _walk(schema):
                if sub.get("format") in unknown:
                    del sub["format"]
            self.grammar, more = json_grammar(json.dumps(schema, ensure_ascii=False),
                                              self.whitespace_pattern, lenient=True)
            warnings = warnings + [w for w in more if w not in warnings]
        self.relaxed = warnings

    # -- the Constraint interface --------------------------------------------------
    def automaton_accepts(self, text: str) -> bool:
        """The backend's language alone (no ``jsonschema`` check).

        For outlines-core this runs its regex through llguidance's lazy regex engine
        (same Rust regex syntax): determinising the regex of a large schema, as the
        token index does, can take minutes, which a whole-string check need not pay.
        """
        from .grammar import ll_accepts

        if self.backend == "outlines-core":
            if self._regex_grammar is None:
                import llguidance

                self._regex_grammar = llguidance.LLMatcher.grammar_from_regex(self.regex)
            return ll_accepts(self._regex_grammar, text)
        return ll_accepts(self.grammar, text)

    def accepts(self, text: str) -> bool:
        if not self.automaton_accepts(text):
            return False
        return self._check is None or self._check(text)

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        if self.backend == "outlines-core":
            inner = IndexBound(compiled_index(vocab, self.regex), vocab)
            return inner if self._check is None else CheckedIndexBound(inner, self._check)
        from .grammar import LLGuidanceBound

        return LLGuidanceBound(self.grammar, vocab, complete=self._check,
                               what="the JSON schema")

    def __repr__(self) -> str:
        title = self.schema.get("title")
        what = repr(title) if title else f"{len(self.schema_json)} chars"
        return f"JSONSchema({what}, backend={self.backend!r})"
