"""Constraint checks per token: AWRS versus exact masking on a 10,000-token FunctionLM.

Run: ``python benchmarks/awrs_checks.py [--vocab 10000] [--particles 8] [--tokens 16]``.
A slow (Python) prefix check accepts tokens made only of an allowed alphabet; the share
of valid tokens is varied. AWRS checks only drawn candidates; mask-smc checks every
token with p > 0 (|V| per step).
"""

from __future__ import annotations

import argparse
import string
import time

import numpy as np

from awrs_adapters import generate
from awrs_adapters.constraints import Predicate
from awrs_adapters.lm import FunctionLM

try:
    from benchmarks.common import mmm, report, table
except ImportError:
    from common import mmm, report, table


def make_lm(V: int, seed: int = 0) -> FunctionLM:
    rng = np.random.default_rng(seed)
    letters = np.array(list(string.ascii_lowercase))
    toks = set()
    while len(toks) < V - 1:
        n = int(rng.integers(1, 4))
        toks.add("".join(rng.choice(letters, n)))
    vocab = [t.encode() for t in sorted(toks)] + [b""]
    base = rng.normal(0, 2.0, size=V)  # a peaked, Zipf-like prior shared by all steps

    def next_logprobs(prefix: tuple[int, ...]) -> np.ndarray:
        g = np.random.default_rng(hash(prefix) % 2**32)
        x = base + g.normal(0, 0.5, size=V)
        x[V - 1] = base.max() - 4.0 if len(prefix) >= 4 else -np.inf
        return x

    return FunctionLM(vocab, V - 1, next_logprobs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=10_000)
    ap.add_argument("--particles", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    lm = make_lm(a.vocab)
    rows = []
    for k in (20, 10, 4):
        alphabet = set(string.ascii_lowercase[:k])
        pred = Predicate(complete=lambda s: True, prefix=lambda s, al=alphabet: set(s) <= al)
        share = np.mean([set(t.decode()) <= alphabet for t in lm.vocab.tokens[:-1]])
        for method in ("awrs-smc", "mask-smc"):
            cpt, spt = [], []
            for r in range(a.repeats):
                t0 = time.perf_counter()
                res = generate(lm, None, pred, num_particles=a.particles, max_tokens=a.tokens,
                               method=method, seed=r)
                dt = time.perf_counter() - t0
                cpt.append(res.stats.checks_per_token)
                spt.append(dt / res.stats.tokens)
            rows.append((f"{share:.3f}", method, mmm(cpt, "{:.1f}"),
                         mmm([1000 * x for x in spt], "{:.2f}")))
    body = (f"V = {a.vocab}, N = {a.particles}, max_tokens = {a.tokens}, {a.repeats} repeats\n\n"
            + table(["valid share of V", "method", "checks/token (min/med/max)",
                     "ms/token (min/med/max)"], rows))
    report("awrs_checks", "Checks per token: AWRS vs exact masking (FunctionLM, slow predicate)", body)


if __name__ == "__main__":
    main()
