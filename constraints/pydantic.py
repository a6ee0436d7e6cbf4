"""Pydantic models: the JSON schema as the fast path, the model's validators as the slow path.

Overview: ``Pydantic(Model)`` is the conjunction of

* a :class:`~awrs_adapters.constraints.JSONSchema` automaton for ``Model``'s JSON schema
  (fast path: O(1) checks, exact masks), with keywords the backend cannot express
  relaxed; and
* a :class:`~awrs_adapters.constraints.Predicate` (slow path, run by AWRS on drawn
  candidates only): ``complete`` is ``Model.model_validate_json`` (every field and model
  validator, constrained types the schema cannot express); ``prefix`` is a *sound*
  partial check (below).

The prefix check validates only values that are already *closed*: a string whose
closing quote was written, a number followed by a delimiter, a finished literal, object
or array. Each closed value of a known field is validated with that field's own
pydantic-core schema (its constraints and field validators; validators that take
``info`` are skipped, since they may read other fields), recursing into open nested
models and lists. A closed top-level object gets the full ``model_validate_json``.
Nothing is checked under a ``mode="before"``/``"wrap"`` model validator (it may rewrite
the input) or for ``extra="allow"`` models. A prefix is thus rejected only when no
completion can pass: once written, a closed value is final, because the schema
automaton lets each key appear at most once (the fast-path schema sets
``additionalProperties: false`` wherever pydantic ignores extra keys).

The fast path is the JSON schema of the *validated* model, so outputs that only a
``mode="before"`` validator would bring into shape (e.g. a negative number it takes the
absolute value of, against ``ge=0``) are not generated, and, as with any JSON-schema
backend here, object keys come in the schema's order.

Example::

    >>> from pydantic import BaseModel, field_validator
    >>> from awrs_adapters.constraints import Pydantic
    >>> class Person(BaseModel):
    ...     name: str
    ...     age: int
    ...
    ...     @field_validator("name")
    ...     @classmethod
    ...     def capitalised(cls, v: str) -> str:
    ...         if not v[:1].isupper():
    ...             raise ValueError("name must be capitalised")
    ...         return v
    >>> c = Pydantic(Person)
    >>> assert c.accepts('{"name": "Ada", "age": 36}')
    >>> assert not c.accepts('{"name": "ada", "age": 36}')
    >>> assert not c.check_prefix('{"name": "ada", ')      # closed and invalid: no completion
    >>> assert c.check_prefix('{"name": "ad')              # still open: may become valid
"""

from __future__ import annotations

import json
from typing import Any, Literal

from ..caching import LRUCache
from ..errors import ConstraintError
from ..protocol import And
from .json_schema import JSONSchema, forbid_extra_keys
from .predicate import Predicate

__all__ = ["Pydantic", "partial_json"]


def _is_v1_model(model: Any) -> bool:
    """True for a ``pydantic.v1.BaseModel`` subclass (LangChain users still pass them)."""
    try:
        from pydantic.v1 import BaseModel as V1Model
    except ImportError:  # pragma: no cover - pydantic without the v1 shim
        return False
    return isinstance(model, type) and issubclass(model, V1Model)


# -- a JSON prefix as a tree of closed and open values ----------------------------------
class _Bad(Exception):
    """The text is not a JSON prefix (the automaton deals with it)."""


# Nodes: ("closed", raw) | ("object", [(key, node | None)]) | ("array", [node]) | ("open",)
Node = tuple


_WS = " \t\n\r"
_NUM = set("0123456789+-.eE")


def partial_json(text: str) -> tuple[Node, bool] | None:
    """Parse a JSON prefix: (root node, True if only whitespace follows a closed root).

    None when nothing but whitespace was written or the text is not a JSON prefix.
    """
    try:
        node, i = _value(text, _skip(text, 0))
    except _Bad:
        return None
    if node is None:
        return None
    if node[0] == "closed":
        rest = text[i:]
        if rest.strip(_WS):
            return None
        return node, True
    return node, False


