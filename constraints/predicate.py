"""Slow-path checks on decoded text: Boolean predicates and soft potentials.

Overview: :class:`Predicate` is a Boolean check on text; the sampler runs it only on
the candidate tokens it draws (rejection), never over the whole vocabulary.
:class:`Potential` is a soft log-weight on text, applied by SMC as an importance weight
(a twist on prefixes, the complete score at the end). Both cache results by text.

Where each check runs:

* ``Predicate(prefix=...)``: in the proposal, on every candidate token. ``prefix`` must
  be *sound*: it may reject a prefix only if no completion of it can be accepted.
* ``Predicate(complete=...)``: in the proposal, when EOS is the candidate.
* ``Potential``: as a critic; never rejects in the proposal, so it may be soft or expensive.

Example::

    from awrs_adapters.constraints import Predicate, Potential
    ends_a = Predicate(complete=lambda s: s.endswith("a"))
    short = Potential(complete=lambda s: -0.5 * len(s))     # log-weight
    both = ends_a & short
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Literal

from ..errors import ConfigError, ConstraintError
from ..vocab import Vocabulary, decode_prefix
from .base import BoundConstraint, Constraint
from .cache import ResultCache

__all__ = ["Potential", "Predicate"]

def _call(fn: Callable[[str], Any], text: str, what: str, errors: str, name: str) -> Any:
    try:
        return fn(text)
    except Exception as e:  # a user's check raised: report it with the text it saw
        if errors == "reject":
            return None
        raise ConstraintError(
            f"{name}'s {what} check raised {type(e).__name__}: {e} on text {text!r}; fix the "
            f"function, or create the {name} with errors='reject' to treat errors as rejection"
        ) from e


class Predicate(Constraint):
    """A Boolean check on decoded text.

    Args:
        complete: ``fn(text) -> bool`` on a finished output.
        prefix: ``fn(text) -> bool`` on an unfinished output. Must be sound (see module
            doc). Default: accept. When a token ends inside a multi-byte character that
            one more byte completes, the prefix is kept if ``prefix(text + ch)`` holds for
            some such character ``ch`` (so a byte fragment of "é" is rejected at once where
            only ASCII may follow); otherwise the incomplete character is held back.
        errors: ``"raise"`` (default) reports a check that raises as
            :class:`~awrs_adapters.errors.ConstraintError`; ``"reject"`` treats it as False.
        name: used in error messages.
    """

    def __init__(
        self,
        complete: Callable[[str], bool],
        prefix: Callable[[str], bool] | None = None,
        *,
        errors: Literal["raise", "reject"] = "raise",
        name: str | None = None,
    ) -> None:
        if not callable(complete):
            raise ConfigError(f"complete={complete!r} is not callable; pass fn(text) -> bool")
        if prefix is not None and not callable(prefix):
            raise ConfigError(f"prefix={prefix!r} is not callable; pass fn(text) -> bool or None")
        if errors not in ("raise", "reject"):
            raise ConfigError(f"errors={errors!r}; use 'raise' or 'reject'")
        self.complete_fn = complete
        self.prefix_fn = prefix
        self.errors = errors
        self.name = name or getattr(complete, "__name__", "Predicate")

    def accepts(self, text: str) -> bool:
        return bool(_call(self.complete_fn, text, "complete", self.errors, self.name))

    def check_prefix(self, text: str) -> bool:
        """The prefix check on ``text`` (True when no prefix function was given)."""
        if self.prefix_fn is None:
            return True
        return bool(_call(self.prefix_fn, text, "prefix", self.errors, self.name))

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        return _PredicateBound(self, vocab)

    def __repr__(self) -> str:
        return f"Predicate({self.name})"


def _last_char_options(data: bytes) -> tuple[str, ...] | None:
    """The characters an incomplete trailing UTF-8 sequence of ``data`` can become, when
    one more byte finishes it (at most 64); None when ``data`` ends on a character
    boundary or more than one byte is missing (too many options: the prefix check then
    sees the text without the partial character, which is sound but less sharp)."""
    if not data or data[-1] < 0x80:
        return None
    start = len(data) - 1
    while start > 0 and len(data) - start < 4 and 0x80 <= data[start] < 0xC0:
        start -= 1
    return _finishing_chars(data[start:])


@functools.lru_cache(maxsize=4096)
def _finishing_chars(tail: bytes) -> tuple[str, ...] | None:
    lead = tail[0]
    need = 2 if 0xC2 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if 0xF0 <= lead < 0xF5 else 0
    if need == 0 or len(tail) != need - 1:
        return None
    out = []
    for b in range(0x80, 0xC0):
        try:
            out.append((tail + bytes([b])).decode("utf-8"))
        except UnicodeDecodeError:  # overlong forms, surrogates, > U+10FFFF
            continue
    return tuple(out)


class _PredicateBound(BoundConstraint):
    """State: the bytes generated so far (immutable)."""

    has_slow = True

    def __init__(self, pred: Predicate, vocab: Vocabulary) -> None:
        self.pred = pred
        self.vocab = vocab
        self._tokens = vocab.tokens
        self._eos = vocab.eos_token_id
        self._special = vocab.special_ids
        self._prefix_cache: ResultCache[bool] = ResultCache()
        self._complete_cache: ResultCache[bool] = ResultCache()

    def initial_state(self) -> bytes:
        return b""

    def check(self, state: bytes, token_id: int) -> bool:
        if token_id == self._eos:
            return self._complete_cache.get_or(state.decode("utf-8", errors="replace"),
                                               self.pred.accepts)
        if token_id in self._special:
            return False
        if self.pred.prefix_fn is None:
            return True
        data = state + self._tokens[token_id]
        text = decode_prefix(data)
        chars = _last_char_options(data)
        if chars is not None:
            # the text ends inside a character: viable iff some way to finish that
            # character is (a sound check rejects text + ch only if nothing extends it)
            return any(self._prefix_cache.get_or(text + ch, self.pred.check_prefix)
                       for ch in chars)
        return self._prefix_cache.get_or(text, self.pred.check_prefix)

    def advance(self, state: bytes, token_id: int) -> bytes:
        if token_id == self._eos:
            return state
        return state + self._tokens[token_id]


class Potential(Constraint):
    """A soft log-weight on text, used by SMC as a critic (importance weight).

    Args:
        complete: ``fn(text) -> float``, the log-weight of a finished output
            (``-inf`` rejects it).
        prefix: ``fn(text) -> float``, an estimate of the log-weight a prefix will end
            with (the twist); default 0. A good twist lowers variance, any twist keeps the
            target the same, as long as it is ``-inf`` only where ``complete`` must be.
        errors: ``"raise"`` or ``"reject"`` (a raising function gives ``-inf``).
    """

    is_critic = True

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
        if errors not in ("raise", "reject"):
            raise ConfigError(f"errors={errors!r}; use 'raise' or 'reject'")
        self.complete_fn = complete
        self.prefix_fn = prefix
        self.errors = errors
        self.name = name or getattr(complete, "__name__", "Potential")
        self._cache: ResultCache[float] = ResultCache()

    def _score(self, fn: Callable[[str], float], text: str, what: str) -> float:
        def compute(key: tuple[str, str]) -> float:
            v = _call(fn, text, what, self.errors, self.name)
            v = -math.inf if v is None else float(v)
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
            "a Potential is a critic, not a proposal constraint; pass it as "
            "constraint=... to generate, which applies it as an importance weight"
        )

    def __repr__(self) -> str:
        return f"Potential({self.name})"
