"""The arguments of a run, checked before any work: methods, temperature, particles.

Overview: :func:`validate_args` raises :class:`~awrs_adapters.errors.ConfigError` for a
setting of :class:`~awrs_adapters.smc.SMC` (and so of ``generate``, the LangChain models,
the command line) that cannot work, naming the argument, its value and what to pass.
:data:`METHODS`, :data:`TWISTS` and :data:`MIN_TEMPERATURE` are the accepted values.

Example::

    >>> from awrs_adapters.arguments import validate_args
    >>> from awrs_adapters.errors import ConfigError
    >>> validate_args(8, 64, "awrs-smc", None, "stratified", 1.0)   # fine: returns None
    >>> try:
    ...     validate_args(0, 64, "awrs-smc", None, "stratified", 1.0)
    ... except ConfigError as e:
    ...     print(e)   # num_particles=0; pass an int >= 1 (e.g. num_particles=8)
    num_particles=0; pass an int >= 1 (e.g. num_particles=8)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import resampling as rs
from .errors import ConfigError

__all__ = ["METHODS", "MIN_TEMPERATURE", "TWISTS", "validate_args"]

#: the samplers ``method=`` names (see :class:`~awrs_adapters.smc.SMC`)
METHODS = ("awrs-smc", "lcd", "sample-verify", "mask-smc")
#: the smallest positive temperature: float32 logits divided by less overflow (3.4e38)
#: once a logit is ~3e8 in size, and the row turns to NaN; anything this cold samples
#: like greedy decoding (temperature=0) anyway
MIN_TEMPERATURE = 1e-30
#: ``twist=`` values: ``"end"`` (the end-aware twist, see the module doc) or ``"none"``
TWISTS = ("end", "none")


def validate_args(
    num_particles: Any, max_tokens: Any, method: Any, ess_threshold: Any, resampling: Any,
    temperature: Any, twist: Any = "end",
) -> None:
    """Raise ``ConfigError`` for any argument that cannot work, before any work."""
    if twist not in TWISTS:
        raise ConfigError(
            f"twist={twist!r} is unknown; use 'end' (the default: resampling anticipates "
            "whether a particle can end before max_tokens) or 'none'"
        )
    if isinstance(num_particles, bool) or not isinstance(num_particles, int | np.integer) or num_particles < 1:
        raise ConfigError(f"num_particles={num_particles!r}; pass an int >= 1 (e.g. num_particles=8)")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int | np.integer) or max_tokens < 1:
        raise ConfigError(f"max_tokens={max_tokens!r}; pass an int >= 1 (e.g. max_tokens=128)")
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is unknown; use one of {list(METHODS)}")
    try:
        tau = 0.0 if ess_threshold is None else float(ess_threshold)
    except (TypeError, ValueError):
        tau = math.nan
    if isinstance(ess_threshold, bool) or not 0.0 <= tau <= 1.0:
        raise ConfigError(
            f"ess_threshold={ess_threshold!r}; pass a number in [0, 1] (resample when ESS < "
            "ess_threshold·N; 0 never resamples) or None (the default: 0.5)"
        )
    rs.check_scheme(resampling)
    try:
        temp = float(temperature)
    except (TypeError, ValueError):
        temp = math.nan
    if not (temp >= 0.0 and math.isfinite(temp)) or 0.0 < temp < MIN_TEMPERATURE:
        raise ConfigError(
            f"temperature={temperature!r}; pass 0 (greedy decoding) or a finite number >= "
            f"{MIN_TEMPERATURE} (1.0 samples the model as is; below that the scaled logits "
            "overflow float32: use 0 for greedy decoding)"
        )
