"""Python types and Outlines models where Outlines users pass them (host contracts).

``generate(lm, prompt, int)``, an ``Enum``, ``Literal[...]``, ``list[int]``: converted by
Outlines' own ``python_types_to_terms``; the reference posterior is enumerated from the
type's definition written as a plain Python check (``s in {...}``, ``int(s)``), never
from the converted regex. An Outlines transformers model is accepted as the model.
"""

from __future__ import annotations

import enum
from typing import Literal

import pytest

from awrs_adapters import ConfigError, generate
from awrs_adapters.constraints import Predicate
from awrs_adapters.testing import exact_posterior, total_variation

from conftest import hashed_lm

pytest.importorskip("outlines")

TOKENS = [b"y", b"es", b"n", b"o", b"yes", b"1", b"0", b"-", b"[", b"]", b", ", b""]
EOS = len(TOKENS) - 1


class Answer(enum.Enum):
    YES = "yes"
    NO = "no"


def _lm():
    return hashed_lm(TOKENS, EOS, seed=4, eos_bias=0.5)


def _is_int(s: str) -> bool:
    """An integer literal: an optional sign, then digits without leading zeros."""
    body = s[1:] if s[:1] in ("+", "-") else s
    return body.isdigit() and str(int(body)) == body


def _is_int_list(s: str) -> bool:
    """``[1, -2]``: integers, ", " between them, at least one."""
    if not (s.startswith("[") and s.endswith("]")) or s == "[]":
        return False
    return all(_is_int(x) for x in s[1:-1].split(", "))


@pytest.mark.parametrize("typ, definition", [
    (Literal["yes", "no"], lambda s: s in {"yes", "no"}),
    (Answer, lambda s: s in {"yes", "no"}),
    (int, _is_int),
    (list[int], _is_int_list),
])
def test_python_types_sample_their_definitions_posterior(typ, definition):
    """SMC under the converted type matches the exact posterior of the type's definition
    (TV < 0.1 at 1,000 particles, seed 0; measured 0.001, 0.001, 0.05, 0.008). Broken
    variant seen failing: no converter for Python types (ConfigError on all four)."""
    lm, T = _lm(), 4
    exact, z = exact_posterior(lm, Predicate(complete=definition), T)
    assert z > 0
    res = generate(lm, None, typ, num_particles=1000, max_tokens=T, seed=0)
    assert all(definition(s) for s in res.posterior)
    assert total_variation(res.posterior, exact) < 0.1


def test_a_type_outlines_cannot_convert_is_a_config_error():
    class Plain:
        pass

    with pytest.raises(ConfigError, match="Outlines"):
        generate(_lm(), None, Plain, num_particles=2, max_tokens=2)


def test_an_outlines_model_is_accepted_as_the_model():
    """``outlines.from_transformers(model, tokenizer)`` runs as the TransformersLM of the
    same model and tokenizer: the same seed gives the same posterior."""
    import outlines

    from awrs_adapters.constraints import Regex
    from awrs_adapters.lm import TransformersLM

    from test_transformers_lm import get_tokenizer, tiny_llama

    tok = get_tokenizer("byte_level")
    model = tiny_llama(len(tok), seed=0)
    om = outlines.from_transformers(model, tok)
    c = Regex("[a-z]{1,4}")
    a = generate(om, "hello", c, num_particles=8, max_tokens=5, seed=1)
    b = generate(TransformersLM(model, tok), "hello", c, num_particles=8, max_tokens=5, seed=1)
    assert a.posterior == b.posterior and a.log_ml == b.log_ml
