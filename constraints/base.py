"""The constraint protocols: fast token constraints, slow text checks, soft potentials.

Overview: a user-facing :class:`Constraint` is *bound* to a model's byte
:class:`~awrs_adapters.vocab.Vocabulary`, giving a :class:`BoundConstraint` that the
token sampler queries. Particle states are small immutable values (an int automaton
state, a bytes prefix, a tuple of those), so resampling copies nothing large and a state
is never mutated once made.

* Fast path (:class:`TokenConstraint`, e.g. a compiled regex): O(1) ``check`` per token
  and an exact ``fast_mask`` of allowed tokens.
* Slow path (:class:`~awrs_adapters.constraints.Predicate`): a Python check on decoded
  text, run only on candidates the sampler draws.
* Critics (:class:`~awrs_adapters.constraints.Potential`): soft log-weights applied by
  SMC as importance weights (twists), never in the proposal.

Constraints compose with ``&``.

Example::

    from awrs_adapters.constraints import Predicate
    from awrs_adapters.vocab import Vocabulary
    c = Predicate(complete=lambda s: s.endswith("a"))
    b = c.bind(Vocabulary([b"a", b"b", b""], 2))
    s = b.initial_state()
    assert b.check(s, 0) and b.check(b.advance(s, 0), 2)   # "a" then EOS
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import Any

import numpy as np

from ..vocab import Vocabulary

__all__ = ["BoundConstraint", "Constraint", "TokenConstraint", "TrueConstraint"]

State = Any


class Constraint(ABC):
    """Anything that can be bound to a vocabulary and combined with ``&``.

    Subclasses say whether they are Boolean (``is_critic = False``: used in the
    proposal) or soft (``is_critic = True``: used as an importance weight).
    """

    is_critic: bool = False

    @abstractmethod
    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        """Specialise to ``vocab`` (compile automata, build token tables)."""

    def accepts(self, text: str) -> bool:
        """Whole-string check, independent of any tokenizer."""
        raise NotImplementedError(f"{type(self).__name__} has no whole-string check")

    def __and__(self, other: Any) -> Constraint:
        from .convert import as_constraint
        from .product import And

        return And(self, as_constraint(other))

    def __rand__(self, other: Any) -> Constraint:
        from .convert import as_constraint
        from .product import And

        return And(as_constraint(other), self)


class BoundConstraint(ABC):
    """A constraint specialised to one vocabulary; queried by the token sampler.

    ``check(state, eos_token_id)`` asks whether the text so far is accepted as complete.
    """

    vocab: Vocabulary
    #: True when ``fast_mask`` returns a mask (a compiled automaton is involved).
    has_fast: bool = False
    #: True when some check runs Python on text (only candidates are checked).
    has_slow: bool = False
    #: True when every token is always accepted (the sampler skips checks).
    trivial: bool = False

    @abstractmethod
    def initial_state(self) -> Hashable:
        """State before any generated token."""

    @abstractmethod
    def check(self, state: State, token_id: int) -> bool:
        """Whether appending ``token_id`` keeps the output acceptable."""

    @abstractmethod
    def advance(self, state: State, token_id: int) -> State:
        """The state after ``token_id`` (only called after ``check`` said True)."""

    def sweep_check(self, state: State, token_id: int) -> bool:
        """``check`` for an exhaustive sweep over every token (``mask-smc``'s mask).

        It may accept more than ``check`` (it must stay sound) where deciding one token
        exactly costs far more than a sweep can pay for each of ``V`` tokens; a draw
        checks only the tokens it draws and pays it. Default: ``check``.
        """
        return self.check(state, token_id)

    def fast_mask(self, state: State) -> np.ndarray | None:
        """Boolean ``[V]`` superset of accepted tokens (exact when ``not has_slow``).

        None when no compiled automaton is involved.
        """
        return None

    def dead_prefix(self, state: State, token_id: int) -> int | None:
        """After ``check(state, token_id)`` said False: how much of the token is a dead end.

        An int ``n >= 1`` promises that no accepted output extends the text so far
        followed by the token's first ``n`` bytes, so the sampler rejects every token
        whose bytes start with them at once (a subtree of the vocabulary's
        :class:`~awrs_adapters.vocab.ByteTrie`). Sound prefix checks and automata that
        keep only live states can always return the token's length. None (the default)
        promises nothing beyond this token.
        """
        return None


class TokenConstraint(Constraint):
    """A fast constraint: an automaton over the byte vocabulary (O(1) checks, masks)."""


class _TrueBound(BoundConstraint):
    trivial = True

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab

    def initial_state(self) -> Hashable:
        return 0

    def check(self, state: State, token_id: int) -> bool:
        return True

    def advance(self, state: State, token_id: int) -> State:
        return 0

    def fast_mask(self, state: State) -> np.ndarray | None:
        return np.ones(self.vocab.size, dtype=bool)


class TrueConstraint(TokenConstraint):
    """Accepts everything: unconstrained generation."""

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        return _TrueBound(vocab)

    def accepts(self, text: str) -> bool:
        return True

    def __repr__(self) -> str:
        return "TrueConstraint()"
