"""Paired comparison of two methods on the pattern benchmark, per N and seed.

Reads the per-pattern lines that :mod:`benchmarks.patterns` writes (``--seeds`` runs carry
their seed) and compares method A with method B on the same pattern, seed and N: mean
success of each, their paired difference with its standard error (over patterns), win /
tie / loss counts (a pattern's success is the posterior mass on matching strings; a win
is a difference above 1e-6), and "all fail" counts: patterns where every particle of A
failed (success 0) while B succeeded (success > 0), and the reverse. Seconds per
generation as median, mean, p95 and max.

Run: python benchmarks/patterns_paired.py RESULTS.jsonl [MORE.jsonl ...] [--a awrs-smc]
[--b lcd] [--name patterns_paired]
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

try:
    from benchmarks.common import report, table
except ImportError:
    from common import report, table

TIE = 1e-6


def load(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        with open(path) as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows


def seconds_summary(xs: list[float]) -> str:
    a = np.asarray(xs)
    return (f"{np.median(a):.2f} / {a.mean():.2f} / {np.percentile(a, 95):.2f} / "
            f"{a.max():.2f}")


def compare(rows: list[dict], a: str, b: str) -> tuple[list[tuple], list[str]]:
    """The table rows (one per N and seed, then pooled per N) and the patterns A lost."""
    by = defaultdict(dict)  # (N, seed) -> {(method, pattern): row}
    for r in rows:
        by[(r["N"], r.get("seed", 0))][(r["method"], r["pattern"])] = r
    out, lost, pooled = [], [], defaultdict(list)
    for (N, seed) in sorted(by):
        cell = by[(N, seed)]
        pats = sorted({p for (m, p) in cell if m == a} & {p for (m, p) in cell if m == b})
        if not pats:
            continue
        sa = np.array([cell[(a, p)]["success"] for p in pats])
        sb = np.array([cell[(b, p)]["success"] for p in pats])
        pooled[N].append((sa, sb, [cell[(a, p)]["seconds"] for p in pats],
                          [cell[(b, p)]["seconds"] for p in pats]))
        out.append(_row(N, str(seed), sa, sb, [cell[(a, p)]["seconds"] for p in pats],
                        [cell[(b, p)]["seconds"] for p in pats]))
        lost += [f"N={N} seed={seed}: {p}" for p, x, y in zip(pats, sa, sb)
                 if x == 0 and y > 0]
    for N, parts in sorted(pooled.items()):
        if len(parts) > 1:
            out.append(_row(N, "all", np.concatenate([x[0] for x in parts]),
                            np.concatenate([x[1] for x in parts]),
                            [s for x in parts for s in x[2]], [s for x in parts for s in x[3]]))
    return out, lost


def _row(N: int, seed: str, sa: np.ndarray, sb: np.ndarray, ta: list, tb: list) -> tuple:
    d = sa - sb
    se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
    return (N, seed, len(d), f"{sa.mean():.3f}", f"{sb.mean():.3f}", f"{d.mean():+.4f} ± {se:.4f}",
            f"{int((d > TIE).sum())} / {int((abs(d) <= TIE).sum())} / {int((d < -TIE).sum())}",
            f"{int(((sa == 0) & (sb > 0)).sum())} / {int(((sb == 0) & (sa > 0)).sum())}",
            seconds_summary(ta), seconds_summary(tb))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--a", default="awrs-smc")
    ap.add_argument("--b", default="lcd")
    ap.add_argument("--name", default="patterns_paired")
    args = ap.parse_args()
    rows, lost = compare(load(args.paths), args.a, args.b)
    a, b = args.a, args.b
    body = (f"Paired by pattern, seed and N; from {', '.join(p.name for p in args.paths)}. "
            f"Difference = {a} − {b} success (± one standard error over patterns). "
            f"'all fail': every {a} particle failed while {b} succeeded / the reverse.\n\n"
            + table(["N", "seed", "patterns", f"{a} success", f"{b} success",
                     "difference ± s.e.", f"{a} wins / ties / losses",
                     f"all fail: {a} only / {b} only",
                     f"{a} s / generation (median / mean / p95 / max)",
                     f"{b} s / generation (median / mean / p95 / max)"], rows))
    if lost:
        body += f"\n\nPatterns where every {a} particle failed and {b} succeeded:\n\n"
        body += "\n".join(f"- `{x}`" for x in lost) + "\n"
    report(args.name, f"Pattern benchmark, paired: {a} vs {b}", body)


if __name__ == "__main__":
    main()
