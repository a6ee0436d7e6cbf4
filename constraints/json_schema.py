"""JSON schemas as fast token constraints, with two backends and an exact final check.

Overview: :class:`JSONSchema` has two backends: ``"llguidance"`` (schema -> grammar, a
stateful matcher; see :mod:`.grammar`) and ``"outlines-core"`` (schema -> regex ->
``Index``, as for :class:`~.regex.Regex`; see :mod:`.index`). The default
(``backend="auto"``) is llguidance, chosen by measurement on JSONSchemaBench
(``benchmarks/jsonschemabench.py``): it compiles more schemas, much faster, and
classifies more instances right. With ``validate=True`` (default) the finished text is
also checked with the ``jsonschema`` package
(:class:`~awrs_adapters.constraints.schema_check.SchemaCheck`), so keywords a
backend cannot express (``not``, ``uniqueItems``, ...) are enforced at the end: the
constraint accepts exactly the schema-valid strings of the backend's language. Both
backends fix the order of object keys to the schema's order.

``accepts(text)`` is the whole-string check, independent of any tokenizer: the same
regex or grammar run over a one-byte-per-token vocabulary, plus the ``jsonschema``
check. A walker over every subschema finds what a backend cannot express, to relax it.
:func:`schema_dict` reads a schema from a dict, a JSON string or a Python type.

Example::

    >>> from awrs_adapters.constraints import JSONSchema
    >>> j = JSONSchema({"type": "object", "properties": {"n": {"type": "integer"}},
    ...                 "required": ["n"]})
    >>> assert j.accepts('{"n": 3}') and not j.accepts('{"n": "3"}')
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from ..errors import ConstraintError
from ..protocol import BoundConstraint, TokenConstraint
from ..vocab import Vocabulary
from .index import CheckedIndexBound, IndexBound
from .index_cache import compiled_index
from .regex_errors import regex_diagnostic
from .schema_check import SchemaCheck, _walk

__all__ = [
    "DEFAULT_JSON_BACKEND",
    "JSONSchema",
    "JSON_BACKENDS",
    "OUTLINES_FORMATS",
    "OUTLINES_IGNORED",
    "SchemaCheck",
    "forbid_extra_keys",
    "schema_dict",
]

#: The JSONSchema backend of ``backend="auto"``, chosen by benchmarks/jsonschemabench.py.
DEFAULT_JSON_BACKEND = "llguidance"
JSON_BACKENDS = ("outlines-core", "llguidance")


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

_REF_SIBLINGS_IGNORED = re.compile(r"json-schema\.org/(draft-0[3-7])/schema")
#: kept beside a $ref: containers other references may point into, and identity
_REF_KEEP = frozenset({"$ref", "definitions", "$defs", "$id", "id", "$schema"})


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
