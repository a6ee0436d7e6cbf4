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


def test_model_generate_with_a_json_schema_parses_with_pydantic(lm):
    """The transformers forms on the real model: ``custom_generate=smc_generate`` (a batch of
    two prompts) and ``AWRSLogitsProcessor``; every returned row parses as ``Person``."""
    from transformers import LogitsProcessorList

    from awrs_adapters.integrations.transformers import AWRSLogitsProcessor, smc_generate

    tok = lm.tokenizer
    texts = [tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False),
             tok.apply_chat_template([{"role": "user", "content": "Give Ada Lovelace (36) as "
                                       "JSON with name and age."}], add_generation_prompt=True,
                                     tokenize=False)]
    side, tok.padding_side = tok.padding_side, "left"  # generate pads decoder-only on the left
    try:
        inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = side
    L = inputs["input_ids"].shape[1]
    out = lm.model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=JSONSchema(Person),
                            num_particles=4, max_new_tokens=40, do_sample=True,
                            awrs_tokenizer=tok, seed=0)
    rows = tok.batch_decode(out.sequences[:, L:], skip_special_tokens=True)
    assert len(rows) == 2 and len(out.results) == 2
    for row, res in zip(rows, out.results, strict=True):
        assert Person.model_validate_json(row) and res.ok and row in res.posterior
    proc = AWRSLogitsProcessor(JSONSchema(Person), tok, seed=0)
    plain = lm.model.generate(**inputs, logits_processor=LogitsProcessorList([proc]),
                              do_sample=True, max_new_tokens=40, pad_token_id=tok.eos_token_id)
    for row in tok.batch_decode(plain[:, L:], skip_special_tokens=True):
        Person.model_validate_json(row)
