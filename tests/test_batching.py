"""generate_batch: many prompts in lockstep, each prompt's target untouched by the others.

The reference of each prompt is its exact posterior by enumeration (testing.exact_posterior,
from the definition) and the single-prompt ``generate`` with the same seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from awrs_adapters import BatchError, Request, generate, generate_batch
from awrs_adapters.constraints import Predicate
from awrs_adapters.errors import ConfigError, ConstraintError
from awrs_adapters.lm.base import LanguageModel
from awrs_adapters.testing import exact_posterior, total_variation

from conftest import hashed_lm

TOKENS = [b"a", b"b", b"c", b""]


class Prompted(LanguageModel):
    """A toy model whose prompt picks one of several exact FunctionLMs (same vocabulary)."""

    def __init__(self, lms: dict) -> None:
        self.lms = lms
        self.vocab = next(iter(lms.values())).vocab
        self.starts = 0

    def start(self, prompt, num_particles):
        self.starts += 1
        return self.lms[prompt].start(None, num_particles)


LMS = {name: hashed_lm(TOKENS, 3, seed=s, eos_bias=b)
       for name, s, b in [("p0", 1, 0.0), ("p1", 2, -0.5), ("p2", 3, 0.5)]}
ENDS_A = Predicate(complete=lambda s: s.endswith("a"))
NO_C = Predicate(complete=lambda s: "c" not in s and len(s) >= 2, prefix=lambda s: "c" not in s)
#: prompt, constraint, max_tokens, stop: different in every slot
CASES = [("p0", ENDS_A, 4, None), ("p1", NO_C, 3, None), ("p2", ENDS_A, 5, ["b"])]


def _requests(seed: int) -> list[Request]:
    return [Request(p, constraint=c, max_tokens=T, stop=stop, seed=seed * 10 + k)
            for k, (p, c, T, stop) in enumerate(CASES)]


def test_each_prompt_gets_the_result_it_gets_alone():
    """Same seed: the batched result equals generate()'s bit for bit (exact toy models)."""
    lm = Prompted(LMS)
    for seed in range(5):
        batch = generate_batch(lm, _requests(seed), num_particles=8)
        for k, ((p, c, T, stop), r) in enumerate(zip(CASES, batch, strict=True)):
            alone = generate(lm, p, c, num_particles=8, max_tokens=T, stop=stop,
                             seed=seed * 10 + k)
            assert r.posterior == alone.posterior and r.log_ml == alone.log_ml


def test_each_prompt_matches_its_exact_posterior_inside_a_mixed_batch():
    """Pooled over 600 batches (N = 8, each run weighted by its Ẑ): every prompt's
    posterior within TV 0.05 of its exact one (measured 0.028, 0.021, 0.037) and mean
    Ẑ/Z within 3.5 s.e. of 1. Broken variant caught: a Request's stop list ignored
    (prompt 2 at TV 0.36)."""
    lm = Prompted(LMS)
    runs = 600
    pooled = [dict() for _ in CASES]
    zs = [[] for _ in CASES]
    for seed in range(runs):
        for k, r in enumerate(generate_batch(lm, _requests(seed), num_particles=8)):
            z = math.exp(r.log_ml) if r.log_ml is not None else 0.0
            zs[k].append(z)
            for s, w in r.posterior.items():
                pooled[k][s] = pooled[k].get(s, 0.0) + z * w
    for k, (p, c, T, stop) in enumerate(CASES):
        exact, Z = exact_posterior(LMS[p], c, T, stop=stop or ())
        tot = sum(pooled[k].values())
        tv = total_variation(exact, {s: w / tot for s, w in pooled[k].items()})
        m = np.mean(zs[k]) / Z
        se = np.std(zs[k]) / Z / math.sqrt(runs)
        assert tv < 0.05, (k, tv)
        assert abs(m - 1) < 3.5 * se + 1e-3, (k, m, se)


def test_a_bad_prompt_fails_alone():
    """A constraint that raises and an invalid argument fail their prompts with their
    typed errors; the other prompts' results are those they get alone."""
    lm = Prompted(LMS)

    def boom(s: str) -> bool:
        if len(s) >= 2:
            raise RuntimeError("validator bug")
        return True

    reqs = [Request("p0", constraint=ENDS_A, max_tokens=4, seed=1),
            Request("p1", constraint=Predicate(complete=boom, prefix=boom), max_tokens=4, seed=2),
            Request("p2", constraint=ENDS_A, max_tokens=-3, seed=3),
            Request("p0", constraint=NO_C, max_tokens=3, seed=4)]
    out = generate_batch(lm, reqs, num_particles=4, return_exceptions=True)
    assert isinstance(out[1], ConstraintError) and "validator bug" in str(out[1])
    assert isinstance(out[2], ConfigError) and "max_tokens" in str(out[2])
    for k, (p, c, T, s) in [(0, ("p0", ENDS_A, 4, 1)), (3, ("p0", NO_C, 3, 4))]:
        assert out[k].posterior == generate(lm, p, c, num_particles=4, max_tokens=T,
                                            seed=s).posterior
    with pytest.raises(BatchError, match="2 of 4 prompts failed") as e:
        generate_batch(lm, reqs, num_particles=4)
    assert e.value.results[0].posterior == out[0].posterior


def test_max_rows_runs_waves_with_the_same_results():
    lm = Prompted(LMS)
    reqs = _requests(7)
    a = generate_batch(lm, reqs, num_particles=4)
    b = generate_batch(lm, reqs, num_particles=4, max_rows=4)  # one prompt per wave
    assert [r.posterior for r in a] == [r.posterior for r in b]
    with pytest.raises(ConfigError, match="max_rows"):
        generate_batch(lm, reqs, max_rows=0)


def test_batch_seed_gives_each_prompt_its_own_stream():
    lm = Prompted(LMS)
    out = generate_batch(lm, ["p0", "p0"], ENDS_A, num_particles=4, max_tokens=4, seed=3)
    same = generate_batch(lm, ["p0", "p0"], ENDS_A, num_particles=4, max_tokens=4, seed=3)
    assert [r.posterior for r in out] == [r.posterior for r in same]
    assert out[0].posterior != out[1].posterior or out[0].log_ml != out[1].log_ml
    with pytest.raises(ConfigError, match="list of prompts"):
        generate_batch(lm, "p0")


def test_progress_bar_counts_finished_prompts(capsys):
    """progress=True draws a tqdm bar on stderr that ends at every prompt (a failed one
    included); nothing goes to stdout."""
    lm = Prompted(LMS)
    reqs = _requests(0) + [Request("p0", max_tokens=-1)]  # the last one fails at once
    out = generate_batch(lm, reqs, num_particles=4, progress=True, return_exceptions=True)
    err = capsys.readouterr()
    n = len(reqs)
    assert isinstance(out[-1], ConfigError)
    assert f"{n}/{n}" in err.err and "prompts" in err.err and not err.out
