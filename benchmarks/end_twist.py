"""The end-aware twist on exact toy tasks where ``max_tokens`` binds.

For each task of ``benchmarks.tasks.end_tasks`` (T = 10-12, a loose or no prefix check,
a model that rarely ends) and N in 4, 8: ``--runs`` runs of awrs-smc with the default
``ess_threshold`` (0.5), ``twist="end"`` (default) and ``twist="none"`` on the same seeds
(paired), each also with the finished particles resampled (``resample_finished=True``,
the behaviour before they kept their place), and with no resampling
(``ess_threshold=0``) for reference. Per cell: the mean
over runs of one run's total-variation distance to the exact posterior (enumerated from
the complete check) with its standard error, the paired difference twist − none (and
how many runs each was closer), the share of runs with no valid particle, and the mean
of Ẑ/Z (``exp(log_ml)`` over the enumerated normaliser) with its standard error.

Run: python benchmarks/end_twist.py [--runs 500] [--default-only --name end_twist_z]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from awrs_adapters import generate
from awrs_adapters.testing import exact_posterior, total_variation

try:
    from benchmarks.common import report, table
    from benchmarks.tasks import end_tasks
except ImportError:
    from tasks import end_tasks

    from common import report, table

#: (label, ess_threshold, twist, resample_finished); the first row is the default
SETTINGS = (("twist end", 0.5, "end", False),
            ("twist end, finished resampled", 0.5, "end", True),
            ("twist none", 0.5, "none", False),
            ("twist none, finished resampled", 0.5, "none", True),
            ("no resampling", 0.0, "none", False))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--ns", default="4,8")
    ap.add_argument("--default-only", action="store_true",
                    help="only the default setting (many runs: Ẑ/Z's standard error)")
    ap.add_argument("--name", default="end_twist")
    a = ap.parse_args()
    settings = SETTINGS[:1] if a.default_only else SETTINGS
    t0 = time.perf_counter()
    rows = []
    for name, lm, c, T in end_tasks():
        exact, Z = exact_posterior(lm, c, T)
        for N in [int(x) for x in a.ns.split(",")]:
            tv: dict[str, np.ndarray] = {}
            for label, tau, twist, refin in settings:
                tvs, zs, fails = [], [], 0
                for s in range(a.runs):
                    r = generate(lm, None, c, num_particles=N, max_tokens=T, seed=s,
                                 ess_threshold=tau, twist=twist,
                                 resample_finished=refin)
                    tvs.append(total_variation(r.posterior, exact) if r.posterior else 1.0)
                    zs.append(math.exp(r.log_ml) / Z if r.log_ml is not None else 0.0)
                    fails += not r.ok
                tv[label] = np.array(tvs)
                z = np.array(zs)
                cells = [f"{tv[label].mean():.3f} ± {tv[label].std(ddof=1) / math.sqrt(a.runs):.3f}"]
                if label == "twist end":
                    cells.append("")
                else:
                    d = tv["twist end"] - tv[label]
                    cells.append(f"{d.mean():+.3f} ± {d.std(ddof=1) / math.sqrt(a.runs):.3f} "
                                 f"({int((d < 0).sum())}/{int((d > 0).sum())})")
                cells += [f"{fails / a.runs:.3f}",
                          f"{z.mean():.3f} ± {z.std(ddof=1) / math.sqrt(a.runs):.3f}"]
                rows.append((name, N, label, *cells))
                print(rows[-1], flush=True)
    body = (
        f"{a.runs} runs per cell, awrs-smc, seeds 0..{a.runs - 1} (the same seeds in every "
        "row: paired). 'twist end' is the default (the end-aware twist; finished particles "
        "keep their place when the others are resampled); 'finished resampled': the whole "
        "population is resampled, as before. TV: mean over runs of one run's "
        "total-variation distance to the exact posterior, ± its standard error. Δ TV: the "
        "paired difference 'twist end' − this row, ± s.e. (runs where the default was "
        "closer / farther). Ẑ/Z: mean of "
        f"exp(log_ml)/Z ± s.e. (1 = unbiased). {time.perf_counter() - t0:.0f} s.\n\n"
        + table(["task", "N", "setting", "mean TV", "Δ TV (default − this)", "no valid particle",
                 "mean Ẑ/Z"], rows))
    report(a.name, "End-aware twist: TV to the exact posterior where max_tokens binds", body)


if __name__ == "__main__":
    main()
