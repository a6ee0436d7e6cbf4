"""Adaptive weighted rejection sampling (AWRS): exact constrained token draws with weights.

Overview: for one particle with next-token distribution p and a constraint ``ok``, AWRS
visits tokens in the order of a sample without replacement from p (Gumbel keys, taken
lazily), rejecting invalid ones and removing their mass. The first accepted token is an
exact draw from ``p·ok/Z``; the returned weight is an unbiased estimate of
``Z = Σ p(y)·ok(y)``, and ``E[w·f(y)] = Σ p(y)·ok(y)·f(y)`` (proper weighting).

Estimators (``AWRS(estimator=...)``):

* ``"recursive"`` (default): at most one check beyond plain rejection sampling: after
  accepting y with remaining mass M, check the next token y2 of the order;
  the weight is ``M`` if y2 is valid (or none is left), else ``p(y)``.
* ``"geometric"``: sampling with replacement emulated by geometric "phantom" rejections
  until ``max_accepts`` (k >= 2) accepts; weight ``(k-1)/(trials-1)`` (negative-binomial,
  unbiased). Lower variance when the top token holds most of the mass.
* ``"improper"``: plain adaptive rejection sampling, weight 1 (log 0): exact locally
  constrained decoding (LCD), biased as a sampler of the posterior.

Fast path: when the constraint has a compiled automaton, AWRS may stop checking and take
the exact mask of the remaining tokens (mass M'), continuing on the masked distribution
and multiplying the estimate by M' (everything already rejected is invalid, so this is
still properly weighted). The switch (``switch="adaptive"``, default) is ski rental on a
cost model fixed before the run, in counts, never in wall time, so that the same seed
gives the same weights whatever the machine load: a draw takes the mask once its
rejections reach the cost of one mask in checks (:func:`switch_rejections`: 8 where
checks run Python, ``V / 256`` for an automaton alone); ``switch="never"``/``"always"``
or an int (after that many rejections) fix it.

Example::

    >>> import numpy as np, torch
    >>> from awrs_adapters.awrs import AWRS
    >>> from awrs_adapters.constraints import Predicate
    >>> from awrs_adapters.vocab import Vocabulary
    >>> vocab = Vocabulary([b"a", b"b", b""], 2)
    >>> bound = Predicate(lambda s: s.endswith("a"), prefix=lambda s: "b" not in s).bind(vocab)
    >>> logp = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    >>> draw = AWRS().sample(logp, bound, [bound.initial_state()], np.random.default_rng(0))[0]
    >>> print(draw.token, draw.log_weight, draw.checks)
    0 -1.609... 3
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from .errors import ConfigError
from .gumbel import LazyOrder, gumbel_orders
from .protocol import BoundConstraint

__all__ = ["AWRS", "TokenDraw", "TokenSampler", "float64_rows", "switch_rejections"]

#: the remaining mass is recomputed exactly (a sum over the tokens left) whenever the
#: running value ``1 − Σ rejected`` has fallen this far below the last exact one:
#: subtraction loses relative precision as M shrinks, and a valid token of mass 1e-13
#: must still be found and weighted right
_REFRESH = 1e-4

Estimator = Literal["recursive", "geometric", "improper"]


@dataclass(frozen=True, slots=True)
class TokenDraw:
    """One proposal: ``token`` (None: every candidate rejected), its log weight, cost."""

    token: int | None
    log_weight: float
    checks: int
    masks: int = 0


@runtime_checkable
class TokenSampler(Protocol):
    """What SMC asks of a token proposal (:class:`AWRS`, the references in
    :mod:`awrs_adapters.proposals`, or a wrapper around one).

    ``sample(logp, bound, states, rng)``: one :class:`TokenDraw` per row of ``logp``
    (``[n, V]`` normalised log-probabilities, row ``r`` for the particle in constraint
    state ``states[r]``), drawing every random choice from ``rng``. A draw's
    ``log_weight`` is its proposal's log importance weight (``-inf`` with ``token=None``
    when the row has no valid token).
    """

    def sample(
        self, logp: torch.Tensor, bound: BoundConstraint, states: Sequence[Any],
        rng: np.random.Generator,
    ) -> list[TokenDraw]: ...


_DEAD = float("-inf")


class _Remaining:
    """The candidates of one draw not yet rejected, and their mass ``M``.

    Rejections come one token at a time, or as a whole subtree of the byte trie when the
    constraint proves a byte prefix dead (``BoundConstraint.dead_prefix``).
    """

    __slots__ = ("M", "dead", "exact", "lp", "rejected")

    def __init__(self, lp: np.ndarray) -> None:
        self.lp = lp  # [V] float64 log-probabilities, normalised in float64
        self.M = 1.0
        self.exact = 1.0  # the last exactly computed M
        self.dead: np.ndarray | None = None  # [V] bool, allocated on first need
        self.rejected: list[int] = []

    def is_dead(self, y: int) -> bool:
        return self.dead is not None and bool(self.dead[y])

    def _dead(self) -> np.ndarray:
        if self.dead is None:
            self.dead = np.zeros(len(self.lp), dtype=bool)
            self.dead[self.rejected] = True
        return self.dead

    def reject(self, y: int) -> None:
        self.M -= math.exp(float(self.lp[y]))
        self.rejected.append(y)
        if self.dead is not None:
            self.dead[y] = True
        if self.M < _REFRESH * self.exact:
            self.refresh()

    def reject_all(self, ids: np.ndarray) -> None:
        dead = self._dead()
        new = ids[~dead[ids]]
        dead[new] = True
        self.rejected.extend(new.tolist())
        self.M -= float(np.exp(self.lp[new]).sum())
        if self.M < _REFRESH * self.exact:
            self.refresh()

    def restrict(self, keep: np.ndarray) -> float:
        """Reject everything outside ``keep`` ([V] bool); return the exact new M."""
        dead = self._dead()
        dead |= ~keep
        return self.refresh()

    def refresh(self) -> float:
        dead = self._dead()
        self.M = self.exact = float(np.exp(self.lp[~dead]).sum())
        return self.M


#: the adaptive switch's cost model (see :func:`switch_rejections`)
SLOW_SWITCH_REJECTIONS = 8
MASK_TOKENS_PER_CHECK = 256


def switch_rejections(bound: BoundConstraint) -> int:
    """Rejections after which a draw takes the fast mask (``switch="adaptive"``).

    Ski rental on a cost model fixed before the run: switch once the checks spent equal
    the cost of one mask. An automaton alone checks a token in ~3 µs and masks a state
    in 0.04-1.4 ms on SmolLM2's 49,152 tokens (13-590 checks, measured; a cached state's
    mask is free), so a mask is taken as ``V / 256`` checks (192 there); where checks run
    Python (a Predicate beside the automaton) one check costs more than the mask's sweep
    saves per token, and the mask is taken after 8. Counts, not timings: a wall-clock
    rule would make the weights, and so the run, depend on the machine's load.
    """
    if bound.has_slow:
        return SLOW_SWITCH_REJECTIONS
    return max(SLOW_SWITCH_REJECTIONS, bound.vocab.size // MASK_TOKENS_PER_CHECK)


class _SwitchPolicy:
    """When to stop checking candidates and compute the fast mask instead."""

    def __init__(self, switch: str | int) -> None:
        self.switch = switch

    def should_switch(self, rejections: int, bound: BoundConstraint) -> bool:
        s = self.switch
        if s == "never":
            return False
        if s == "always":
            return True
        if isinstance(s, int):
            return rejections >= s
        return rejections >= switch_rejections(bound)


class AWRS:
    """The AWRS token sampler.

    Args:
        estimator: ``"recursive"`` (default), ``"geometric"`` or ``"improper"``.
        max_accepts: accepts the geometric estimator waits for (k >= 2).
        switch: fast-mask switch policy: ``"adaptive"`` (default), ``"never"``,
            ``"always"``, or an int number of rejections.
        greedy: visit tokens in decreasing probability (no noise): greedy constrained
            decoding; only with ``estimator="improper"``.
    """

    def __init__(
        self,
        estimator: Estimator = "recursive",
        *,
        max_accepts: int = 2,
        switch: str | int = "adaptive",
        greedy: bool = False,
    ) -> None:
        if greedy and estimator != "improper":
            raise ConfigError("greedy=True draws no weights; use it with estimator='improper'")
        if estimator not in ("recursive", "geometric", "improper"):
            raise ConfigError(
                f"estimator={estimator!r} is unknown; use 'recursive', 'geometric' or 'improper'"
            )
        if not isinstance(max_accepts, int) or max_accepts < 2:
            raise ConfigError(f"max_accepts={max_accepts!r}; the geometric estimator needs >= 2")
        if not (switch in ("adaptive", "never", "always") or (isinstance(switch, int) and switch >= 0)):
            raise ConfigError(
                f"switch={switch!r}; use 'adaptive', 'never', 'always' or an int >= 0"
            )
        self.estimator = estimator
        self.max_accepts = max_accepts
        self.policy = _SwitchPolicy(switch)
        self.greedy = greedy

    def sample(
        self,
        logp: torch.Tensor,
        bound: BoundConstraint,
        states: Sequence[Any],
        rng: np.random.Generator,
    ) -> list[TokenDraw]:
        """One draw per row of ``logp`` (``[n, V]`` normalised log-probabilities)."""
        orders = gumbel_orders(logp, rng, greedy=self.greedy)
        lp = float64_rows(logp)
        out = []
        for r, order in enumerate(orders):
            if bound.trivial:
                y = order.get(0)
                out.append(TokenDraw(y, 0.0 if y is not None else _DEAD, 0))
            elif self.estimator == "geometric":
                out.append(self._geometric(order, lp[r], bound, states[r], rng))
            else:
                out.append(self._recursive(order, lp[r], bound, states[r]))
        return out

    # -- the fast-mask switch -------------------------------------------------------
    def _mask(
        self, order: LazyOrder, bound: BoundConstraint, state: Any, rest: _Remaining
    ) -> tuple[LazyOrder, float]:
        mask = bound.fast_mask(state)
        assert mask is not None
        mass = rest.restrict(np.asarray(mask, dtype=bool))
        keep = torch.from_numpy(~rest._dead()).to(order.keys.device)
        keys = order.keys.masked_fill(~keep, float("-inf"))
        return LazyOrder(keys), mass

    @staticmethod
    def _reject(rest: _Remaining, bound: BoundConstraint, state: Any, y: int) -> None:
        """Reject ``y`` and, for a slow constraint, the dead subtree it proves."""
        n = bound.dead_prefix(state, y) if bound.has_slow else None
        prefix = bound.vocab.tokens[y][:n] if n else b""
        if prefix:  # EOS, special and empty tokens (b"") name no subtree
            ids = bound.vocab.trie.with_prefix(prefix)
            if len(ids) > 1:
                rest.reject_all(ids)
                if not rest.is_dead(y):  # y is special-cased out of the trie
                    rest.reject(y)
                return
        rest.reject(y)

    # -- estimators ---------------------------------------------------------------
    def _recursive(
        self, order: LazyOrder, lp: np.ndarray, bound: BoundConstraint, state: Any
    ) -> TokenDraw:
        improper = self.estimator == "improper"
        can_mask = bound.has_fast
        rest = _Remaining(lp)
        checks = masks = 0
        i = 0
        masked = False
        while True:
            if (can_mask and not masked and rest.rejected
                    and self.policy.should_switch(len(rest.rejected), bound)):
                order, _ = self._mask(order, bound, state, rest)
                masks += 1
                masked = True
                i = 0
                if rest.M <= 0.0:
                    return TokenDraw(None, _DEAD, checks, masks)
                if not bound.has_slow:  # the mask is exact: the draw and Z are exact
                    y = order.get(0)
                    if y is None:
                        return TokenDraw(None, _DEAD, checks, masks)
                    return TokenDraw(y, 0.0 if improper else math.log(rest.M), checks, masks)
            y = order.get(i)
            if y is None:  # every candidate with p > 0 was rejected: a dead end
                return TokenDraw(None, _DEAD, checks, masks)
            i += 1
            if rest.is_dead(y):  # in a subtree already rejected
                continue
            checks += 1
            if bound.check(state, y):
                if improper:
                    return TokenDraw(y, 0.0, checks, masks)
                y2 = order.get(i)
                while y2 is not None and rest.is_dead(y2):
                    i += 1
                    y2 = order.get(i)
                if y2 is None:
                    return TokenDraw(y, math.log(rest.M), checks, masks)
                checks += 1
                if bound.check(state, y2):
                    return TokenDraw(y, math.log(rest.M), checks, masks)
                return TokenDraw(y, float(lp[y]), checks, masks)  # M·F = p(y)
            self._reject(rest, bound, state, y)
            if rest.M <= 0.0:
                return TokenDraw(None, _DEAD, checks, masks)

    def _geometric(
        self,
        order: LazyOrder,
        lp: np.ndarray,
        bound: BoundConstraint,
        state: Any,
        rng: np.random.Generator,
    ) -> TokenDraw:
        k = self.max_accepts
        rest = _Remaining(lp)  # rest.M: mass not rejected (accepted tokens included)
        MA = 0.0
        trials = accepts = checks = masks = 0
        first: int | None = None
        i = 0
        masked = False
        while accepts < k:
            if (bound.has_fast and not masked and first is None and rest.rejected
                    and self.policy.should_switch(len(rest.rejected), bound)):
                order, _ = self._mask(order, bound, state, rest)
                masks += 1
                masked = True
                i = 0
                # no shortcut to the exact Z here: the trials already counted condition
                # the negative-binomial estimate, so the process continues on the mask
            M = rest.M
            if M <= 0.0:
                return TokenDraw(None, _DEAD, checks, masks)
            if M < 1.0:  # phantom draws landing on already-rejected mass
                trials += int(rng.geometric(min(M, 1.0))) - 1
            trials += 1
            if first is not None and rng.random() * M < MA:
                accepts += 1  # a repeat of an accepted token: valid, no check needed
                continue
            y = order.get(i)
            while y is not None and rest.is_dead(y):
                i += 1
                y = order.get(i)
            if y is None:  # numerically nothing unvisited is left: the draw is from A
                if first is None:
                    return TokenDraw(None, _DEAD, checks, masks)
                rest.M = MA
                accepts += 1
                continue
            i += 1
            if masked and not bound.has_slow:
                ok = True  # the exact mask already admitted it
            else:
                ok = bound.check(state, y)
                checks += 1
            if ok:
                MA += math.exp(float(lp[y]))
                accepts += 1
                if first is None:
                    first = y
            else:
                self._reject(rest, bound, state, y)
        assert first is not None
        return TokenDraw(first, math.log((k - 1) / (trials - 1)), checks, masks)


def float64_rows(logp: torch.Tensor) -> np.ndarray:
    """``[n, V]`` log-probabilities renormalised in float64, as numpy.

    A float32 row's exp-sum differs from 1 by ~1e-7, so ``M = 1 − Σ rejected`` would
    cancel when the valid mass is small; per-token reads in the loop then go through
    numpy (a torch scalar read costs ~µs).
    """
    lp = logp.detach().to("cpu", torch.float64)
    if lp.numel():
        lse = torch.logsumexp(lp, dim=-1, keepdim=True)
        lp = lp - torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    return lp.numpy()
