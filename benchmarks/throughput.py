"""Throughput: many prompts sharing one forward per step (``generate_batch``).

Documents ("Alice Smith is 34 and lives in Paris.", ...) are turned into a
``Person(name, age 0-120, city)`` JSON object on the default model, N = 4 particles,
``max_tokens=48``: one ``generate`` after another, one ``generate_batch`` of all of them,
``ChatAWRS.with_structured_output(Person)``'s ``.batch`` and concurrent ``ainvoke``s
(``asyncio.gather``), and plain HF sampling of the same rows (every prompt × N, left-padded) for the same
number of steps in one ``model.generate`` (``do_sample=True, top_k=0``, forced to that
length): the cost of sampling those rows with no constraint and no weights. Reported:
wall seconds, generated tokens per second, the share of prompts whose posterior mode
parses as a Person, and the ratios to the plain baseline, measured side by side in one
run; then the peak memory of one ``generate_batch`` per ``max_rows`` bound, each in a
fresh process. ``--full``: 8 and 32 documents.

Run: python benchmarks/throughput.py [--docs 8,32 | --full] [--no-langchain]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time

import torch

from awrs_adapters import generate, generate_batch, models
from awrs_adapters.constraints import JSONSchema

try:
    from benchmarks.common import report, table
except ImportError:
    from common import report, table

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 30},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "city": {"type": "string", "maxLength": 20}},
    "required": ["name", "age", "city"], "additionalProperties": False}
PEOPLE = [("Alice Smith", 34, "Paris"), ("Bob Jones", 51, "Leeds"), ("Chen Wei", 27, "Xi'an"),
          ("Dana Cruz", 45, "Lima"), ("Emil Berg", 62, "Oslo"), ("Fatima Noor", 19, "Doha"),
          ("Goran Ilic", 38, "Split"), ("Hana Sato", 71, "Kyoto")]


def documents(n: int) -> list[list[dict]]:
    docs = []
    for k in range(n):
        name, age, city = PEOPLE[k % len(PEOPLE)]
        age = age + k // len(PEOPLE)
        docs.append([{"role": "user", "content": f"{name} is {age} and lives in {city}. "
                      "Give this person as JSON with name, age and city."}])
    return docs


def person_model():
    from pydantic import BaseModel, Field

    class Person(BaseModel):
        name: str = Field(max_length=30)
        age: int = Field(ge=0, le=120)
        city: str = Field(max_length=20)

    return Person


def langchain_rows(lm, docs, N: int, T: int, ainvoke_first: bool = False
                   ) -> list[tuple[str, float, int]]:
    """(how, wall seconds, valid) for ChatAWRS.with_structured_output(Person): .batch and
    concurrent ainvokes (asyncio.gather), in that order (or the reverse)."""
    from awrs_adapters.integrations.langchain import ChatAWRS

    Person = person_model()
    chat = ChatAWRS(lm=lm, num_particles=N, max_tokens=T, seed=0)
    runnable = chat.with_structured_output(Person)
    texts = [d[0]["content"] for d in docs]
    runnable.invoke(texts[0])  # warm-up: schema compiled

    def batch() -> tuple[str, float, int]:
        t0 = time.perf_counter()
        out = runnable.batch(texts, return_exceptions=True)
        return ("ChatAWRS .batch", time.perf_counter() - t0,
                sum(isinstance(o, Person) for o in out))

    async def gather():
        return await asyncio.gather(*(runnable.ainvoke(t) for t in texts), return_exceptions=True)

    def ainvoke() -> tuple[str, float, int]:
        t0 = time.perf_counter()
        out = asyncio.run(gather())
        return ("ChatAWRS concurrent ainvoke", time.perf_counter() - t0,
                sum(isinstance(o, Person) for o in out))

    if ainvoke_first:
        b = ainvoke()
        return [batch(), b]
    return [batch(), ainvoke()]


def pairs(lm, docs, N: int, T: int, k: int) -> str:
    """Concurrent ainvokes / .batch, k paired repetitions in alternating order."""
    import numpy as np

    r = []
    for i in range(k):
        (_, tb, _), (_, ta, _) = langchain_rows(lm, docs, N, T, ainvoke_first=bool(i % 2))
        r.append(ta / tb)
    x = np.array(r)
    se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return (f"\n\nConcurrent `ainvoke`s / `.batch`, {len(docs)} documents, {k} paired runs "
            "(alternating which goes first):\n\n" + table(
                ["runs", "median", "mean", "SE", "p95", "max", "ainvoke faster"],
                [(k, f"{np.median(x):.2f}", f"{x.mean():.2f}", f"{se:.2f}",
                  f"{np.percentile(x, 95):.2f}", f"{x.max():.2f}", f"{int((x < 1).sum())}/{k}")]))


def valid(r) -> bool:
    try:
        obj = json.loads(r.mode)
    except Exception:
        return False
    return isinstance(obj, dict) and set(obj) == {"name", "age", "city"}


def plain(lm, docs, N: int, steps: int) -> float:
    tok = lm.tokenizer
    ids = [lm.encode_prompt(d) for d in docs]
    width = max(map(len, ids))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    x = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    t0 = time.perf_counter()
    with torch.inference_mode():
        lm.model.generate(input_ids=x, attention_mask=mask, do_sample=True, top_k=0,
                          num_return_sequences=N, max_new_tokens=steps, min_new_tokens=steps,
                          pad_token_id=pad)
    return time.perf_counter() - t0


def hwm_mib() -> float:
    """Peak resident set of this process (VmHWM; ru_maxrss would include the forking
    parent's pages, since it survives exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_child(n: int, max_rows: int | None, N: int) -> None:
    """One generate_batch of ``n`` documents in this process; print wall s and peak RSS."""
    lm = models.load()
    torch.set_grad_enabled(False)
    base = hwm_mib()
    t0 = time.perf_counter()
    out = generate_batch(lm, documents(n), JSONSchema(PERSON), num_particles=N, max_tokens=48,
                         seed=0, max_rows=max_rows)
    secs = time.perf_counter() - t0
    peak = hwm_mib()
    print(json.dumps({"seconds": secs, "peak_mib": peak, "loaded_mib": base,
                      "valid": sum(map(valid, out))}))


def peak_rows(n: int, N: int) -> list[tuple]:
    """Peak resident memory of generate_batch(n documents) per max_rows, one process each."""
    rows = []
    for mr in (None, 64, 32, 16):
        cmd = [sys.executable, __file__, "--peak-child", str(n), "--n", str(N)]
        if mr is not None:
            cmd += ["--max-rows", str(mr)]
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True)
                       .stdout.strip().splitlines()[-1])
        rows.append((n, "none" if mr is None else mr, f"{r['seconds']:.1f}",
                     f"{r['loaded_mib']:.0f}", f"{r['peak_mib']:.0f}",
                     f"{r['peak_mib'] - r['loaded_mib']:.0f}", f"{r['valid']}/{n}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peak-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--max-rows", type=int, default=None)
    ap.add_argument("--no-peak", action="store_true", help="skip the memory table")
    ap.add_argument("--peak-only", action="store_true", help="only the memory table")
    ap.add_argument("--docs", default="8")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--no-langchain", action="store_true")
    ap.add_argument("--full", action="store_true", help="8 and 32 documents")
    ap.add_argument("--pairs", type=int, default=0,
                    help="also K paired runs of .batch vs concurrent ainvokes (largest count)")
    a = ap.parse_args()
    if a.peak_child is not None:
        peak_child(a.peak_child, a.max_rows, a.n)
        return
    if a.peak_only:
        n = 32 if a.full else max(int(x) for x in a.docs.split(","))
        print(table(["documents", "max_rows", "wall s", "MiB loaded", "MiB peak", "MiB added",
                     "valid"], peak_rows(n, a.n)))
        return
    lm = models.load()
    torch.set_grad_enabled(False)
    c = JSONSchema(PERSON)
    N, T = a.n, 48
    generate(lm, documents(1)[0], c, num_particles=N, max_tokens=4, seed=0)  # warm-up
    rows = []
    for n in [8, 32] if a.full else [int(x) for x in a.docs.split(",")]:
        docs = documents(n)
        t0 = time.perf_counter()
        one = [generate(lm, d, c, num_particles=N, max_tokens=T, seed=k) for k, d in enumerate(docs)]
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        bat = generate_batch(lm, docs, c, num_particles=N, max_tokens=T, seed=0)
        t_bat = time.perf_counter() - t0
        steps = max(r.stats.steps for r in bat)
        t_plain = plain(lm, docs, N, steps)
        toks_one = sum(r.stats.tokens for r in one)
        toks_bat = sum(r.stats.tokens for r in bat)
        rows.append((n, "generate, one after another", f"{t_one:.1f}", f"{toks_one / t_one:.0f}",
                     f"{sum(map(valid, one))}/{n}", f"{t_one / t_plain:.2f}"))
        rows.append((n, "generate_batch", f"{t_bat:.1f}", f"{toks_bat / t_bat:.0f}",
                     f"{sum(map(valid, bat))}/{n}", f"{t_bat / t_plain:.2f}"))
        rows.append((n, f"plain HF sampling, {n}×{N} rows, {steps} steps", f"{t_plain:.1f}",
                     f"{n * N * steps / t_plain:.0f}", "—", "1.00"))
        if not a.no_langchain:
            for how, secs, ok in langchain_rows(lm, docs, N, T):
                rows.append((n, how, f"{secs:.1f}", "—", f"{ok}/{n}", f"{secs / t_plain:.2f}"))
    body = table(["documents", "how", "wall s", "tokens/s", "valid", "× plain"], rows)
    if a.pairs and not a.no_langchain:
        n = 32 if a.full else max(int(x) for x in a.docs.split(","))
        body += pairs(lm, documents(n), N, T, a.pairs)
    if not a.no_peak:
        n = 32 if a.full else max(int(x) for x in a.docs.split(","))
        body += ("\n\nMemory: one `generate_batch` of the documents in a fresh process per "
                 "`max_rows` (peak resident set, after loading the model and during the run):\n\n")
        body += table(["documents", "max_rows", "wall s", "MiB loaded", "MiB peak",
                       "MiB added", "valid"], peak_rows(n, N))
    report("throughput", f"Throughput: Person JSON from documents, N = {N}", body)


if __name__ == "__main__":
    main()
