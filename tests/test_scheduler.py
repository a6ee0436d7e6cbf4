"""The scheduler (``awrs_adapters/scheduler.py``): calls from several threads step
together on one thread, fail and cancel alone, and get the result they get alone.

The reference of each result is the same call run alone in its own thread
(``share_forward=False``: no scheduler thread, no shared cache)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from awrs_adapters.constraints import Predicate
from awrs_adapters.errors import ConfigError, ConstraintError, GenerationTimeoutError
from awrs_adapters.lm import TransformersLM
from awrs_adapters.scheduler import Call, Scheduler, scheduler_for
from awrs_adapters.streaming import RunParams, run_streaming

from test_transformers_lm import get_tokenizer, tiny_llama

PROMPTS = ["hello there, how are you today?", "a", "the quick brown fox", "lorem ipsum"]
C = Predicate(complete=lambda s: len(s) >= 2, prefix=lambda s: "q" not in s)


@pytest.fixture()
def lm() -> TransformersLM:
    tok = get_tokenizer("byte_level")
    return TransformersLM(tiny_llama(len(tok), seed=3), tok)


def _same(a, b) -> None:
    assert a.posterior.keys() == b.posterior.keys()
    assert all(abs(a.posterior[s] - w) < 1e-4 for s, w in b.posterior.items())
    assert abs(a.log_ml - b.log_ml) < 1e-4


def test_submitted_calls_step_together_and_match_their_lone_runs(lm):
    """Calls submitted from four threads share steps (a step with all four), each gets
    its lone result, and the scheduler's thread exits once idle (no leaked thread).
    Broken variant that fails: drawing all calls from one generator (results change)."""
    params = [RunParams(num_particles=3, max_tokens=10, seed=k) for k in range(4)]
    alone = [run_streaming(lm, p, C, q, share_forward=False) for p, q in zip(PROMPTS, params)]
    sched = scheduler_for(lm)
    barrier = threading.Barrier(4)
    futures: dict[int, object] = {}

    def go(k: int) -> None:
        barrier.wait()
        futures[k] = sched.submit(Call(PROMPTS[k], C, params[k]))

    threads = [threading.Thread(target=go, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = [futures[k].result(120) for k in range(4)]  # type: ignore[attr-defined]
    for a, b in zip(out, alone):
        _same(a, b)
    assert max(sched.calls_per_step) == 4
    for _ in range(100):
        if sched._thread is None:
            break
        time.sleep(0.05)
    assert sched._thread is None


def test_a_failing_call_fails_alone(lm):
    """A validator that raises in one call fails that call with its error; the calls
    stepping with it finish with their lone results."""
    def boom(s: str) -> bool:
        if len(s) >= 2:
            raise RuntimeError("validator bug")
        return True

    bad = Predicate(complete=lambda s: True, prefix=boom, errors="raise")
    params = RunParams(num_particles=3, max_tokens=8, seed=1)
    alone = run_streaming(lm, PROMPTS[0], C, params, share_forward=False)
    sched = scheduler_for(lm)
    f_bad = sched.submit(Call(PROMPTS[1], bad, params))
    f_good = sched.submit(Call(PROMPTS[0], C, params))
    with pytest.raises(ConstraintError):
        f_bad.result(120)
    _same(f_good.result(120), alone)


def test_bad_input_raises_in_the_submitting_thread(lm):
    with pytest.raises(ConfigError):
        scheduler_for(lm).submit(Call(PROMPTS[0], "(unclosed", RunParams(num_particles=2)))


def test_a_cancelled_call_frees_its_rows_and_the_others_go_on(lm):
    """Cancelling a running call (its caller went away) ends it at the next step with
    CancelledError and removes its rows from the shared forward; the other call's
    result is its lone one. Broken variant that fails: ignoring the cancel flag (the
    call runs to max_tokens and resolves with a result)."""
    started = threading.Event()

    def slow_prefix(s: str) -> bool:
        started.set()
        time.sleep(0.002)
        return True

    long_c = Predicate(complete=lambda s: False, prefix=slow_prefix)  # never ends early
    params = RunParams(num_particles=3, max_tokens=400, seed=2)
    short = RunParams(num_particles=3, max_tokens=12, seed=3)
    alone = run_streaming(lm, PROMPTS[2], C, short, share_forward=False)
    sched = scheduler_for(lm)
    victim = Call(PROMPTS[0], long_c, params)
    f_victim = sched.submit(victim)
    f_other = sched.submit(Call(PROMPTS[2], C, short))
    assert started.wait(60)
    batch = victim.smc.batch
    victim.cancel()
    with pytest.raises(CancelledError):
        f_victim.result(120)
    assert victim.smc is None and 0 < victim.steps < 400 and batch.num_rows == 0
    _same(f_other.result(120), alone)


def test_timeout_and_on_text_errors_stay_with_their_call(lm):
    """A call past its timeout fails with GenerationTimeoutError naming it; an on_text
    callback that raises fails its own call; the third call finishes normally."""
    sched = scheduler_for(lm)
    slow = Predicate(complete=lambda s: False, prefix=lambda s: time.sleep(0.01) or True)
    f_late = sched.submit(Call(PROMPTS[0], slow, RunParams(num_particles=2, max_tokens=200,
                                                            seed=0, timeout=0.5)))

    def bad_sink(piece: str) -> None:
        raise ValueError("sink closed")

    f_sink = sched.submit(Call(PROMPTS[1], None, RunParams(num_particles=2, max_tokens=30,
                                                            seed=0), on_text=bad_sink))
    f_ok = sched.submit(Call(PROMPTS[3], C, RunParams(num_particles=2, max_tokens=8, seed=0)))
    with pytest.raises(GenerationTimeoutError, match="timeout=0.5"):
        f_late.result(120)
    with pytest.raises(ValueError, match="sink closed"):
        f_sink.result(120)
    assert f_ok.result(120).ok


def test_max_rows_admits_in_order_as_rows_free(lm):
    """With max_rows a scheduler never steps more rows than the bound (one call alone
    excepted) and still gives each call its lone result."""
    sched = Scheduler(lm, max_rows=5)
    params = [RunParams(num_particles=3, max_tokens=6 + k, seed=k) for k in range(4)]
    calls = [Call(p, C, q) for p, q in zip(PROMPTS, params)]
    sched.run_here(calls)
    assert max(sched.rows_per_step) <= 5
    for c, p, q in zip(calls, PROMPTS, params):
        _same(c.future.result(), run_streaming(lm, p, C, q, share_forward=False))


def test_a_call_answers_with_a_draw_and_streams_up_to_it() -> None:
    """answer="draw": the pieces add up to the drawn answer, which is the posterior draw
    the call's generator makes after the run (the same as res.sample on that stream);
    answer="mode": the pieces add up to the mode, and the generator is not drawn from."""
    import numpy as np

    from awrs_adapters.lm import FunctionLM
    from awrs_adapters.scheduler import Call
    from awrs_adapters.streaming import RunParams, run_call

    lm = FunctionLM([b"a", b"b", b""], 2, lambda p: [0.0, 0.0, 0.0] if len(p) < 3 else [-9, -9, 0])
    c, T = (lambda s: len(s) >= 1), 4   # many strings with mass: draws differ by seed
    drawn = set()
    for seed in range(12):
        for answer in ("draw", "mode"):
            pieces: list[str] = []
            gen = np.random.default_rng(seed)
            call = Call(None, c, RunParams(num_particles=6, max_tokens=T, seed=gen),
                        on_text=pieces.append, answer=answer)
            res = run_call(lm, call, share_forward=False)
            assert "".join(pieces) == call.answer_text
            twin = np.random.default_rng(seed)
            ref_call = Call(None, c, RunParams(num_particles=6, max_tokens=T, seed=twin))
            ref = run_call(lm, ref_call, share_forward=False)
            assert ref.posterior == res.posterior
            want = ref.mode if answer == "mode" else ref.sample(twin)
            assert call.answer_text == want
            if answer == "draw":
                drawn.add(call.answer_text)
    assert len(drawn) >= 3
