"""Slow-path checks on decoded text: Boolean predicates.

Overview: :class:`Predicate` is a Boolean check on text; the sampler runs it only on
the candidate tokens it draws (rejection), never over the whole vocabulary. Its soft
counterpart, :class:`~awrs_adapters.constraints.potential.Potential`, is a log-weight
applied by SMC as an importance weight. Both cache results by text.

Where each check runs:

* ``Predicate(prefix=...)``: in the proposal, on every candidate token. ``prefix`` must
  be *sound*: it may reject a prefix only if no completion of it can be accepted.
* ``Predicate(complete=...)``: in the proposal, when EOS is the candidate.
* ``Potential``: an importance weight; never rejects in the proposal, so it may be soft or expensive.

Example::

    >>> from awrs_adapters.constraints import Predicate, Potential
    >>> ends_a = Predicate(complete=lambda s: s.endswith("a"))
    >>> short = Potential(complete=lambda s: -0.5 * len(s))     # log-weight
    >>> both = ends_a & short
"""

from __future__ import annotations

import functools
import inspect
import math
import time
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from ..caching import LRUCache
from ..deadline import active_deadline
from ..errors import (
    ConfigError,
    ConstraintError,
    GenerationTimeoutError,
    LookaheadBudgetWarning,
)
from ..protocol import BoundConstraint, Constraint
from ..vocab import Vocabulary, decode_text, split_pending

__all__ = ["DEFAULT_LOOKAHEAD_SECONDS", "LookaheadBudgetWarning", "Predicate"]

_RAISED = object()  # what _call returns for a raising function under errors="reject"

#: Most characters an exhaustive sweep tries for one unfinished character.
SWEEP_LOOKAHEAD = 4096

#: Default ``lookahead_seconds``: None, no wall-clock bound. A time bound decides what is
#: held back from timings taken during the run, so the same seed gave different results
#: under different load (measured: a fast ``regex`` prefix function hit a 5 s bound on a
#: loaded 2-core machine and all 8 particles of one generation died where the unloaded
#: run succeeded). The call budget bounds the work deterministically; ``timeout`` bounds
#: the wall clock by raising, also inside a look-ahead.
DEFAULT_LOOKAHEAD_SECONDS: float | None = None


def _is_async(fn: Any) -> bool:
    """``fn`` is an ``async def`` function (or an object whose ``__call__`` is one)."""
    if inspect.iscoroutinefunction(fn):
        return True
    try:
        call = fn.__call__
    except AttributeError:
        return False
    return inspect.iscoroutinefunction(call)


def _refuse_async(fn: Any, what: str, returns: str) -> None:
    if fn is not None and _is_async(fn):
        name = getattr(fn, "__name__", type(fn).__name__)
        raise ConfigError(
            f"{what}={name} is an async def function; checks run synchronously inside the "
            f"sampler, so it would return a coroutine, not {returns}. Pass a plain def "
            "function (run any async work inside it, e.g. with asyncio.run)")


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _refuse_awaitable(v: Any, message: str) -> None:
    """A ConstraintError with ``message`` if ``v`` is awaitable (closed first, so Python
    does not also warn that the coroutine was never awaited)."""
    if inspect.isawaitable(v):
        close = getattr(v, "close", None)
        if callable(close):
            close()
        raise ConstraintError(message)


def _as_bool(v: Any, fn: Any, what: str, text: str, name: str) -> bool:
    """``v`` if it is a bool (or ``numpy.bool_``); otherwise a ConstraintError."""
    if v is True or v is False:
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    _refuse_awaitable(v, f"{name}'s {what} function {_fn_name(fn)} returned a coroutine on "
                      f"text {text!r:.80} (an async function?); a Predicate's check must "
                      "return a bool: pass a plain def function (run any async work inside "
                      "it, e.g. with asyncio.run)")
    raise ConstraintError(
        f"{name}'s {what} function {_fn_name(fn)} returned {v!r:.60} ({type(v).__name__}) on "
        f"text {text!r:.80}; a Predicate's check must return a bool (True or False; "
        "numpy.bool_ is accepted, ints are not): return bool(...) of what you meant, e.g. "
        "bool(re.fullmatch(...)) or x == 1, or use a Potential for a soft score")


