"""How ``model.generate``'s sampling settings become the prior SMC samples.

Overview: :func:`sampling_warpers` reads a call's ``do_sample``, ``temperature``,
``top_k``, ``top_p``, ``min_p`` (and a generation config's ``typical_p``,
``epsilon_cutoff``, ``eta_cutoff``, ``top_h``) into transformers' own warpers, applied to
the model's rows before normalisation: the posterior is then the *warped* model
conditioned on the constraint, as plain sampling would draw from the warped model.
``temperature=0`` or ``do_sample=False`` is greedy decoding. :func:`without_warpers`
removes the warpers generate built itself (the strategy builds its own, validated).

Example::

    >>> from awrs_adapters.integrations.transformers_sampling import sampling_warpers
    >>> greedy, warpers, cut = sampling_warpers(None, True, 0.7, 50, None, None)
    >>> print(greedy, [type(w).__name__ for w in warpers], cut)
    False ['TemperatureLogitsWarper', 'TopKLogitsWarper'] ['top_k=50']
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError

__all__ = ["sampling_warpers", "without_warpers"]


def without_warpers(processors: Any, explicit: Any = None) -> list[Any]:
    """generate's processors less the warpers it built from a config's ``do_sample=True``
    (matched by type: every warper class transformers defines, subclasses included);
    those the caller passed in ``logits_processor=`` itself (``explicit``) are kept."""
    from transformers.generation import logits_process as lp

    warpers = tuple(getattr(lp, n) for n in dir(lp)
                    if n.endswith("LogitsWarper") and isinstance(getattr(lp, n), type))
    mine = {id(p) for p in (explicit or [])}
    return [p for p in (processors or []) if id(p) in mine or not isinstance(p, warpers)]


def sampling_warpers(cfg: Any, do_sample: bool | None, temperature: float | None, top_k: int | None,
              top_p: float | None, min_p: float | None) -> tuple[bool, list[Any], list[str]]:
    """(greedy, warpers for the prior, the truncation arguments in force) from the call."""
    from transformers.generation.logits_process import (
        EpsilonLogitsWarper,
        EtaLogitsWarper,
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopHLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
        TypicalLogitsWarper,
    )

    if do_sample is not None and not isinstance(do_sample, bool):
        raise ConfigError(f"do_sample={do_sample!r}; pass True or False")
    temp = temperature if temperature is not None else getattr(cfg, "temperature", None)
    temp = 1.0 if temp is None else temp
    if isinstance(temp, bool) or not isinstance(temp, int | float) or not (temp >= 0 and math.isfinite(temp)):
        raise ConfigError(f"temperature={temp!r}; pass a finite number >= 0 (0 decodes greedily)")
    if do_sample is False or temp == 0:
        return True, [], []
    warpers: list[Any] = []
    cut: list[str] = []
    if temp != 1.0:
        warpers.append(TemperatureLogitsWarper(float(temp)))
    if top_k is not None and top_k != 0:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ConfigError(f"top_k={top_k!r}; pass an int >= 0 (0 or None: no truncation)")
        warpers.append(TopKLogitsWarper(top_k=top_k))
        cut.append(f"top_k={top_k}")
    for name, v, lo_open in (("top_p", top_p, True), ("min_p", min_p, False)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                              or not (0 < v <= 1 if lo_open else 0 <= v <= 1)):
            raise ConfigError(f"{name}={v!r}; pass a number in {'(0, 1]' if lo_open else '[0, 1]'}"
                              " (None: no truncation)")
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=float(top_p)))
        cut.append(f"top_p={top_p}")
    if min_p is not None and min_p > 0:
        warpers.append(MinPLogitsWarper(min_p=float(min_p)))
        cut.append(f"min_p={min_p}")
    # these four are never filled in by defaults: set on a config, they were asked for
    typical, eps, eta, top_h = (getattr(cfg, k, None)
                                for k in ("typical_p", "epsilon_cutoff", "eta_cutoff", "top_h"))
    if top_h is not None and 0.0 < top_h < 1.0:  # generate builds it; it was dropped before
        warpers.append(TopHLogitsWarper(top_h=float(top_h)))
        cut.append(f"top_h={top_h}")
    if typical is not None and typical < 1.0:
        warpers.append(TypicalLogitsWarper(mass=typical))
        cut.append(f"typical_p={typical}")
    if eps is not None and 0.0 < eps < 1.0:
        warpers.append(EpsilonLogitsWarper(epsilon=eps))
        cut.append(f"epsilon_cutoff={eps}")
    if eta is not None and 0.0 < eta < 1.0:
        warpers.append(EtaLogitsWarper(epsilon=eta))
        cut.append(f"eta_cutoff={eta}")
    return False, warpers, cut
