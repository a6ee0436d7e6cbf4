"""Constraints: fast token automata, slow text checks and soft potentials.

Overview: every constraint binds to a byte vocabulary and composes with ``&``.
Import as ``from awrs_adapters import constraints as C``.

Example::

    from awrs_adapters.constraints import Predicate
    c = Predicate(complete=lambda s: s.endswith("a"))
"""

from __future__ import annotations

from .base import BoundConstraint, Constraint, TokenConstraint, TrueConstraint
from .convert import as_constraint, register_converter
from .predicate import Potential, Predicate
from .product import And, split

__all__ = [
    "And",
    "BoundConstraint",
    "Constraint",
    "Potential",
    "Predicate",
    "TokenConstraint",
    "TrueConstraint",
    "as_constraint",
    "register_converter",
    "split",
]