@functools.lru_cache(maxsize=512)
def likely_first(chars: range) -> Sequence[int]:
    """The code points of ``chars``, assigned characters first, then private use, then
    unassigned: a prefix function that accepts some character usually accepts an
    assigned one, so the search stops early (U+10000.. holds 65k unassigned points)."""
    if len(chars) <= 64:
        return chars
    rank = {"Cn": 2, "Co": 1, "Cs": 1}
    return sorted(chars, key=lambda cp: rank.get(unicodedata.category(chr(cp)), 0))


def _call(fn: Callable[[str], Any], text: str, what: str, errors: str, name: str) -> Any:
    try:
        return fn(text)
    except Exception as e:  # a user's check raised: report it with the text it saw
        if errors == "reject":
            return _RAISED
        raise ConstraintError(
            f"{name}'s {what} check raised {type(e).__name__}: {e} on text {text!r}; fix the "
            f"function, or create the {name} with errors='reject' to treat errors as rejection"
        ) from e


class Predicate(Constraint):
    """A Boolean check on decoded text.

    Args:
        complete: ``fn(text) -> bool`` on a finished output.
        prefix: ``fn(text) -> bool`` on an unfinished output. Must be sound (see module
            doc). Default: accept. When a token ends inside a multi-byte character, the
            prefix is kept if ``prefix(text + ch)`` holds for some character ``ch`` it can
            still become, or for U+FFFD (what an unfinished character decodes to), so a
            byte fragment of "é" or "中" is rejected at once where only ASCII may follow.
            Bytes that can never form a character are read as U+FFFD, as the finished
            text will be.

            Both functions must return a ``bool`` (``numpy.bool_`` is accepted; ints,
            None, strings, NaN, lists and match objects are not: a value read by its
            truthiness would accept strings the function meant to reject). Any other
            value raises :class:`~awrs_adapters.errors.ConstraintError` naming the
            function, the value's type and the text, whatever ``errors`` says (it is a
            bug in the function, not a verdict). ``async def`` functions are refused
            with :class:`~awrs_adapters.errors.ConfigError`.
        errors: ``"raise"`` (default) reports a check that raises as
            :class:`~awrs_adapters.errors.ConstraintError`; ``"reject"`` treats it as
            False for that text only: each such call is counted in :attr:`errors_count`
            (the exception kept in :attr:`last_error`), and a rejection that came from a
            raising call never prunes other tokens (the byte-trie pruning of
            ``dead_prefix`` trusts only a prefix function that returned False).
        name: used in error messages and warnings.
        lookahead: most characters tried for one unfinished character when a drawn
            token is checked (stopping at the first that fits; assigned characters are
            tried first). One byte short there are at most 64, two bytes short 4,096,
            three short (a lone 4-byte lead such as ``b"\\xf0"``) up to 262,144: the
            default tries them all, so no token that begins a character is kept unless
            the character can be finished (that would be a dead end one step later).
            Where nothing fits, a lone lead costs one call per character (about 0.5 s
            for ``b"\\xf0"`` with a compiled-regex prefix function); only drawn tokens
            pay it, and rarely: a lone lead is drawn where nearly all the valid mass is
            gone. Past the bound the character is held back (accepted for now: still
            sound). An exhaustive sweep (``mask-smc``) tries at most 4,096 for a token
            that begins its character and holds back the rest. Results are cached per
            text.
        lookahead_budget: most calls all look-aheads of one bound constraint (one
            generation) may spend on characters more than one byte short; once spent,
            such characters are held back. Bounds the worst case of a fast prefix
            function: rejecting SmolLM2's three lone 4-byte leads costs 524,288 calls
            per text. Default 1,048,576: two such rejections per generation.
        lookahead_seconds: the same bound in wall-clock seconds spent in those
            look-ahead calls, for a slow prefix function (at 1 ms a call the call budget
            allows about 17 minutes per generation). Default None: no time bound, so the
            same seed gives the same result whatever the machine load; bound a slow
            function's generations with ``timeout=`` instead (it raises, also from inside
            a look-ahead). With seconds given, a look-ahead that runs past them stops and
            holds its character back: still sound, but what is held back then depends on
            timing, so two runs with the same seed can differ under different load.
            Whichever budget binds first, one
            :class:`~awrs_adapters.errors.LookaheadBudgetWarning` per generation names
            the constraint and the budget.

    Attributes:
        errors_count: calls of ``complete``/``prefix`` that raised and were read as a
            rejection (``errors="reject"``), since the Predicate was made (results are
            cached per text, so a text counts once per bound constraint).
        last_error: the last such exception, or None.
    """

    def __init__(
        self,
        complete: Callable[[str], bool],
        prefix: Callable[[str], bool] | None = None,
        *,
        errors: Literal["raise", "reject"] = "raise",
        name: str | None = None,
        lookahead: int = 262_144,
        lookahead_budget: int = 1_048_576,
        lookahead_seconds: float | None = DEFAULT_LOOKAHEAD_SECONDS,
    ) -> None:
        if not callable(complete):
            raise ConfigError(f"complete={complete!r} is not callable; pass fn(text) -> bool")
        if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 0:
            raise ConfigError(f"lookahead={lookahead!r}; pass an int >= 0 (default 262144: every character)")
        if prefix is not None and not callable(prefix):
            raise ConfigError(f"prefix={prefix!r} is not callable; pass fn(text) -> bool or None")
        _refuse_async(complete, "complete", "a bool")
        _refuse_async(prefix, "prefix", "a bool")
        if errors not in ("raise", "reject"):
            raise ConfigError(f"errors={errors!r}; use 'raise' or 'reject'")
        self.complete_fn = complete
        self.prefix_fn = prefix
        self.errors = errors
        self.name = name or getattr(complete, "__name__", "Predicate")
        if (isinstance(lookahead_budget, bool) or not isinstance(lookahead_budget, int)
                or lookahead_budget < 0):
            raise ConfigError(f"lookahead_budget={lookahead_budget!r}; pass an int >= 0 "
                              "(default 1048576)")
        if lookahead_seconds is not None and (
                isinstance(lookahead_seconds, bool)
                or not isinstance(lookahead_seconds, int | float | np.integer | np.floating)
                or not lookahead_seconds >= 0 or math.isnan(lookahead_seconds)):
            raise ConfigError(
                f"lookahead_seconds={lookahead_seconds!r}; pass a number of seconds >= 0 "
                "or None (the default) for no time bound")
        self.lookahead = lookahead
        self.lookahead_budget = lookahead_budget
        self.lookahead_seconds = None if lookahead_seconds is None else float(lookahead_seconds)
        self.errors_count = 0
        self.last_error: Exception | None = None

    def _run(self, fn: Callable[[str], Any], text: str, what: str) -> Any:
        """``fn(text)`` as a bool, or ``_RAISED`` (a raising call under errors="reject")."""
        try:
            v = fn(text)
        except Exception as e:  # a user's check raised: report it with the text it saw
            if self.errors == "reject":
                self.errors_count += 1
                self.last_error = e
                return _RAISED
            raise ConstraintError(
                f"{self.name}'s {what} check raised {type(e).__name__}: {e} on text {text!r}; "
                f"fix the function, or create the {self.name} with errors='reject' to treat "
                "errors as rejection"
            ) from e
        return _as_bool(v, fn, what, text, self.name)

    def accepts(self, text: str) -> bool:
        return self._run(self.complete_fn, text, "complete") is True

    def check_prefix(self, text: str) -> bool:
        """The prefix check on ``text`` (True when no prefix function was given)."""
        return self.prefix_status(text) is True

    def prefix_status(self, text: str) -> Any:
        """True, False, or ``_RAISED`` (the function raised under ``errors="reject"``:
        a rejection that proves nothing about other texts)."""
        if self.prefix_fn is None:
            return True
        return self._run(self.prefix_fn, text, "prefix")

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        return _PredicateBound(self, vocab)

    def __repr__(self) -> str:
        return f"Predicate({self.name})"


