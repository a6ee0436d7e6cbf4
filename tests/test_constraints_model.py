"""End to end on the default real model (SmolLM2-135M-Instruct): JSON that validates."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from awrs_adapters import generate
from awrs_adapters.constraints import JSONSchema, Pydantic

pytestmark = pytest.mark.model


class Person(BaseModel):
    name: str
    age: int


PROMPT = [{"role": "user", "content": "Describe a person as a JSON object with the keys "
           "'name' (a string) and 'age' (an integer). Reply with the JSON object only."}]


@pytest.fixture(scope="module")
def lm():
    models = pytest.importorskip("awrs_adapters.models")
    try:
        return models.load()
    except models.ModelNotFoundError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("make", [lambda: JSONSchema(Person), lambda: Pydantic(Person)],
                         ids=["JSONSchema", "Pydantic"])
def test_every_finished_particle_validates(lm, make):
    r = generate(lm, PROMPT, make(), num_particles=4, max_tokens=40, seed=0)
    assert r.ok, r.hint
    finished = [p for p in r.particles if p.finished and p.log_weight > float("-inf")]
    assert finished
    for p in finished:
        Person.model_validate_json(p.text)
    assert r.stats.checks_per_token < 10  # the model mostly proposes valid tokens
