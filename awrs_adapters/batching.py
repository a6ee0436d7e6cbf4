"""Many prompts, one forward per step: ``generate_batch(lm, prompts, constraint)``.

Overview: every prompt gets its own :class:`~awrs_adapters.smc.SMC` (its own constraint,
``max_tokens``, seed and stops); the engines step in lockstep, every engine's draws
first (:meth:`SMC.advance`), then one batched forward of all their live rows (a
:class:`~awrs_adapters.lm.shared.SharedForward` for a ``TransformersLM``: prompts of
different lengths share one padded KV cache), then every engine's twist and resampling
(:meth:`SMC.settle`). Finished and dead rows leave the batch as they go. A prompt's result
does not depend on which prompts it was batched with (same seed, same result, up to
float round-off in the logits). A prompt that fails (a prompt too long, a bad
constraint, a validator that raises, its ``timeout``) fails alone: the others finish.
Models without a shared forward (``FunctionLM``, ``VLLMLM``) run one batch per prompt,
still in lockstep. The batch is a private :class:`~awrs_adapters.scheduler.Scheduler`
run in the caller's thread (concurrent calls from several threads go through
:func:`~awrs_adapters.scheduler.scheduler_for` instead).

Example::

    >>> from awrs_adapters import generate_batch, models
    >>> from awrs_adapters.batching import Request
    >>> from awrs_adapters.constraints import Regex
    >>> lm = models.load()
    >>> results = generate_batch(
    ...     lm, ["Name a fruit.", Request("Name a colour.", constraint=Regex(r"[a-z]+"), seed=7)],
    ...     num_particles=4, max_tokens=8, seed=0)
    >>> print([r.posterior for r in results])
    [{...: ...}, {...: ...}]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .api import DEFAULT_MAX_TOKENS, make_rng
from .deadline import check_timeout
from .errors import AWRSError, ConfigError
from .lm.base import LanguageModel
from .results import SMCResult
from .scheduler import Call, Scheduler
from .streaming import RunParams

__all__ = ["BatchError", "Request", "generate_batch"]

_SHARED: Any = object()  # a Request field left to the batch's argument


@dataclass(frozen=True)
class Request:
    """One prompt of a batch, with the arguments it does not share with the batch.

    A field left out takes the batch's value (``constraint=None`` means no constraint).
    ``seed`` pins this prompt's random stream: its result is then the one
    ``generate(lm, prompt, ..., seed=seed)`` gives (up to float round-off).
    """

    prompt: Any
    constraint: Any = _SHARED
    max_tokens: Any = _SHARED
    seed: Any = _SHARED
    stop: Any = _SHARED


class BatchError(AWRSError, RuntimeError):
    """Some prompts of a batch failed; ``results`` holds every prompt's result or error."""

    def __init__(self, message: str, results: list[SMCResult | BaseException]) -> None:
        super().__init__(message)
        self.results = results


def _seed_for(seed: Any, i: int) -> Any:
    """Prompt ``i``'s stream from the batch's ``seed`` (independent of the other prompts)."""
    if isinstance(seed, np.random.Generator):
        raise ConfigError(
            "seed=<numpy.random.Generator>; a batch needs one stream per prompt: pass an "
            "int (prompt i then draws from numpy.random.default_rng([seed, i])) or give "
            "each Request its own seed")
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed={seed!r}; pass an int >= 0 or None")
    return np.random.default_rng([int(seed), i])