class _PredicateBound(BoundConstraint):
    """State: the bytes generated so far (immutable).

    A check's status is True (viable), False (proved dead by the prefix function) or
    ``_RAISED`` (rejected because a call raised under ``errors="reject"``; proves
    nothing beyond this text, so ``dead_prefix`` prunes nothing for it).
    """

    has_slow = True

    def __init__(self, pred: Predicate, vocab: Vocabulary) -> None:
        self.pred = pred
        self.vocab = vocab
        self._tokens = vocab.tokens
        self._eos = vocab.eos_token_id
        self._special = vocab.special_ids
        self._prefix_cache: LRUCache[Any] = LRUCache()
        self._pending_cache: LRUCache[Any] = LRUCache(maxsize=4096)
        self._complete_cache: LRUCache[bool] = LRUCache()
        self._budget = pred.lookahead_budget  # calls left for characters > 1 byte short
        #: wall-clock seconds spent in look-ahead calls on characters > 1 byte short
        self.lookahead_seconds_spent = 0.0
        #: which budget bound first ("lookahead_budget" or "lookahead_seconds"), or None
        self.budget_bound: str | None = None

    def initial_state(self) -> bytes:
        return b""

    def viable(self, data: bytes, start: int = 0, sweep: bool = False) -> bool:
        """Whether the output bytes ``data`` may still be completed (the prefix check).

        Text that ends inside a character is viable iff some way to finish that character
        is: one of the characters it can become, or U+FFFD (what it decodes to if the
        output ends or breaks it). Sound: a sound prefix function rejects ``text + ch``
        only if nothing extends it. ``start``: how many bytes of ``data`` earlier tokens
        wrote. ``sweep``: the cheaper look-ahead of an exhaustive sweep (see
        :class:`Predicate`'s ``lookahead``): a character that earlier tokens began is
        resolved only one byte short there, or every continuation byte would cost up to
        4,096 calls.
        """
        return self._status(data, start, sweep) is True

    def _status(self, data: bytes, start: int = 0, sweep: bool = False) -> Any:
        """:meth:`viable` as True, False (proved dead) or ``_RAISED``."""
        text, chars = split_pending(data)
        settled = self._prefix_cache.get_or(text, self.pred.prefix_status)
        if chars is None or settled is not True:  # a dead text stays dead whatever char follows
            return settled
        limit = self.pred.lookahead
        if sweep:
            lead = len(data) - 1
            while data[lead] < 0xC0:
                lead -= 1
            limit = min(limit, SWEEP_LOOKAHEAD) if lead >= start or len(chars) <= 64 else 0
        if len(chars) > limit:  # past the bound: hold it back without trying a part
            limit = 0
        # the look-ahead uses the limit only as "try every character or none"
        key = (text, chars.start, chars.stop, limit > 0)
        hit = self._pending_cache.get(key)
        if hit is not None:
            return hit
        if limit and len(chars) > 64 and not self._budget_left(len(chars)):
            limit = 0  # spent: hold it back (sound)
            key = (text, chars.start, chars.stop, False)
        return self._pending_cache.get_or(key, lambda _: self._some_char_fits(text, chars, limit))

    def _budget_left(self, calls: int) -> bool:
        """Whether a look-ahead of ``calls`` calls fits both budgets (warn once if not)."""
        if calls > self._budget:
            self._bind("lookahead_budget")
            return False
        secs = self.pred.lookahead_seconds
        if secs is not None and self.lookahead_seconds_spent >= secs:
            self._bind("lookahead_seconds")
            return False
        return True

    def _bind(self, which: str) -> None:
        if self.budget_bound is not None:
            return
        self.budget_bound = which
        value = (f"lookahead_budget={self.pred.lookahead_budget:,} calls"
                 if which == "lookahead_budget" else
                 f"lookahead_seconds={self.pred.lookahead_seconds:g} s")
        warnings.warn(
            f"Predicate {self.pred.name!r}: the look-ahead budget {value} of this generation "
            "is spent; tokens that end inside a character more than one byte short are now "
            "held back (accepted until the character is finished: still sound, but a "
            f"particle may reach a dead end later). Raise {which}, or make the prefix "
            "function faster",
            LookaheadBudgetWarning, stacklevel=2)

    def _some_char_fits(self, text: str, chars: range, limit: int) -> Any:
        status = self.pred.prefix_status
        raised = False
        if limit:
            big = len(chars) > 64
            secs = self.pred.lookahead_seconds if big else None
            # the generation's timeout, when a draw runs under one (see deadline.py)
            deadline = active_deadline() if big else None
            t0 = time.perf_counter()
            n = 0
            slow = True  # read the clock after every call while calls average > 10 us
            try:
                for cp in likely_first(chars):
                    n += 1
                    r = status(text + chr(cp))
                    if r is True:
                        return True
                    if r is _RAISED:
                        raised = True  # this character is rejected; it proves nothing
                    # a budget overshoots by at most one slow call (or 32 fast ones:
                    # reading the clock costs about as much as a fast call)
                    if (secs is not None or deadline is not None) and (slow or not n % 32):
                        now = time.perf_counter()
                        if deadline is not None and now > deadline:
                            raise GenerationTimeoutError(
                                f"generation passed its deadline inside {self.pred.name}'s "
                                f"look-ahead after {n} calls")
                        spent = now - t0
                        if secs is not None and self.lookahead_seconds_spent + spent > secs:
                            self._bind("lookahead_seconds")
                            return True  # out of time: hold the character back (sound)
                        slow = spent > n * 1e-5
            finally:
                if big:
                    self._budget -= n
                    self.lookahead_seconds_spent += time.perf_counter() - t0
        else:
            # too many characters to try them all: hold the character back (sound, less
            # sharp); the text itself passed already
            return True
        r = status(text + "\ufffd")
        if r is True:
            return True
        return _RAISED if raised or r is _RAISED else False

    def check(self, state: bytes, token_id: int) -> bool:
        if token_id == self._eos:
            return self._complete_cache.get_or(decode_text(state),
                                               self.pred.accepts)
        if token_id in self._special:
            return False
        if self.pred.prefix_fn is None:
            return True
        return self.viable(state + self._tokens[token_id], len(state))

    def sweep_check(self, state: bytes, token_id: int) -> bool:
        if token_id == self._eos or token_id in self._special or self.pred.prefix_fn is None:
            return self.check(state, token_id)
        return self.viable(state + self._tokens[token_id], len(state), sweep=True)

    def dead_prefix(self, state: bytes, token_id: int) -> int | None:
        tok = self._tokens[token_id]
        if self.pred.prefix_fn is None or not tok:
            return None
        if self._status(state + tok, len(state)) is not False:
            # rejected because a call raised (errors="reject"): that proves nothing
            # about the tokens sharing its bytes, so reject this token only
            return None
        # probe the token's first byte (when its look-ahead is small) and first character:
        # one call that fails there rejects every token starting the same way (a probe
        # whose call raised proves nothing and prunes nothing)
        if len(tok) > 1:
            data = state + tok[:1]
            chars = split_pending(data)[1]
            if (chars is None or len(chars) <= 64) and self._status(data, len(state)) is False:
                return 1
            if chars is not None:  # the first character is longer than a byte
                for n in range(2, len(tok)):
                    if split_pending(state + tok[:n])[1] is None:
                        if self._status(state + tok[:n], len(state)) is False:
                            return n
                        break
        return len(tok)

    def advance(self, state: bytes, token_id: int) -> bytes:
        if token_id == self._eos:
            return state
        return state + self._tokens[token_id]


def __getattr__(name: str) -> Any:
    if name == "Potential":  # moved to constraints/potential.py; this path still works
        from .potential import Potential

        return Potential
    raise AttributeError(name)
