"""AWRS token sampler: proper weighting by Monte Carlo, exactness of the draw, costs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from awrs_adapters import AWRS, ConfigError
from awrs_adapters.testing import check_proper_weighting

from conftest import SetBound


@st.composite
def problems(draw):
    V = draw(st.integers(2, 7))
    logits = draw(st.lists(st.floats(-4, 4), min_size=V, max_size=V))
    zero = draw(st.lists(st.booleans(), min_size=V, max_size=V))
    logits = [(-math.inf if z else x) for x, z in zip(logits, zero)]
    if all(x == -math.inf for x in logits):
        logits[0] = 0.0
    allowed = draw(st.sets(st.integers(0, V - 1), min_size=1))
    lp = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), 0)
    return V, lp, allowed


N_DRAWS = 3000


@pytest.mark.parametrize("estimator", ["recursive", "geometric"])
@pytest.mark.parametrize("mode", ["slow", "fast-always", "fast-after-1", "fast+slow-adaptive"])
@settings(max_examples=30)
@given(problems())
def test_proper_weighting(estimator, mode, problem):
    V, lp, allowed = problem
    fast = mode != "slow"
    switch = {"slow": "never", "fast-always": "always", "fast-after-1": 1}.get(mode, "adaptive")
    bound = SetBound(V, allowed, fast=fast, slow=(mode in ("slow", "fast+slow-adaptive")))
    rep = check_proper_weighting(
        AWRS(estimator, switch=switch), lp, bound, 0, n=N_DRAWS, rng=np.random.default_rng(1)
    )
    rep.assert_ok(z=4.5)


@settings(max_examples=40)
@given(problems())
def test_improper_samples_exact_lcd(problem):
    V, lp, allowed = problem
    bound = SetBound(V, allowed)
    p = torch.exp(lp).numpy()
    ok = np.array([a in allowed for a in range(V)])
    Z = float((p * ok).sum())
    draws = AWRS("improper").sample(lp.expand(N_DRAWS, V), bound, [0] * N_DRAWS,
                                    np.random.default_rng(2))
    if Z == 0:
        assert all(d.token is None and d.log_weight == -math.inf for d in draws)
        return
    assert all(d.log_weight == 0.0 for d in draws)
    freq = np.bincount([d.token for d in draws], minlength=V) / N_DRAWS
    target = p * ok / Z
    se = np.sqrt(target * (1 - target) / N_DRAWS)
    assert np.all(np.abs(freq - target) <= 4.5 * se + 1e-12)


def test_weight_is_finite_when_a_token_is_returned():
    lp = torch.log(torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64)).expand(500, 3)
    bound = SetBound(3, {2})
    for est in ("recursive", "geometric"):
        for d in AWRS(est).sample(lp, bound, [0] * 500, np.random.default_rng(0)):
            assert d.token == 2 and math.isfinite(d.log_weight)


def test_no_valid_token_kills_the_particle():
    lp = torch.log(torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64))
    d = AWRS().sample(lp, SetBound(3, {2}), [0], np.random.default_rng(0))[0]
    assert d.token is None and d.log_weight == -math.inf and d.checks == 2


def test_recursive_uses_at_most_one_check_beyond_rejection_sampling():
    V = 200
    lp = torch.log_softmax(torch.randn(V, generator=torch.Generator().manual_seed(0),
                                       dtype=torch.float64), 0)
    allowed = set(range(0, V, 3))
    bound = SetBound(V, allowed)
    draws = AWRS().sample(lp.expand(300, V), bound, [0] * 300, np.random.default_rng(0))
    ars = AWRS("improper").sample(lp.expand(300, V), bound, [0] * 300, np.random.default_rng(0))
    for d, a in zip(draws, ars):
        assert d.token == a.token  # same Gumbel keys: same draw
        assert d.checks in (a.checks, a.checks + 1)


def test_checks_per_token_stay_far_below_vocabulary_size():
    V = 10_000
    g = torch.Generator().manual_seed(3)
    lp = torch.log_softmax(torch.randn(V, generator=g, dtype=torch.float64) * 3, 0)
    allowed = set(range(0, V, 2))  # half the vocabulary is valid
    bound = SetBound(V, allowed)
    draws = AWRS().sample(lp.expand(200, V), bound, [0] * 200, np.random.default_rng(0))
    mean_checks = np.mean([d.checks for d in draws])
    assert mean_checks < 6, mean_checks


def test_invalid_arguments():
    with pytest.raises(ConfigError, match="estimator"):
        AWRS("bogus")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_accepts"):
        AWRS("geometric", max_accepts=1)
    with pytest.raises(ConfigError, match="switch"):
        AWRS(switch="sometimes")


def test_every_proposal_is_a_token_sampler():
    """SMC types its proposal as the TokenSampler protocol; the three proposals it builds
    satisfy it (a wrapper with the same ``sample`` does too)."""
    from awrs_adapters.awrs import AWRS, TokenSampler
    from awrs_adapters.proposals import DirectSampler, MaskSampler

    for p in (AWRS("recursive"), AWRS("geometric"), AWRS("improper"), DirectSampler(), MaskSampler()):
        assert isinstance(p, TokenSampler)
    assert not isinstance(object(), TokenSampler)
