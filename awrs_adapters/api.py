"""The public entry point: ``generate(lm, prompt, constraint) -> SMCResult``.

Overview: one call runs SMC with the chosen method and returns the weighted particles,
the posterior over complete strings, ``log_ml`` and statistics.

Example::

    import math
    from awrs_adapters import generate
    from awrs_adapters.lm import FunctionLM
    lm = FunctionLM([b"a", b"b", b""], 2,
                    lambda p: [math.log(.45), math.log(.45), math.log(.1)])
    r = generate(lm, None, lambda s: s.endswith("a"), num_particles=32, max_tokens=4, seed=0)
    print(r.posterior)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .deadline import check_timeout, timeout_error
from .errors import ConfigError, GenerationTimeoutError
from .lm.base import LanguageModel
from .results import SMCResult
from .smc import SMC

__all__ = ["generate", "make_rng"]


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed, a Generator (used as is) or None (fresh)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    raise ConfigError(f"seed={seed!r}; pass an int >= 0, a numpy.random.Generator or None")


def generate(
    lm: LanguageModel,
    prompt: Any,
    constraint: Any = None,
    *,
    num_particles: int = 8,
    max_tokens: int = 128,
    method: str = "awrs-smc",
    ess_threshold: float | None = None,
    resampling: str = "stratified",
    temperature: float = 1.0,
    seed: int | np.random.Generator | None = None,
    estimator: str = "recursive",
    stop: Sequence[str] | None = None,
    twist: str = "end",
    resample_finished: bool = False,
    timeout: float | None = None,
) -> SMCResult:
    """Sample from ``P(x) ∝ Q(x | prompt)·C(x)`` over strings of at most ``max_tokens`` tokens.

    Args:
        lm: a :class:`~awrs_adapters.lm.LanguageModel` (``FunctionLM``, ``TransformersLM``)
            or an Outlines transformers model (``outlines.from_transformers(...)``).
        prompt: a string, or a list of chat messages ``{"role", "content"}`` for chat models.
        constraint: a constraint (``Regex``, ``JSONSchema``, ``Predicate``, ``Potential``,
            ``a & b``), an Outlines type or a Python type Outlines reads (``int``, an
            ``Enum``, ``Literal[...]``...), a pydantic class, a function ``text -> bool``,
            or None.
        num_particles: N, the particle count.
        max_tokens: generated tokens per particle before the end is forced.
        method: ``"awrs-smc"`` (default), ``"lcd"``, ``"sample-verify"`` or ``"mask-smc"``.
        ess_threshold: resample when ESS < ess_threshold·N; None (default): 0.5 at every N;
            0 never resamples.
        resampling: ``"stratified"`` (default), ``"systematic"``, ``"multinomial"``, ``"residual"``.
        temperature: >= 0; divides the logits. 0 decodes greedily: the most probable
            valid token at each step (deterministic, biased like masking, ``log_ml`` None).
        seed: int, ``numpy.random.Generator`` or None; the same seed reproduces a run.
        estimator: AWRS weight estimator: ``"recursive"`` (default) or ``"geometric"``.
        stop: stop sequences. An output ends where the first one appears (it is not
            included); the text before it must pass the constraint's complete check, and
            the sampler proposes stops only where it does (see :mod:`awrs_adapters.stops`).
        twist: ``"end"`` (default): resampling anticipates whether a particle can end
            validly before ``max_tokens`` (a twist that leaves the target and ``log_ml``
            unchanged; see :mod:`awrs_adapters.smc`); ``"none"``: it does not.
        resample_finished: False (default): finished particles keep their place and
            weight when the others are resampled (they cannot change, so resampling them
            only adds noise, and could drop a valid output for a lineage that never
            ends); True: the whole population is resampled, finished particles included.
        timeout: seconds the whole generation may take; past it a
            :class:`~awrs_adapters.errors.GenerationTimeoutError` is raised (read before
            every constraint check inside token draws and before every step, so it
            stops within one check or one model step). None (default): no limit.

    Returns:
        An :class:`~awrs_adapters.results.SMCResult`; ``result.ok`` is False (and
        ``result.text`` raises ``NoValidSampleError`` with a hint) when nothing survived.
    """
    # SMC validates every value it shares with this signature (one place, one message);
    # checked here: what SMC does not check, or checks only for some methods
    if estimator not in ("recursive", "geometric"):
        raise ConfigError(f"estimator={estimator!r}; use 'recursive' or 'geometric'")
    from .lm import as_language_model

    lm = as_language_model(lm)
    if not isinstance(lm, LanguageModel):
        raise ConfigError(
            f"lm={type(lm).__name__} is not a LanguageModel; wrap a Hugging Face model with "
            "awrs_adapters.lm.TransformersLM(model, tokenizer) or load one with "
            "awrs_adapters.models.load()"
        )
    secs = check_timeout(timeout)
    smc = SMC(
        lm, prompt, constraint,
        num_particles=num_particles, max_tokens=max_tokens, method=method,
        ess_threshold=ess_threshold, resampling=resampling, temperature=temperature,
        rng=make_rng(seed), estimator=estimator, stop=stop, twist=twist,
        resample_finished=resample_finished,
        deadline=None if secs is None else time.perf_counter() + secs,
    )
    try:
        return smc.run()
    except GenerationTimeoutError as e:
        raise timeout_error(secs, e) from None
