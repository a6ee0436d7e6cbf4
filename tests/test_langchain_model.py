"""LangChain integration on the real default model: standard integration suite and chains.

Marked ``model`` (loads SmolLM2-135M-Instruct). The standard suite passes
``temperature=0`` (greedy: one particle is run) and ``max_tokens=100``; tool calling and
multimodal inputs are not supported and their tests skip.
"""

from __future__ import annotations

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_tests.integration_tests import ChatModelIntegrationTests
from pydantic import BaseModel, Field, field_validator

from awrs_adapters.integrations.langchain import ChatAWRS

pytestmark = pytest.mark.model


class TestChatAWRSIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatAWRS

    @property
    def chat_model_params(self) -> dict:
        return {"num_particles": 2, "seed": 0}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class Person(BaseModel):
    name: str = Field(min_length=3, max_length=30)
    age: int = Field(ge=0, le=130)

    @field_validator("name")
    @classmethod
    def full_name(cls, v: str) -> str:
        if len(v.split()) < 2:
            raise ValueError("give first and last name")
        return v


def test_structured_extraction_chain_returns_valid_person():
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Extract the person as JSON with keys name and age."), ("human", "{text}")]
    )
    chat = ChatAWRS(num_particles=4, max_tokens=40, seed=0)
    chain = prompt | chat.with_structured_output(Person)
    person = chain.invoke({"text": "Ada Lovelace died in 1852 at the age of 36."})
    assert isinstance(person, Person)
    assert len(person.name.split()) >= 2 and 0 <= person.age <= 130
    raw = (prompt | chat.with_structured_output(Person, include_raw=True)).invoke(
        {"text": "Alan Turing was 41."})
    assert raw["parsing_error"] is None and isinstance(raw["parsed"], Person)
    meta = raw["raw"].response_metadata
    assert {"posterior", "particles", "log_ml", "ess_history"} <= set(meta)
    # every particle that finished is a valid Person: the constraint held during sampling
    for p in meta["particles"]:
        if p["finished"] and p["weight"] > 0:
            Person.model_validate_json(p["text"])


def test_dict_schema_returns_dict():
    schema = {"title": "city", "type": "object",
              "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]}
    chat = ChatAWRS(num_particles=2, max_tokens=24, seed=1)
    out = chat.with_structured_output(schema).invoke("What is the capital of France? JSON.")
    assert isinstance(out, dict) and isinstance(out["city"], str)
