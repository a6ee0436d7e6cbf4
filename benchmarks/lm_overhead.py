"""Overhead of TransformersLM over a plain model forward, and first vs cached load times.

What it measures, on an embedded model (default SmolLM2-135M-Instruct):

* one decoding step at N = 1, 4, 16 particles through ``TransformersLM``
  (``batch.extend(tokens)`` + ``batch.logprobs()``: forward, log-softmax, EOS merge)
  versus a plain ``model(input_ids, cache=..., use_cache=True)`` forward with the same
  batch and the same KV cache length (each timed step is cropped back, the two are
  interleaved; medians of ``--repeats``); the ratio is the overhead (target <= 1.05);
* the same step right after a resampling with duplicate ancestors (the KV-cache gather);
* the first load (GGUF conversion into a fresh cache folder) and a cached load, each in
  a fresh Python process (``load()`` call only, and the whole process).

Run::

    .venv/bin/python benchmarks/lm_overhead.py            # prints a markdown table
    .venv/bin/python benchmarks/lm_overhead.py --skip-load --repeats 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch

try:
    from benchmarks.common import report, table
except ImportError:
    from common import report, table

PROMPT = [{"role": "user", "content": "Extract the date from: 'We met on the 3rd of May 2021 in Paris.' Answer in ISO format."}]

LOAD_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
from awrs_adapters.models import load
import transformers  # noqa: F401  (import time is reported apart)
t1 = time.perf_counter()
lm = load(sys.argv[1], cache_dir=sys.argv[2])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1}))
"""


def _load_times(name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="awrs-bench-cache-") as d:
        out: dict[str, Any] = {}
        for label in ("first", "cached"):
            t = time.perf_counter()
            p = subprocess.run(
                [sys.executable, "-c", LOAD_SNIPPET, name, d],
                capture_output=True,
                text=True,
                check=True,
            )
            wall = time.perf_counter() - t
            r = json.loads(p.stdout.strip().splitlines()[-1])
            out[label] = {"load_s": r["load_s"], "process_s": wall, "import_s": r["import_s"]}
        return out


def _plain_forward(lm: Any, x: torch.Tensor, cache: Any) -> Any:
    return lm.model(input_ids=x, **{lm._cache_arg: cache}, use_cache=True)


def _step_times(lm: Any, n: int, repeats: int, warmup: int = 3) -> dict[str, float]:
    ids = lm.encode_prompt(PROMPT)
    g = torch.Generator().manual_seed(n)
    batch = lm.start(PROMPT, n)
    batch.logprobs()
    # the plain side: the same prompt, prefilled and repeated the same way
    with torch.inference_mode():
        out = lm.model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)
        cache = getattr(out, "cache", None) or out.past_key_values
        cache.batch_repeat_interleave(n)
    # one warm step each so both caches hold prompt + 1 token
    toks = torch.randint(200, 40000, (n,), generator=g).tolist()
    batch.extend(toks)
    with torch.inference_mode():
        _plain_forward(lm, torch.tensor(toks).reshape(n, 1), cache)
    t_lm: list[float] = []
    t_plain: list[float] = []
    t_resample: list[float] = []
    dup = [0] * n if n == 1 else [i // 2 for i in range(n)]  # duplicates, a typical resample
    for r in range(warmup + repeats):
        toks = torch.randint(200, 40000, (n,), generator=g).tolist()
        # TransformersLM step
        t = time.perf_counter()
        batch.extend(toks)
        batch.logprobs()
        dt_lm = time.perf_counter() - t
        batch.cache.crop(-1)
        # plain forward, same batch and cache length
        with torch.inference_mode():
            x = torch.tensor(toks, dtype=torch.long).reshape(n, 1)
            t = time.perf_counter()
            _plain_forward(lm, x, cache)
            dt_plain = time.perf_counter() - t
            cache.crop(-1)
        # a resampling (duplicate ancestors) then a step: includes the KV-cache gather
        t = time.perf_counter()
        batch.select(dup)
        batch.extend(toks)
        batch.logprobs()
        dt_res = time.perf_counter() - t
        batch.cache.crop(-1)
        if r >= warmup:
            t_lm.append(dt_lm)
            t_plain.append(dt_plain)
            t_resample.append(dt_res)
    return {
        "lm_ms": 1000 * statistics.median(t_lm),
        "plain_ms": 1000 * statistics.median(t_plain),
        "resample_ms": 1000 * statistics.median(t_resample),
        "lm_min_ms": 1000 * min(t_lm),
        "plain_min_ms": 1000 * min(t_plain),
        "kv_len": len(ids) + 1,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--sizes", default="1,4,16")
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--skip-load", action="store_true", help="skip the first/cached load timing")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from awrs_adapters.models import load

    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lm = load(args.model)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        r = _step_times(lm, n, args.repeats)
        rows.append((n, r))
    lines = [f"Model {args.model}, load average {load_avg} before the run. KV cache length "
             f"{rows[0][1]['kv_len']} (chat prompt + 1), median of {args.repeats} steps.", ""]
    lines.append(table(
        ["N", "plain forward (ms)", "TransformersLM step (ms)", "ratio", "ratio of minima",
         "resample + step (ms)"],
        [(n, f"{r['plain_ms']:.1f}", f"{r['lm_ms']:.1f}", f"{r['lm_ms'] / r['plain_ms']:.3f}",
          f"{r['lm_min_ms'] / r['plain_min_ms']:.3f}", f"{r['resample_ms']:.1f}") for n, r in rows]))
    if not args.skip_load:
        lt = _load_times(args.model)
        lines += ["", table(["load", "load() (s)", "whole process (s)", "imports (s)"],
                            [(label, f"{lt[label]['load_s']:.1f}", f"{lt[label]['process_s']:.1f}",
                              f"{lt[label]['import_s']:.1f}") for label in ("first", "cached")])]
    report("lm_overhead", "TransformersLM step vs a plain forward pass (same cache, same N)",
           "\n".join(lines))


if __name__ == "__main__":
    main()
