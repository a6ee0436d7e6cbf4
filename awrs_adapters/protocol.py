"""The constraint protocol: what the engine asks of a constraint, and how they compose.

Overview: a user-facing :class:`Constraint` is *bound* to a model's byte
:class:`~awrs_adapters.vocab.Vocabulary`, giving a :class:`BoundConstraint` that the
token sampler queries. Particle states are small immutable values (an int automaton
state, a bytes prefix, a tuple of those), so resampling copies nothing large and a state
is never mutated once made. Implementations (regex and JSON-schema automata, grammars,
Python predicates, potentials) live in :mod:`awrs_adapters.constraints`, depend on this
module and load only when used.

* Fast path (:class:`TokenConstraint`, e.g. a compiled regex): O(1) ``check`` per token
  and an exact ``fast_mask`` of allowed tokens.
* Slow path (:class:`~awrs_adapters.constraints.Predicate`): a Python check on decoded
  text, run only on candidates the sampler draws.
* Potentials (:class:`~awrs_adapters.constraints.Potential`): soft log-weights applied by
  SMC as importance weights, never in the proposal. (One concept, one name: a
  potential's score of a prefix is its *twist*, as in the end-aware twist of
  :mod:`awrs_adapters.twist`; the engine's "potentials" are these parts.)

Constraints compose with ``&`` (:class:`And`; :func:`split` separates the Boolean
proposal from the potentials). :func:`as_constraint` turns what users pass (None, a
function, an Outlines type, a pydantic class, a JSON schema) into a constraint.

Example::

    >>> from awrs_adapters.protocol import as_constraint
    >>> from awrs_adapters.vocab import Vocabulary
    >>> c = as_constraint(lambda s: s.endswith("a"))
    >>> b = c.bind(Vocabulary([b"a", b"b", b""], 2))
    >>> s = b.initial_state()
    >>> assert b.check(s, 0) and b.check(b.advance(s, 0), 2)   # "a" then EOS
"""

from __future__ import annotations

import importlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from .errors import ConfigError
from .vocab import Vocabulary

__all__ = [
    "And",
    "AndBound",
    "BoundConstraint",
    "Constraint",
    "TokenConstraint",
    "TrueConstraint",
    "as_constraint",
    "register_converter",
    "split",
]

State = Any


class Constraint(ABC):
    """Anything that can be bound to a vocabulary and combined with ``&``.

    Subclasses say whether they are Boolean (``is_potential = False``: used in the
    proposal) or soft (``is_potential = True``: used as an importance weight).
    """

    is_potential: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "is_critic" in cls.__dict__:  # the old name of is_potential (one release)
            warnings.warn(f"{cls.__name__}.is_critic was renamed to is_potential",
                          DeprecationWarning, stacklevel=2)
            cls.is_potential = bool(cls.__dict__["is_critic"])

    @abstractmethod
    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        """Specialise to ``vocab`` (compile automata, build token tables)."""

    def accepts(self, text: str) -> bool:
        """Whole-string check, independent of any tokenizer."""
        raise NotImplementedError(f"{type(self).__name__} has no whole-string check")

    def __and__(self, other: Any) -> Constraint:
        return And(self, as_constraint(other))

    def __rand__(self, other: Any) -> Constraint:
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


class And(Constraint):
    """Accepts a string when every part does (potential parts weight it)."""

    parts: tuple[Constraint, ...]

    def __init__(self, *parts: Constraint) -> None:
        flat: list[Constraint] = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, And) else [p])
        self.parts = tuple(flat)

    def split(self) -> tuple[Constraint, list[Constraint]]:
        """(the Boolean proposal constraint, the potential parts)."""
        booleans = [p for p in self.parts if not p.is_potential]
        potentials = [p for p in self.parts if p.is_potential]
        if not booleans:
            return TrueConstraint(), potentials
        if len(booleans) == 1:
            return booleans[0], potentials
        return And(*booleans), potentials

    def accepts(self, text: str) -> bool:
        return all(p.accepts(text) for p in self.parts)

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        proposal, potentials = self.split()
        if potentials:
            return proposal.bind(vocab)  # potentials are applied by the engine
        bounds = [p.bind(vocab) for p in self.parts]
        return AndBound(vocab, bounds)

    def __repr__(self) -> str:
        return " & ".join(repr(p) for p in self.parts)


def split(constraint: Constraint | None) -> tuple[Constraint, list[Constraint]]:
    """Split any constraint into (Boolean proposal, potentials)."""
    if constraint is None:
        return TrueConstraint(), []
    if isinstance(constraint, And):
        return constraint.split()
    if constraint.is_potential:
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
    # registers the converters of the implementations (a package mapped beside this one:
    # imported by name so the type checker does not need to resolve it)
    constraints = importlib.import_module("awrs_adapters.constraints")

    for conv in _CONVERTERS:
        c = conv(obj)
        if c is not None:
            return c
    if callable(obj) and not isinstance(obj, type):
        pred: Constraint = constraints.Predicate(complete=obj)
        return pred
    raise ConfigError(
        f"constraint={obj!r} is not a constraint; pass an awrs_adapters.constraints object "
        "(Predicate, Potential, Regex, JSONSchema, Grammar), an Outlines type, a pydantic "
        "model class, or a function text -> bool"
    )
