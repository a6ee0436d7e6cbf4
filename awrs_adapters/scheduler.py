"""Continuous batching: calls from any thread step together, one forward per step.

Overview: a :class:`Call` is one generation (prompt, constraint, :class:`RunParams`,
stops, callbacks) with a ``concurrent.futures.Future`` for its result. A
:class:`Scheduler` runs its calls in lockstep: every call's draws
(:meth:`SMC.advance <awrs_adapters.smc.SMC.advance>`), one forward of all their live rows
(a :class:`~awrs_adapters.lm.shared.SharedForward` on a ``TransformersLM``: prompts of
different lengths share one padded KV cache), every call's twist and resampling
(:meth:`SMC.settle <awrs_adapters.smc.SMC.settle>`), then every call's checks and
callbacks (``timeout``, ``on_step``, ``on_text``). A call that fails (a bad constraint,
a validator that raises, its timeout) or is cancelled leaves alone; the others go on.

:func:`scheduler_for` gives the process's scheduler of a model. Its steps run on one
thread of its own while it has calls; calls submitted from other threads (LangChain
``abatch``, concurrent ``ainvoke`` s, a server's requests) join at the next step, so they
share each forward, and all draws run on that one thread (threads drawing in turn on
the GIL would hold every forward back for the slowest). :func:`~awrs_adapters.streaming.
run_streaming` submits there; :func:`~awrs_adapters.batching.generate_batch` runs a
private scheduler in the caller's thread (:meth:`Scheduler.run_here`). Each call draws
from its own generator, so its result does not depend on the calls it stepped with
(same seed, same result, up to float round-off in the logits).

Example::

    >>> from awrs_adapters import models
    >>> from awrs_adapters.constraints import Regex
    >>> from awrs_adapters.streaming import RunParams
    >>> from awrs_adapters.scheduler import Call, scheduler_for
    >>> lm = models.load()
    >>> calls = [Call(p, Regex(r"[a-z]+"), RunParams(num_particles=4, max_tokens=6, seed=0))
    ...          for p in ("Name a fruit.", "Name a colour.")]
    >>> futures = [scheduler_for(lm).submit(c) for c in calls]   # from any thread
    >>> print([f.result().posterior for f in futures])
    [{...: ...}, {...: ...}]
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any

from .api import make_rng
from .deadline import timeout_error
from .errors import ConfigError, GenerationTimeoutError
from .lm.base import LanguageModel
from .results import SMCResult
from .smc import SMC
from .stops import check_stop
from .streaming import RunParams, cut_at_stop
from .vocab import decode_prefix

__all__ = ["ANSWERS", "Call", "Scheduler", "scheduler_for"]

#: ``answer=`` values: the posterior's mode, or a draw from the posterior
ANSWERS = ("mode", "draw")


class Call:
    """One generation and its future: what :func:`~awrs_adapters.streaming.run_streaming` runs.

    ``on_step(smc)`` and ``on_text(piece)`` run on the scheduler's thread after each step
    (see ``run_streaming``); an exception they raise fails this call alone. The timeout
    counts from the call's creation. ``max_retries`` restarts a call whose particles all
    died with the next draws of its generator, unless text was already streamed.
    Setting ``cancel`` (or calling :meth:`cancel`) ends it at the next step with
    ``concurrent.futures.CancelledError``, its rows freed.

    ``answer``: what the call answers with, set in :attr:`answer_text` when it ends:
    ``"mode"`` (default) the posterior's most probable string, ``"draw"`` a string drawn
    from the posterior with the call's generator (after the run's own draws). At the end
    ``on_text`` gets the rest of that answer: every string with posterior mass starts
    with the text already streamed, so the pieces add up to the answer.
    """

    def __init__(
        self,
        prompt: Any,
        constraint: Any,
        params: RunParams,
        *,
        stop: Sequence[str] | None = None,
        on_text: Callable[[str], None] | None = None,
        on_step: Callable[[SMC], None] | None = None,
        cancel: threading.Event | None = None,
        answer: str = "mode",
    ) -> None:
        if answer not in ANSWERS:
            raise ConfigError(f"answer={answer!r}; use 'mode' (the posterior's most probable "
                              "string) or 'draw' (a string drawn from the posterior)")
        self.prompt, self.constraint, self.params = prompt, constraint, params
        self.stop = list(check_stop(stop))
        self.hold = max((len(s) for s in self.stop), default=1) - 1  # a stop may be half-written
        self.on_text, self.on_step = on_text, on_step
        self.rng = make_rng(params.seed)
        self.t_start = time.perf_counter()
        self.emitted = ""
        self.attempt = 0
        self.smc: SMC | None = None
        #: steps the engine ran (set when it is released)
        self.steps = 0
        self.future: Future[SMCResult] = Future()
        self._cancelled = False
        self._cancel_event = cancel
        self.answer = answer
        #: the answer (see ``answer``) once the call succeeded; None before or without one
        self.answer_text: str | None = None

    @property
    def rows(self) -> int:
        """Rows this call needs in a forward (one at temperature 0)."""
        return 1 if self.params.temperature == 0 else self.params.num_particles

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called or the ``cancel`` event is set."""
        return self._cancelled or (self._cancel_event is not None and self._cancel_event.is_set())

    def cancel(self) -> None:
        """Stop this call at the next step and free its rows (its future is cancelled)."""
        self._cancelled = True
        self.future.cancel()  # takes effect only while queued; running, the flag does

    def begin(self, host: Any) -> None:
        """Build the engine on ``host`` (compiles the constraint; raises for bad input)."""
        p = self.params
        self.smc = SMC(
            host, self.prompt, self.constraint,
            num_particles=p.num_particles, max_tokens=p.max_tokens, method=p.method,
            ess_threshold=p.ess_threshold, resampling=p.resampling,
            temperature=p.temperature, rng=self.rng, estimator=p.estimator,
            stop=self.stop, twist=p.twist, resample_finished=p.resample_finished,
            deadline=None if p.timeout is None else self.t_start + p.timeout,
        )

    def after_step(self) -> None:
        """The checks and callbacks after each step (raise to fail the call)."""
        smc = self.smc
        assert smc is not None
        p = self.params
        if p.timeout is not None and time.perf_counter() - self.t_start > p.timeout:
            raise GenerationTimeoutError(
                f"generation passed timeout={p.timeout} s after {smc.t} tokens with "
                f"{smc.N} particles; raise timeout, or lower num_particles / max_tokens")
        if self.on_step is not None:
            self.on_step(smc)
        if self.on_text is not None:
            committed = cut_at_stop(decode_prefix(smc.committed_prefix()), self.stop)
            if self.stop and self.hold:
                committed = committed[: max(len(committed) - self.hold, 0)]
            if len(committed) > len(self.emitted) and committed.startswith(self.emitted):
                self.on_text(committed[len(self.emitted):])
                self.emitted = committed

    def end(self) -> bool:
        """The engine is done: resolve the future (True) or ask for a retry (False)."""
        assert self.smc is not None
        res = self.smc.result()  # stopped particles already hold the text before the stop
        if not res.ok and not self.emitted and self.attempt < self.params.max_retries:
            self.attempt += 1  # text already streamed cannot be taken back: no retry then
            return False
        if res.ok:
            final = self.answer_text = res.mode if self.answer == "mode" else res.sample(self.rng)
            if (self.on_text is not None and final.startswith(self.emitted)
                    and len(final) > len(self.emitted)):
                self.on_text(final[len(self.emitted):])
        self._release()
        self.future.set_result(res)
        return True

    def _release(self) -> None:
        # a finished call keeps no engine: a batch's calls live until the batch returns
        if self.smc is not None:
            self.steps = self.smc.t
            self.smc = None

    def fail(self, e: BaseException) -> None:
        """Free this call's rows and resolve its future with ``e``."""
        if self.smc is not None:
            try:
                self.smc.batch.select([])  # its rows leave a batch shared with other calls
            except Exception:  # noqa: BLE001 - the batch may be what failed; e says why
                pass
            self._release()
        if isinstance(e, GenerationTimeoutError) and self.params.timeout is not None:
            e = timeout_error(self.params.timeout, e)
        if not self.future.done():
            self.future.set_exception(e)


