"""Same seed, same result: bit-for-bit across runs and processes, whatever the load.

Runs the default model a few times in this process with fixed seeds on two tasks (a
JSON schema: the compiled automaton and the fast-mask switch; a Python pattern
predicate: the slow path) and appends one line per run to
``results/reproducible.jsonl``: the posterior (texts and weights as float hex) and
``log_ml`` as float hex, with this process's id and the load average when it ran. Run
it in two processes, one while another process loads the CPU; ``--report`` compares
every line with the first of its task and writes the table.

Run: python benchmarks/reproducible.py [--runs 5] [--report]
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from awrs_adapters import generate, models
from awrs_adapters.constraints import JSONSchema, Predicate

try:
    from benchmarks.common import RESULTS, report, table
except ImportError:
    from common import RESULTS, report, table

PATH = RESULTS / "reproducible.jsonl"
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                           "age": {"type": "integer", "minimum": 0}},
          "required": ["name", "age"], "additionalProperties": False}


def tasks():
    import regex

    r = regex.compile(r"^(\w)(\w)(?:\2\1)+$")

    def prefix(s: str) -> bool:
        return r.fullmatch(s, partial=True) is not None  # see patterns.py

    yield ("json", [{"role": "user", "content": "Alice is 34. Give her as JSON."}],
           JSONSchema(PERSON), 40)
    yield ("pattern", [{"role": "user", "content": "Write one string that fully matches "
                        r"^(\w)(\w)(?:\2\1)+$"}],
           Predicate(lambda s: r.fullmatch(s) is not None, prefix=prefix), 24)


def run(runs: int) -> None:
    lm = models.load()
    torch.set_grad_enabled(False)
    with open(PATH, "a") as f:
        for _ in range(runs):
            for name, prompt, c, T in tasks():
                res = generate(lm, prompt, c, num_particles=8, max_tokens=T, seed=1234,
                               stop=["\n"])
                post = sorted((k, float(v).hex()) for k, v in res.posterior.items())
                row = {"task": name, "pid": os.getpid(), "load": os.getloadavg()[0],
                       "log_ml": float(res.log_ml).hex(), "posterior": post}
                f.write(json.dumps(row) + "\n")
                print(name, row["log_ml"], len(post), f"load {row['load']:.2f}", flush=True)


def summarise() -> None:
    rows = [json.loads(line) for line in open(PATH)]
    out = []
    for name in dict.fromkeys(r["task"] for r in rows):
        rs = [r for r in rows if r["task"] == name]
        first = rs[0]
        same = [r["log_ml"] == first["log_ml"] and r["posterior"] == first["posterior"]
                for r in rs]
        loads = np.array([r["load"] for r in rs])
        out.append((name, len(rs), len({r["pid"] for r in rs}), f"{loads.min():.2f}",
                    f"{loads.max():.2f}", sum(same), float.fromhex(first["log_ml"])))
    report("reproducible", "Same seed, same result across runs and processes",
           "Default model, N = 8, seed 1234; identical = posterior (texts and float64 "
           "weights) and log_ml equal bit for bit to the task's first run.\n\n"
           + table(["task", "runs", "processes", "load average (min)", "load average (max)",
                    "identical to the first", "log_ml"], out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--report", action="store_true", help="compare the lines written so far")
    a = ap.parse_args()
    if a.report:
        summarise()
    else:
        run(a.runs)


if __name__ == "__main__":
    main()
