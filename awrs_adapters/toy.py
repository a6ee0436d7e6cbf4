"""Small exact models used by the docs, the demo, the cookbook and the tests.

Overview: :func:`ends_with_a` returns the "ends with a" problem of the design: tokens
``a``, ``b`` and EOS, and a constraint that the output ends with ``a``. Locally
constrained decoding strongly favours ``ba`` (after ``b`` it must add ``a``); the
posterior favours ``a`` (the model rarely continues ``b`` with ``a``).

Example::

    >>> from awrs_adapters.toy import ends_with_a
    >>> from awrs_adapters.testing import exact_posterior, exact_lcd
    >>> lm, c, T = ends_with_a()
    >>> print(exact_posterior(lm, c, T)[0], exact_lcd(lm, c, T))
    {'a': 0.857..., 'aa': 0.095..., 'ba': 0.047...} {'aa': 0.050..., 'a': 0.450..., 'ba': 0.499...}
"""

from __future__ import annotations

import math

from .constraints.predicate import Predicate
from .lm.function import FunctionLM

__all__ = ["ends_with_a"]

_L = math.log


def ends_with_a() -> tuple[FunctionLM, Predicate, int]:
    """(lm, constraint, max_tokens) for the "ends with a" example.

    The model: first token a or b (½ each); after ``a`` it mostly ends (0.9, else
    another ``a``); after ``b`` it mostly ends (0.95) and rarely adds ``a`` (0.05); the
    second token is followed by EOS. Exact posterior: a 0.857, aa 0.095, ba 0.048;
    locally constrained decoding: a 0.45, aa 0.05, ba 0.5.
    """
    A, B, EOS = 0, 1, 2

    def next_logprobs(prefix: tuple[int, ...]) -> list[float]:
        if len(prefix) == 0:
            return [_L(0.5), _L(0.5), -math.inf]
        if len(prefix) == 1 and prefix[0] == A:
            return [_L(0.1), -math.inf, _L(0.9)]
        if len(prefix) == 1 and prefix[0] == B:
            return [_L(0.05), -math.inf, _L(0.95)]
        return [-math.inf, -math.inf, 0.0]

    lm = FunctionLM([b"a", b"b", b""], EOS, next_logprobs)
    return lm, Predicate(complete=lambda s: s.endswith("a"), name="ends_with_a"), 3
