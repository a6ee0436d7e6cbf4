"""The same seed gives the same run, bit for bit, whatever the machine load.

The fast-mask switch used to be decided by wall-clock timings (ski rental on measured
mask and check times), so a loaded machine made the same seed give the same draws with
other weights. It is now decided by counts (``awrs.switch_rejections``).
"""

from __future__ import annotations

import time

import pytest

from awrs_adapters import generate
from awrs_adapters.awrs import switch_rejections
from awrs_adapters.constraints import Regex
from awrs_adapters.vocab import Vocabulary

from conftest import hashed_lm

TOKENS = [bytes([i]) for i in range(256)] + [b"12", b"34", b"5a", b"", b""]
EOS = len(TOKENS) - 1


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv("AWRS_INDEX_CACHE", "off")


def _run(seed: int):
    lm = hashed_lm(TOKENS, EOS, seed=3)
    return generate(lm, None, Regex("[0-9]{2}[a-c]?"), num_particles=4, max_tokens=4, seed=seed)


def _slow(monkeypatch):
    """Every automaton check sleeps 0.5 ms: what a loaded machine does to timings."""
    bound_cls = type(Regex("[0-9]").bind(Vocabulary(TOKENS, EOS)))
    fast = bound_cls.check

    def check(self, state, token_id):
        time.sleep(5e-4)
        return fast(self, state, token_id)

    monkeypatch.setattr(bound_cls, "check", check)


def test_same_seed_same_weights_under_load(monkeypatch):
    """Broken variant caught: the old wall-clock switch (a draw took the mask once the
    time it had spent passed the measured mask time) gives other weights here when the
    checks are slow (the draws stayed the same; log_ml moved)."""
    quiet = [_run(s) for s in range(6)]
    _slow(monkeypatch)
    loaded = [_run(s) for s in range(6)]
    for a, b in zip(quiet, loaded, strict=True):
        assert [p.text for p in a.particles] == [p.text for p in b.particles]
        assert [p.log_weight for p in a.particles] == [p.log_weight for p in b.particles]
        assert a.log_ml == b.log_ml and a.posterior == b.posterior
    assert any(r.stats.masks for r in quiet)  # the switch was exercised


def test_switch_count_model():
    v = Vocabulary(TOKENS, EOS)
    assert switch_rejections(Regex("[0-9]").bind(v)) == 8
    big = Vocabulary([b"%d" % i for i in range(49_152)] + [b""], 49_152)
    assert switch_rejections(Regex("[0-9]").bind(big)) == 49_153 // 256


def test_predicate_look_ahead_does_not_depend_on_the_clock(monkeypatch):
    """A Predicate's look-ahead decides from calls, not time, by default: with a clock
    that jumps 1 s at every read (a heavily loaded machine), rejecting the lone lead
    ``b"\\xf0"`` after ``"a"`` gives the same answer as on a quiet machine. Broken
    variant seen failing: the former default ``lookahead_seconds=5`` (the look-ahead
    stopped after five clock reads and held the character back: True instead of
    False)."""
    import awrs_adapters.constraints.predicate as P
    from awrs_adapters.constraints import Predicate

    vocab = Vocabulary([b"a", b"\xf0", b""], 2)

    def letters(s: str) -> bool:
        return set(s) <= {"a"}

    quiet = Predicate(lambda s: True, prefix=letters).bind(vocab).check(b"a", 1)
    clock = [0.0]

    def jumping() -> float:
        clock[0] += 1.0
        return clock[0]

    monkeypatch.setattr(P.time, "perf_counter", jumping)
    loaded = Predicate(lambda s: True, prefix=letters).bind(vocab).check(b"a", 1)
    assert quiet is False and loaded is quiet
