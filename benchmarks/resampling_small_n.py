"""Does resampling pay at small N? Exact toy posteriors, awrs-smc with tau 0 vs 0.5.

For each exact FunctionLM task and N in 2, 4, 8, 16: ``--runs`` independent runs with
``ess_threshold`` 0 (never resample) and 0.5; the mean over runs of one run's total-variation
distance to the exact posterior (by enumeration of the complete check), and the TV of the
runs' pooled posterior. The evidence behind the default ``ess_threshold=None`` (no
resampling below 8 particles; see ``awrs_adapters.resampling.resolve_ess_threshold``).

Run: python benchmarks/resampling_small_n.py [--runs 300]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from awrs_adapters import generate
from awrs_adapters.constraints import Predicate
from awrs_adapters.examples import ends_with_a
from awrs_adapters.testing import exact_posterior, total_variation

try:
    from benchmarks.common import report, table
except ImportError:
    from common import report, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import hashed_lm

    lm1, c1, t1 = ends_with_a()
    lm2 = hashed_lm([b"a", b"b", b"c", b""], 3, seed=7, eos_bias=-0.5)
    c2 = Predicate(complete=lambda s: s.count("a") % 2 == 0 and "cc" not in s and not s.endswith("c"),
                   prefix=lambda s: "cc" not in s)
    rows = []
    for name, lm, c, T in (("ends with a", lm1, c1, t1), ("even a, no cc (4 tokens)", lm2, c2, 4),
                           ("even a, no cc (8 tokens)", lm2, c2, 8)):
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
