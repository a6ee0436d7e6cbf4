"""Resampling schemes and log-weight arithmetic for SMC.

Overview: schemes are looked up by name (``stratified`` default, ``systematic``,
``multinomial``, ``residual``); each maps normalised weights ``W`` (shape ``[N]``) and a
``numpy.random.Generator`` to ``N`` ancestor indices. :func:`ess` and
:func:`log_mean_exp` work on log weights, where ``-inf`` marks a dead particle.
:func:`resolve_ess_threshold` says when SMC resamples (τ = 0.5 by default, at every N).

Example::

    import numpy as np
    from awrs_adapters import resampling as rs
    lw = np.log([0.1, 0.2, 0.7])
    idx = rs.resample("stratified", rs.normalise(lw), np.random.default_rng(0))
    print(idx, rs.ess(lw))
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import ConfigError

__all__ = [
    "DEFAULT_ESS_THRESHOLD", "SCHEMES", "ess", "log_mean_exp", "normalise", "resample",
    "resolve_ess_threshold",
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
