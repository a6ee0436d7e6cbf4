"""What a run returns: particles, the posterior over strings, log_ml and statistics.

Overview: :class:`SMCResult` holds the final weighted particles; ``posterior`` merges
duplicates of each complete string and normalises (sums to 1); ``text`` is the most
probable complete string and raises :class:`~awrs_adapters.errors.NoValidSampleError`
(with a hint) when nothing survived.

Example::

    >>> import math
    >>> from awrs_adapters import generate
    >>> from awrs_adapters.lm import FunctionLM
    >>> lm = FunctionLM([b"a", b"b", b""], 2, lambda p: [0.0, 0.0, 0.0] if len(p) < 2 else [-30, -30, 0])
    >>> r = generate(lm, None, lambda s: s.endswith("a"), num_particles=16, seed=0)
    >>> print(r.mode, r.posterior, r.log_ml, r.stats.tokens)
    a {'a': 0.702..., 'ba': 0.170..., 'aa': 0.127..., 'aba': 1.194...e-14, 'bba': 1.194...e-14, 'bbba': 5.216...e-27, 'abba': 2.235...e-27, 'abbba': 1.255...e-39, 'bbbba': 4.184...e-40, 'abbbbbba': 8.228...e-78} -1.119... 63
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import NoValidSampleError
from .resampling import normalise

__all__ = ["Particle", "SMCResult", "Stats"]


@dataclass(frozen=True)
class Particle:
    """One final particle: decoded ``text``, ``token_ids`` (EOS excluded), log weight."""

    text: str
    token_ids: tuple[int, ...]
    log_weight: float
    finished: bool
    truncated: bool = False  #: forced to end at max_tokens
    stopped: bool = False  #: ended by a stop sequence / stopping criterion (no EOS drawn)


@dataclass
class Stats:
    """Counters of a run. ``tokens`` counts draws: one per live particle per step.

    ``seconds`` is the decoding time (after set-up); ``setup_seconds`` the time to bind
    the constraint (compile its automaton) and prefill the prompt.
    """

    lm_calls: int = 0
    tokens: int = 0
    constraint_checks: int = 0
    masks: int = 0
    resamples: int = 0
    steps: int = 0
    seconds: float = 0.0
    lm_seconds: float = 0.0  #: time inside the language model (forward, cache moves)
    setup_seconds: float = 0.0  #: compiling the constraint and prefilling the prompt

    @property
    def checks_per_token(self) -> float:
        """Mean constraint checks per drawn token."""
        return self.constraint_checks / max(self.tokens, 1)

    @property
    def sampler_seconds(self) -> float:
        """Time outside the language model: proposals, checks, weights, resampling."""
        return self.seconds - self.lm_seconds

    @property
    def seconds_per_token(self) -> float:
        """Wall time per drawn token (seconds)."""
        return self.seconds / max(self.tokens, 1)


@dataclass
class SMCResult:
    """The weighted particle population at the end of a run.

    Attributes:
        particles: final particles (finished, or dead with weight ``-inf``).
        posterior: complete string -> probability (duplicates merged, sums to 1; empty
            when ``ok`` is False).
        log_ml: log of the unbiased estimate of the normaliser of the target
            (``log mean exp`` of the final weights); None for ``lcd`` (no weights).
        ess_history: ESS after each step's reweighting (before resampling).
        resampled: per step, whether the population was resampled.
        ancestors: per resampling, the ancestor index of each particle.
        ok: False when no particle produced an accepted complete string.
        hint: what to try when ``ok`` is False.
    """

    particles: list[Particle]
    log_ml: float | None
    ess_history: list[float]
    resampled: list[bool]
    stats: Stats
    method: str
    ancestors: list[np.ndarray] = field(default_factory=list)
    hint: str = ""
    ess_threshold: float = 0.5

    @property
    def ok(self) -> bool:
        return bool(self.posterior)

    @property
    def posterior(self) -> dict[str, float]:
        lw: dict[str, list[float]] = {}
        for p in self.particles:
            if p.finished and p.log_weight > -math.inf:
                lw.setdefault(p.text, []).append(p.log_weight)
        if not lw:
            return {}
        texts = list(lw)
        W = normalise(np.concatenate([lw[s] for s in texts]))
        ends = np.cumsum([len(lw[s]) for s in texts])
        mass = {s: float(W[e - len(lw[s]):e].sum()) for s, e in zip(texts, ends, strict=True)}
        return dict(sorted(mass.items(), key=lambda kv: -kv[1]))

    @property
    def mode(self) -> str:
        """The most probable complete string (the posterior's mode, not a sample: see
        :meth:`sample`); raises ``NoValidSampleError`` if none."""
        post = self.posterior
        if not post:
            raise NoValidSampleError(self.hint or "no particle produced a valid string")
        return next(iter(post))

    @property
    def text(self) -> str:
        """Deprecated name of :attr:`mode` (it is the mode, not a sample)."""
        warnings.warn("SMCResult.text was renamed to SMCResult.mode (the posterior's most "
                      "probable string; SMCResult.sample() draws one)", DeprecationWarning,
                      stacklevel=2)
        return self.mode

    @property
    def ess(self) -> float:
        """The last ESS recorded (0 when no step ran)."""
        return self.ess_history[-1] if self.ess_history else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON values: the one serialisation the command line
        (``--json``), the LangChain models' metadata and :func:`~awrs_adapters.streaming.
        particle_table` use.

        Keys: ``ok``, ``mode`` (the posterior's most probable string, None when nothing
        survived), ``text`` (the same; hosts that answer with a draw put it here),
        ``posterior``, ``log_ml``, ``method``, ``ess_history``, ``particles`` (each
        ``text``, ``weight`` normalised over the finite weights, ``log_weight`` (None
        for a dead particle), ``finished``, ``truncated``, ``stopped``, ``tokens``),
        ``stats`` (``tokens``, ``lm_calls``, ``constraint_checks``, ``resamples``,
        ``seconds``, ``seconds_per_token``) and ``hint`` (None when empty).
        """
        lw = np.array([p.log_weight for p in self.particles], dtype=np.float64)
        w = np.zeros_like(lw)
        fin = np.isfinite(lw)
        if fin.any():
            w[fin] = normalise(lw[fin])
        s = self.stats
        return {
            "ok": self.ok,
            "mode": self.mode if self.ok else None,
            "text": self.mode if self.ok else None,
            "posterior": self.posterior,
            "log_ml": self.log_ml,
            "method": self.method,
            "ess_history": list(self.ess_history),
            "particles": [
                {"text": p.text, "weight": float(wi),
                 "log_weight": float(p.log_weight) if math.isfinite(p.log_weight) else None,
                 "finished": p.finished, "truncated": p.truncated, "stopped": p.stopped,
                 "tokens": len(p.token_ids)}
                for p, wi in zip(self.particles, w, strict=True)],
            "stats": {"tokens": s.tokens, "lm_calls": s.lm_calls,
                      "constraint_checks": s.constraint_checks, "resamples": s.resamples,
                      "seconds": s.seconds, "seconds_per_token": s.seconds_per_token},
            "hint": self.hint or None,
        }

    def sample(self, rng: np.random.Generator | int | None = None) -> str:
        """Draw one complete string from the posterior (``rng``: a generator, a seed, or
        None for fresh randomness)."""
        from .api import make_rng

        rng = make_rng(rng)
        post = self.posterior
        if not post:
            raise NoValidSampleError(self.hint or "no particle produced a valid string")
        keys = list(post)
        return keys[int(rng.choice(len(keys), p=np.fromiter(post.values(), float)))]

    def summary(self, top: int = 10) -> str:
        """A readable table of the run and its most probable strings."""
        from .diagnostics import summary

        return summary(self, top)

    def plot(self, path: str | None = None) -> object:
        """ESS per step with resampling marks, final weights, ancestry (matplotlib).

        Saves to ``path`` (returns it) or returns the figure.
        """
        from .diagnostics import plot

        return plot(self, path)

    def map_text(self, fn: Callable[[str], str]) -> SMCResult:
        """A copy whose particle texts are ``fn(text)`` (e.g. cut at a stop sequence)."""
        return replace(self, particles=[replace(p, text=fn(p.text)) for p in self.particles])

    def __repr__(self) -> str:
        top = list(self.posterior.items())[:3]
        return (
            f"SMCResult(method={self.method!r}, ok={self.ok}, top={top}, log_ml={self.log_ml}, "
            f"particles={len(self.particles)}, tokens={self.stats.tokens})"
        )
