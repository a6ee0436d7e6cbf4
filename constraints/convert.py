"""Turn what users pass as a constraint into a :class:`Constraint`.

Overview: :func:`as_constraint` accepts None (no constraint), any
:class:`~awrs_adapters.constraints.Constraint`, and a plain callable (a complete-only
:class:`~awrs_adapters.constraints.Predicate`). Later converters (Outlines types,
pydantic classes, JSON schemas) register with :func:`register_converter`.

Example::

    from awrs_adapters.constraints import as_constraint
    c = as_constraint(lambda s: s.isdigit())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .base import Constraint, TrueConstraint

__all__ = ["as_constraint", "register_converter"]

_CONVERTERS: list[Callable[[Any], Constraint | None]] = []


def register_converter(fn: Callable[[Any], Constraint | None]) -> Callable[[Any], Constraint | None]:
    """Register ``fn(obj) -> Constraint | None`` (None: not mine). Usable as a decorator."""
    _CONVERTERS.append(fn)
    return fn


def as_constraint(obj: Any) -> Constraint:
    """Convert ``obj`` to a :class:`Constraint`, or raise ``ConfigError`` saying what works."""
    if obj is None:
        return TrueConstraint()
    if isinstance(obj, Constraint):
        return obj
    for conv in _CONVERTERS:
        c = conv(obj)
        if c is not None:
            return c
    if callable(obj) and not isinstance(obj, type):
        from .predicate import Predicate

        return Predicate(complete=obj)
    raise ConfigError(
        f"constraint={obj!r} is not a constraint; pass an awrs_adapters.constraints object "
        "(Predicate, Potential, Regex, JSONSchema, Grammar), an Outlines type, a pydantic "
        "model class, or a function text -> bool"
    )