class Scheduler:
    """Runs :class:`Call` s in lockstep on one model (see the module docstring).

    Args:
        lm: the model. A ``TransformersLM`` (exactly that class) gets shared forwards;
            any other model runs one batch per call, still in lockstep.
        share: False: one batch per call even on a ``TransformersLM``.
        max_rows: at most this many particle rows stepped together; calls that do not
            fit wait in order and are admitted (their engine built) as rows free up.
            None: every call is admitted at once, its engine built (its constraint
            compiled) in the submitting thread.

    Attributes:
        calls_per_step: how many calls stepped together, per step.
        rows_per_step: their live rows, per step.
    """

    def __init__(self, lm: LanguageModel, *, share: bool = True, max_rows: int | None = None) -> None:
        from .lm.transformers import TransformersLM

        self.lm = lm
        self.share = share and type(lm) is TransformersLM  # subclasses may change forward
        self.max_rows = max_rows
        self._host: Any = None
        self._queue: deque[Call] = deque()
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self._host_lock = threading.Lock()  # host() and building an engine on it
        self._thread: threading.Thread | None = None
        self.calls_per_step: list[int] = []
        self.rows_per_step: list[int] = []

    def host(self) -> Any:
        """Where new calls' rows go: the open shared forward, or a new one when it cannot
        take a prompt (a cache that cannot be padded, e.g. sliding-window layers)."""
        if not self.share:
            return self.lm
        from .lm.shared import SharedForward

        if self._host is None or not self._host.joinable:
            self._host = SharedForward(self.lm)  # type: ignore[arg-type]
        return self._host

    def _begin(self, call: Call) -> None:
        with self._host_lock:
            while True:
                host = self.host()
                try:
                    call.begin(host)
                    return
                except ConfigError:
                    # the open forward ran its first forward meanwhile and its cache
                    # cannot be padded: the next host() is a new one
                    if self.share and not host.joinable:
                        continue
                    raise

    # -- entry points ---------------------------------------------------------------
    def submit(self, call: Call) -> Future[SMCResult]:
        """Run ``call`` on this scheduler's thread, joining the running calls at the next
        step; return its future. Bad input raises here when there is no ``max_rows``."""
        if self.max_rows is None:
            call.future.set_running_or_notify_cancel()
            try:
                self._begin(call)  # raises for bad input, in the caller's thread
            except BaseException as e:
                call.fail(e)
                raise
        with self._lock:
            if self.max_rows is None:
                self._calls.append(call)
            else:
                self._queue.append(call)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="awrs-scheduler",
                                                daemon=True)
                self._thread.start()
        return call.future

    def run(self, call: Call) -> SMCResult:
        """:meth:`submit` and wait; an interrupted wait cancels the call."""
        future = self.submit(call)
        try:
            return future.result()
        except BaseException:
            call.cancel()
            raise

    def run_here(self, calls: Sequence[Call]) -> None:
        """Run ``calls`` to the end in this thread (admitted in order under ``max_rows``);
        each call's future then holds its result or error."""
        with self._lock:
            self._queue.extend(calls)
        while self._queue or self._calls:
            self._step()

    # -- the loop -------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._queue and not self._calls:
                        self._thread = None  # a later submit starts a new thread
                        return
                self._step()
        except BaseException as e:
            with self._lock:
                calls, self._calls = self._calls + list(self._queue), []
                self._queue.clear()
                self._thread = None
            for c in calls:
                c.fail(e)
            raise

    def _admit(self) -> None:
        with self._lock:
            new: list[Call] = []
            used = sum(len(c.smc.live) for c in self._calls if c.smc is not None)
            while self._queue:
                c = self._queue[0]
                busy = self._calls or new
                if busy and self.max_rows is not None and used + c.rows > self.max_rows:
                    break
                self._queue.popleft()
                if c.future.set_running_or_notify_cancel():
                    new.append(c)
                    used += c.rows
        for c in new:
            try:
                self._begin(c)
            except Exception as e:  # this call fails alone
                c.fail(e)
                continue
            with self._lock:
                self._calls.append(c)

    def _drop(self, c: Call, e: BaseException) -> None:
        with self._lock:
            if c in self._calls:
                self._calls.remove(c)
        c.fail(e)

    def _step(self) -> None:
        self._admit()
        with self._lock:
            calls = list(self._calls)
        for c in calls:
            if c.cancelled:
                self._drop(c, CancelledError())
        calls = [c for c in calls if not c.future.done()]
        stepping = [c for c in calls if c.smc is not None and not c.smc.done]
        if stepping:
            self.calls_per_step.append(len(stepping))
            self.rows_per_step.append(sum(len(c.smc.live) for c in stepping if c.smc is not None))
        for phase in ("advance", "settle"):
            for c in list(stepping):
                try:
                    getattr(c.smc, phase)()
                except Exception as e:
                    stepping.remove(c)
                    self._drop(c, e)
        for c in calls:
            if c.future.done():
                continue
            try:
                if c in stepping:
                    c.after_step()
                assert c.smc is not None
                if c.smc.done and not c.end():
                    self._begin(c)  # a retry: the next draws of its generator
                    continue
            except Exception as e:
                self._drop(c, e)
                continue
            if c.future.done():
                with self._lock:
                    self._calls.remove(c)


_LOCK = threading.Lock()


def scheduler_for(lm: LanguageModel) -> Scheduler:
    """The process's :class:`Scheduler` of ``lm`` (created on first use, kept on ``lm``)."""
    with _LOCK:
        s = getattr(lm, "_awrs_scheduler", None)
        if s is None:
            s = Scheduler(lm)
            lm._awrs_scheduler = s  # type: ignore[attr-defined]
        return s
