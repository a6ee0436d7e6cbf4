"""Outlines' own transformers generator next to ours, on the same model and tasks.

Tasks: JSON extraction into ``Person`` (JSON schema) and an ISO date (regex), on
SmolLM2-135M-Instruct with chat prompts. Outlines masks the whole vocabulary at every
step (one sample per call); ours: AWRS-SMC with N particles (one posterior per call) and
our LCD with one particle (the same target as Outlines). Reported: seconds per call and
the share of returned strings that are valid (min/median/max over calls).

Run: python benchmarks/outlines_compare.py [--full]
"""

from __future__ import annotations

import argparse
import time

import torch

from awrs_adapters import generate, models
from awrs_adapters.constraints import JSONSchema, Regex

try:
    from benchmarks.common import mmm, report, table
    from benchmarks.tasks import DATE, Person, parses
except ImportError:
    from tasks import DATE, Person, parses

    from common import mmm, report, table

TASKS = [
    ("JSON Person", "Extract the person as JSON with name and age: Ada Lovelace died at 36.", 40),
    ("ISO date", "When did Apollo 11 land on the Moon? Answer as YYYY-MM-DD.", 12),
]


def valid(task: str, text: str) -> bool:
    if task == "JSON Person":
        return parses(Person, text)
    return Regex(DATE).accepts(text)


def main() -> None:
    import outlines
    from outlines.types import Regex as ORegex

    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--particles", type=int, default=4)
    a = ap.parse_args()
    calls = 5 if a.full else 2
    lm = models.load()
    om = outlines.from_transformers(lm.model, lm.tokenizer)
    rows = []
    for task, question, T in TASKS:
        msgs = [{"role": "user", "content": question}]
        text_prompt = lm.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        ours_c = JSONSchema(Person) if task == "JSON Person" else Regex(DATE)
        gen = outlines.Generator(om, Person if task == "JSON Person" else ORegex(DATE))
        gen(text_prompt, max_new_tokens=T, do_sample=True)  # warm-up: compile the index
        ours_c.bind(lm.vocab)
        for name in ("outlines (mask, 1 sample)", "awrs lcd (1 particle)",
                     f"awrs-smc ({a.particles} particles)"):
            secs, oks = [], []
            for i in range(calls):
                torch.manual_seed(i)
                t0 = time.perf_counter()
                if name.startswith("outlines"):
                    out = [gen(text_prompt, max_new_tokens=T, do_sample=True)]
                else:
                    n = 1 if "lcd" in name else a.particles
                    r = generate(lm, msgs, ours_c, num_particles=n, max_tokens=T,
                                 method="lcd" if "lcd" in name else "awrs-smc", seed=i)
                    out = [r.mode] if r.ok else [""]
                secs.append(time.perf_counter() - t0)
                oks.append(sum(valid(task, o) for o in out) / len(out))
            rows.append((task, name, mmm(secs, "{:.2f}"), mmm(oks, "{:.2f}")))
    body = table(["task", "generator", "seconds per call (min/med/max)", "valid share"], rows)
    body += ("\n\nOutlines returns one sample per call; AWRS-SMC returns a weighted posterior "
             "over N particles per call (its `text` is the posterior mode).")
    report("outlines", "Outlines' transformers generator vs ours (same model, same tasks)", body)


if __name__ == "__main__":
    main()
