"""The AWRS paper's pattern-matching domain: Python-``regex`` patterns as slow predicates.

Each pattern of ``../shared/data/patterns-dev/patterns.csv`` (Python ``regex`` syntax:
back-references, look-arounds, atomic groups, recursion, Unicode properties; see its
NOTICE) becomes a :class:`~awrs_adapters.constraints.Predicate`: a prefix is kept while a
partial match of the whole text is possible, the finished text must fully match. The
default model is asked for a matching string; up to 100 tokens; a newline ends the
output (the paper's setting; ``stop=["\\n"]``).

Per method and N: success (posterior mass on strings that fully match, re-checked here;
0 when no particle survives), ok rate, median seconds per generation (prefill
included), the plain-sampling time of the same number of steps with the same N
(``model.generate(do_sample=True, top_k=0, num_return_sequences=N)``, forced to that
length) and their ratio, sampler checks (``bound.check`` calls) and predicate calls (the
user's functions, look-ahead included) per token, and both per dead-end draw (a particle
left with no valid token). ``--full`` takes every pattern;
the quick default takes every 12th (30 patterns), never a hand-picked set.

Run: python benchmarks/patterns.py [--full] [--ns 1,4,8] [--methods awrs-smc,lcd,...]
(``awrs-smc:none``: awrs-smc without the end-aware twist)
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import regex
import torch

from awrs_adapters import models
from awrs_adapters.constraints import Predicate
from awrs_adapters.smc import SMC

try:
    from benchmarks.common import RESULTS, report, table
except ImportError:
    from common import RESULTS, report, table

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("AWRS_PATTERNS",
                           HERE.parent.parent / "shared" / "data" / "patterns-dev" / "patterns.csv"))
METHODS = ("awrs-smc", "lcd", "sample-verify", "mask-smc")
MAX_TOKENS = 100
REGEX_TIMEOUT = 0.5  # seconds for one match: some patterns backtrack badly


def load_patterns(every: int) -> list[str]:
    with open(DATA, newline="") as f:
        rows = [r["regex"] for r in csv.DictReader(f)]
    return rows[::every]


class Counted:
    """A pattern as a Predicate, counting calls of the user's functions."""

    def __init__(self, pattern: str) -> None:
        self.r = regex.compile(pattern)
        self.calls = 0

    def prefix(self, s: str) -> bool:
        self.calls += 1
        try:
            # fullmatch, not match: ``match`` prefers a complete match of a shorter
            # prefix over a partial match of the whole text, so it rejected every
            # extension of a text that already matched ("The x. The" + " The")
            m = self.r.fullmatch(s, partial=True, timeout=REGEX_TIMEOUT)
        except TimeoutError:
            return True  # unknown: keep it (sound)
        return m is not None

    def full(self, s: str) -> bool:
        try:
            return self.r.fullmatch(s, timeout=REGEX_TIMEOUT) is not None
        except TimeoutError:
            return False

    def complete(self, s: str) -> bool:
        self.calls += 1
        return self.full(s)

    def constraint(self) -> Predicate:
        return Predicate(self.complete, prefix=self.prefix, name="pattern")


class DeadEnds:
    """Wraps a proposal: one row at a time, recording predicate calls of dead-end draws."""

    def __init__(self, proposal, counted: Counted) -> None:
        self.proposal = proposal
        self.counted = counted
        self.dead_calls: list[int] = []
        self.dead_checks: list[int] = []

    def sample(self, logp, bound, states, rng):
        out = []
        for r in range(logp.shape[0]):
            before = self.counted.calls
            d = self.proposal.sample(logp[r:r + 1], bound, states[r:r + 1], rng)[0]
            if d.token is None:
                self.dead_calls.append(self.counted.calls - before)
                self.dead_checks.append(d.checks)
            out.append(d)
        return out


def prompt(p: str) -> list[dict]:
    return [{"role": "user", "content": "Write one string that fully matches this regular "
             f"expression: {p}\nAnswer with the string only."}]