def generate_batch(
    lm: LanguageModel,
    prompts: Sequence[Any],
    constraint: Any = None,
    *,
    num_particles: int = 8,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    method: str = "awrs-smc",
    ess_threshold: float | None = None,
    resampling: str = "stratified",
    temperature: float = 1.0,
    seed: int | None = None,
    estimator: str = "recursive",
    stop: Sequence[str] | None = None,
    twist: str = "end",
    resample_finished: bool = False,
    timeout: float | None = None,
    max_rows: int | None = None,
    return_exceptions: bool = False,
    progress: bool = False,
) -> list[Any]:
    """Run :func:`~awrs_adapters.generate` on every prompt, sharing each step's forward.

    Args:
        lm: a :class:`~awrs_adapters.lm.LanguageModel`.
        prompts: a sequence of prompts (each a string or a list of chat messages, as in
            ``generate``) or :class:`Request` objects (a prompt with its own constraint,
            ``max_tokens``, seed or stops). A list of chat messages is one prompt: wrap
            several conversations in a list (``[msgs_a, msgs_b]``).
        constraint, num_particles, max_tokens, method, ess_threshold, resampling,
            temperature, estimator, stop, twist, resample_finished: as in ``generate``,
            for every prompt.
        seed: int: prompt ``i`` draws from ``numpy.random.default_rng([seed, i])``
            (a Request's own ``seed`` replaces it); None: fresh randomness.
        timeout: seconds each prompt may take (from the call); a prompt past it fails
            with :class:`~awrs_adapters.errors.GenerationTimeoutError`.
        max_rows: at most this many particle rows in one forward (memory); prompts that
            do not fit wait in order and join as rows free up (particles finishing or
            dying), at the next step. None: no bound. A prompt needs ``num_particles``
            rows (one at temperature 0); one prompt runs even if it needs more.
        return_exceptions: True: a failed prompt's slot holds its exception. False
            (default): when any prompt failed, :class:`BatchError` is raised after the
            others finished, with every result and error in ``.results``.
        progress: show a progress bar of finished prompts (tqdm, on stderr).

    Returns:
        One :class:`~awrs_adapters.results.SMCResult` per prompt, in order.
    """
    from .lm import as_language_model

    lm = as_language_model(lm)
    if not isinstance(lm, LanguageModel):
        raise ConfigError(f"lm={type(lm).__name__} is not a LanguageModel; see generate()")
    if isinstance(prompts, str | bytes) or not isinstance(prompts, Sequence):
        raise ConfigError(
            f"prompts={prompts!r:.60}; pass a list of prompts (a single prompt goes to generate())")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int)
                                 or max_rows < 1):
        raise ConfigError(f"max_rows={max_rows!r}; pass an int >= 1 (rows per forward) or None")
    if estimator not in ("recursive", "geometric"):
        raise ConfigError(f"estimator={estimator!r}; use 'recursive' or 'geometric'")
    secs = check_timeout(timeout)
    reqs = [p if isinstance(p, Request) else Request(p) for p in prompts]
    rngs = []
    for i, r in enumerate(reqs):
        rngs.append(make_rng(r.seed) if r.seed is not _SHARED else _seed_for(seed, i))
        if rngs[-1] is None:
            rngs[-1] = np.random.default_rng()
    out: list[Any] = [None] * len(reqs)
    calls: list[tuple[int, Call]] = []
    for i, r in enumerate(reqs):
        try:  # a Request's own bad value fails that prompt alone
            params = RunParams(
                num_particles=num_particles,
                max_tokens=max_tokens if r.max_tokens is _SHARED else r.max_tokens,
                method=method, ess_threshold=ess_threshold, resampling=resampling,
                temperature=temperature, seed=rngs[i], timeout=secs, twist=twist,
                estimator=estimator, resample_finished=resample_finished)
            calls.append((i, Call(r.prompt, constraint if r.constraint is _SHARED else r.constraint,
                                  params, stop=stop if r.stop is _SHARED else r.stop)))
        except Exception as e:
            out[i] = e
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(reqs), desc="prompts", unit="prompt")
        bar.update(len(reqs) - len(calls))  # those that failed before they started
        for _, c in calls:
            c.future.add_done_callback(lambda _f: bar.update(1))
    try:
        Scheduler(lm, max_rows=max_rows).run_here([c for _, c in calls])
    finally:
        if bar is not None:
            bar.close()
    for i, c in calls:
        err = c.future.exception()
        out[i] = c.future.result() if err is None else err
    failed = [i for i, r in enumerate(out) if isinstance(r, BaseException)]
    if failed and not return_exceptions:
        first = out[failed[0]]
        raise BatchError(
            f"{len(failed)} of {len(out)} prompts failed (prompts {failed[:10]}); the first: "
            f"{type(first).__name__}: {first}. Every result and error is in .results; pass "
            "return_exceptions=True to get them in the returned list", out)
    return out
