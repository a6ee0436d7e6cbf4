"""Does resampling pay at small N? Exact toy posteriors, awrs-smc with tau 0 vs 0.5.

For each exact FunctionLM task and N in 2, 4, 8, 16: ``--runs`` independent runs with
``ess_threshold`` 0 (never resample) and 0.5; the mean over runs of one run's total-variation
distance to the exact posterior (by enumeration of the complete check), and the TV of the
runs' pooled posterior. (It was the evidence behind an earlier default that did not
resample below 8 particles; the default is now 0.5 at every N, with the end-aware twist:
see benchmarks/end_twist.py.)

Run: python benchmarks/resampling_small_n.py [--runs 300]
"""

from __future__ import annotations

import argparse

import numpy as np

from awrs_adapters import generate
from awrs_adapters.testing import exact_posterior, total_variation

try:
    from benchmarks.common import report, table
    from benchmarks.tasks import exact_tasks
except ImportError:
    from tasks import exact_tasks

    from common import report, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    a = ap.parse_args()
    tasks = exact_tasks()
    _, lm2, c2, _ = tasks[1]  # the same task with a longer horizon: more steps to resample at
    rows = []
    for name, lm, c, T in [*tasks, ("even a, no cc (8 tokens)", lm2, c2, 8)]:
        exact, _ = exact_posterior(lm, c, T)
        for N in (2, 4, 8, 16):
            cells = []
            for tau in (0.0, 0.5):
                tvs, pool = [], {}
                for s in range(a.runs):
                    r = generate(lm, None, c, num_particles=N, max_tokens=T, seed=s, ess_threshold=tau)
                    tvs.append(total_variation(r.posterior, exact))
                    for k, v in r.posterior.items():
                        pool[k] = pool.get(k, 0.0) + v / a.runs
                cells += [f"{np.mean(tvs):.3f}", f"{total_variation(pool, exact):.3f}"]
            rows.append((name, N, *cells))
            print(rows[-1], flush=True)
    body = (f"{a.runs} runs per cell, awrs-smc, seeds 0..{a.runs - 1}.\n\n" + table(
        ["task", "N", "mean TV, tau 0", "pooled TV, tau 0", "mean TV, tau 0.5", "pooled TV, tau 0.5"],
        rows))
    report("resampling_small_n", "Resampling at small N: TV to the exact posterior", body)


if __name__ == "__main__":
    main()
