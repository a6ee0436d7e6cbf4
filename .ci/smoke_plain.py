"""Smoke test of a plain ``pip install .`` (no extras): what a new user gets first.

Every constraint kind (Regex, JSONSchema, Pydantic, Grammar, Predicate, Potential) runs
through ``generate`` on an exact toy model, and the optional integrations fail with an
install hint. Run by ``.ci/run`` in a fresh virtualenv (``make smoke-plain``).
"""

from __future__ import annotations

import importlib
import importlib.resources
import importlib.util
import json
import sys

import numpy as np
from pydantic import BaseModel, field_validator

from awrs_adapters import generate
from awrs_adapters.constraints import Grammar, JSONSchema, Potential, Predicate, Pydantic, Regex
from awrs_adapters.lm import FunctionLM

# (lark is not among them: jsonschema[format-nongpl], a dependency, brings it for IRIs)
extras = [m for m in ("langchain_core", "outlines", "matplotlib", "pytest")
          if importlib.util.find_spec(m) is not None]
assert not extras, f"not a plain install: {extras} are installed"
# PEP 561 marker shipped: type checkers read the package's annotations
assert importlib.resources.files("awrs_adapters").joinpath("py.typed").is_file()

TOKENS = [b"{", b"}", b'"a"', b":", b"1", b"2", b" ", b"x", b"y", b""]
EOS = len(TOKENS) - 1
rng = np.random.default_rng(0)
TABLE = rng.normal(size=(64, len(TOKENS)))


def next_logprobs(prefix: tuple[int, ...]) -> np.ndarray:
    z = TABLE[hash(prefix) % 64]
    return z - np.logaddexp.reduce(z)


lm = FunctionLM(TOKENS, EOS, next_logprobs)


class A(BaseModel):
    a: int

    @field_validator("a")
    @classmethod
    def big(cls, v: int) -> int:
        if v < 10:
            raise ValueError("a must be >= 10")
        return v


cases = {
    "Regex": (Regex("[12]{2}"), lambda s: s in {"11", "12", "21", "22"}),
    "JSONSchema": (JSONSchema({"type": "object", "properties": {"a": {"type": "integer"}},
                               "required": ["a"]}),
                   lambda s: isinstance(json.loads(s)["a"], int)),
    "Pydantic": (Pydantic(A), lambda s: A.model_validate_json(s).a >= 10),
    "Grammar": (Grammar('start: "x" "y"+'), lambda s: s[0] == "x" and set(s[1:]) == {"y"}),
    "Predicate": (Predicate(complete=lambda s: s == "xy", prefix=lambda s: "xy".startswith(s)),
                  lambda s: s == "xy"),
    "Potential": (Regex("[12]+") & Potential(complete=lambda s: -2.0 * s.count("1")),
                  lambda s: set(s) <= {"1", "2"}),
}
for name, (c, check) in cases.items():
    r = generate(lm, None, c, num_particles=8, max_tokens=10, seed=0)
    assert r.ok, f"{name}: {r.hint}"
    for text in r.posterior:
        assert check(text), f"{name}: {text!r}"
    print(f"{name:10} ok  {r.mode!r}  log_ml={r.log_ml:.3f}")

for mod, extra in (("awrs_adapters.integrations.langchain", "langchain"),):
    try:
        importlib.import_module(mod)
    except ImportError as e:
        assert f"awrs-adapters[{extra}]" in str(e), str(e)
        print(f"{mod}: install hint ok")
    else:
        sys.exit(f"{mod} imported without its extra")
print("plain install: ok")