def run_one(lm, p: str, method: str, N: int, seed: int, tau: float | None = None) -> dict:
    """One generation; ``method`` may carry a twist: ``"awrs-smc:none"`` (see SMC's twist)."""
    counted = Counted(p)
    kw = {"stop": ["\n"]} if "stop" in inspect.signature(SMC).parameters else {}
    if ":" in method:
        method, kw["twist"] = method.split(":", 1)
    if tau is not None:
        kw["ess_threshold"] = tau
    t0 = time.perf_counter()
    smc = SMC(lm, prompt(p), counted.constraint(), num_particles=N, max_tokens=MAX_TOKENS,
              method=method, rng=np.random.default_rng(seed), **kw)
    wrap = DeadEnds(smc.proposal, counted)
    smc.proposal = wrap
    res = smc.run()
    secs = time.perf_counter() - t0
    post = res.posterior
    success = sum(v for k, v in post.items() if counted.full(k)) if post else 0.0
    bad = sum(v for k, v in post.items() if not counted.full(k)) if post else 0.0
    return {"success": success, "bad_mass": bad, "ok": res.ok, "seconds": secs,
            "steps": res.stats.steps, "tokens": res.stats.tokens, "calls": counted.calls,
            "dead_calls": wrap.dead_calls, "dead_checks": wrap.dead_checks,
            "truncated": sum(q.truncated for q in res.particles),
            "texts": [q.text[:60] for q in res.particles],
            "checks": res.stats.constraint_checks}


_plain_cache: dict[tuple, float] = {}


