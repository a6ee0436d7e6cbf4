"""Per-token cost of the constraint: AWRS versus exact masking, fast and slow paths.

For vocabularies of 1k and 10k tokens (the first ids of the SmolLM2 vocabulary), 49,152
(SmolLM2) and 262,144 (Gemma 3), the same format, a JSON-like record, is checked by
(a) a compiled outlines-core ``Regex`` (fast path) and (b) a Python predicate using the
``regex`` package's partial matching (slow path). The prior is synthetic and cheap:
Zipf-shaped logits over a random order, with a boost on the tokens the format allows
(a model that mostly follows the prompt), and little mass on tokens that are byte
fragments of a character (see ``prior_lm``). Only sampler time is counted (the LM's time is
measured separately by the engine and subtracted).

Run: python benchmarks/constraint_cost.py [--full]
"""

from __future__ import annotations

import argparse
import statistics
import zlib

import numpy as np
import regex
import torch

from awrs_adapters.api import make_rng
from awrs_adapters.constraints import Predicate, Regex
from awrs_adapters.lm import FunctionLM
from awrs_adapters.smc import SMC
from awrs_adapters.vocab import Vocabulary

try:
    from benchmarks.common import mmm, report, table
except ImportError:  # run as a script
    from common import mmm, report, table

BOOST = 10.0  # logit boost on the tokens the format allows: most of the mass on format
PATTERN = r'\{"name": "[A-Za-z ]{1,16}", "age": [0-9]{1,3}\}'


def vocabularies(full: bool) -> dict[str, Vocabulary]:
    from awrs_adapters import models

    smol = models.load("smollm2-135m-instruct").vocab
    out = {}
    for n in (1000, 10_000):
        toks = list(smol.tokens[: n - 1]) + [b""]
        special = [i for i in smol.special_ids if i < n - 1]
        out[f"{n // 1000}k (SmolLM2 ids < {n})"] = Vocabulary(toks, n - 1, special)
    out["49k (SmolLM2)"] = smol
    if full:
        out["262k (Gemma 3)"] = models.load("gemma3-270m").vocab
    return out


def prior_lm(vocab: Vocabulary, fast: Regex) -> FunctionLM:
    V = vocab.size
    bound = fast.bind(vocab)
    rank_logits = torch.from_numpy(-1.1 * np.log(np.arange(1, V + 1))).double()
    perms = [torch.from_numpy(np.random.default_rng(k).permutation(V)) for k in range(8)]
    # tokens that are not whole UTF-8 text (byte fragments of a character) get -8: a real
    # model writing an ASCII record puts little mass there, while a random Zipf head would
    # put a lot. A Predicate rejects a fragment one byte short of a character when no such
    # character fits, but holds back a lead byte two or three bytes short (thousands of
    # options): a particle that takes one meets a dead end that only a scan of the whole
    # vocabulary proves. (Without this penalty and with a +6 boost, the slow path measured
    # 24,600 checks/token before that rejection existed and ~4,300 after.)
    fragment = torch.zeros(V, dtype=torch.float64)
    for i, t in enumerate(vocab.tokens):
        try:
            t.decode("utf-8")
        except UnicodeDecodeError:
            fragment[i] = -8.0

    def next_logprobs(prefix: tuple[int, ...]) -> torch.Tensor:
        x = torch.empty(V, dtype=torch.float64)
        x[perms[zlib.crc32(repr(prefix).encode()) % 8]] = rank_logits
        x += fragment
        s = bound.initial_state()
        for t in prefix:
            if not bound.check(s, t):  # off format (a slow-path particle): no boost
                return x
            s = bound.advance(s, t)
        x[torch.from_numpy(bound.fast_mask(s))] += BOOST  # mostly on format
        return x

    return FunctionLM(vocab, vocab.eos_token_id, next_logprobs)


def slow_predicate() -> Predicate:
    pat = regex.compile(PATTERN)
    return Predicate(complete=lambda s: pat.fullmatch(s) is not None,
                     prefix=lambda s: pat.fullmatch(s, partial=True) is not None, name="regex-partial")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="add Gemma's 262k vocabulary, more repeats")
    ap.add_argument("--particles", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=48)  # 1k-token vocabularies spell the record in ~30 tokens
    a = ap.parse_args()
    repeats = 3 if a.full else 2
    fast = Regex(PATTERN)
    rows = []
    for vname, vocab in vocabularies(a.full).items():
        lm = prior_lm(vocab, fast)
        for path, c in (("fast (outlines-core)", fast), ("slow (Python)", slow_predicate())):
            for method in ("awrs-smc", "mask-smc"):
                if method == "mask-smc" and path.startswith("slow") and vocab.size > 60_000 and not a.full:
                    continue
                per_tok, checks, masks, valid = [], [], [], []
                for r in range(repeats):
                    smc = SMC(lm, None, c, num_particles=a.particles, max_tokens=a.max_tokens,
                              method=method, rng=make_rng(r))
                    res = smc.run()
                    st = res.stats
                    per_tok.append(1000 * st.sampler_seconds / st.tokens)
                    checks.append(st.checks_per_token)
                    masks.append(st.masks / st.tokens)
                    valid.append(all(fast.accepts(p.text) for p in res.particles
                                     if p.finished and p.log_weight > -np.inf) and res.ok)
                rows.append((vname, path, method, mmm(per_tok, "{:.2f}"),
                             f"{statistics.median(checks):.1f}", f"{statistics.median(masks):.2f}",
                             all(valid)))
    body = table(["vocabulary", "constraint path", "method", "sampler ms/token (min/med/max)",
                  "checks/token", "masks/token", "all valid"], rows)
    report("constraint_cost", "Per-token cost of the constraint: AWRS vs exact masking", body)


if __name__ == "__main__":
    main()
