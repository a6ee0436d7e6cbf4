"""A 1 ms-per-call predicate on the pattern domain: ``timeout`` and the look-ahead budget.

Each pattern of the dev split (``benchmarks/patterns.py``) becomes a Predicate whose
prefix and complete functions each sleep 1 ms before the ``regex`` match (a validator
calling a service or a parser). Every generation runs under ``timeout`` seconds through
the runner (what ``generate``, ChatAWRS and the CLI use). Per generation: wall time,
whether it timed out, by how much it passed the timeout and the longest completed step
(the timeout is read inside draws, so the overshoot should stay below one step), whether
the look-ahead budget warning fired (``LookaheadBudgetWarning``).

Run: python benchmarks/slow_predicate.py [--every 6] [--timeout 10] [--n 4] [--full]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import regex
import torch

from awrs_adapters import models
from awrs_adapters.constraints import Predicate
from awrs_adapters.errors import GenerationTimeoutError, LookaheadBudgetWarning
from awrs_adapters.streaming import RunParams, run_streaming

try:
    from benchmarks.common import report, table
    from benchmarks.patterns import MAX_TOKENS, REGEX_TIMEOUT, load_patterns, prompt
except ImportError:
    from patterns import MAX_TOKENS, REGEX_TIMEOUT, load_patterns, prompt

    from common import report, table

CALL_SECONDS = 0.001


def slow_predicate(pattern: str, lookahead_seconds: float | None) -> tuple[Predicate, list[int]]:
    r = regex.compile(pattern)
    calls = [0]

    def prefix(s: str) -> bool:
        calls[0] += 1
        time.sleep(CALL_SECONDS)
        try:
            m = r.fullmatch(s, partial=True, timeout=REGEX_TIMEOUT)  # see patterns.py
        except TimeoutError:
            return True
        return m is not None

    def complete(s: str) -> bool:
        calls[0] += 1
        time.sleep(CALL_SECONDS)
        try:
            return r.fullmatch(s, timeout=REGEX_TIMEOUT) is not None
        except TimeoutError:
            return False

    return Predicate(complete, prefix=prefix, name=f"slow {pattern[:30]}",
                     lookahead_seconds=lookahead_seconds), calls


def measure(lm, pats: list[str], a, lookahead_seconds: float | None) -> list[dict]:
    """One generation per pattern under ``a.timeout``: wall time, overshoot, warning."""
    per = []
    for i, p in enumerate(pats):
        c, calls = slow_predicate(p, lookahead_seconds)
        steps: list[float] = []
        last = [time.perf_counter()]

        def on_step(smc, steps=steps, last=last) -> None:
            now = time.perf_counter()
            steps.append(now - last[0])
            last[0] = now

        params = RunParams(num_particles=a.n, max_tokens=MAX_TOKENS, seed=i, timeout=a.timeout)
        t0 = time.perf_counter()
        last[0] = t0
        timed_out = False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LookaheadBudgetWarning)
            try:
                run_streaming(lm, prompt(p), c, params, stop=["\n"], on_step=on_step)
            except GenerationTimeoutError:
                timed_out = True
        wall = time.perf_counter() - t0
        warned = any(issubclass(w.category, LookaheadBudgetWarning) for w in caught)
        longest = max(steps, default=0.0)
        per.append({"wall": wall, "timed_out": timed_out, "over": max(wall - a.timeout, 0.0),
                    "longest": longest, "warned": warned, "calls": calls[0],
                    "steps": len(steps)})
        print(f"{i + 1}/{len(pats)} {wall:.1f}s timeout={timed_out} over={per[-1]['over']:.2f}s "
              f"longest step {longest:.2f}s calls {calls[0]} warned={warned}", flush=True)
    return per


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=int, default=6)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--full", action="store_true", help="every pattern of the dev split")
    a = ap.parse_args()
    if a.full:
        a.every = 1
    pats = []
    for p in load_patterns(a.every):
        try:
            regex.compile(p)
            pats.append(p)
        except regex.error:
            pass
    lm = models.load()
    torch.set_grad_enabled(False)
    rows = []
    for secs in (None, 2.0):
        per = measure(lm, pats, a, secs)
        wall = np.array([r["wall"] for r in per])
        over = [r for r in per if r["timed_out"]]
        worst = max((r["over"] / r["longest"] for r in over if r["longest"] > 0), default=0.0)
        rows.append(("none (default)" if secs is None else f"{secs:g} s", len(per),
                     f"{np.median(wall):.1f}", f"{wall.mean():.1f}",
                     f"{np.percentile(wall, 95):.1f}", f"{wall.max():.1f}", len(over),
                     f"{max((r['over'] for r in over), default=0.0):.3f}",
                     f"{worst:.2f}" if over else "-", sum(r["warned"] for r in per),
                     f"{np.median([r['calls'] for r in per]):.0f} / "
                     f"{max(r['calls'] for r in per)}"))
    body = (f"{len(pats)} patterns (every {a.every}th of the dev split), N = {a.n}, max "
            f"{MAX_TOKENS} tokens, stop at a newline, every predicate call sleeps "
            f"{CALL_SECONDS * 1e3:g} ms, timeout = {a.timeout:g} s; with the default "
            "look-ahead bounds (calls only) and with a 2 s wall-clock look-ahead bound.\n\n"
            + table(["lookahead_seconds", "generations", "median s", "mean s", "p95 s",
                     "max s", "timed out", "largest overshoot past timeout (s)",
                     "largest overshoot / that run's longest completed step",
                     "budget warning fired", "predicate calls (median / max)"], rows))
    report("slow_predicate", "A 1 ms predicate under timeout (pattern domain)", body)


if __name__ == "__main__":
    main()
