"""Logits processors inside ``model.generate``: ``AWRSLogitsProcessor`` vs Outlines' own.

On the default model (SmolLM2-135M-Instruct, 49,152 tokens) with a chat prompt asking for
a JSON ``Person``, the same ``model.generate(do_sample=True, top_k=0, num_return_sequences=N)``
call runs with each ``logits_processor``:

* ``none``: no processor (unconstrained; the model's own speed);
* ``awrs``: :class:`AWRSLogitsProcessor` (rejection sampling over the scores; no mask);
* ``outlines_core`` / ``llguidance``: Outlines' processors from
  ``outlines.backends.get_json_schema_logits_processor`` (a full-vocabulary mask per row).

All are locally constrained decoding (the same target distribution). Reported: wall ms
per generated token (tokens up to and including each row's EOS), the share of rows that
parse as ``Person``, and the ratio to ``outlines_core`` at the same N. Each processor is
built and warmed up (index compiled) before timing.

Run: python benchmarks/processor_compare.py [--full]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from transformers import LogitsProcessorList

from awrs_adapters import models
from awrs_adapters.constraints import JSONSchema
from awrs_adapters.integrations.transformers import AWRSLogitsProcessor
from awrs_adapters.lm.tokenizer_bytes import end_token_ids

try:
    from benchmarks.common import mmm, report, table
    from benchmarks.tasks import PERSON_PROMPT, Person, parses
except ImportError:
    from tasks import PERSON_PROMPT, Person, parses

    from common import mmm, report, table


def _tokens_and_texts(out: torch.Tensor, start: int, tok, ends: set[int]) -> tuple[int, list[str]]:
    total, texts = 0, []
    for row in out[:, start:].tolist():
        n = next((i + 1 for i, t in enumerate(row) if t in ends), len(row))
        total += n
        texts.append(tok.decode([t for t in row[:n] if t not in ends]))
    return total, texts


def main() -> None:
    import outlines
    from outlines.backends import get_json_schema_logits_processor

    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--tokens", type=int, default=40)
    a = ap.parse_args()
    repeats = 5 if a.full else 3
    sizes = (1, 4, 8) if a.full else (1, 4)
    lm = models.load()
    model, tok = lm.model, lm.tokenizer
    ids = lm.encode_prompt(PERSON_PROMPT)
    inputs = {"input_ids": torch.tensor([ids]),
              "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    ends = set(end_token_ids(tok))
    om = outlines.from_transformers(model, tok)
    # the schema every processor gets: Person's, with additionalProperties false (what
    # JSONSchema(Person) derives and outlines-core assumes; llguidance would allow keys)
    schema = json.dumps(JSONSchema(Person).schema)

    def make(name: str):
        if name == "none":
            return None
        if name == "awrs":
            return AWRSLogitsProcessor(JSONSchema(Person), tok, seed=0)
        return get_json_schema_logits_processor(name, om, schema)

    names = ("none", "awrs", "outlines_core", "llguidance")
    procs, build_s = {}, {}
    for name in names:
        t0 = time.perf_counter()
        procs[name] = make(name)
        build_s[name] = time.perf_counter() - t0

    def run(name: str, N: int, seed: int) -> tuple[float, int, list[str]]:
        p = procs[name]
        if p is not None and hasattr(p, "reset"):
            p.reset()
        kw = {"logits_processor": LogitsProcessorList([p])} if p is not None else {}
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        out = model.generate(**inputs, do_sample=True, top_k=0, max_new_tokens=a.tokens,
                             num_return_sequences=N, pad_token_id=tok.eos_token_id, **kw)
        secs = time.perf_counter() - t0
        n, texts = _tokens_and_texts(out, len(ids), tok, ends)
        return secs, n, texts

    for name in names:  # warm-up: indexes compiled, tensors allocated
        run(name, 1, 999)
    rows = []
    for N in sizes:
        med = {}
        stats = {}
        for name in names:
            ms, ok = [], []
            for r in range(repeats):
                secs, n, texts = run(name, N, r)
                ms.append(1000 * secs / n)
                ok.append(sum(parses(Person, t) for t in texts) / len(texts))
            med[name] = statistics.median(ms)
            stats[name] = (ms, ok)
        for name in names:
            ms, ok = stats[name]
            rows.append((N, name, mmm(ms, "{:.1f}"), f"{med[name] / med['outlines_core']:.2f}",
                         f"{med[name] / med['none']:.2f}", mmm(ok, "{:.2f}")))
    body = table(["N", "logits processor", "ms/token (min/med/max)", "vs outlines_core",
                  "vs none", "valid share (none: unconstrained)"], rows)
    body += ("\n\nBuild time of each processor (index compile, first use of this schema): "
             + ", ".join(f"{k} {v:.2f} s" for k, v in build_s.items() if k != "none")
             + f". max_new_tokens = {a.tokens}, {repeats} repeats; ratios are of medians.")
    report("processors", "Logits processors in model.generate: AWRS vs Outlines (JSON schema)", body)


if __name__ == "__main__":
    main()
