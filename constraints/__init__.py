"""Constraints: fast token automata, slow text checks and soft potentials.

Overview: every constraint binds to a byte vocabulary and composes with ``&``.
Import as ``from awrs_adapters import constraints as C``.

Example::

    >>> from awrs_adapters.constraints import Predicate, Regex
    >>> c = Predicate(complete=lambda s: s.endswith("a"))
    >>> r = Regex(r"[0-9]+") & c

Fast path: :class:`Regex`, :class:`JSONSchema` (outlines-core or llguidance),
:class:`Grammar` (Lark, llguidance). Slow path: :class:`Predicate`, and
:class:`Pydantic` (schema fast path + validators). :class:`ToolCalls`: text or tool
calls valid under the tools' schemas (LangChain's ``bind_tools``). Outlines types convert with
:func:`from_outlines` (also automatic wherever a constraint is accepted).
"""

from __future__ import annotations

from ..protocol import (
    And,
    BoundConstraint,
    Constraint,
    TokenConstraint,
    TrueConstraint,
    as_constraint,
    register_converter,
    split,
)
from .grammar import Grammar
from .json_schema import JSONSchema
from .outlines_types import from_outlines
from .potential import Potential
from .predicate import Predicate
from .pydantic import Pydantic
from .regex import Regex
from .tools import ToolCalls

__all__ = [
    "And",
    "BoundConstraint",
    "Constraint",
    "Grammar",
    "JSONSchema",
    "Potential",
    "Predicate",
    "Pydantic",
    "Regex",
    "TokenConstraint",
    "ToolCalls",
    "TrueConstraint",
    "as_constraint",
    "from_outlines",
    "register_converter",
    "split",
]
