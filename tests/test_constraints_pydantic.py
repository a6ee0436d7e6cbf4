"""Pydantic: soundness of the prefix check, validators as the slow path; Outlines types."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from typing_extensions import TypedDict

from awrs_adapters import ConfigError, ConstraintError, generate
from awrs_adapters.constraints import (
    Grammar,
    JSONSchema,
    Predicate,
    Pydantic,
    Regex,
    as_constraint,
    from_outlines,
)
from awrs_adapters.constraints.pydantic import partial_json
from awrs_adapters.lm import FunctionLM
from awrs_adapters.testing import check_potential


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv("AWRS_INDEX_CACHE", "off")


class Address(BaseModel):
    city: str = Field(min_length=1, max_length=20)
    zip: str = Field(pattern=r"^[0-9]{5}$")


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=130)
    email: str | None = None
    tags: list[str] = Field(default_factory=list, max_length=3)
    address: Address | None = None

    @field_validator("name")
    @classmethod
    def capitalised(cls, v: str) -> str:
        if not v[:1].isupper():
            raise ValueError("name must be capitalised")
        return v

    @field_validator("tags")
    @classmethod
    def distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("tags must be distinct")
        return v

    @model_validator(mode="after")
    def children_have_no_email(self) -> Person:
        if self.email is not None and self.age < 13:
            raise ValueError("children have no email")
        return self


PERSON = None


def person() -> Pydantic:
    global PERSON
    if PERSON is None:
        PERSON = Pydantic(Person)
    return PERSON


@st.composite
def valid_people(draw):
    age = draw(st.integers(0, 130))
    d = {"name": draw(st.from_regex(r"[A-ZÉ][a-zé \"\\]{0,8}", fullmatch=True)), "age": age}
    if age >= 13 and draw(st.booleans()):
        d["email"] = draw(st.from_regex(r"[a-z]{1,5}@[a-z]{1,5}\.org", fullmatch=True))
    if draw(st.booleans()):
        d["tags"] = draw(st.lists(st.text(alphabet="ab😀", max_size=3), max_size=3, unique=True))
    if draw(st.booleans()):
        d["address"] = {"city": draw(st.text(alphabet="xyzé", min_size=1, max_size=5)),
                        "zip": draw(st.from_regex(r"[0-9]{5}", fullmatch=True))}
    p = Person.model_validate(d)
    return p


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_people())
def test_prefix_check_is_sound_on_valid_instances(p):
    data = p.model_dump(mode="json", exclude_unset=True)
    texts = [p.model_dump_json(exclude_unset=True),       # compact, raw UTF-8
             json.dumps(data),                           # ", " / ": ", \\u escapes
             json.dumps(data, separators=(",", ":"))]
    assert check_potential(person(), texts, prefixes="bytes") == []
    for t in texts:
        assert person().accepts(t)


@pytest.mark.parametrize("text, ok", [
    ('{"name": "ada", ', False),                         # closed and invalid
    ('{"name": "ad', True),                              # still open
    ('{"name": "Ada", "age": 200', True),                # 200 may still grow... into invalid
    ('{"name": "Ada", "age": 200,', False),              # closed number
    ('{"name": "Ada", "age": 20, "tags": ["a", "a"]', False),   # closed list, validator
    ('{"name": "Ada", "age": 20, "tags": ["a", "a"', True),     # open list: no verdict
    ('{"name": "Ada", "age": 20, "tags": ["a", "b", "c", "d"', True),
    ('{"name": "Ada", "age": 20, "address": {"city": "X", "zip": "123"', False),
    ('{"name": "Ada", "age": 20, "address": {"city": "X", "zip": "12345"', True),
    ('{"name": "Ada", "age": 5, "email": "a@b.org"', True),     # model validator: at the end
    ('{"name": "Ada", "age": 5, "email": "a@b.org"}', False),   # closed top level
])
def test_prefix_check_rejects_only_closed_invalid_values(text, ok):
    assert person().check_prefix(text) is ok


def test_complete_check_is_model_validate_json():
    c = person()
    assert c.accepts('{"name": "Ada", "age": 36}')
    assert not c.accepts('{"name": "ada", "age": 36}')        # field validator
    assert not c.accepts('{"name": "Ada", "age": 5, "email": "a@b.org"}')  # model validator
    assert not c.accepts('{"name": "Ada", "age": 36, "tags": ["x", "x"]}')
    assert not c.accepts('{"age": 36, "name": "Ada"}')        # the schema fixes key order


def test_validators_that_read_other_fields_are_left_to_the_end():
    class Pw(BaseModel):
        password: str
        repeat: str

        @field_validator("repeat")
        @classmethod
        def same(cls, v: str, info: ValidationInfo) -> str:
            if v != info.data.get("password"):
                raise ValueError("passwords differ")
            return v

    c = Pydantic(Pw)
    assert c.check_prefix('{"password": "a", "repeat": "b", ')  # undecidable locally
    assert not c.accepts('{"password": "a", "repeat": "b"}')
    assert c.accepts('{"password": "a", "repeat": "a"}')
    assert check_potential(c, ['{"password":"a","repeat":"a"}'], prefixes="bytes") == []


def test_before_model_validator_disables_field_checks():
    class Loose(BaseModel):
        n: int = Field(ge=0)

        @model_validator(mode="before")
        @classmethod
        def absolute(cls, data: dict) -> dict:
            return {"n": abs(data["n"])} if isinstance(data, dict) and "n" in data else data

    c = Pydantic(Loose)
    assert c.check_prefix('{"n": -3 ')  # the input may be rewritten: no field verdict
    # the fast path is the JSON schema of the validated model (minimum 0): it does not
    # generate inputs that only a before-validator would bring into shape
    assert not c.accepts('{"n": -3}') and c.accepts('{"n": 3}')


def test_partial_json_nodes():
    assert partial_json("") is None
    assert partial_json('{"a": [1, "x"') == (("object", [("a", ("array", [("closed", "1"), ("closed", '"x"')]))]), False)
    assert partial_json('{"a": tr') == (("object", [("a", ("open",))]), False)
    assert partial_json('{"a": 1} ') == (("closed", '{"a": 1}'), True)
    assert partial_json('{"a" 1') is None  # not JSON: left to the automaton


def test_bad_model():
    with pytest.raises(ConstraintError, match="pydantic model class"):
        Pydantic(dict)  # type: ignore[arg-type]


def test_pydantic_v1_models_are_checked_on_the_finished_output():
    from pydantic.v1 import BaseModel as V1Model
    from pydantic.v1 import validator

    class Old(V1Model):
        name: str
        age: int

        @validator("name")
        def capitalised(cls, v: str) -> str:  # noqa: N805 - pydantic.v1 style
            if not v[:1].isupper():
                raise ValueError("capitalise")
            return v

    c = Pydantic(Old)
    assert c.accepts('{"name": "Ada", "age": 36}')
    assert not c.accepts('{"name": "ada", "age": 36}')      # v1 validator, at the end
    assert not c.accepts('{"name": "Ada", "age": "x"}')     # schema
    assert c.check_prefix('{"name": "ada", ')                # no partial checks for v1


class Even(BaseModel):
    x: int

    @field_validator("x")
    @classmethod
    def even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("x must be even")
        return v


def _digits_lm() -> FunctionLM:
    toks = [b'{"x":', b"1", b"2", b"3", b"4", b"}", b" ", b"13", b""]
    table = np.random.default_rng(1).normal(size=(97, len(toks)))
    return FunctionLM(toks, len(toks) - 1, lambda p: table[hash(p) % 97])


@pytest.mark.parametrize("method", ["awrs-smc", "mask-smc", "lcd"])
def test_generate_with_a_pydantic_class_gives_valid_output(method):
    r = generate(_digits_lm(), None, Even, num_particles=16, max_tokens=6, seed=0, method=method)
    assert r.ok
    for p in r.particles:
        if p.finished and p.log_weight > -np.inf:
            Even.model_validate_json(p.text)


def test_composition_with_a_predicate():
    c = Pydantic(Even) & Predicate(lambda s: " " not in s)
    assert c.accepts('{"x":42}') and not c.accepts('{"x": 42}') and not c.accepts('{"x":3}')


# -- Outlines types --------------------------------------------------------------------
def test_from_outlines():
    outlines_types = pytest.importorskip("outlines.types")

    r = from_outlines(outlines_types.Regex(r"[0-9]{2}"))
    assert isinstance(r, Regex) and r.accepts("12") and not r.accepts("1")
    assert isinstance(from_outlines(outlines_types.integer), Regex)
    j = from_outlines(outlines_types.JsonSchema({"type": "object", "properties": {"a": {"type": "integer"}},
                                                 "required": ["a"]}))
    assert isinstance(j, JSONSchema) and j.accepts('{"a": 1}')
    g = from_outlines(outlines_types.CFG('start: "a"+'))
    assert isinstance(g, Grammar) and g.accepts("aaa") and not g.accepts("b")
    assert isinstance(from_outlines(Even), Pydantic)

    class TD(TypedDict):
        a: int

    @dataclass
    class DC:
        a: int

    for obj in (TD, DC):
        c = from_outlines(obj)
        assert isinstance(c, JSONSchema) and c.accepts('{"a": 1}') and not c.accepts('{"a": "1"}')
    with pytest.raises(ConfigError, match="from_outlines"):
        from_outlines(3.5)


def test_outlines_types_work_wherever_a_constraint_does():
    outlines_types = pytest.importorskip("outlines.types")
    assert isinstance(as_constraint(outlines_types.Regex("(ab)+")), Regex)
    assert isinstance(as_constraint(Even), Pydantic)
    lm = FunctionLM([b"a", b"b", b"ab", b""], 3, lambda p: [0.0] * 4)
    r = generate(lm, None, outlines_types.Regex("(ab)+"), num_particles=8, max_tokens=4, seed=0)
    assert r.ok and all(p.text in ("ab", "abab", "ababab", "abababab")
                        for p in r.particles if p.finished)
