"""The step loop around SMC: stop sequences, streaming, timeout and retries in one place.

Overview: :func:`run_streaming` drives :class:`~awrs_adapters.smc.SMC` step by step. After
each step it enforces a ``timeout``, calls ``on_step(smc)`` (a progress line, stopping
criteria that end particles with :meth:`SMC.finish <awrs_adapters.smc.SMC.finish>`, a
token streamer), then calls ``on_text`` with each piece of text that every weighted
particle already shares (it can no longer change). Particles end at ``stop`` sequences;
when no particle survives it retries with the next draws of the seed's generator
(``max_retries``). :class:`RunParams` holds and validates a call's settings;
:func:`particle_table` lists a result's particles with normalised weights. The command
line and both framework integrations run through here.

Example::

    from awrs_adapters.examples import ends_with_a
    from awrs_adapters.runner import RunParams, run_streaming
    lm, c, T = ends_with_a()
    res = run_streaming(lm, None, c, RunParams(num_particles=8, max_tokens=T, seed=0),
                        on_text=print)
    print(res.posterior)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .api import make_rng
from .deadline import check_timeout, timeout_error
from .errors import ConfigError, GenerationTimeoutError
from .lm.base import LanguageModel
from .resampling import normalise
from .results import SMCResult
from .smc import SMC, validate_args
from .stops import check_stop
from .vocab import decode_prefix

__all__ = ["RunParams", "cut_at_stop", "particle_table", "run_streaming"]


@dataclass(frozen=True)
class RunParams:
    """Everything a run takes besides the model, prompt and constraint; validated here.

    ``seed`` is an int, None (fresh randomness) or a ``numpy.random.Generator`` (used as
    is, so several runs can share one stream).
    """

    num_particles: int = 8
    max_tokens: int = 256
    method: str = "awrs-smc"
    ess_threshold: float | None = None
    resampling: str = "stratified"
    temperature: float = 1.0
    seed: int | np.random.Generator | None = None
    timeout: float | None = None
    max_retries: int = 0
    twist: str = "end"

    def __post_init__(self) -> None:
        validate_args(self.num_particles, self.max_tokens, self.method, self.ess_threshold,
                      self.resampling, self.temperature, self.twist)
        if self.seed is not None:
            make_rng(self.seed)
        check_timeout(self.timeout)
        r = self.max_retries
        if isinstance(r, bool) or not isinstance(r, int | np.integer) or r < 0:
            raise ConfigError(f"max_retries={r!r}; pass an int >= 0 (0: no retry)")


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """``text`` up to (not including) the first occurrence of any stop sequence."""
    if not stop:
        return text
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def run_streaming(
    lm: LanguageModel,
    prompt: Any,
    constraint: Any,
    params: RunParams,
    *,
    stop: Sequence[str] | None = None,
    on_text: Callable[[str], None] | None = None,
    on_step: Callable[[SMC], None] | None = None,
    share_forward: bool = True,
) -> SMCResult:
    """Run SMC; stream committed text through ``on_text``; return the result.

    ``stop`` sequences end an output before their first occurrence; the text before it
    must pass the constraint (see :mod:`awrs_adapters.stops`).

    ``on_step(smc)`` is called after every step (after the timeout check, before
    ``on_text``). It may read the engine's public state and end live particles with
    ``smc.finish``; the committed text streamed next takes that into account.

    The concatenation of everything passed to ``on_text`` equals ``result.text``.

    ``share_forward`` (default): on a ``TransformersLM``, calls running at the same time
    in other threads (LangChain ``abatch``, concurrent ``ainvoke`` s, a server) share each
    step's forward (:func:`~awrs_adapters.lm.shared.shared_host`); a call's result does
    not depend on the others (up to float round-off in the logits).
    """
    rng = make_rng(params.seed)
    t_start = time.perf_counter()
    stop = list(check_stop(stop))
    hold = max((len(s) for s in stop), default=1) - 1  # a stop may be half-generated
    emitted = ""
    host: Any = lm
    if share_forward:
        from .lm.transformers import TransformersLM

        if type(lm) is TransformersLM:
            from .lm.shared import shared_host

            host = shared_host(lm)
    for _attempt in range(params.max_retries + 1):
        smc = SMC(
            host, prompt, constraint,
            num_particles=params.num_particles, max_tokens=params.max_tokens,
            method=params.method, ess_threshold=params.ess_threshold,
            resampling=params.resampling, temperature=params.temperature, rng=rng,
            stop=stop, twist=params.twist,
            deadline=None if params.timeout is None else t_start + params.timeout,
        )
        try:
            emitted = _steps(smc, params, t_start, stop, hold, emitted, on_step, on_text)
        except BaseException:
            smc.batch.select([])  # its rows leave a batch shared with other calls
            raise
        res = smc.result()  # stopped particles already hold the text before the stop
        if res.ok or emitted:  # text already streamed cannot be taken back: no retry
            break
    if on_text is not None and res.ok:
        final = res.text
        if final.startswith(emitted) and len(final) > len(emitted):
            on_text(final[len(emitted):])
    return res


def _steps(smc: SMC, params: RunParams, t_start: float, stop: list[str], hold: int,
           emitted: str, on_step: Callable[[SMC], None] | None,
           on_text: Callable[[str], None] | None) -> str:
    """Run ``smc`` to the end with the checks and callbacks; return the text emitted."""
    steps = iter(smc)
    while True:
        try:
            next(steps)
        except StopIteration:
            return emitted
        except GenerationTimeoutError as e:  # inside a draw: say which limit it was
            raise timeout_error(params.timeout, e) from None
        if params.timeout is not None and time.perf_counter() - t_start > params.timeout:
            raise GenerationTimeoutError(
                f"generation passed timeout={params.timeout} s after {smc.t} tokens with "
                f"{smc.N} particles; raise timeout, or lower num_particles / max_tokens"
            )
        if on_step is not None:
            on_step(smc)
        if on_text is not None:
            committed = cut_at_stop(decode_prefix(smc.committed_prefix()), stop)
            if stop and hold:
                committed = committed[: max(len(committed) - hold, 0)]
            if len(committed) > len(emitted) and committed.startswith(emitted):
                on_text(committed[len(emitted):])
                emitted = committed


def particle_table(res: SMCResult) -> list[dict[str, Any]]:
    """Particles as ``{"text", "weight", "log_weight", "finished"}``, weights normalised."""
    lw = np.array([p.log_weight for p in res.particles])
    w = normalise(lw) if np.isfinite(lw).any() else np.zeros_like(lw)
    return [
        {"text": p.text, "weight": float(wi), "log_weight": float(p.log_weight) if math.isfinite(p.log_weight) else None,
         "finished": p.finished}
        for p, wi in zip(res.particles, w)
    ]
