"""Wall time of ``ChatAWRS(...).with_structured_output(Person).invoke`` on the default model.

The LCEL call a LangChain user makes: a pydantic ``Person`` with a field validator (the
JSON schema in the proposal, the validator checked on closed values), for N = 4 and 8
particles (``make bench``; ``--full`` adds 1 and 16). Reported: seconds per invoke
(min/median/max over prompts and repeats; the model loaded and the schema compiled
before timing), generated tokens per invoke, and the share of finished particles that
are valid ``Person`` objects.

Run: python benchmarks/langchain_structured.py [--full]
"""

from __future__ import annotations

import argparse
import statistics
import time

from awrs_adapters.integrations.langchain import ChatAWRS

try:
    from benchmarks.common import mmm, report, table
    from benchmarks.tasks import ValidatedPerson as Person
    from benchmarks.tasks import parses
except ImportError:
    from tasks import ValidatedPerson as Person
    from tasks import parses

    from common import mmm, report, table


TEXTS = ["Ada Lovelace died in 1852 at the age of 36.",
         "Alan Turing was 41 when he died.",
         "Grace Hopper retired from the Navy at 79."]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    a = ap.parse_args()
    sizes = (1, 4, 8, 16) if a.full else (4, 8)
    repeats = 2 if a.full else 1
    rows = []
    for N in sizes:
        secs, toks, ok = [], [], []
        for r in range(repeats):
            chat = ChatAWRS(num_particles=N, max_tokens=40, seed=r)
            runnable = chat.with_structured_output(Person, include_raw=True)
            runnable.invoke("Ada Lovelace, 36")  # warm-up: model loaded, schema compiled
            for text in TEXTS:
                t0 = time.perf_counter()
                out = runnable.invoke(f"Extract the person as JSON with name and age: {text}")
                secs.append(time.perf_counter() - t0)
                meta = out["raw"].response_metadata
                toks.append(out["raw"].usage_metadata["output_tokens"])
                fin = [p for p in meta["particles"] if p["finished"]]
                ok.append(sum(parses(Person, p["text"]) for p in fin) / max(1, len(fin)))
        rows.append((N, mmm(secs, "{:.2f}"), f"{statistics.median(toks):.0f}",
                     mmm(ok, "{:.2f}")))
    body = table(["N particles", "seconds per invoke (min/med/max)", "tokens per invoke (median)",
                  "valid share of finished particles"], rows)
    body += (f"\n\n{len(TEXTS)} prompts x {repeats} repeat(s) per N; max_tokens = 40; "
             "`with_structured_output(Person, include_raw=True)`.")
    report("langchain", "LangChain: with_structured_output(Person).invoke on SmolLM2-135M", body)


if __name__ == "__main__":
    main()
