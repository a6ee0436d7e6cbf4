"""The OpenAI-compatible server under load: 16 sequential vs 16 concurrent clients.

The server (``awrs_adapters.server.create_app`` on the default model, uvicorn in this
process on a free port) gets the same 16 chat requests (a document -> a Person JSON object
under ``response_format`` json_schema strict, N = 4, ``max_tokens=48``, seed k for request
k) once one after another and once from 16 client threads at the same time (the openai
client). Reported: wall seconds, requests per second, the share of responses valid under
the schema (``jsonschema``), per-request latency (median, mean, p95, max) and the
concurrent/sequential ratio; then ``--reps`` paired repetitions of the ratio, alternating
which form goes first.

Run: python benchmarks/server.py [--requests 16] [--reps 1]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import threading
import time

import jsonschema
import numpy as np

try:
    from benchmarks.common import report, table
    from benchmarks.throughput import PERSON, documents
except ImportError:
    from throughput import PERSON, documents

    from common import report, table


def start_server(lm, name: str):
    import uvicorn

    from awrs_adapters.server import create_app

    app = create_app(lm, model_name=name)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, server.servers[0].sockets[0].getsockname()[1]


def one(client, name: str, doc: list[dict], k: int) -> tuple[float, bool]:
    t0 = time.perf_counter()
    r = client.chat.completions.create(
        model=name, messages=doc, max_tokens=48, seed=k, extra_body={"num_particles": 4},
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": PERSON, "strict": True}})
    secs = time.perf_counter() - t0
    try:
        jsonschema.validate(json.loads(r.choices[0].message.content), PERSON)
        return secs, True
    except (ValueError, jsonschema.ValidationError):
        return secs, False


def run(client, name: str, docs, together: bool) -> tuple[float, list[float], int]:
    t0 = time.perf_counter()
    if together:
        with concurrent.futures.ThreadPoolExecutor(len(docs)) as ex:
            out = list(ex.map(lambda a: one(client, name, *a), [(d, k) for k, d in enumerate(docs)]))
    else:
        out = [one(client, name, d, k) for k, d in enumerate(docs)]
    return time.perf_counter() - t0, [s for s, _ in out], sum(ok for _, ok in out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--full", action="store_true", help="3 paired repetitions")
    a = ap.parse_args()
    reps = 3 if a.full else a.reps
    import openai

    from awrs_adapters import models

    name = models.DEFAULT_MODEL
    lm = models.load(name)
    server, port = start_server(lm, name)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0,
                           timeout=600)
    docs = documents(a.requests)
    one(client, name, docs[0], 0)  # warm-up: the schema compiled, the model's first step
    rows, ratios = [], []
    for rep in range(reps):
        order = [False, True] if rep % 2 == 0 else [True, False]
        got = {}
        for conc in order:
            got[conc] = run(client, name, docs, conc)
        ratios.append(got[True][0] / got[False][0])
        if rep == 0:
            for conc in (False, True):
                wall, lat, ok = got[conc]
                x = np.array(lat)
                rows.append((f"{a.requests} {'concurrent' if conc else 'sequential'}",
                             f"{wall:.1f}", f"{a.requests / wall:.2f}", f"{ok}/{a.requests}",
                             f"{np.median(x):.2f}", f"{x.mean():.2f}",
                             f"{np.percentile(x, 95):.2f}", f"{x.max():.2f}"))
    server.should_exit = True
    body = table(["requests", "wall s", "requests/s", "valid", "latency median s", "mean",
                  "p95", "max"], rows)
    r = np.array(ratios)
    body += ("\n\nConcurrent / sequential wall time over paired repetitions (alternating "
             "order):\n\n" + table(["reps", "median", "mean", "min", "max"],
                                [(reps, f"{np.median(r):.2f}", f"{r.mean():.2f}",
                                  f"{r.min():.2f}", f"{r.max():.2f}")]))
    report("server", f"OpenAI-compatible server: {a.requests} Person requests, N = 4", body)


if __name__ == "__main__":
    main()
