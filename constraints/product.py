"""Conjunction of constraints: ``a & b`` accepts what both accept.

Overview: :class:`And` flattens nested conjunctions. Boolean parts form the proposal
(fast parts checked first, so a cheap automaton rejects before Python runs); critic
parts (:class:`~awrs_adapters.constraints.Potential`) are returned by :meth:`And.split`
for the engine to apply as importance weights.

Example::

    from awrs_adapters.constraints import Predicate, Potential
    c = Predicate(lambda s: "x" in s) & Potential(lambda s: -len(s))
    proposal, critics = c.split()
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from ..vocab import Vocabulary
from .base import BoundConstraint, Constraint, TrueConstraint

__all__ = ["And", "AndBound", "split"]


class And(Constraint):
    """Accepts a string when every part does (critic parts weight it)."""

    def __init__(self, *parts: Constraint) -> None:
        flat: list[Constraint] = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, And) else [p])
        self.parts = tuple(flat)

    def split(self) -> tuple[Constraint, list[Constraint]]:
        """(the Boolean proposal constraint, the critic parts)."""
        booleans = [p for p in self.parts if not p.is_critic]
        critics = [p for p in self.parts if p.is_critic]
        if not booleans:
            return TrueConstraint(), critics
        if len(booleans) == 1:
            return booleans[0], critics
        return And(*booleans), critics

    def accepts(self, text: str) -> bool:
        return all(p.accepts(text) for p in self.parts)

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        proposal, critics = self.split()
        if critics:
            return proposal.bind(vocab)  # critics are applied by the engine
        bounds = [p.bind(vocab) for p in self.parts]
        return AndBound(vocab, bounds)

    def __repr__(self) -> str:
        return " & ".join(repr(p) for p in self.parts)


def split(constraint: Constraint | None) -> tuple[Constraint, list[Constraint]]:
    """Split any constraint into (Boolean proposal, critics)."""
    if constraint is None:
        return TrueConstraint(), []
    if isinstance(constraint, And):
        return constraint.split()
    if constraint.is_critic:
        return TrueConstraint(), [constraint]
    return constraint, []


class AndBound(BoundConstraint):
    def __init__(self, vocab: Vocabulary, bounds: list[BoundConstraint]) -> None:
        self.vocab = vocab
        bounds = [b for b in bounds if not b.trivial] or bounds[:1]
        # fast parts first: an O(1) automaton rejects before Python text checks run
        order = sorted(range(len(bounds)), key=lambda i: bounds[i].has_slow)
        self._order = order
        self.bounds = bounds
        self.has_fast = any(b.has_fast for b in bounds)
        self.has_slow = any(b.has_slow for b in bounds)
        self.trivial = all(b.trivial for b in bounds)

    def initial_state(self) -> Hashable:
        return tuple(b.initial_state() for b in self.bounds)

    def check(self, state: Any, token_id: int) -> bool:
        return all(self.bounds[i].check(state[i], token_id) for i in self._order)

    def sweep_check(self, state: Any, token_id: int) -> bool:
        return all(self.bounds[i].sweep_check(state[i], token_id) for i in self._order)

    def dead_prefix(self, state: Any, token_id: int) -> int | None:
        # the first part that rejects the token says why; the sweep's cheaper check
        # first, so a sweep never pays for a draw's exact check here
        for check in ("sweep_check", "check"):
            for i in self._order:
                if not getattr(self.bounds[i], check)(state[i], token_id):
                    return self.bounds[i].dead_prefix(state[i], token_id)
        return None

    def advance(self, state: Any, token_id: int) -> Any:
        return tuple(b.advance(s, token_id) for b, s in zip(self.bounds, state, strict=True))

    def fast_mask(self, state: Any) -> np.ndarray | None:
        mask = None
        for b, s in zip(self.bounds, state, strict=True):
            if b.has_fast:
                m = b.fast_mask(s)
                mask = m if mask is None else (mask & m)
        return mask
