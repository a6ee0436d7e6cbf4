"""One exception hierarchy for everything the library raises on purpose.

Overview: every error derives from :class:`AWRSError`, so ``except AWRSError`` catches
all of them; each also derives from the closest builtin (``ValueError`` for bad
arguments, ``RuntimeError`` for failures at run time) so generic handlers keep working.
Messages name the argument, the value and the fix.

Example::

    >>> from awrs_adapters.errors import AWRSError, ConfigError
    >>> try:
    ...     raise ConfigError("num_particles must be >= 1, got 0; pass num_particles=8")
    ... except AWRSError as e:
    ...     print(e)
    num_particles must be >= 1, got 0; pass num_particles=8
"""

from __future__ import annotations

__all__ = [
    "AWRSError",
    "ConfigError",
    "ConstraintError",
    "GenerationTimeoutError",
    "LMError",
    "LookaheadBudgetWarning",
    "ModelNotFoundError",
    "NoValidSampleError",
    "VocabularyError",
]


class AWRSError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(AWRSError, ValueError):
    """An argument has a value that cannot work (raised before any work is done)."""


class ConstraintError(AWRSError, ValueError):
    """A constraint is invalid (bad regex/schema/grammar) or a user check raised."""


class VocabularyError(AWRSError, ValueError):
    """The vocabulary of a model and of a constraint or token table do not agree."""


class LMError(AWRSError, RuntimeError):
    """The language model returned something unusable (NaN or +inf log-probabilities)."""


class NoValidSampleError(AWRSError, RuntimeError):
    """No particle produced a complete string that the constraint accepts."""


class GenerationTimeoutError(AWRSError, TimeoutError):
    """A run went past its ``timeout`` (seconds); nothing partial is returned."""


class ModelNotFoundError(AWRSError, FileNotFoundError):
    """A model, its package or its file is missing; the message says how to install it."""


class LookaheadBudgetWarning(UserWarning):
    """A :class:`~awrs_adapters.constraints.Predicate`'s look-ahead budget (calls or
    seconds) ran out in one generation: from then on, tokens that end inside a character
    more than one byte short are held back (accepted until the character is finished),
    which is still sound but may let a particle walk into a dead end. Emitted once per
    bound constraint (one generation); the message names the constraint and the budget."""
