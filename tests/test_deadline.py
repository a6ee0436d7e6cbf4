"""``timeout`` interrupts inside a token draw (awrs_adapters.deadline).

A dead-end draw under a slow predicate makes one call per token; checking the timeout
only between steps lets one step run for seconds past it. Broken variant seen failing:
SMC ignoring its ``deadline`` (the runner's between-step check only): the timeout is
read only after the first step's draws (4 particles × 60 calls × 50 ms), so the error
is the between-step one.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from awrs_adapters.constraints import Predicate
from awrs_adapters.deadline import DeadlineBound
from awrs_adapters.errors import GenerationTimeoutError
from awrs_adapters.lm import FunctionLM
from awrs_adapters.smc import SMC
from awrs_adapters.streaming import RunParams, run_streaming
from awrs_adapters.vocab import Vocabulary

#: 60 one-letter tokens (distinct first bytes: no trie pruning) and EOS
TOKENS = [bytes([65 + i]) for i in range(60)] + [b""]
EOS = len(TOKENS) - 1
CALL_SECONDS = 0.05


def slow_dead_end() -> Predicate:
    """Rejects every token after a 50 ms call: a draw makes 60 calls (3 s) and dies."""
    def prefix(s: str) -> bool:
        time.sleep(CALL_SECONDS)
        return s == ""

    return Predicate(lambda s: s == "A", prefix=prefix, name="slow dead end")


def uniform_lm() -> FunctionLM:
    return FunctionLM(TOKENS, EOS, lambda prefix: np.zeros(len(TOKENS)))


@pytest.mark.parametrize("method", ["awrs-smc", "mask-smc"])
def test_timeout_stops_inside_a_draw(method):
    params = RunParams(num_particles=4, max_tokens=4, method=method, seed=0, timeout=0.5)
    t0 = time.perf_counter()
    with pytest.raises(GenerationTimeoutError, match=r"timeout=0\.5 s .*inside the token draws"):
        run_streaming(uniform_lm(), None, slow_dead_end(), params)
    elapsed = time.perf_counter() - t0
    # one step's draws would take 4 × 3 s; the draw stops within one 50 ms call of the
    # deadline (2 s leaves room for a loaded machine)
    assert elapsed < 2.0, elapsed


def test_no_deadline_no_wrapper_and_same_result():
    """A deadline that does not bind changes nothing (same seed, same result)."""
    lm = uniform_lm()
    c = Predicate(lambda s: s in ("A", "AB"), prefix=lambda s: "AB".startswith(s))
    a = SMC(lm, None, c, num_particles=8, max_tokens=3, rng=np.random.default_rng(1)).run()
    b = SMC(lm, None, c, num_particles=8, max_tokens=3, rng=np.random.default_rng(1),
            deadline=time.perf_counter() + 600).run()
    assert a.posterior == b.posterior and a.log_ml == b.log_ml


def test_deadline_bound_delegates_and_raises():
    bound = Predicate(lambda s: s == "A").bind(Vocabulary(TOKENS, EOS))
    live = DeadlineBound(bound, time.perf_counter() + 600, "late")
    assert live.check(b"", 0) and live.has_slow == bound.has_slow
    assert live.vocab is bound.vocab and live.initial_state() == b""
    late = DeadlineBound(bound, time.perf_counter() - 1, "late")
    for call in (lambda: late.check(b"", 0), lambda: late.sweep_check(b"", 0),
                 lambda: late.fast_mask(b"")):
        with pytest.raises(GenerationTimeoutError, match="late"):
            call()


def test_generate_takes_a_timeout():
    """``generate(timeout=)`` stops inside the first draw; a bad value is a ConfigError.
    Broken variant seen failing: generate not passing the deadline to SMC."""
    from awrs_adapters import ConfigError, generate

    t0 = time.perf_counter()
    with pytest.raises(GenerationTimeoutError, match=r"timeout=0\.3 s .*inside the token draws"):
        generate(uniform_lm(), None, slow_dead_end(), num_particles=4, max_tokens=4, seed=0,
                 timeout=0.3)
    assert time.perf_counter() - t0 < 2.0
    for bad in (0, -1.0, float("nan"), "5", True):
        with pytest.raises(ConfigError, match="timeout="):
            generate(uniform_lm(), None, None, timeout=bad)


def test_a_deadline_passed_between_steps_stops_the_next_step():
    lm = uniform_lm()
    smc = SMC(lm, None, None, num_particles=2, max_tokens=3, rng=np.random.default_rng(0),
              deadline=time.perf_counter() - 1)
    with pytest.raises(GenerationTimeoutError, match="before step 1"):
        smc.run()


def test_timeout_stops_a_long_look_ahead_inside_one_check():
    """A lone 4-byte lead byte makes one check try up to 196,608 characters (here until
    ``lookahead_seconds=5`` runs out): the deadline stops it from inside. Broken variant
    seen failing: the look-ahead not reading the active deadline (the check runs its
    5 s budget and the error comes after it, between steps)."""
    def prefix(s: str) -> bool:
        time.sleep(0.0002)
        return s == ""

    lm = FunctionLM([b"\xf0", b""], 1, lambda prefix: np.zeros(2))
    c = Predicate(lambda s: s == "", prefix=prefix, name="nothing")
    t0 = time.perf_counter()
    with pytest.raises(GenerationTimeoutError, match="look-ahead"):
        run_streaming(lm, None, c, RunParams(num_particles=1, max_tokens=2, seed=0,
                                             timeout=0.5))
    assert time.perf_counter() - t0 < 2.0
