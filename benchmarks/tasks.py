"""Task definitions the benchmarks share: the ``Person`` schemas, prompts and the date format.

Example::

    from benchmarks.tasks import Person, parses
    assert parses(Person, '{"name": "Ada Lovelace", "age": 36}')
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

__all__ = [
    "DATE", "PERSON_PROMPT", "Person", "ValidatedPerson", "end_tasks", "exact_tasks", "parses",
]


class Person(BaseModel):
    """The plain JSON-schema task (no validators)."""

    name: str
    age: int


class ValidatedPerson(BaseModel):
    """The slow-path task: constrained fields and a validator the schema cannot express."""

    name: str = Field(min_length=3, max_length=40)
    age: int = Field(ge=0, le=130)

    @field_validator("name")
    @classmethod
    def full_name(cls, v: str) -> str:
        if len(v.split()) < 2:
            raise ValueError("give first and last name")
        return v


PERSON_PROMPT = [{"role": "user", "content": "Extract the person as JSON with name and age: "
                  "Ada Lovelace died at 36."}]

DATE = r"(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]"


def parses(model: type[BaseModel], text: str) -> bool:
    """True when ``text`` is valid JSON for ``model`` (validators included)."""
    try:
        model.model_validate_json(text)
        return True
    except ValueError:
        return False


def exact_tasks() -> list[tuple[str, Any, Any, int]]:
    """The exact FunctionLM tasks ``(name, lm, constraint, max_tokens)``, small enough to
    enumerate: "ends with a" and "even a, no cc" (a prefix check and a complete check)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from awrs_adapters.constraints import Predicate
    from awrs_adapters.toy import ends_with_a

    from conftest import hashed_lm

    lm1, c1, t1 = ends_with_a()
    lm2 = hashed_lm([b"a", b"b", b"c", b""], 3, seed=7, eos_bias=-0.5)
    c2 = Predicate(complete=lambda s: s.count("a") % 2 == 0 and "cc" not in s and not s.endswith("c"),
                   prefix=lambda s: "cc" not in s)
    return [("ends with a", lm1, c1, t1), ("even a, no cc (4 tokens)", lm2, c2, 4)]


def _parens_ok(s: str, complete: bool) -> bool:
    depth = 0
    for ch in s:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0 and bool(s) if complete else True


def end_tasks() -> list[tuple[str, Any, Any, int]]:
    """Exact FunctionLM tasks where ``max_tokens`` binds: a loose prefix check lets
    lineages run on that cannot end in time (what the end-aware twist is for), and the
    posterior sits on few strings (so one run's TV says something).

    * "balanced parens (T=10)": ``(``, ``)``; the model leans to ``(``; the output must be
      balanced and non-empty; the prefix check only forbids a ``)`` too many, so deep
      nesting looks fine until the wall.
    * "one of four words, no prefix check (T=10)": ``a``, ``b``, ``c``; the output must
      be one of ``ab``, ``ba``, ``abcab``, ``bcbcb``; nothing is rejected before the end.
    * "one of four words, loose prefix (T=10)": another model, and a prefix check that
      only forbids ``cc``.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import numpy as np

    from awrs_adapters.constraints import Predicate
    from awrs_adapters.lm import FunctionLM

    from conftest import hashed_lm

    base = hashed_lm([b"(", b")", b""], 2, seed=11, eos_bias=-0.5)

    def lean_open(prefix: tuple[int, ...]) -> np.ndarray:
        lp = np.asarray(base.logprobs_of(prefix), dtype=np.float64).copy()
        lp[0] += 0.7
        return lp - np.logaddexp.reduce(lp)

    lm1 = FunctionLM([b"(", b")", b""], 2, lean_open)
    c1 = Predicate(complete=lambda s: _parens_ok(s, True), prefix=lambda s: _parens_ok(s, False))
    words = {"ab", "ba", "abcab", "bcbcb"}
    lm2 = hashed_lm([b"a", b"b", b"c", b""], 3, seed=5, eos_bias=-0.5)
    c2 = Predicate(complete=lambda s: s in words)
    lm3 = hashed_lm([b"a", b"b", b"c", b""], 3, seed=9, eos_bias=-0.5)
    c3 = Predicate(complete=lambda s: s in words, prefix=lambda s: "cc" not in s)
    return [("balanced parens (T=10)", lm1, c1, 10),
            ("one of four words, no prefix check (T=10)", lm2, c2, 10),
            ("one of four words, loose prefix (T=10)", lm3, c3, 10)]
