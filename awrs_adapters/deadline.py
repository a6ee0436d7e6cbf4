"""A wall-clock deadline inside token draws: a bound whose checks raise once time is up.

A generation's ``timeout`` is checked between steps, but one step can hold many slow
checks (a dead-end draw under a 1 ms predicate makes thousands). :class:`DeadlineBound`
wraps a bound for the duration of one step's draws and reads the clock before each
check, sweep check and mask, so a draw stops within one check of the deadline; a
Predicate's look-ahead inside split characters (thousands of calls in one check) reads
the same deadline (:func:`active_deadline`) and stops too.

Example::

    >>> import time
    >>> from awrs_adapters.constraints import Predicate
    >>> from awrs_adapters.deadline import DeadlineBound
    >>> from awrs_adapters.errors import GenerationTimeoutError
    >>> from awrs_adapters.vocab import Vocabulary
    >>> bound = Predicate(lambda s: s == "a").bind(Vocabulary([b"a", b""], 1))
    >>> late = DeadlineBound(bound, time.perf_counter() - 1.0, "too late")
    >>> try:
    ...     late.check(b"", 0)
    ... except GenerationTimeoutError as e:
    ...     print(e)   # too late
    too late
"""

from __future__ import annotations

import math
import time
from contextvars import ContextVar
from typing import Any

from .errors import ConfigError, GenerationTimeoutError

__all__ = ["DeadlineBound", "active_deadline", "check_timeout", "timeout_error"]

#: the deadline of the check running now (set by DeadlineBound around each check), so a
#: long look-ahead inside one check can stop too
_ACTIVE: ContextVar[float | None] = ContextVar("awrs_adapters_deadline", default=None)


def active_deadline() -> float | None:
    """The ``time.perf_counter()`` deadline of the check running now, or None."""
    return _ACTIVE.get()


def check_timeout(timeout: object) -> float | None:
    """``timeout`` as seconds (None: no limit), or a ConfigError naming the value."""
    t = timeout
    if t is not None and (isinstance(t, bool) or not isinstance(t, int | float)
                          or not (t > 0 and math.isfinite(t))):
        raise ConfigError(f"timeout={t!r}; pass seconds > 0, or None for no limit")
    return None if t is None else float(t)


def timeout_error(timeout: float | None, inner: Exception) -> GenerationTimeoutError:
    """The user-facing error for a deadline passed inside the engine (``inner``)."""
    return GenerationTimeoutError(
        f"generation passed timeout={timeout} s ({inner}); raise timeout, or lower "
        "num_particles / max_tokens, or make the constraint's checks faster")


class DeadlineBound:
    """``bound`` with every check preceded by a clock read against ``deadline``.

    Args:
        bound: the bound constraint to delegate to (its other attributes pass through).
        deadline: ``time.perf_counter()`` seconds after which a check raises.
        message: the :class:`~awrs_adapters.errors.GenerationTimeoutError`'s message.
    """

    def __init__(self, bound: Any, deadline: float, message: str) -> None:
        self.bound = bound
        self.deadline = deadline
        self.message = message

    def _tick(self) -> None:
        if time.perf_counter() > self.deadline:
            raise GenerationTimeoutError(self.message)

    def _guarded(self, check: Any, state: Any, token_id: int) -> bool:
        """``check(state, token_id)`` after a clock read, with the deadline active inside."""
        self._tick()
        active = _ACTIVE.set(self.deadline)
        try:
            return bool(check(state, token_id))
        finally:
            _ACTIVE.reset(active)

    def check(self, state: Any, token_id: int) -> bool:
        return self._guarded(self.bound.check, state, token_id)

    def sweep_check(self, state: Any, token_id: int) -> bool:
        return self._guarded(self.bound.sweep_check, state, token_id)

    def fast_mask(self, state: Any) -> Any:
        self._tick()
        return self.bound.fast_mask(state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bound, name)
