"""The step loop around SMC: stop sequences, streaming, timeout and retries in one place.

Overview: :func:`run_streaming` drives :class:`~awrs_adapters.smc.SMC` step by step
(through a :class:`~awrs_adapters.scheduler.Call`, so concurrent calls share forwards). After
each step it enforces a ``timeout``, calls ``on_step(smc)`` (a progress line, stopping
criteria that end particles with :meth:`SMC.finish <awrs_adapters.smc.SMC.finish>`, a
token streamer), then calls ``on_text`` with each piece of text that every weighted
particle already shares (it can no longer change). Particles end at ``stop`` sequences;
when no particle survives it retries with the next draws of the seed's generator
(``max_retries``). :class:`RunParams` holds and validates a call's settings;
:func:`particle_table` lists a result's particles with normalised weights. The command
line and both framework integrations run through here.

Example::

    >>> from awrs_adapters.toy import ends_with_a
    >>> from awrs_adapters.streaming import RunParams, run_streaming
    >>> lm, c, T = ends_with_a()
    >>> res = run_streaming(lm, None, c, RunParams(num_particles=8, max_tokens=T, seed=0),
    ...                     on_text=print)
    a
    >>> print(res.posterior)
    {'a': 0.952..., 'ba': 0.047...}
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .api import DEFAULT_MAX_TOKENS, make_rng
from .deadline import check_timeout
from .errors import ConfigError
from .lm.base import LanguageModel
from .results import SMCResult
from .smc import SMC, validate_args

__all__ = ["RunParams", "cut_at_stop", "iter_in_thread", "particle_table", "run_call", "run_streaming"]


@dataclass(frozen=True)
class RunParams:
    """Everything a run takes besides the model, prompt and constraint; validated here.

    The one set of defaults: :func:`~awrs_adapters.generate`, the command line, the
    LangChain models, ``smc_generate`` and the server build one of these. ``seed`` is an
    int, None (fresh randomness) or a ``numpy.random.Generator`` (used as is, so several
    runs can share one stream). The fields mean what ``generate``'s arguments do.
    """

    num_particles: int = 8
    max_tokens: int = DEFAULT_MAX_TOKENS
    method: str = "awrs-smc"
    ess_threshold: float | None = None
    resampling: str = "stratified"
    temperature: float = 1.0
    seed: int | np.random.Generator | None = None
    timeout: float | None = None
    max_retries: int = 0
    twist: str = "end"
    estimator: str = "recursive"
    resample_finished: bool = False

    def __post_init__(self) -> None:
        validate_args(self.num_particles, self.max_tokens, self.method, self.ess_threshold,
                      self.resampling, self.temperature, self.twist)
        if self.estimator not in ("recursive", "geometric"):
            raise ConfigError(f"estimator={self.estimator!r}; use 'recursive' or 'geometric'")
        if not isinstance(self.resample_finished, bool | np.bool_):
            raise ConfigError(f"resample_finished={self.resample_finished!r}; pass True or False")
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
    cancel: threading.Event | None = None,
    answer: str = "mode",
) -> SMCResult:
    """Run SMC; stream committed text through ``on_text``; return the result.

    ``stop`` sequences end an output before their first occurrence; the text before it
    must pass the constraint (see :mod:`awrs_adapters.stops`).

    ``on_step(smc)`` is called after every step (after the timeout check, before
    ``on_text``). It may read the engine's public state and end live particles with
    ``smc.finish``; the committed text streamed next takes that into account.

    The concatenation of everything passed to ``on_text`` equals the answer
    (``result.mode`` by default, see ``answer``).

    ``share_forward`` (default): on a ``TransformersLM`` the call runs on the model's
    :func:`~awrs_adapters.scheduler.scheduler_for` thread, where calls from other threads
    (LangChain ``abatch``, concurrent ``ainvoke`` s, a server) step with it and share
    each forward; ``on_step`` and ``on_text`` then run on that thread. A call's result
    does not depend on the others (up to float round-off in the logits). Otherwise it
    runs in the calling thread, alone.

    ``cancel``: once set, the run ends at its next step, frees its rows and raises
    ``concurrent.futures.CancelledError`` (a stream nobody reads any more).

    ``answer``: ``"mode"`` (default) or ``"draw"`` (a posterior draw from the run's
    generator): the text the pieces passed to ``on_text`` add up to (see
    :class:`~awrs_adapters.scheduler.Call`; :func:`run_call` also returns it).
    """
    from .scheduler import Call

    call = Call(prompt, constraint, params, stop=stop, on_text=on_text, on_step=on_step,
                cancel=cancel, answer=answer)
    return run_call(lm, call, share_forward=share_forward)


def run_call(lm: LanguageModel, call: Any, *, share_forward: bool = True) -> SMCResult:
    """Run a :class:`~awrs_adapters.scheduler.Call` to its end and return its result
    (``call.answer_text`` then holds its answer); ``share_forward`` as for
    :func:`run_streaming`."""
    from .lm.transformers import TransformersLM
    from .scheduler import Scheduler, scheduler_for

    if share_forward and type(lm) is TransformersLM:
        res: SMCResult = scheduler_for(lm).run(call)
        return res
    Scheduler(lm, share=False).run_here([call])  # in this thread, alone
    out: SMCResult = call.future.result()
    return out


def iter_in_thread(
    run: Callable[[Callable[[Any], None], threading.Event], Any],
) -> Generator[Any, None, Any]:
    """Run ``run(put, cancel)`` in a worker thread; yield what it passes to ``put``.

    The core is synchronous; this turns its callbacks (``on_text``, ``on_step``) into an
    iterator (:func:`~awrs_adapters.stream`, the LangChain models' ``_stream``). The
    generator's return value (``StopIteration.value``) is what ``run`` returned; an
    exception raised by ``run`` is re-raised in the consumer's thread. When the consumer
    stops early (``break``, ``close()``, the generator collected) ``cancel`` is set:
    pass it to ``run_streaming(cancel=...)``, which ends the run at its next step and
    frees its rows instead of sampling to the end for nobody.
    """
    cancel = threading.Event()
    q: queue.Queue[Any] = queue.Queue()
    done = object()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["res"] = run(q.put, cancel)
        except BaseException as e:  # re-raised in the consumer's thread
            box["err"] = e
        q.put(done)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while (item := q.get()) is not done:
            yield item
    finally:
        cancel.set()  # a no-op once the run is over
    t.join()
    if "err" in box:
        raise box["err"]
    return box["res"]


def particle_table(res: SMCResult) -> list[dict[str, Any]]:
    """Particles as ``{"text", "weight", "log_weight", "finished", ...}``, weights
    normalised (``res.to_dict()["particles"]``)."""
    rows: list[dict[str, Any]] = res.to_dict()["particles"]
    return rows
