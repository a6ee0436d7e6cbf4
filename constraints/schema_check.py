"""The exact final check of JSON output: the ``jsonschema`` package, never a silent accept.

Overview: :class:`SchemaCheck` parses a finished text (strict JSON: no NaN or
Infinity) and validates it with the validator class the schema's ``$schema`` names
(2020-12 by default) and that draft's format checkers (:func:`format_checker`; the
RFC 3339, RFC 3986 and host-name checkers come from ``jsonschema[format-nongpl]``). A ``$ref`` it cannot resolve is refused when the check is built, and
an exception raised inside a keyword becomes a ``ConstraintError`` naming the keyword
and its place in the schema (the check cannot decide: it neither accepts nor rejects).
:class:`~awrs_adapters.constraints.JSONSchema` and
:class:`~awrs_adapters.constraints.ToolCalls` run it on every finished output.

Example::

    >>> from awrs_adapters.constraints.schema_check import SchemaCheck
    >>> check = SchemaCheck({"type": "array", "uniqueItems": True})
    >>> print(check("[1, 2]"), check("[1, 1]"), check("[1, NaN]"))   # True False False
    True False False
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from ..caching import LRUCache
from ..errors import ConstraintError

__all__ = ["SchemaCheck", "format_checker"]

#: formats whose jsonschema checker needs a package of the ``format-nongpl`` extra
#: (a dependency of this package; absent only where it was installed without them)
_NEEDS_EXTRAS = frozenset({
    "date-time", "time", "duration", "hostname", "idn-hostname", "uri", "uri-reference",
    "iri", "iri-reference", "uri-template", "json-pointer", "relative-json-pointer", "color"})

_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions",
                   "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
                  "propertyNames", "unevaluatedProperties", "unevaluatedItems",
                  "additionalItems")



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


def format_checker(cls: Any) -> Any:
    """The ``FormatChecker`` for validator class ``cls``: its draft's own checkers, and
    for formats that draft does not define, the 2020-12 draft's (e.g. ``date`` in a
    draft-4 schema). Not ``jsonschema.FormatChecker()``: that merges every draft's
    checkers, and its ``time`` is draft 3's (``12:00:00`` passes, RFC 3339's
    ``12:00:00Z`` fails)."""
    import jsonschema

    fc = jsonschema.FormatChecker(formats=())
    fc.checkers = {**jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers,
                   **cls.FORMAT_CHECKER.checkers}
    return fc


def _used_formats(schema: Any) -> set[str]:
    return {sub["format"] for _, sub in _walk(schema) if isinstance(sub.get("format"), str)}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _KeywordFailure(Exception):
    """A keyword of the jsonschema check raised (not a validation error): carries where."""

    def __init__(self, keyword: str, value: Any, schema: Any, error: Exception) -> None:
        super().__init__(keyword)
        self.keyword, self.value, self.schema, self.error = keyword, value, schema, error


_GUARDED: dict[type, type] = {}


def _guarded(cls: type) -> type:
    """``cls`` with every keyword function wrapped so that an exception raised inside
    (an unresolvable ``$ref``, a format checker's bug, ...) comes out as a
    :class:`_KeywordFailure` naming the keyword and its subschema."""
    hit = _GUARDED.get(cls)
    if hit is not None:
        return hit
    import jsonschema

    def wrap(keyword: str, fn: Any) -> Any:
        def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
            try:
                errors = fn(validator, value, instance, schema)
                if errors is not None:
                    yield from errors
            except _KeywordFailure:
                raise  # an inner keyword's failure: it names the right place
            except Exception as e:
                raise _KeywordFailure(keyword, value, schema, e) from e

        return run

    validators = {k: wrap(k, f) for k, f in cls.VALIDATORS.items()}  # type: ignore[attr-defined]
    return _GUARDED.setdefault(cls, jsonschema.validators.extend(cls, validators))


#: keys whose values are data, not subschemas (a {"$ref": ...} there is not a reference)
_DATA_KEYS = frozenset({"enum", "const", "default", "examples", "example"})


def _refs(node: Any, path: str = "#"):
    """(path, value) of every ``$ref`` string in a schema, skipping data keywords."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield path, ref
        for k, v in node.items():
            if k not in _DATA_KEYS:
                yield from _refs(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _refs(v, f"{path}/{i}")


def _has_ids(node: Any) -> bool:
    """Whether a schema sets a base URI anywhere (``$id``, or draft 4's ``id``)."""
    if isinstance(node, dict):
        if isinstance(node.get("$id"), str) or isinstance(node.get("id"), str):
            return True
        return any(_has_ids(v) for k, v in node.items() if k not in _DATA_KEYS)
    if isinstance(node, list):
        return any(_has_ids(v) for v in node)
    return False


class SchemaCheck:
    """The ``jsonschema`` check of a finished text (cached by text).

    Never a silent accept: a reference the validator cannot resolve is refused when the
    check is made (every ``$ref`` when the schema sets no ``$id``, absolute ones
    otherwise), and any other exception raised inside the validator while checking a
    text (it cannot decide) becomes a :class:`~awrs_adapters.errors.ConstraintError`
    naming the keyword and where it sits in the schema.
    """

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
        formats = format_checker(cls)
        missing = sorted(_used_formats(schema) & _NEEDS_EXTRAS - formats.checkers.keys())
        if missing:
            warnings.warn(
                f"the schema's formats {missing} are not checked: their checkers need "
                "jsonschema's format extras; pip install 'jsonschema[format-nongpl]'",
                UserWarning, stacklevel=3)
        self.schema = schema
        self.validator = _guarded(cls)(schema, format_checker=formats)
        self._check_refs()
        self._paths: dict[int, str] | None = None
        self._cache: LRUCache[bool] = LRUCache(maxsize=4096)

    def _check_refs(self) -> None:
        """Refuse a ``$ref`` the validator cannot resolve (it would decide nothing)."""
        from urllib.parse import urlsplit

        resolver = getattr(self.validator, "_resolver", None)  # jsonschema >= 4.18
        lookup = getattr(resolver, "lookup", None)
        if lookup is None:
            return  # older jsonschema: the check itself reports it (see _check)
        local_too = not _has_ids(self.schema)  # no base URI changes: the root resolves all
        for path, ref in _refs(self.schema):
            if not (local_too or urlsplit(ref).scheme):
                continue  # relative to a base URI set in the schema: checked when used
            try:
                lookup(ref)
            except Exception as e:
                raise ConstraintError(
                    f"the schema's $ref {ref!r} at {path} cannot be resolved by the jsonschema "
                    f"check ({type(e).__name__}: {e}); the finished text could not be checked "
                    "against it. Put the referenced schema into the schema (under $defs) and "
                    "point to it with '#/$defs/...', or pass validate=False to skip the "
                    "jsonschema check (the backend's automaton alone then decides)"
                ) from e

    def __call__(self, text: str) -> bool:
        return self._cache.get_or(text, self._check)

    def _where(self, schema: Any) -> str:
        if self._paths is None:
            self._paths = {id(sub): path for path, sub in _walk(self.schema)}
        path = self._paths.get(id(schema))
        return path if path is not None else f"the subschema {json.dumps(schema, default=str)[:80]}"

    def _check(self, text: str) -> bool:
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return False
        try:
            return bool(self.validator.is_valid(value))
        except _KeywordFailure as f:
            e = f.error
            raise ConstraintError(
                f"the jsonschema check cannot decide: keyword {f.keyword!r} "
                f"({f.keyword}={json.dumps(f.value, default=str)[:80]}) at {self._where(f.schema)} "
                f"raised {type(e).__name__}: {str(e)[:300]} on the output {text[:80]!r}. Fix "
                "that part of the schema, or pass validate=False to skip the jsonschema check "
                "(the backend's automaton alone then decides)"
            ) from e
        except Exception as e:  # outside any keyword (should not happen): still not an accept
            raise ConstraintError(
                f"the jsonschema check raised {type(e).__name__}: {str(e)[:300]} on the output "
                f"{text[:80]!r}; fix the schema, or pass validate=False to skip the jsonschema "
                "check"
            ) from e