def plain_seconds(lm, p: str, N: int, steps: int) -> float:
    key = (p, N, steps)
    if key not in _plain_cache:
        ids = lm.encode_prompt(prompt(p))
        inputs = {"input_ids": torch.tensor([ids]),
                  "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
        torch.manual_seed(0)
        t0 = time.perf_counter()
        lm.model.generate(**inputs, do_sample=True, top_k=0, max_new_tokens=max(steps, 1),
                          min_new_tokens=max(steps, 1), num_return_sequences=N,
                          pad_token_id=lm.tokenizer.eos_token_id)
        _plain_cache[key] = time.perf_counter() - t0
    return _plain_cache[key]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--every", type=int, default=12)
    ap.add_argument("--ns", default="1,4,8")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--name", default="patterns")
    ap.add_argument("--seed", type=int, default=0,
                    help="pattern i runs with seed i + 100003 * SEED (0: the reported runs)")
    ap.add_argument("--seeds", default=None,
                    help="comma-separated SEEDs run one after another (overrides --seed); "
                         "rows carry their seed, compare with benchmarks/patterns_paired.py")
    ap.add_argument("--ess-threshold", type=float, default=None,
                    help="SMC's tau (default: SMC's default)")
    ap.add_argument("--resume", action="store_true",
                    help="append to NAME.jsonl, skipping the generations it already holds")
    ap.add_argument("--pattern-major", action="store_true",
                    help="run every seed, N and method of a pattern before the next")
    ap.add_argument("--no-plain", action="store_true",
                    help="skip timing plain sampling (success figures only)")
    a = ap.parse_args()
    pats = load_patterns(1 if a.full else a.every)
    valid = []
    for p in pats:
        try:
            regex.compile(p)
            valid.append(p)
        except regex.error:
            pass
    ns = [int(x) for x in a.ns.split(",")]
    methods = a.methods.split(",")
    lm = models.load()
    torch.set_grad_enabled(False)
    run_one(lm, valid[0], "awrs-smc", 1, 0)  # warm-up: first forward, tables, caches
    rows, points = [], {}
    seeds = [int(x) for x in a.seeds.split(",")] if a.seeds else [a.seed]
    index = {p: i for i, p in enumerate(valid)}  # a pattern's seed offset: its place in the file
    path = RESULTS / f"{a.name}.jsonl"
    done: dict[tuple, dict] = {}
    if a.resume and path.exists():
        for line in open(path):
            r = json.loads(line)
            done[(r["pattern"], r["method"], r["N"], r.get("seed", 0))] = r
    jobs = [(seed, N, m, p) for seed in seeds for N in ns for m in methods for p in valid]
    if a.pattern_major:
        # every seed and method of one pattern before the next, patterns in a fixed
        # random order (those already begun first): any prefix of the run is a random,
        # fully paired subset of the split
        order = list(np.random.default_rng(0).permutation(len(valid)))
        begun = {k[0] for k in done}
        order.sort(key=lambda i: valid[i] not in begun)
        jobs = [(seed, N, m, valid[i]) for i in order for seed in seeds for N in ns
                for m in methods]
    # one line per generation, written as it comes so an interrupted run keeps what it
    # measured (--resume appends to it and skips what it holds)
    out = open(path, "a" if a.resume else "w")
    for k, (seed, N, m, p) in enumerate(jobs):
        if (p, m, N, seed) in done:
            continue
        r = run_one(lm, p, m, N, seed=index[p] + 100_003 * seed, tau=a.ess_threshold)
        r["plain"] = math.nan if a.no_plain else plain_seconds(lm, p, N, r["steps"])
        done[(p, m, N, seed)] = {"pattern": p, "method": m, "N": N, "seed": seed, **r}
        out.write(json.dumps(done[(p, m, N, seed)]) + "\n")
        out.flush()
        print(f"{k + 1}/{len(jobs)} seed {seed} {m} N={N} {r['seconds']:.2f}s "
              f"success={r['success']:.2f}", file=sys.stderr, flush=True)
    out.close()
    for seed, N, m in [(seed, N, m) for seed in seeds for N in ns for m in methods]:
        rs = [done[(p, m, N, seed)] for p in valid if (p, m, N, seed) in done]
        if not rs:
            continue
        succ = float(np.mean([r["success"] for r in rs]))
        med = statistics.median(r["seconds"] for r in rs)
        plain = statistics.median(r["plain"] for r in rs)
        ratio = statistics.median(r["seconds"] / r["plain"] for r in rs)
        tokens = sum(r["tokens"] for r in rs)
        dead = [c for r in rs for c in r["dead_calls"]]
        dead_checks = [c for r in rs for c in r["dead_checks"]]
        rows.append((m, N, seed, len(rs), f"{succ:.3f}", f"{np.mean([r['ok'] for r in rs]):.3f}",
                     f"{max(r['bad_mass'] for r in rs):.3f}", f"{med:.2f}", f"{plain:.2f}",
                     f"{ratio:.2f}", f"{sum(r['checks'] for r in rs) / max(tokens, 1):.1f}",
                     f"{sum(r['calls'] for r in rs) / max(tokens, 1):.1f}",
                     f"{np.mean(dead_checks):.0f} / {np.mean(dead):.0f} ({len(dead)})"
                     if dead else "- (0)"))
        points.setdefault(m, []).append((med, succ, N))
        print(rows[-1], flush=True)
    body = (f"{len(valid)} patterns ({len(pats) - len(valid)} do not compile), "
            f"max {MAX_TOKENS} tokens, stop at a newline, default model. Seconds: median "
            "per generation, prefill included. The plain baseline keeps all N rows for every "
            "step (generate pads finished rows), where SMC drops finished and dead particles "
            "from the batch: its ratio favours SMC where particles end early.\n\n" + table(
        ["method", "N", "seed", "patterns run", "success", "ok rate", "max mass on non-matching", "median s / generation",
         "plain sampling s (same steps, N)", "median ratio to plain", "sampler checks / token",
         "predicate calls / token", "checks / calls per dead-end draw (draws)"], rows))
    report(a.name, "Pattern matching (AWRS paper domain): Python regex predicates", body)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for m, pts in points.items():
            xs, ys, labels = zip(*pts)
            ax.plot(xs, ys, "o-", label=m)
            for x, y, n in pts:
                ax.annotate(f"N={n}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("median seconds per generation")
        ax.set_ylabel("success (mass on matching strings)")
        ax.set_title(f"Pattern matching, {len(valid)} patterns")
        ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / f"{a.name}.png", dpi=120)
    except ImportError:
        print("matplotlib missing: no figure", file=sys.stderr)


if __name__ == "__main__":
    main()
