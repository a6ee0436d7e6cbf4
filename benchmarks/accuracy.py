"""Accuracy at equal particle budget: awrs-smc, lcd, sample-verify and mask-smc.

* Exact FunctionLM tasks: total-variation distance of one run's posterior to the exact
  posterior (min / median / max over runs).
* Real-model tasks (SmolLM2-135M-Instruct): JSON extraction into a pydantic model with
  validators, and an ISO-date regex format, against references written here. Validity =
  share of particles ending in a valid string; accuracy = posterior-weighted share of
  correct fields (JSON) or exact matches (dates); wall time per task.

Run: python benchmarks/accuracy.py [--full]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from pydantic import ValidationError

from awrs_adapters import generate, models
from awrs_adapters.constraints import Pydantic, Regex
from awrs_adapters.testing import exact_posterior, total_variation

try:
    from benchmarks.common import mmm, report, table
    from benchmarks.tasks import ValidatedPerson as Person
    from benchmarks.tasks import exact_tasks, parses
except ImportError:
    from tasks import ValidatedPerson as Person
    from tasks import exact_tasks, parses

    from common import mmm, report, table

METHODS = ("awrs-smc", "lcd", "sample-verify", "mask-smc")


PEOPLE = [
    ("Ada Lovelace died in 1852 at the age of 36.", {"name": "Ada Lovelace", "age": 36}),
    ("Alan Turing was 41 years old when he died.", {"name": "Alan Turing", "age": 41}),
    ("Marie Curie, aged 66, won two Nobel prizes.", {"name": "Marie Curie", "age": 66}),
    ("At 85, Grace Hopper was still giving talks.", {"name": "Grace Hopper", "age": 85}),
]
DATES = [
    ("Apollo 11 landed on the Moon on July 20, 1969.", "1969-07-20"),
    ("The meeting is on 5 March 2021.", "2021-03-05"),
    ("She was born on December 1st, 1990.", "1990-12-01"),
]


def exact_rows(runs: int, N: int) -> list[tuple]:
    rows = []
    for name, lm, c, T in exact_tasks():
        exact, _ = exact_posterior(lm, c, T)
        for m in METHODS:
            tvs = [total_variation(generate(lm, None, c, num_particles=N, max_tokens=T, method=m,
                                            seed=s).posterior, exact) for s in range(runs)]
            rows.append((name, m, N, mmm(tvs)))
    return rows


def person_score(text: str, ref: dict) -> float:
    try:
        p = Person.model_validate_json(text)
    except ValidationError:
        return 0.0
    return (float(p.name == ref["name"]) + float(p.age == ref["age"])) / 2


def real_tasks(N: int, full: bool) -> list[tuple]:
    lm = models.load()
    rows = []
    pyd = Pydantic(Person)
    iso = Regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
    tasks = [("JSON Person (pydantic validators)", pyd, PEOPLE, 48,
              "Extract the person's full name and age as JSON {{\"name\": ..., \"age\": ...}}: {}",
              lambda t, ref: person_score(t, ref), lambda t: person_score(t, {"name": "", "age": -1}) >= 0 and _valid_person(t)),
             ("ISO date (regex)", iso, DATES, 10,
              "Write the date in this sentence as YYYY-MM-DD, nothing else: {}",
              lambda t, ref: float(t == ref), lambda t: iso.accepts(t))]
    for tname, c, items, T, template, score, valid in tasks:
        for m in METHODS:
            if m == "mask-smc" and isinstance(c, Pydantic) and not full:
                rows.append((tname, m, N, "skipped (--full: |V| Python checks per step)", "", ""))
                continue
            vals, accs, secs = [], [], []
            for i, (text, ref) in enumerate(items):
                t0 = time.perf_counter()
                r = generate(lm, [{"role": "user", "content": template.format(text)}], c,
                             num_particles=N, max_tokens=T, method=m, seed=i)
                secs.append(time.perf_counter() - t0)
                fin = [p for p in r.particles if p.finished and p.log_weight > -np.inf]
                vals.append(sum(valid(p.text) for p in fin) / N)
                accs.append(sum(w * score(s, ref) for s, w in r.posterior.items()))
            rows.append((tname, m, N, f"{statistics.mean(vals):.2f}", f"{statistics.mean(accs):.2f}",
                         mmm(secs, "{:.1f}")))
    return rows


def _valid_person(t: str) -> bool:
    return parses(Person, t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    a = ap.parse_args()
    N = 8 if a.full else 4
    ex = exact_rows(runs=30 if a.full else 10, N=64)
    body = "### Exact FunctionLM tasks (one run's posterior vs the exact one)\n\n"
    body += table(["task", "method", "particles", "TV to exact (min/med/max)"], ex)
    body += "\n\n### Real model (SmolLM2-135M-Instruct), chat prompts\n\n"
    body += table(["task", "method", "particles", "validity", "weighted accuracy",
                   "seconds per item (min/med/max)"], real_tasks(N, a.full))
    body += f"\n\nItems: {len(PEOPLE)} people, {len(DATES)} dates: {json.dumps([d for d, _ in DATES])}"
    report("accuracy", "Accuracy at equal particle budget", body)


if __name__ == "__main__":
    main()
