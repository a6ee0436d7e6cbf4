"""Resampling schemes: unbiased counts, low-variance schemes stay within floor/ceil."""

from __future__ import annotations

import numpy as np
import pytest

from awrs_adapters import ConfigError
from awrs_adapters import resampling as rs


@pytest.mark.parametrize("scheme", sorted(rs.SCHEMES))
def test_unbiased_counts(scheme):
    rng = np.random.default_rng(0)
    W = rng.dirichlet(np.ones(7))
    N, reps = 7, 20000
    counts = np.zeros(7)
    for _ in range(reps):
        a = rs.resample(scheme, W, rng)
        assert a.shape == (N,) and a.min() >= 0 and a.max() < N
        assert np.all(np.diff(a) >= 0)  # sorted ancestors
        counts += np.bincount(a, minlength=N)
    mean = counts / reps
    assert np.allclose(mean, N * W, atol=0.05), (mean, N * W)


@pytest.mark.parametrize("scheme", ["stratified", "systematic", "residual"])
def test_low_variance_schemes_keep_heavy_particles(scheme):
    rng = np.random.default_rng(1)
    W = np.array([0.5, 0.3, 0.1, 0.1])
    for _ in range(200):
        c = np.bincount(rs.resample(scheme, W, rng), minlength=4)
        assert c[0] >= 2 and c[1] >= 1


def test_weights_helpers():
    lw = np.log([0.25, 0.25, 0.5])
    assert abs(rs.log_mean_exp(lw) - np.log(1 / 3)) < 1e-12
    assert rs.log_mean_exp(np.array([-np.inf, -np.inf])) == -np.inf
    assert rs.ess(np.array([0.0, 0.0, -np.inf])) == pytest.approx(2.0)
    assert rs.ess(np.array([-np.inf])) == 0.0


def test_unknown_scheme():
    with pytest.raises(ConfigError, match="valid resampling scheme"):
        rs.resample("nope", np.ones(2) / 2, np.random.default_rng(0))
