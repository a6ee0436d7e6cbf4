"""``make bench``: every benchmark, quick settings by default, ``--full`` for the whole set.

Each table prints the command that produced it and the machine, and is written as
markdown to ``benchmarks/results/``.

Run: python benchmarks/run.py [--full]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("awrs_checks.py", []),
    ("constraint_cost.py", []),
    ("overhead.py", []),
    ("lm_overhead.py", []),
    ("accuracy.py", []),
    ("resampling_small_n.py", []),
    ("end_twist.py", ["--runs", "200"]),
    ("float32_weights.py", ["--runs", "100", "--model-runs", "5"]),
    ("outlines_compare.py", []),
    ("processor_compare.py", []),
    ("langchain_structured.py", []),
    ("jsonschemabench.py", ["--limit", "10", "--timeout", "15"]),
    ("patterns.py", ["--every", "24"]),
    ("slow_predicate.py", ["--every", "24"]),
    ("throughput.py", []),
    ("server.py", []),
]


def main() -> int:
    full = "--full" in sys.argv[1:]
    failed = []
    t_all = time.perf_counter()
    for script, quick_args in SCRIPTS:
        # the full JSONSchemaBench run takes the whole dev set (hours on 2 cores)
        args = ["--full"] if full and script != "jsonschemabench.py" else ([] if full else quick_args)
        if script in ("awrs_checks.py", "lm_overhead.py"):
            args = []
        t0 = time.perf_counter()
        print(f"\n### running {script} {' '.join(args)}", flush=True)
        rc = subprocess.call([sys.executable, str(HERE / script), *args])
        print(f"### {script}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(script)
    print(f"\nall benchmarks: {time.perf_counter() - t_all:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
