"""Weights on float32 rows where the valid mass is tiny: mean and largest Ẑ/Z.

A model's next-token row comes as float32 (what ``TransformersLM`` returns); its
exp-sum differs from 1 by ~1e-7, so an estimator that reads the valid mass as
``1 − Σ rejected`` in float32 terms is off by far more than a valid mass of 1e-9, and
one such particle takes all the mass at the next resampling. The engine renormalises
every row in float64 (``awrs.float64_rows``); this benchmark measures the result.

Toy task (exact Z by enumeration): 3,000 tokens, three valid ones (``v0``-``v2``)
holding 7.5e-10 of the first row's mass, EOS after them with probability 0.6, a sound
prefix check; N = 8, 2 tokens. Each path runs over many seeds with the row as float64
and as float32 (logits drawn and normalised in float32): awrs-smc with the recursive
estimator on a Python predicate (rejection with trie pruning), the same with the
geometric estimator, on a regex (the exact-mask switch), and mask-smc; "one token at a
time" is a constraint with no byte-prefix pruning, so a draw rejects the ~3,000 other
tokens one by one and the running ``M = 1 − Σ rejected`` is exercised in full. "float32,
no renormalising" feeds the float32 row to the estimators as it is, without
``float64_rows``' renormalisation, to show which mechanism keeps the weights exact (the
exact re-sum of M when it falls below 1e-4 of its last exact value does it alone).

Default-model task: "Name a fruit." constrained to exactly ``Zxq`` by a Python
predicate (valid mass below 1e-9 at the first step); exact log Z by enumerating the
tokenizations of ``Zxq`` (one forward per prefix); Ẑ/Z per seed for awrs-smc and
mask-smc.

Run: python benchmarks/float32_weights.py [--runs 1000] [--model-runs 20] [--full]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from awrs_adapters import awrs as awrs_mod
from awrs_adapters import proposals as proposals_mod
from awrs_adapters.constraints import Predicate, Regex
from awrs_adapters.lm.function import FunctionLM
from awrs_adapters.protocol import BoundConstraint, Constraint
from awrs_adapters.smc import SMC

try:
    from benchmarks.common import report, table
except ImportError:
    from common import report, table

V = 3000
VALID = (b"v0", b"v1", b"v2")
VALID_MASS = 7.5e-10
P_EOS = 0.6
N = 8


class RowLM(FunctionLM):
    """A FunctionLM whose rows come in ``dtype`` (float32 like a transformers model)."""

    def __init__(self, vocab, eos, fn, dtype: torch.dtype) -> None:
        super().__init__(vocab, eos, fn)
        self.dtype = dtype

    def logprobs_of(self, prefix):
        hit = self._cache.get(prefix)
        if hit is None:
            hit = torch.log_softmax(torch.as_tensor(self.next_logprobs(prefix), dtype=self.dtype), -1)
            self._cache[prefix] = hit
        return hit


def toy(dtype: torch.dtype) -> tuple[RowLM, float]:
    """The toy model in ``dtype`` and its exact log Z (from the rows it returns)."""
    eos = V - 1
    tokens = [b"j%04d" % i for i in range(V - 1 - len(VALID))] + list(VALID) + [b""]
    valid_ids = list(range(V - 1 - len(VALID), V - 1))
    g = np.random.default_rng(7)
    first = g.normal(0.0, 2.0, V)
    first[eos] = -np.inf
    junk = np.ones(V, bool)
    junk[valid_ids] = False
    junk[eos] = False
    # put VALID_MASS on the valid tokens (split 1:2:3), the rest on the junk tokens
    first[junk] += np.log((1 - VALID_MASS) / np.exp(first[junk]).sum())
    first[valid_ids] = np.log(VALID_MASS * np.array([1, 2, 3]) / 6)
    after = np.full(V, np.log((1 - P_EOS) / (V - 1)))
    after[eos] = np.log(P_EOS)
    first_t = torch.tensor(first, dtype=dtype)
    after_t = torch.tensor(after, dtype=dtype)

    def fn(prefix):
        return first_t if not prefix else after_t

    lm = RowLM(tokens, eos, fn, dtype)
    lp1 = awrs_mod.float64_rows(lm.logprobs_of(())[None])[0]
    logz = np.logaddexp.reduce([lp1[y] + awrs_mod.float64_rows(lm.logprobs_of((y,))[None])[0][eos]
                                for y in valid_ids])
    return lm, float(logz)


def predicate() -> Predicate:
    words = [v.decode() for v in VALID]
    return Predicate(lambda s: s in words, prefix=lambda s: any(w.startswith(s) for w in words),
                     name="v0|v1|v2")


class OneOf(Constraint):
    """Exactly one of ``words``, checked token by token with no byte-prefix pruning, so a
    draw rejects the ~3,000 other tokens one at a time (the estimator's running
    ``1 − Σ rejected`` is exercised in full)."""

    def __init__(self, words: tuple[bytes, ...]) -> None:
        self.words = words

    def accepts(self, text: str) -> bool:
        return text.encode() in self.words

    def bind(self, vocab):
        return _OneOfBound(self.words, vocab)


class _OneOfBound(BoundConstraint):
    has_slow = True

    def __init__(self, words, vocab) -> None:
        self.words, self.vocab = words, vocab

    def initial_state(self) -> bytes:
        return b""

    def check(self, state: bytes, token_id: int) -> bool:
        if token_id == self.vocab.eos_token_id:
            return state in self.words
        return any(w.startswith(state + self.vocab.tokens[token_id]) for w in self.words)

    def advance(self, state: bytes, token_id: int) -> bytes:
        return state + self.vocab.tokens[token_id]


PATHS = {
    "awrs-smc recursive, one token at a time": dict(method="awrs-smc", c=lambda: OneOf(VALID)),
    "awrs-smc geometric, one token at a time": dict(method="awrs-smc", c=lambda: OneOf(VALID),
                                                    estimator="geometric"),
    "awrs-smc recursive, predicate": dict(method="awrs-smc", c=predicate),
    "awrs-smc geometric, predicate": dict(method="awrs-smc", c=predicate, estimator="geometric"),
    "awrs-smc recursive, regex (mask switch)": dict(method="awrs-smc", c=lambda: Regex("v[012]")),
    "mask-smc, predicate": dict(method="mask-smc", c=predicate),
    "mask-smc, one token at a time": dict(method="mask-smc", c=lambda: OneOf(VALID)),
}


def _unrenormalised(logp: torch.Tensor) -> np.ndarray:
    # the row as it comes, only widened: its exp-sum stays float32's, not 1
    return logp.detach().to("cpu", torch.float64).numpy()


def run_path(lm: RowLM, logz: float, spec: dict, runs: int) -> np.ndarray:
    """Ẑ/Z over ``runs`` seeds."""
    kw = {k: v for k, v in spec.items() if k not in ("c",)}
    c = spec["c"]()
    out = []
    for seed in range(runs):
        res = SMC(lm, None, c, num_particles=N, max_tokens=2, rng=np.random.default_rng(seed),
                  **kw).run()
        out.append(math.exp(res.log_ml - logz) if res.log_ml > -math.inf else 0.0)
    return np.array(out)


def summary(r: np.ndarray) -> tuple:
    se = r.std(ddof=1) / math.sqrt(len(r))
    return (len(r), f"{r.mean():.4f} ± {se:.4f}", f"{np.median(r):.4f}",
            f"{np.percentile(r, 95):.4f}", f"{r.max():.4f}", f"{r.min():.4f}")


def toy_table(runs: int, stress_runs: int) -> str:
    rows = []
    lms = {"float64": toy(torch.float64), "float32": toy(torch.float32)}
    for name, spec in PATHS.items():
        n = stress_runs if "one token at a time" in name else runs
        by = {}
        for dt, (lm, logz) in lms.items():
            t0 = time.perf_counter()
            by[dt] = r = run_path(lm, logz, spec, n)
            rows.append((name, dt, *summary(r), "", f"{time.perf_counter() - t0:.1f}"))
            print(rows[-1], flush=True)
        differ = int((np.abs(by["float32"] - by["float64"]) > 1e-6 * by["float64"]).sum())
        rows[-1] = (*rows[-1][:-2], f"{differ} of {n}", rows[-1][-1])
        if name == "awrs-smc recursive, one token at a time":
            lm, logz = lms["float32"]
            saved = awrs_mod.float64_rows, proposals_mod.float64_rows
            awrs_mod.float64_rows = proposals_mod.float64_rows = _unrenormalised
            try:
                r = run_path(lm, logz, spec, n)
            finally:
                awrs_mod.float64_rows, proposals_mod.float64_rows = saved
            rows.append((name, "float32, no renormalising", *summary(r), "", ""))
            print(rows[-1], flush=True)
    return table(["path", "row dtype", "runs", "mean Ẑ/Z ± s.e.", "median", "p95", "max", "min",
                  "seeds where float32 ≠ float64", "seconds"], rows)


def tail_table(draws: int) -> str:
    """The recursive estimator's tail, measured directly: one row, three valid tokens whose
    mass (2e-4) is small next to some invalid ones, ``draws`` AWRS draws."""
    V, m, valid = 40, 2e-4, [0, 1, 2]
    lp = np.random.default_rng(3).normal(0.0, 2.0, V)
    junk = np.ones(V, bool)
    junk[valid] = False
    lp[junk] += np.log((1 - m) / np.exp(lp[junk]).sum())
    lp[valid] = np.log(m * np.array([1, 2, 3]) / 6)
    bound = OneOfIds(V, valid)
    rows = []
    for dt in (torch.float64, torch.float32):
        row = torch.tensor(lp, dtype=dt).reshape(1, -1).expand(draws, V)
        out = awrs_mod.AWRS().sample(row, bound, [0] * draws, np.random.default_rng(0))
        w = np.array([math.exp(d.log_weight) for d in out]) / m
        rows.append((str(dt).split(".")[-1], *summary(w), f"{(w < 0.999).mean():.3f}",
                     f"{(w > 1.001).mean():.3f}"))
        print(rows[-1], flush=True)
    return (f"One row, V = {V}, valid mass {m:g} on three tokens, smallest invalid token "
            f"{np.exp(lp[junk]).min():.1e}, {draws:,} AWRS draws (recursive estimator), "
            "weight / valid mass:\n\n"
            + table(["row dtype", "draws", "mean ± s.e.", "median", "p95", "max", "min",
                     "share below 1", "share above 1"], rows))


class OneOfIds:
    """Token ids in ``allowed`` pass (state-free), no pruning: the bare estimator."""

    has_slow, has_fast, trivial = True, False, False

    def __init__(self, V: int, allowed: list[int]) -> None:
        from awrs_adapters.vocab import Vocabulary

        self.allowed = frozenset(allowed)
        self.vocab = Vocabulary([b"t%d" % i for i in range(V - 1)] + [b""], V - 1)

    def check(self, state, token_id: int) -> bool:
        return token_id in self.allowed

    def dead_prefix(self, state, token_id: int):
        return None


def model_table(runs: int) -> str:
    from awrs_adapters import models

    lm = models.load()
    torch.set_grad_enabled(False)
    prompt = [{"role": "user", "content": "Name a fruit."}]
    target = b"Zxq"
    c = Predicate(lambda s: s == "Zxq", prefix=lambda s: "Zxq".startswith(s), name="exactly Zxq")
    eos = lm.vocab.eos_token_id
    tokens = lm.vocab.tokens
    # every tokenization of the target: token sequences whose bytes concatenate to it
    pieces = {y: t for y, t in enumerate(tokens) if t and target.find(t) >= 0}

    def splits(rest: bytes) -> list[tuple[int, ...]]:
        if not rest:
            return [()]
        return [(y,) + s for y, t in pieces.items() if rest.startswith(t)
                for s in splits(rest[len(t):])]

    def row(prefix: tuple[int, ...]) -> np.ndarray:
        b = lm.start(prompt, 1)
        for y in prefix:
            b.extend([y])
        return awrs_mod.float64_rows(b.logprobs())[0]

    terms, first_valid = [], 0.0
    for seq in splits(target):
        lp = sum(row(seq[:i])[y] for i, y in enumerate(seq)) + row(seq)[eos]
        terms.append(lp)
    r0 = row(())
    first_valid = float(sum(np.exp(r0[y]) for y in {s[0] for s in splits(target)}))
    logz = float(np.logaddexp.reduce(terms))
    rows = []
    for method in ("awrs-smc", "mask-smc"):
        vals, secs = [], []
        for seed in range(runs):
            t0 = time.perf_counter()
            res = SMC(lm, prompt, c, num_particles=N, max_tokens=len(target) + 1, method=method,
                      rng=np.random.default_rng(seed)).run()
            secs.append(time.perf_counter() - t0)
            vals.append(math.exp(res.log_ml - logz) if res.log_ml > -math.inf else 0.0)
        v = np.array(vals)
        rows.append((method, *summary(v), f"{np.median(secs):.1f}"))
        print(rows[-1], flush=True)
    return (f"Exact log Z = {logz:.4f} over {len(terms)} tokenizations of `Zxq`; valid mass "
            f"of the first step {first_valid:.2e}.\n\n"
            + table(["method", "runs", "mean Ẑ/Z ± s.e.", "median", "p95", "max", "min",
                     "median s / run"], rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--stress-runs", type=int, default=200,
                    help="runs of the one-token-at-a-time paths (about 1 s each)")
    ap.add_argument("--model-runs", type=int, default=20)
    ap.add_argument("--tail-draws", type=int, default=200_000)
    ap.add_argument("--sections", default="toy,tail,model")
    ap.add_argument("--full", action="store_true", help="1,000 toy runs, 20 on the model")
    a = ap.parse_args()
    if a.full:
        a.runs, a.stress_runs, a.model_runs = 1000, 1000, 20
    sections = a.sections.split(",")
    body = ""
    if "toy" in sections:
        body += (f"Toy: V = {V}, valid mass {VALID_MASS:g} on three tokens, N = {N}, 2 "
                 "tokens.\n\n" + toy_table(a.runs, a.stress_runs))
    if "tail" in sections:
        body += "\n\n" + tail_table(a.tail_draws)
    if "model" in sections and a.model_runs:
        body += "\n\nDefault model, N = 8:\n\n" + model_table(a.model_runs)
    name = "float32_weights" if sections == ["toy", "tail", "model"] else \
        "float32_weights_" + "_".join(sections)
    report(name, "Weights on float32 rows with a tiny valid mass", body)


if __name__ == "__main__":
    main()
