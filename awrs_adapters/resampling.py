"""Resampling schemes and log-weight arithmetic for SMC.

Overview: schemes are looked up by name (``stratified`` default, ``systematic``,
``multinomial``, ``residual``); each maps normalised weights ``W`` (shape ``[N]``) and a
``numpy.random.Generator`` to ``N`` ancestor indices. :func:`ess` and
:func:`log_mean_exp` work on log weights, where ``-inf`` marks a dead particle.
:func:`resolve_ess_threshold` says when SMC resamples (τ = 0.5 by default, at every N).

:func:`refill` resamples a subset of the slots: SMC's finished particles keep their
place (``resample_finished=False``, the default). A
finished particle cannot change, so resampling it only adds noise: its copies waste
slots, and dropping it (likely when its end weight p(EOS) was small) loses a valid
output for lineages that may never end, the other face of resampling's blindness to the
end. Each finished particle keeps its slot and weight; the other slots are refilled
from the live particles in proportion to their weights and share their total weight
equally, so the total weight (and ``log_ml``) and the target are unchanged (resampling
within a subset of the particles is still unbiased). Measured: on the pattern domain it
removed six of the ten generations where every awrs-smc particle failed and LCD
succeeded (benchmarks/results/patterns_losses_keepfinished.md; 137 patterns x 3 seeds:
benchmarks/results/patterns_dev_keepfinished_paired.md); on exact toy tasks its TV is
never above the whole-population scheme's (benchmarks/results/end_twist.md).

Example::

    >>> import numpy as np
    >>> from awrs_adapters import resampling as rs
    >>> lw = np.log([0.1, 0.2, 0.7])
    >>> idx = rs.resample("stratified", rs.normalise(lw), np.random.default_rng(0))
    >>> print(idx, rs.ess(lw))
    [1 2 2] 1.851...
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import ConfigError

__all__ = [
    "DEFAULT_ESS_THRESHOLD", "SCHEMES", "ess", "log_mean_exp", "normalise", "resample",
    "refill", "resolve_ess_threshold",
]

Scheme = Callable[[np.ndarray, np.random.Generator], np.ndarray]
SCHEMES: dict[str, Scheme] = {}

#: τ for ``ess_threshold=None``: resample when ESS < N/2, at every N
DEFAULT_ESS_THRESHOLD = 0.5


def resolve_ess_threshold(ess_threshold: float | None, num_particles: int) -> float:
    """τ (SMC resamples when ESS < τ·N): ``ess_threshold`` as given, 0.5 for None.

    The same at every N, as in the AWRS paper (5 particles, τ = 0.5): an algorithm that
    changed with the particle count would not be the one users asked for. What made
    resampling lose at small N (copying lineages that cannot end before ``max_tokens``)
    is answered by the end-aware twist (:mod:`awrs_adapters.smc`), not by switching
    resampling off. ``num_particles`` is kept for callers that pass it.
    """
    del num_particles
    if ess_threshold is None:
        return DEFAULT_ESS_THRESHOLD
    return float(ess_threshold)


def _scheme(fn: Scheme) -> Scheme:
    SCHEMES[fn.__name__] = fn
    return fn


def log_mean_exp(lw: np.ndarray) -> float:
    """``log(mean(exp(lw)))``; ``-inf`` when every weight is ``-inf``."""
    lw = np.asarray(lw, dtype=np.float64)
    m = np.max(lw) if lw.size else -np.inf
    if not np.isfinite(m):
        return float(m) if m == np.inf else -np.inf
    return float(m + np.log(np.mean(np.exp(lw - m))))


def normalise(lw: np.ndarray) -> np.ndarray:
    """Normalised weights ``W`` (sum 1) from log weights. Requires one finite weight."""
    lw = np.asarray(lw, dtype=np.float64)
    m = np.max(lw)
    w = np.exp(lw - m)
    out: np.ndarray = w / w.sum()
    return out


def ess(lw: np.ndarray) -> float:
    """Effective sample size ``(Σe^w)² / Σe^{2w}``; 0 when every weight is ``-inf``."""
    lw = np.asarray(lw, dtype=np.float64)
    if lw.size == 0 or not np.isfinite(np.max(lw)):
        return 0.0
    W = normalise(lw)
    return float(1.0 / np.sum(W * W))


def _inverse_cdf(su: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Ancestors for sorted uniforms ``su`` in [0, 1)."""
    cdf = np.cumsum(W)
    cdf[-1] = 1.0  # guard against round-off leaving the last bin short
    return np.searchsorted(cdf, su, side="right")


@_scheme
def multinomial(W: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Independent draws from W."""
    N = len(W)
    return _inverse_cdf(np.sort(rng.random(N)), W)


@_scheme
def stratified(W: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniform in each stratum [i/N, (i+1)/N)."""
    N = len(W)
    return _inverse_cdf((np.arange(N) + rng.random(N)) / N, W)


@_scheme
def systematic(W: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One shared uniform offset for all strata."""
    N = len(W)
    return _inverse_cdf((np.arange(N) + rng.random()) / N, W)


@_scheme
def residual(W: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """floor(N·W) copies each, the rest multinomially on the residual weights."""
    N = len(W)
    counts = np.floor(N * W).astype(np.int64)
    idx = np.repeat(np.arange(N), counts)
    rest = N - int(counts.sum())
    if rest > 0:
        r = N * W - counts
        r = r / r.sum()
        idx = np.concatenate([idx, _inverse_cdf(np.sort(rng.random(rest)), r)])
    return np.sort(idx)


def check_scheme(name: str) -> Scheme:
    """The scheme called ``name``, or ``ConfigError`` listing the valid names."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"resampling={name!r} is not a valid resampling scheme; use one of {sorted(SCHEMES)}"
        ) from None


def resample(name: str, W: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``len(W)`` ancestor indices drawn by scheme ``name``."""
    return check_scheme(name)(np.asarray(W, dtype=np.float64), rng)


def refill(name: str, logw: np.ndarray, pool: np.ndarray, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """Resample the slots ``pool`` among themselves; the other slots keep their particle.

    ``logw``: ``[N]`` log weights; ``pool``: the indices to refill (SMC: every slot but
    the finished particles'). Returns ``(ancestors [N], new log weights [N])``: each slot
    of ``pool`` takes an ancestor from ``pool`` drawn by scheme ``name`` in proportion to
    the weights, and the log-mean-exp of the pool's old weights (the pool's total weight
    is unchanged, so is the estimate of the normaliser); the other slots are unchanged.
    """
    pool = np.asarray(pool, dtype=np.int64)
    a = np.arange(len(logw))
    a[pool] = pool[resample(name, normalise(logw[pool]), rng)]
    new = np.array(logw, dtype=np.float64, copy=True)
    new[pool] = log_mean_exp(logw[pool])
    return a, new
