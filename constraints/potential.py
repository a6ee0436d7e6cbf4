"""Soft constraints: a log-weight on text, applied by SMC as an importance weight.

Overview: :class:`Potential` scores finished outputs (``complete``, ``-inf`` rejects)
and, optionally, unfinished ones (``prefix``, the twist: an estimate of the score the
prefix will end with). SMC multiplies it into the particle weights, never into the
proposal, so it may be soft or expensive; any twist leaves the target unchanged, a good
one lowers the variance. Results are cached by text. Its Boolean counterpart is
:class:`~awrs_adapters.constraints.predicate.Predicate`.

Example::

    >>> from awrs_adapters.constraints import Potential, Predicate
    >>> short = Potential(complete=lambda s: -0.5 * len(s))     # log-weight
    >>> both = Predicate(complete=lambda s: s.endswith("a")) & short
    >>> print(short.log_complete("abc"), both)
    -1.5 Predicate(<lambda>) & Potential(<lambda>)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np

from ..caching import LRUCache
from ..errors import ConfigError, ConstraintError
from ..protocol import BoundConstraint, Constraint
from ..vocab import Vocabulary
from .predicate import _RAISED, _call, _refuse_async, _refuse_awaitable

__all__ = ["Potential"]


class Potential(Constraint):
    """A soft log-weight on text, used by SMC as an importance weight.

    Args:
        complete: ``fn(text) -> float``, the log-weight of a finished output
            (``-inf`` rejects it).
        prefix: ``fn(text) -> float``, an estimate of the log-weight a prefix will end
            with (the twist); default 0. A good twist lowers variance, any twist keeps the
            target the same, as long as it is ``-inf`` only where ``complete`` must be.
        errors: ``"raise"`` or ``"reject"`` (a raising function gives ``-inf``; such
            calls are counted in ``errors_count``).
    """

    is_potential = True

    def __init__(
        self,
        complete: Callable[[str], float],
        prefix: Callable[[str], float] | None = None,
        *,
        errors: Literal["raise", "reject"] = "raise",
        name: str | None = None,
    ) -> None:
        if not callable(complete):
            raise ConfigError(f"complete={complete!r} is not callable; pass fn(text) -> float")
        if prefix is not None and not callable(prefix):
            raise ConfigError(f"prefix={prefix!r} is not callable; pass fn(text) -> float")
        _refuse_async(complete, "complete", "a float")
        _refuse_async(prefix, "prefix", "a float")
        if errors not in ("raise", "reject"):
            raise ConfigError(f"errors={errors!r}; use 'raise' or 'reject'")
        self.complete_fn = complete
        self.prefix_fn = prefix
        self.errors = errors
        self.name = name or getattr(complete, "__name__", "Potential")
        #: calls that raised and were read as -inf (errors="reject")
        self.errors_count = 0
        self._cache: LRUCache[float] = LRUCache()

    def _score(self, fn: Callable[[str], float], text: str, what: str) -> float:
        def compute(key: tuple[str, str]) -> float:
            v = _call(fn, text, what, self.errors, self.name)
            if v is _RAISED:
                self.errors_count += 1
                return -math.inf
            _refuse_awaitable(v, f"{self.name}'s {what} function returned a coroutine on "
                              f"text {text!r:.80} (an async function?); return a log-weight "
                              "from a plain def function")
            if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer):
                # None (a missing return) or a bool would silently read as a weight
                raise ConstraintError(
                    f"{self.name}'s {what} function returned {v!r} on text {text!r}; return a "
                    "log-weight (a float; -inf rejects, 0.0 is neutral). A Boolean check is a "
                    "Predicate, not a Potential")
            v = float(v)
            if math.isnan(v) or v == math.inf:
                raise ConstraintError(
                    f"{self.name}'s {what} score is {v} on text {text!r}; return a finite "
                    "log-weight or -inf"
                )
            return v

        return self._cache.get_or((what, text), compute)

    def log_prefix(self, text: str) -> float:
        """Twist on an unfinished output (0 when no prefix function was given)."""
        if self.prefix_fn is None:
            return 0.0
        return self._score(self.prefix_fn, text, "prefix")

    def log_complete(self, text: str) -> float:
        """Log-weight of a finished output."""
        return self._score(self.complete_fn, text, "complete")

    def accepts(self, text: str) -> bool:
        return self.log_complete(text) > -math.inf

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        raise ConfigError(
            "a Potential is an importance weight, not a proposal constraint; pass it as "
            "constraint=... to generate, which applies it as an importance weight"
        )

    def __repr__(self) -> str:
        return f"Potential({self.name})"
