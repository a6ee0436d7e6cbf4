"""Diagnostics: summary table, ancestry and the figure."""

from __future__ import annotations

import numpy as np

from awrs_adapters import generate
from awrs_adapters.constraints import Potential, Predicate
from awrs_adapters.diagnostics import ancestry

from conftest import hashed_lm


def run():
    lm = hashed_lm([b"a", b"b", b"c", b""], 3, seed=2, eos_bias=-1.0)
    c = Potential(complete=lambda s: -2.0 * s.count("c"), prefix=lambda s: -2.0 * s.count("c"))
    for seed in range(50):
        r = generate(lm, None, c, num_particles=12, max_tokens=5, seed=seed)
        if r.stats.resamples:
            return r
    raise AssertionError("no run resampled")


def test_summary_lists_the_run_and_posterior():
    r = run()
    s = r.summary()
    assert "awrs-smc" in s and "log_ml" in s and "checks per token" in s
    top = next(iter(r.posterior))
    assert repr(top) in s
    dead = generate(hashed_lm([b"a", b""], 1), None, Predicate(lambda s: False), max_tokens=2, seed=0)
    assert "particles died" in dead.summary()


def test_ancestry_follows_resampling():
    r = run()
    anc = ancestry(r)
    assert anc.shape == (len(r.resampled) + 1, 12)
    t = max(i for i, x in enumerate(r.resampled) if x) + 1  # the last resampling's step
    assert np.array_equal(anc[t], r.ancestors[-1])
    assert all(np.array_equal(anc[u], np.arange(12)) for u in range(t + 1, anc.shape[0]))


def test_plot_leaves_matplotlib_state_alone(tmp_path):
    """No backend switch and no pyplot figure left open (the old code called
    matplotlib.use("Agg"), which took a notebook's inline plots away)."""
    import matplotlib
    import matplotlib.pyplot as plt

    before, open_before = matplotlib.get_backend(), plt.get_fignums()
    run().plot(str(tmp_path / "d.png"))
    fig = run().plot()
    assert matplotlib.get_backend() == before and plt.get_fignums() == open_before
    assert len(fig.axes) == 3


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "run.png"
    assert run().plot(str(path)) == str(path)
    assert path.stat().st_size > 5000 and path.read_bytes()[:4] == b"\x89PNG"
