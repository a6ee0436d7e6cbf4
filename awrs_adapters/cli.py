"""The ``awrs`` command line: constrained generation and the embedded models.

Overview::

    awrs generate --prompt "Give a date" --regex "\\d{4}-\\d{2}-\\d{2}" --particles 8
    awrs generate --prompt "Extract: Ada, 36" --pydantic mymodule:Person --json
    awrs generate --prompts-file docs.txt --pydantic mymodule:Person > people.jsonl
    awrs models

``generate`` prints the posterior table and the answer (``--answer``: a posterior draw,
the default, or the mode), or, with ``--json``, one JSON object (``SMCResult.to_dict``
with ``text`` the answer and ``mode`` the most probable string);
with ``--prompts-file`` it prints one such object per prompt (JSON lines, with ``index``
and, for a prompt that failed, ``error``), every prompt's particles stepping together
(:func:`~awrs_adapters.batching.generate_batch`). It runs through
:func:`~awrs_adapters.generate` (the one entry point); a tqdm progress bar (steps, live
particles, ESS) goes to stderr when it is a terminal, unless ``--quiet``. Exit codes: 0 ok, 1 no valid sample, 2 bad arguments.

Example::

    >>> from awrs_adapters.cli import main
    >>> main(["models"])
    name                     installed  converted  description
    smollm2-135m-instruct    True       True       SmolLM2-135M-Instruct (Apache-2.0), chat template, 49,152 tokens (default)
    gemma3-270m              True       True       Gemma 3 270M base (Gemma terms), no chat template, 262,144 tokens
    0
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .api import DEFAULT_MAX_TOKENS
from .errors import AWRSError, ConfigError, NoValidSampleError
from .models import BACKENDS
from .smc import METHODS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="awrs", description="Constrained generation with AWRS-SMC.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="sample constrained output from a model")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the user message (or raw text with --raw)")
    src.add_argument("--prompts-file", metavar="FILE",
                     help="many prompts, one per line (text, or a JSON object with 'prompt' and "
                          "optionally 'seed'); they share each step's forward; one JSON object "
                          "per prompt is printed, in order")
    c = g.add_mutually_exclusive_group()
    c.add_argument("--regex", help="a regular expression the whole output must match")
    c.add_argument("--json-schema", metavar="FILE", help="a JSON-schema file")
    c.add_argument("--pydantic", metavar="MODULE:CLASS", help="a pydantic model, e.g. app.models:Person")
    c.add_argument("--grammar", metavar="FILE", help="a Lark grammar file")
    g.add_argument("--model", default="smollm2-135m-instruct",
                   help="embedded model name (see `awrs models`), HF id or local folder")
    g.add_argument("--backend", default="transformers", choices=BACKENDS,
                   help="run the model with transformers (default) or an in-process vLLM "
                        "engine (needs the vllm extra)")
    g.add_argument("--particles", type=int, default=8, help="number of particles (default 8)")
    g.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help=f"tokens per particle (default {DEFAULT_MAX_TOKENS}, as generate())")
    g.add_argument("--method", default="awrs-smc", choices=METHODS)
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--system", default=None, help="a system message (chat models)")
    g.add_argument("--raw", action="store_true", help="use the prompt as is (no chat template)")
    g.add_argument("--answer", default="draw", choices=("draw", "mode"),
                   help="the output's 'text': a draw from the posterior (default, as every "
                        "wrapper) or its most probable string")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("models", help="list the embedded models and whether they are ready")
    s = sub.add_parser("serve", help="an OpenAI-compatible HTTP server (needs the server extra)")
    s.add_argument("--model", default="smollm2-135m-instruct",
                   help="embedded model name (see `awrs models`), HF id or local folder")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on every route but /health "
                        "(default: $AWRS_API_KEY; none: no key)")
    s.add_argument("--constraints", action="append", default=[], metavar="MODULE",
                   help="a module whose pydantic classes and Constraint objects requests may "
                        "name (\"constraint\": \"Name\"); repeatable")
    s.add_argument("--particles", type=int, default=8, help="default num_particles (8)")
    s.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help=f"default max_tokens ({DEFAULT_MAX_TOKENS}, as generate())")
    s.add_argument("--max-tokens-limit", type=int, default=1024,
                   help="largest max_tokens a request may ask for (1024)")
    s.add_argument("--max-particles", type=int, default=64,
                   help="largest num_particles a request may ask for (64)")
    s.add_argument("--max-body-bytes", type=int, default=1_000_000,
                   help="largest request body (1,000,000 bytes; larger: 413)")
    return p


def _constraint(a: argparse.Namespace) -> Any:
    from . import constraints as C

    if a.regex is not None:
        return C.Regex(a.regex)
    if a.json_schema is not None:
        text = _read(a.json_schema, "--json-schema")
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--json-schema {a.json_schema}: not valid JSON ({e})") from e
        return C.JSONSchema(schema)
    if a.pydantic is not None:
        mod, _, cls = a.pydantic.partition(":")
        if not mod or not cls:
            raise ConfigError(f"--pydantic {a.pydantic!r}: write MODULE:CLASS, e.g. app.models:Person")
        sys.path.insert(0, str(Path.cwd()))
        try:
            model = getattr(importlib.import_module(mod), cls)
        except Exception as e:  # the module itself may raise anything while importing
            raise ConfigError(f"--pydantic {a.pydantic!r}: cannot import it "
                              f"({type(e).__name__}: {e})") from None
        return C.Pydantic(model)
    if a.grammar is not None:
        return C.Grammar(_read(a.grammar, "--grammar"))
    return None


def _read(name: str, flag: str) -> str:
    """The text of file ``name`` given to ``flag``, or a ConfigError saying what is wrong."""
    path = Path(name)
    if not path.exists():
        raise ConfigError(f"{flag} {name}: no such file")
    if not path.is_file():
        raise ConfigError(f"{flag} {name}: is a folder, not a file; pass the file's path")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{flag} {name}: not a UTF-8 text file ({e.reason} at byte "
                          f"{e.start}); pass the text file") from None
    except OSError as e:
        raise ConfigError(f"{flag} {name}: cannot be read ({e.strerror})") from None


def _prompt(a: argparse.Namespace, lm: Any, text: str | None = None) -> Any:
    if a.system and a.raw:
        raise ConfigError("--system with --raw: a raw prompt has no chat template to put a "
                          "system message in; drop one of them (or write it into the prompt)")
    text = a.prompt if text is None else text
    tok = getattr(lm, "tokenizer", None)
    if a.raw or tok is None or getattr(tok, "chat_template", None) is None:
        return text
    msgs = [{"role": "system", "content": a.system}] if a.system else []
    return msgs + [{"role": "user", "content": text}]


def _prompt_lines(name: str) -> list[tuple[str, int | None]]:
    """(text, seed) per non-empty line of a --prompts-file."""
    out = []
    for k, line in enumerate(_read(name, "--prompts-file").splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"--prompts-file {name} line {k}: not valid JSON ({e}); "
                                  "write a text line or {\"prompt\": ..., \"seed\": ...}") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
                raise ConfigError(f"--prompts-file {name} line {k}: a JSON line needs a string "
                                  "'prompt'")
            seed = obj.get("seed")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
                raise ConfigError(f"--prompts-file {name} line {k}: seed={seed!r}; an int >= 0")
            out.append((obj["prompt"], seed))
        else:
            out.append((line, None))
    if not out:
        raise ConfigError(f"--prompts-file {name}: no prompt in it; write one per line")
    return out


def _answer(res: Any, how: str, rng: Any) -> str | None:
    if not res.ok:
        return None
    answer: str = res.mode if how == "mode" else res.sample(rng)
    return answer


def _json_result(res: Any, text: str | None) -> dict[str, Any]:
    d = res.to_dict()  # "text" is the answer (--answer); "mode" the most probable string
    return {**d, "text": text}


def _generate_many(a: argparse.Namespace, params: Any, constraint: Any, lm: Any) -> int:
    from .batching import Request, generate_batch

    lines = _prompt_lines(a.prompts_file)
    from .api import make_rng

    # each prompt its own generator: its run's draws, then its answer's
    reqs = [Request(_prompt(a, lm, text), seed=make_rng(seed if seed is not None else
                    (None if a.seed is None else _line_seed(a.seed, k))))
            for k, (text, seed) in enumerate(lines)]
    out = generate_batch(lm, reqs, constraint, num_particles=params.num_particles,
                         max_tokens=params.max_tokens, method=params.method,
                         temperature=params.temperature, return_exceptions=True,
                         progress=not a.quiet and sys.stderr.isatty())
    bad = 0
    for k, res in enumerate(out):
        if isinstance(res, BaseException):
            row = {"index": k, "ok": False, "error": f"{type(res).__name__}: {res}"}
        else:
            row = {"index": k, **_json_result(res, _answer(res, a.answer, reqs[k].seed))}
        bad += not row["ok"]
        print(json.dumps(row, ensure_ascii=False), flush=True)
    if bad:
        print(f"awrs: {bad} of {len(out)} prompts gave no valid sample or failed (see their "
              "'hint' / 'error')", file=sys.stderr)
    return 1 if bad else 0


def _line_seed(seed: int, k: int) -> Any:
    import numpy as np

    return np.random.default_rng([seed, k])  # line k's own stream: same as generate_batch(seed=)


def _generate(a: argparse.Namespace) -> int:
    from .api import generate, make_rng
    from .models import load
    from .streaming import RunParams

    # a bad value (seed included) fails before the model loads
    params = RunParams(num_particles=a.particles, max_tokens=a.max_tokens, method=a.method,
                       temperature=a.temperature, seed=a.seed)
    # one generator: the run's draws, then the answer's (a seed reproduces both)
    params = replace(params, seed=make_rng(a.seed))
    if a.quiet or not sys.stderr.isatty():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    constraint = _constraint(a)
    if a.system and a.raw:
        _prompt(a, None)  # raises: fail before the model loads
    if a.prompts_file is not None:
        _prompt_lines(a.prompts_file)  # a bad file fails before the model loads
    lm = load(a.model, backend=a.backend)
    if a.prompts_file is not None:
        return _generate_many(a, params, constraint, lm)
    res = generate(lm, _prompt(a, lm), constraint, num_particles=params.num_particles,
                   max_tokens=params.max_tokens, method=params.method,
                   temperature=params.temperature, seed=params.seed,
                   progress=not a.quiet and sys.stderr.isatty())  # tqdm on a terminal
    text = _answer(res, a.answer, params.seed)
    if a.json:
        print(json.dumps(_json_result(res, text), ensure_ascii=False))
    else:
        print(res.summary())
        if text is not None:
            print(f"answer ({a.answer}): {text!r}")
    if not res.ok:
        if not a.json:
            print(f"awrs: no valid sample. {res.hint}", file=sys.stderr)
        return 1
    return 0


def _models() -> int:
    from .models import available

    rows = available()
    print(f"{'name':24} {'installed':10} {'converted':10} description")
    for r in rows:
        mark = " (default)" if r.get("default") else ""
        print(f"{r['name']:24} {str(r['installed']):10} {str(r['converted']):10} "
              f"{r.get('description', '')}{mark}")
        if not r["installed"]:
            print(f"{'':24} install: {r.get('pip', '')}")
    return 0


def _serve(a: argparse.Namespace) -> int:
    import os

    from .openai_api import Limits

    try:
        from .server import serve
    except ImportError as e:
        print(f"awrs: {e}", file=sys.stderr)
        return 2
    for name in ("particles", "max_tokens", "max_tokens_limit", "max_particles", "max_body_bytes"):
        if getattr(a, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}={getattr(a, name)}; pass an int >= 1")
    limits = Limits(max_tokens=a.max_tokens_limit, max_particles=a.max_particles,
                    default_max_tokens=min(a.max_tokens, a.max_tokens_limit),
                    default_particles=min(a.particles, a.max_particles))
    serve(a.model, host=a.host, port=a.port, api_key=a.api_key or os.environ.get("AWRS_API_KEY"),
          constraints=a.constraints, limits=limits, max_body_bytes=a.max_body_bytes)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``awrs`` console script; returns the exit code."""
    parser = _parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad arguments, 0 on --help
        return int(e.code or 0)
    try:
        if a.command == "models":
            return _models()
        if a.command == "serve":
            return _serve(a)
        return _generate(a)
    except NoValidSampleError as e:
        print(f"awrs: {e}", file=sys.stderr)
        return 1
    except AWRSError as e:  # ConfigError, ConstraintError, ...: the user can act on it
        print(f"awrs: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # an optional extra (vllm, server) is missing: the hint says which
        print(f"awrs: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
