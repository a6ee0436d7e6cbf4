"""Time per step of awrs-smc on the vLLM backend versus TransformersLM (``.venv-vllm``).

What it measures, on the embedded default model (SmolLM2-135M-Instruct, float32): one
``generate`` with a JSON-schema constraint at N = 1, 8, 32 particles, ``max_tokens``
steps, through ``TransformersLM`` and through ``VLLMLM`` (in-process vLLM engine, prefix
caching, 32-token KV blocks on CPU), interleaved, ``--repeats`` times each; the table gives the
median seconds per step (wall time / steps), the ratio vLLM / transformers, and the share
of the tokens sent to vLLM that its prefix cache served.

Run (needs vLLM: ``make install-vllm``)::

    .venv-vllm/bin/python benchmarks/vllm_backend.py            # prints a markdown table
    .venv-vllm/bin/python benchmarks/vllm_backend.py --ns 1,8 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import time

try:
    from benchmarks.common import report, table
except ImportError:
    from common import report, table

PROMPT = [{"role": "user", "content": "Describe a person as JSON with a name, an age and a city."}]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                           "city": {"type": "string"}},
          "required": ["name", "age", "city"], "additionalProperties": False}


def max_kl(hf, vl) -> float:
    """Largest KL(hf || vLLM) of next-token distributions, over prompts, steps and rows."""
    import torch

    prompts = [PROMPT, "The capital of France is",
               [{"role": "user", "content": "Is the sky blue? One word."}]]
    worst = 0.0
    for p in prompts:
        a, b = hf.start(p, 2), vl.start(p, 2)
        for _ in range(4):
            la, lb = a.logprobs().double(), b.logprobs().double()
            pa = la.exp()
            terms = torch.where(pa > 0, pa * (la - lb), torch.zeros_like(pa))
            worst = max(worst, float(terms.sum(-1).max()))
            nxt = [int(la[0].argmax()), int(la[1].topk(2).indices[1])]
            a.extend(nxt)
            b.extend(nxt)
    return worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns", default="1,8,32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=40)
    args = ap.parse_args()

    from awrs_adapters import generate
    from awrs_adapters.constraints import JSONSchema
    from awrs_adapters.models import load

    backends = {"transformers": load(), "vllm": load(backend="vllm", enforce_eager=True)}
    kl = max_kl(backends["transformers"], backends["vllm"])
    c = JSONSchema(SCHEMA)
    for lm in backends.values():  # warm-up: index compile, engine graphs, first cache
        generate(lm, PROMPT, c, num_particles=2, max_tokens=4, seed=0)
    rows = []
    for n in [int(x) for x in args.ns.split(",")]:
        per: dict[str, list[float]] = {k: [] for k in backends}
        cached = []
        for r in range(args.repeats):
            for name, lm in backends.items():
                before = (lm.stats.prompt_tokens, lm.stats.cached_tokens) if name == "vllm" else None
                t0 = time.perf_counter()
                res = generate(lm, PROMPT, c, num_particles=n, max_tokens=args.max_tokens, seed=r)
                dt = time.perf_counter() - t0
                per[name].append(dt / max(res.stats.steps, 1))
                if before is not None:
                    sent = lm.stats.prompt_tokens - before[0]
                    cached.append((lm.stats.cached_tokens - before[1]) / max(sent, 1))
        hf, vl = statistics.median(per["transformers"]), statistics.median(per["vllm"])
        rows.append([n, f"{hf * 1000:.1f}", f"{vl * 1000:.1f}", f"{vl / hf:.2f}",
                     f"{statistics.median(cached):.3f}"])
    body = table(["N", "transformers ms / step", "vLLM ms / step", "ratio vLLM / transformers",
                  "share of sent tokens served by the prefix cache"], rows)
    body += (f"\n\nParity: largest KL(transformers || vLLM) of the next-token distribution over "
             f"3 prompts x 4 steps x 2 rows: {kl:.2e} nats.")
    report("vllm_backend", "awrs-smc per step: vLLM backend vs TransformersLM", body)


if __name__ == "__main__":
    main()
