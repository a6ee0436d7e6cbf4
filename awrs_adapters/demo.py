"""The end-to-end demo: ``python -m awrs_adapters.demo`` (``make demo``).

Overview: first the exact "ends with a" example, where locally constrained decoding
(LCD) is provably biased and AWRS-SMC is not (the exact posterior, LCD's distribution
and AWRS-SMC's estimate side by side); then the main job on the embedded default model
(SmolLM2-135M-Instruct, converted on first use, no model hub): a chat prompt asking for
an ISO date, constrained by a regex (outlines-core automaton, fast path) and a Python
calendar check (slow path), and, when pydantic constraints are installed, a small
extraction into a pydantic model with a validator. Each run prints the posterior table,
``log_ml``, the final ESS and the time per token. About a minute on 2 CPU cores (plus
~20 s the first time, for the model conversion).

Example::

    python -m awrs_adapters.demo            # or: make demo
    python -m awrs_adapters.demo --exact-only
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import math
import sys
import time
from typing import Any

from .api import generate
from .constraints import Predicate
from .results import SMCResult

__all__ = ["date_constraint", "main"]

ISO_DATE_PATTERN = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_SLOTS = "dddd-dd-dd"


def _say(*parts: Any) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def _valid_date(s: str) -> bool:
    try:
        return len(s) == 10 and _dt.date.fromisoformat(s).isoformat() == s
    except ValueError:
        return False


def _date_prefix_ok(s: str) -> bool:
    """Sound prefix check of YYYY-MM-DD: a bad character never goes away."""
    if len(s) > 10:
        return False
    for ch, slot in zip(s, _SLOTS):
        if (slot == "d" and not ch.isdigit()) or (slot == "-" and ch != "-") or not ch.isascii():
            return False
    return True


def date_constraint() -> tuple[Any, str]:
    """``(constraint, description)`` for an ISO date that exists in the calendar.

    With the Outlines constraints installed: ``Regex(ISO_DATE_PATTERN)`` (fast path) and
    a ``Predicate`` for the calendar (slow path); else a ``Predicate`` only.
    """
    calendar = Predicate(complete=_valid_date, prefix=_date_prefix_ok, name="calendar_date")
    try:
        from .constraints import Regex
    except ImportError:
        return calendar, "Predicate(YYYY-MM-DD, calendar check)"
    return Regex(ISO_DATE_PATTERN) & calendar, f"Regex({ISO_DATE_PATTERN}) & Predicate(calendar)"


def _table(rows: list[tuple[str, list[str]]], header: list[str]) -> None:
    widths = [max(len(header[0]), *(len(repr(r[0])) for r in rows))] + [
        max(len(h), 8) for h in header[1:]
    ]
    _say("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for s, vals in rows:
        cells = [repr(s).ljust(widths[0])] + [v.rjust(w) for v, w in zip(vals, widths[1:])]
        _say("  " + "  ".join(cells))


def _report(r: SMCResult, seconds: float, top: int = 8) -> None:
    post = r.posterior
    if not post:
        _say("  no valid string:", r.hint)
        return
    _table([(s, [f"{p:.3f}"]) for s, p in list(post.items())[:top]], ["string", "probability"])
    if len(post) > top:
        _say(f"  ... {len(post) - top} more strings")
    steps = max(r.stats.steps, 1)
    log_ml = "None" if r.log_ml is None else f"{r.log_ml:.3f}"
    _say(
        f"  log_ml = {log_ml}   final ESS = {r.ess:.2f} / {len(r.particles)}   "
        f"resamplings = {r.stats.resamples}"
    )
    _say(
        f"  {seconds:.2f} s for {r.stats.steps} steps: {seconds / steps * 1000:.0f} ms per token "
        f"step (all particles), {seconds / max(r.stats.tokens, 1) * 1000:.0f} ms per particle-token; "
        f"{r.stats.checks_per_token:.2f} constraint checks per token"
    )


def exact_example(num_particles: int = 2000, seed: int = 0) -> None:
    """The "ends with a" example: exact posterior vs LCD vs AWRS-SMC."""
    from .testing import exact_lcd, exact_posterior
    from .toy import ends_with_a

    lm, c, T = ends_with_a()
    exact, Z = exact_posterior(lm, c, T)
    lcd = exact_lcd(lm, c, T)
    t = time.perf_counter()
    r = generate(lm, None, c, num_particles=num_particles, max_tokens=T, seed=seed)
    dt = time.perf_counter() - t
    _say('== 1. "ends with a": tokens a, b, EOS; the output must end with "a" ==')
    _say("   prior: a|b = 1/2 each; after a: EOS .9, a .1; after b: EOS .95, a .05")
    _say(f"   AWRS-SMC with {num_particles} particles ({dt:.2f} s)")
    keys = sorted(set(exact) | set(lcd) | set(r.posterior), key=lambda s: -exact.get(s, 0.0))
    _table(
        [(s, [f"{exact.get(s, 0):.3f}", f"{lcd.get(s, 0):.3f}", f"{r.posterior.get(s, 0):.3f}"]) for s in keys],
        ["string", "exact", "LCD", "AWRS-SMC"],
    )
    _say(f"   log_ml = {r.log_ml:.4f} (exact log Z = {math.log(Z):.4f})")
    _say("   LCD puts half its mass on 'ba'; the posterior puts 0.05 there.\n")


def model_jobs(name: str, num_particles: int, seed: int) -> None:
    """The main job on a real model: an ISO date, then a pydantic extraction."""
    from .models import load

    _say(f"== 2. the main job on {name} ==")
    t = time.perf_counter()
    lm = load(name)
    _say(f"   loaded in {time.perf_counter() - t:.1f} s: {lm!r}")
    c, desc = date_constraint()
    sentence = "The contract was signed in Lyon on the fifth of March, 2021, after long talks."
    prompt = [
        {
            "role": "user",
            "content": f"Sentence: {sentence}\nWrite the date of the signing in ISO format "
            "(YYYY-MM-DD). Answer with the date only.",
        }
    ]
    _say(f"\n-- 2a. ISO date, {desc}; {num_particles} particles, AWRS-SMC")
    _say(f"   prompt: {prompt[0]['content']!r}")
    t = time.perf_counter()
    c.bind(lm.vocab)  # compile once (cached in memory and on disk); not part of the run
    _say(f"   constraint bound to the {lm.vocab.size}-token vocabulary in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    r = generate(lm, prompt, c, num_particles=num_particles, max_tokens=24, seed=seed)
    _report(r, time.perf_counter() - t)

    try:
        from pydantic import BaseModel, Field, field_validator

        from .constraints import Pydantic
    except ImportError:
        return

    class Person(BaseModel):
        name: str
        age: int = Field(ge=0, le=130)

        @field_validator("name")
        @classmethod
        def capitalised(cls, v: str) -> str:
            if not v[:1].isupper():
                raise ValueError("name must be capitalised")
            return v

    prompt2 = [
        {
            "role": "user",
            "content": "Ada Lovelace was 36 years old when she died in London. Give her name and "
            'age as JSON, like {"name": "...", "age": 0}.',
        }
    ]
    _say(f"\n-- 2b. extraction into a pydantic model (name: capitalised str, age: int 0..130); "
         f"{num_particles} particles, AWRS-SMC")
    _say(f"   prompt: {prompt2[0]['content']!r}")
    c2 = Pydantic(Person)
    t = time.perf_counter()
    c2.bind(lm.vocab)
    _say(f"   constraint bound in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    r2 = generate(lm, prompt2, c2, num_particles=num_particles, max_tokens=32, seed=seed)
    _report(r2, time.perf_counter() - t)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m awrs_adapters.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="embedded model name or HF path")
    ap.add_argument("--particles", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exact-only", action="store_true", help="only the exact example (no model)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("awrs_adapters").setLevel(logging.INFO)
    exact_example(seed=args.seed)
    if not args.exact_only:
        model_jobs(args.model, args.particles, args.seed)


if __name__ == "__main__":
    main()