def _skip(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def _string_end(s: str, i: int) -> int:
    """Index after the closing quote of the string starting at s[i] == '"', or -1."""
    j, n = i + 1, len(s)
    while j < n:
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return j + 1
        j += 1
    return -1


def _value(s: str, i: int) -> tuple[Node | None, int]:
    n = len(s)
    if i >= n:
        return None, i
    c = s[i]
    if c == "{":
        return _object(s, i)
    if c == "[":
        return _array(s, i)
    if c == '"':
        j = _string_end(s, i)
        return (("open",), n) if j < 0 else (("closed", s[i:j]), j)
    if c in "-0123456789":
        j = i
        while j < n and s[j] in _NUM:
            j += 1
        return (("open",), n) if j >= n else (("closed", s[i:j]), j)
    for word in ("true", "false", "null"):
        if s.startswith(word, i):
            return ("closed", word), i + len(word)
        if word.startswith(s[i:]):
            return ("open",), n
    raise _Bad


def _object(s: str, start: int) -> tuple[Node, int]:
    items: list[tuple[str, Node | None]] = []
    n = len(s)
    i = _skip(s, start + 1)
    if i < n and s[i] == "}":
        return ("closed", s[start : i + 1]), i + 1
    while True:
        if i >= n:
            return ("object", items), n
        if s[i] != '"':
            raise _Bad
        j = _string_end(s, i)
        if j < 0:
            return ("object", items), n  # the key is still being written
        try:
            key = json.loads(s[i:j])
        except ValueError as e:
            raise _Bad from e
        i = _skip(s, j)
        if i >= n:
            items.append((key, None))
            return ("object", items), n
        if s[i] != ":":
            raise _Bad
        i = _skip(s, i + 1)
        child, i = _value(s, i)
        items.append((key, child))
        if child is None or child[0] != "closed":
            return ("object", items), n
        i = _skip(s, i)
        if i >= n:
            return ("object", items), n
        if s[i] == "}":
            return ("closed", s[start : i + 1]), i + 1
        if s[i] != ",":
            raise _Bad
        i = _skip(s, i + 1)


def _array(s: str, start: int) -> tuple[Node, int]:
    items: list[Node] = []
    n = len(s)
    i = _skip(s, start + 1)
    if i < n and s[i] == "]":
        return ("closed", s[start : i + 1]), i + 1
    while True:
        child, i = _value(s, i)
        if child is None:
            return ("array", items), n
        items.append(child)
        if child[0] != "closed":
            return ("array", items), n
        i = _skip(s, i)
        if i >= n:
            return ("array", items), n
        if s[i] == "]":
            return ("closed", s[start : i + 1]), i + 1
        if s[i] != ",":
            raise _Bad
        i = _skip(s, i + 1)


# -- core-schema walking -------------------------------------------------------------
_FUNCS = ("function-after", "function-before", "function-wrap", "function-plain")
_OWN_DATA = ("model", "dataclass", "typed-dict")  # validators inside get their own data


def _with_info(schema: dict) -> bool:
    f = schema.get("function")
    return isinstance(f, dict) and f.get("type") == "with-info"


def _sanitize(schema: Any) -> Any:
    """``schema`` without the validators that take ``info`` (they may read other
    fields); never descends into models, dataclasses or TypedDicts."""
    if isinstance(schema, list):
        return [_sanitize(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    t = schema.get("type")
    if t in _OWN_DATA:
        return schema
    if t in _FUNCS and _with_info(schema):
        if t == "function-plain":
            return {"type": "any"}
        return _sanitize(schema["schema"])
    out = {}
    for k, v in schema.items():
        if k in ("metadata", "serialization", "ref", "function", "cls", "config"):
            out[k] = v
        elif isinstance(v, dict | list):
            out[k] = _sanitize(v)
        else:
            out[k] = v
    return out


class _PrefixCheck:
    """The sound prefix check of a pydantic model (see the module docstring)."""

    def __init__(self, model: type) -> None:
        from pydantic_core import SchemaValidator

        self.model = model
        self._SchemaValidator = SchemaValidator
        root = model.__pydantic_core_schema__
        self.defs: list[Any] = []
        self.def_map: dict[str, Any] = {}
        if root.get("type") == "definitions":
            self.defs = list(root.get("definitions", []))
            self.def_map = {d.get("ref"): d for d in self.defs if isinstance(d, dict)}
            root = root["schema"]
        self.root = root
        self._validators: dict[int, Any] = {}
        self._keymaps: dict[int, dict[str, dict]] = {}
        self._keep: list[Any] = []  # keeps sanitized schemas alive (ids are cache keys)
        self._results: LRUCache[bool] = LRUCache(maxsize=8192)

    # validators for closed values, cached per schema object
    def _validator(self, schema: dict, config: Any) -> Any:
        key = id(schema)
        v = self._validators.get(key)
        if v is None:
            s = _sanitize(schema)
            if self.defs:
                s = {"type": "definitions", "schema": s, "definitions": self.defs}
            v = self._SchemaValidator(s, config)
            self._validators[key] = v
            self._keep.append(schema)
        return v

    def _closed_ok(self, schema: dict, config: Any, raw: str) -> bool:
        key = (id(schema), raw)
        hit = self._results.get(key)
        if hit is not None:
            return hit
        from pydantic_core import ValidationError

        try:
            self._validator(schema, config).validate_json(raw)
            ok = True
        except ValidationError:
            ok = False
        except Exception:  # a validator failed in an unexpected way: undecided, accept
            ok = True
        return self._results.put(key, ok)

    def _resolve(self, schema: dict) -> dict | None:
        """Unwrap to the schema that validates the *shape* of an open value."""
        for _ in range(64):
            t = schema.get("type")
            if t in ("default", "nullable", "function-after"):
                schema = schema["schema"]
            elif t == "definition-ref":
                schema = self.def_map.get(schema.get("schema_ref"))
                if schema is None:
                    return None
            else:
                return schema
        return None

    def __call__(self, text: str) -> bool:
        parsed = partial_json(text)
        if parsed is None:
            return True
        node, whole = parsed
        if whole:  # a closed top-level value: only whitespace can follow
            from pydantic_core import ValidationError

            try:
                self.model.model_validate_json(text)
            except ValidationError:
                return False
            except Exception:
                return True
            return True
        return self._open_ok(self.root, None, node)

    def _open_ok(self, schema: dict, config: Any, node: Node) -> bool:
        kind = node[0]
        if kind == "open":
            return True
        s = self._resolve(schema)
        if s is None:
            return True
        t = s.get("type")
        if t in ("union", "tagged-union"):
            choices = s.get("choices")
            if isinstance(choices, dict):
                choices = list(choices.values())
            subs = [c[0] if isinstance(c, tuple) else c for c in choices or []]
            return not subs or any(self._open_ok(c, config, node) for c in subs)
        if kind == "object" and t == "model":
            inner = s.get("schema", {})
            cfg = s.get("config", config)
            if inner.get("type") != "model-fields":
                return True  # a before/wrap model validator may rewrite the input
            if (cfg or {}).get("extra_fields_behavior") == "allow":
                return True
            keymap = self._keymap(inner, cfg)
            for key, child in node[1]:
                if child is None:
                    continue
                field = keymap.get(key)
                if field is None:
                    continue
                fs = field["schema"]
                if child[0] == "closed":
                    if not self._closed_ok(fs, cfg, child[1]):
                        return False
                elif not self._open_ok(fs, cfg, child):
                    return False
            return True
        if kind == "array" and t == "list":
            items = s.get("items_schema")
            if not isinstance(items, dict):
                return True
            for child in node[1]:
                if child[0] == "closed":
                    if not self._closed_ok(items, config, child[1]):
                        return False
                elif not self._open_ok(items, config, child):
                    return False
            return True
        return True

    def _keymap(self, fields_schema: dict, config: Any) -> dict[str, dict]:
        hit = self._keymaps.get(id(fields_schema))
        if hit is not None:
            return hit
        out: dict[str, dict] = {}
        by_name = bool((config or {}).get("validate_by_name", False))
        by_alias = (config or {}).get("validate_by_alias", True)
        for name, f in fields_schema.get("fields", {}).items():
            alias = f.get("validation_alias")
            if alias is None:
                out[name] = f
                continue
            if isinstance(alias, str):
                if by_alias:
                    out[alias] = f
            elif isinstance(alias, list):
                for path in alias:
                    if by_alias and isinstance(path, list) and len(path) == 1 and isinstance(path[0], str):
                        out[path[0]] = f
            if by_name:
                out[name] = f
        self._keymaps[id(fields_schema)] = out
        self._keep.append(fields_schema)
        return out


class Pydantic(And):
    """Output that ``Model.model_validate_json`` accepts.

    Args:
        model: a pydantic ``BaseModel`` subclass.
        backend: the JSON-schema backend of the fast path (see
            :class:`~awrs_adapters.constraints.JSONSchema`).
        whitespace_pattern: whitespace between JSON tokens (None: backend default).
        prefix_checks: run the sound partial check on prefixes (default True); False
            checks the validators only on the finished output.
        errors: ``"raise"`` (default) reports a validator that raises something other
            than a validation error as ``ConstraintError``; ``"reject"`` rejects.
    """

    def __init__(
        self,
        model: type,
        *,
        backend: Literal["auto", "outlines-core", "llguidance"] = "auto",
        whitespace_pattern: str | None = None,
        prefix_checks: bool = True,
        errors: Literal["raise", "reject"] = "raise",
    ) -> None:
        from pydantic import BaseModel

        self._v1 = _is_v1_model(model)
        if not (isinstance(model, type) and (issubclass(model, BaseModel) or self._v1)):
            raise ConstraintError(
                f"model={model!r} is not a pydantic model class; pass a BaseModel "
                "subclass (for a TypedDict or dataclass use JSONSchema(...))"
            )
        self.model = model
        try:
            raw_schema = model.schema() if self._v1 else model.model_json_schema()
            schema = forbid_extra_keys(raw_schema)
        except Exception as e:
            raise ConstraintError(f"cannot derive a JSON schema from {model.__name__}: {e}") from e
        fast = JSONSchema(schema, backend=backend, whitespace_pattern=whitespace_pattern,
                          validate=False, relax=True)
        self.schema = fast
        # pydantic.v1 models have no pydantic-core schema to check closed values with:
        # their validators run on the finished output only
        self._prefix = _PrefixCheck(model) if prefix_checks and not self._v1 else None
        if self._v1:
            from pydantic.v1 import ValidationError as V1Error

            self._parse, self._invalid = model.parse_raw, V1Error
        else:
            from pydantic import ValidationError

            self._parse, self._invalid = model.model_validate_json, ValidationError
        slow = Predicate(complete=self._complete, prefix=self._prefix, errors=errors,
                         name=model.__name__)
        super().__init__(fast, slow)

    def _complete(self, text: str) -> bool:
        try:
            self._parse(text)
        except self._invalid:
            return False
        return True

    def check_prefix(self, text: str) -> bool:
        """The slow-path prefix check alone (True: some completion may pass)."""
        return True if self._prefix is None else self._prefix(text)

    def __repr__(self) -> str:
        backend = getattr(getattr(self, "schema", None), "backend", None)
        name = getattr(getattr(self, "model", None), "__name__", "?")
        return f"Pydantic({name}, backend={backend!r})"
