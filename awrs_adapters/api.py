"""The public entry point: ``generate(lm, prompt, constraint) -> SMCResult``, and ``stream``.

Overview: one call runs SMC with the chosen method and returns the weighted particles,
the posterior over complete strings, ``log_ml`` and statistics. Every setting, its
default and its check live in one place (:class:`~awrs_adapters.streaming.RunParams`), the
one the command line, the LangChain models, ``smc_generate`` and the server use:
``timeout``, ``max_retries``, stop sequences and streaming work the same everywhere.
:func:`stream` is the streaming form: an iterator of :class:`Event` s (committed text,
one per step, then the result).

Example::

    >>> import math
    >>> from awrs_adapters import generate, stream
    >>> from awrs_adapters.lm import FunctionLM
    >>> lm = FunctionLM([b"a", b"b", b""], 2,
    ...                 lambda p: [math.log(.45), math.log(.45), math.log(.1)])
    >>> r = generate(lm, None, lambda s: s.endswith("a"), num_particles=32, max_tokens=4, seed=0)
    >>> print(r.posterior)
    {'a': 0.645..., 'bbba': 0.117..., 'abba': 0.079..., 'aaaa': 0.067..., 'bbaa': 0.061..., 'abaa': 0.015..., 'baba': 0.013...}
    >>> for ev in stream(lm, None, lambda s: s.endswith("a"), max_tokens=4, seed=0):
    ...     print(ev.kind, ev.text if ev.kind == "text" else ev.step)
    step 1
    step 2
    step 3
    step 4
    step 5
    text abba
    done 0
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import ConfigError
from .lm.base import LanguageModel
from .results import SMCResult

if TYPE_CHECKING:
    from .smc import SMC

__all__ = ["DEFAULT_MAX_TOKENS", "Event", "generate", "make_rng", "stream"]

#: ``max_tokens`` when none is given, in every entry point (generate, stream, the CLI,
#: the LangChain models, the server)
DEFAULT_MAX_TOKENS = 256


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed, a Generator (used as is) or None (fresh)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    raise ConfigError(f"seed={seed!r}; pass an int >= 0, a numpy.random.Generator or None")


@dataclass(frozen=True)
class Event:
    """One item of :func:`stream`.

    ``kind``: ``"text"`` (``text``: the next piece of committed text, which no later
    step can change; the pieces add up to ``result.mode``), ``"step"`` (after each
    model step: ``step`` tokens written, ``live`` particles still drawing, ``ess`` the
    effective sample size before resampling, ``resampled``) or ``"done"`` (the last
    event: ``result``, the :class:`~awrs_adapters.results.SMCResult`).
    """

    kind: Literal["text", "step", "done"]
    text: str = ""
    step: int = 0
    live: int = 0
    ess: float = 0.0
    resampled: bool = False
    result: SMCResult | None = None


def _lm(lm: Any) -> LanguageModel:
    from .lm import as_language_model

    lm = as_language_model(lm)
    if not isinstance(lm, LanguageModel):
        raise ConfigError(
            f"lm={type(lm).__name__} is not a LanguageModel; wrap a Hugging Face model with "
            "awrs_adapters.lm.TransformersLM(model, tokenizer) or load one with "
            "awrs_adapters.models.load()"
        )
    return lm


def generate(
    lm: LanguageModel,
    prompt: Any,
    constraint: Any = None,
    *,
    num_particles: int = 8,
    max_tokens: int = DEFAULT_MAX_TOKENS,
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
    max_retries: int = 0,
    on_text: Callable[[str], None] | None = None,
    on_step: Callable[[SMC], None] | None = None,
    progress: bool = False,
    cancel: threading.Event | None = None,
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
        max_tokens: generated tokens per particle before the end is forced (default 256,
            the same in every entry point).
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
        max_retries: when every particle died, run again with the next draws of the
            seed's generator, up to this many times (default 0), unless ``on_text``
            already received text (it cannot be taken back).
        on_text: called with each piece of committed text (shared by every weighted
            particle, so no later step changes it); the pieces add up to ``result.mode``.
        on_step: called with the engine after each step (read its state; end live
            particles with ``smc.finish``: a stopping criterion).
        progress: show a progress bar of the steps (tqdm, on stderr).
        cancel: a ``threading.Event``; once set (from any thread) the run ends at its
            next step with ``concurrent.futures.CancelledError``.

    Returns:
        An :class:`~awrs_adapters.results.SMCResult`; ``result.ok`` is False (and
        ``result.mode`` raises ``NoValidSampleError`` with a hint) when nothing survived.
        ``result.mode`` is the posterior's most probable string; ``result.sample(seed)``
        draws one from the posterior.
    """
    from .streaming import RunParams, run_streaming

    params = RunParams(
        num_particles=num_particles, max_tokens=max_tokens, method=method,
        ess_threshold=ess_threshold, resampling=resampling, temperature=temperature,
        seed=seed, estimator=estimator, twist=twist, resample_finished=resample_finished,
        timeout=timeout, max_retries=max_retries)
    lm = _lm(lm)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=params.max_tokens, desc="tokens", unit="step")
        user_step = on_step

        def on_step(smc: SMC) -> None:
            bar.update(1)
            bar.set_postfix(live=len(smc.live), ess=f"{smc.ess:.1f}", refresh=False)
            if user_step is not None:
                user_step(smc)
    try:
        # alone, in this thread: generate_batch or the scheduler share forwards
        return run_streaming(lm, prompt, constraint, params, stop=stop, on_text=on_text,
                             on_step=on_step, share_forward=False, cancel=cancel)
    finally:
        if bar is not None:
            bar.close()


def stream(lm: LanguageModel, prompt: Any, constraint: Any = None, **kwargs: Any) -> Iterator[Event]:
    """:func:`generate` as an iterator of :class:`Event` s: committed text as it is
    decided, one event per step, and last the result (``kind == "done"``).

    Takes ``generate``'s arguments (not ``on_text``/``on_step``, which it uses). The run
    goes on in a worker thread; leaving the loop early (``break``, ``close()``) stops it
    at its next step. Errors (a timeout, bad input) are raised from the iterator.
    """
    from .streaming import iter_in_thread

    for k in ("on_text", "on_step", "cancel"):
        if k in kwargs:
            raise ConfigError(f"{k}= is not taken by stream(), which uses it itself; use "
                              "generate(..., on_text=/on_step=/cancel=) for callbacks")
    lm = _lm(lm)

    def run(put: Callable[[Event], None], cancel: threading.Event) -> SMCResult | None:
        def on_step(smc: SMC) -> None:
            put(Event("step", step=smc.t, live=len(smc.live), ess=smc.ess_history[-1],
                      resampled=smc.resampled[-1]))

        try:
            res = generate(lm, prompt, constraint, on_text=lambda s: put(Event("text", text=s)),
                           on_step=on_step, cancel=cancel, **kwargs)
        except CancelledError:  # the consumer left (iter_in_thread set cancel)
            return None
        put(Event("done", result=res))
        return res

    yield from iter_in_thread(run)
