"""Overhead over the model itself: AWRS-SMC with a JSON schema versus plain decoding.

On the default model (SmolLM2-135M-Instruct) with a chat prompt asking for a JSON
record, for N = 1, 4, 8, 16 particles:

* ``plain``: ``model.generate(do_sample=True, top_k=0, num_return_sequences=N)`` forced
  to exactly T new tokens: unconstrained batched decoding, the model's own speed;
* ``awrs-smc``: ``awrs_adapters.generate(lm, prompt, JSONSchema(Person), num_particles=N)``;
* ``smc_generate``: the same through ``model.generate(custom_generate=smc_generate)``.

Time per generated token = wall time / tokens drawn (our particles finish and leave the
batch, so a step has at most N rows). Ratio = ours / plain at the same N (1.0 is the
limit). The constraint is compiled before timing (its compile time is reported apart).

Run: python benchmarks/overhead.py [--full]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from awrs_adapters import generate, models
from awrs_adapters.constraints import JSONSchema
from awrs_adapters.integrations.transformers import smc_generate

try:
    from benchmarks.common import mmm, report, table
    from benchmarks.tasks import PERSON_PROMPT as PROMPT
    from benchmarks.tasks import Person
except ImportError:
    from tasks import PERSON_PROMPT as PROMPT
    from tasks import Person

    from common import mmm, report, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--tokens", type=int, default=24)
    a = ap.parse_args()
    repeats = 5 if a.full else 3
    lm = models.load()
    model, tok = lm.model, lm.tokenizer
    c = JSONSchema(Person)
    t0 = time.perf_counter()
    c.bind(lm.vocab)
    compile_s = time.perf_counter() - t0
    ids = lm.encode_prompt(PROMPT)
    inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    T = a.tokens
    rows = []
    summary = {}
    for N in (1, 4, 8, 16):
        plain, ours, ours_gen = [], [], []
        for r in range(repeats):
            torch.manual_seed(r)
            t0 = time.perf_counter()
            model.generate(**inputs, do_sample=True, top_k=0, max_new_tokens=T, min_new_tokens=T,
                           num_return_sequences=N, pad_token_id=tok.eos_token_id)
            plain.append(1000 * (time.perf_counter() - t0) / (N * T))
            res = generate(lm, PROMPT, c, num_particles=N, max_tokens=T, seed=r)
            ours.append(1000 * (res.stats.seconds + res.stats.setup_seconds) / res.stats.tokens)
            t0 = time.perf_counter()
            out = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=c,
                                 num_particles=N, max_new_tokens=T, do_sample=True, top_k=0,
                                 awrs_tokenizer=tok, seed=r)
            ours_gen.append(1000 * (time.perf_counter() - t0) / out.results[0].stats.tokens)
        mp, mo, mg = (statistics.median(x) for x in (plain, ours, ours_gen))
        summary[N] = (mo / mp, mg / mp)
        rows.append((N, mmm(plain, "{:.1f}"), mmm(ours, "{:.1f}"), f"{mo / mp:.2f}",
                     mmm(ours_gen, "{:.1f}"), f"{mg / mp:.2f}"))
    body = table(["N", "plain generate ms/token (min/med/max)", "awrs-smc ms/token", "ratio",
                  "generate(custom_generate=smc_generate) ms/token", "ratio"], rows)
    body += (f"\n\nJSON schema compile (outlines-core index over 49,152 tokens, cached after "
             f"the first use): {compile_s:.2f} s. T = {T} tokens, {repeats} repeats; ratios "
             "are of medians.")
    report("overhead", "Overhead over the model: AWRS-SMC with a JSON schema vs plain decoding", body)


if __name__ == "__main__":
    main()
