"""Outlines' output types (and pydantic classes) as constraints.

Overview: :func:`from_outlines` converts what Outlines accepts as an output type into our
constraints: ``outlines.types.Regex`` (and every other regex term of Outlines' DSL, e.g.
``outlines.types.integer``) -> :class:`~awrs_adapters.constraints.Regex`;
``outlines.types.JsonSchema`` -> :class:`~awrs_adapters.constraints.JSONSchema` (its
``whitespace_pattern`` kept); ``outlines.types.CFG`` ->
:class:`~awrs_adapters.constraints.Grammar`; a pydantic model class ->
:class:`~awrs_adapters.constraints.Pydantic` (schema + validators); a TypedDict or a
dataclass -> ``JSONSchema``; other Python types (``int``, ``bool``, ``date``, an ``Enum``,
``Literal["yes", "no"]``, ``list[int]``, unions...) through Outlines' own converter
(``outlines.types.dsl.python_types_to_terms``), as Outlines' ``Generator`` reads them. It
is registered with
:func:`~awrs_adapters.constraints.register_converter`, so these objects can be passed
directly as ``generate(..., constraint=...)``. Outlines itself is imported only when an
object from it is converted.

Example::

    >>> from pydantic import BaseModel
    >>> from awrs_adapters.constraints import from_outlines
    >>> class Point(BaseModel):
    ...     x: int
    ...     y: int
    >>> c = from_outlines(Point)            # Pydantic(Point)
    >>> assert c.accepts('{"x": 1, "y": 2}')
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from typing_extensions import is_typeddict

from ..errors import ConfigError
from ..protocol import Constraint, register_converter

__all__ = ["from_outlines"]


def _from_outlines_term(obj: Any) -> Constraint | None:
    mod = type(obj).__module__ or ""
    if not mod.startswith("outlines"):
        return None
    from outlines.types import dsl

    from .grammar import Grammar
    from .json_schema import JSONSchema
    from .regex import Regex

    if isinstance(obj, dsl.CFG):
        return Grammar(obj.definition)
    if isinstance(obj, dsl.JsonSchema):
        return JSONSchema(obj.schema, whitespace_pattern=getattr(obj, "whitespace_pattern", None))
    if isinstance(obj, dsl.Regex):
        return Regex(obj.pattern)
    if isinstance(obj, dsl.Term):
        return Regex(dsl.to_regex(obj))
    return None


def _from_python_type(obj: Any) -> Constraint | None:
    """``int``, ``float``, ``bool``, ``str``, ``date``, an ``Enum``, ``Literal[...]``,
    ``list[...]``, ``dict[...]``, unions...: converted by Outlines' own
    ``python_types_to_terms`` (what Outlines' ``Generator`` accepts), then as its term."""
    if not (isinstance(obj, type) or typing.get_origin(obj) is not None):
        return None
    try:
        from outlines.types.dsl import python_types_to_terms
    except ImportError:
        raise ConfigError(
            f"constraint={obj!r}: Python types are converted by Outlines; install it: "
            "pip install 'awrs-adapters[outlines]' (or pass a Regex / JSONSchema)") from None
    try:
        term = python_types_to_terms(obj)
    except Exception as e:
        raise ConfigError(
            f"constraint={obj!r} is not a type Outlines can convert ({type(e).__name__}: {e}); "
            "pass a pydantic class, an Enum, Literal[...], a basic type or a constraint "
            "object") from None
    return _from_outlines_term(term)


def _convert(obj: Any) -> Constraint | None:
    """The registered converter: None for objects that are not ours to convert."""
    if isinstance(obj, type):
        from pydantic import BaseModel

        if issubclass(obj, BaseModel):
            from .pydantic import Pydantic

            return Pydantic(obj)
        if is_typeddict(obj) or dataclasses.is_dataclass(obj):
            from .json_schema import JSONSchema

            return JSONSchema(obj)
        return _from_python_type(obj)
    if typing.get_origin(obj) is not None:
        return _from_python_type(obj)
    return _from_outlines_term(obj)


def from_outlines(obj: Any) -> Constraint:
    """Convert an Outlines output type, a pydantic class, a TypedDict or a dataclass.

    Raises:
        ConfigError: ``obj`` is none of these.
        ConstraintError: the regex, schema or grammar inside is invalid.
    """
    c = _convert(obj)
    if c is None:
        raise ConfigError(
            f"from_outlines got {obj!r}; pass outlines.types.Regex / JsonSchema / CFG (or "
            "another Outlines regex term), a pydantic model class, a TypedDict or a dataclass"
        )
    return c


register_converter(_convert)
