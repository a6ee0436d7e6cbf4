"""Agent frameworks on ChatAWRS with the default model (host contracts): LangGraph's
``create_react_agent`` and LangChain 1.x's ``create_agent`` with a structured-output
``response_format``. References: the tool's own argument schema (``jsonschema``) and
arithmetic for the tool results; the pydantic class and its JSON schema for the answer."""

from __future__ import annotations

import json
import warnings

import jsonschema
import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from awrs_adapters import models
from awrs_adapters.integrations.langchain import ChatAWRS

pytest.importorskip("langgraph.prebuilt")
pytest.importorskip("langchain.agents")
pytestmark = pytest.mark.model


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int = Field(ge=0, le=120)


@pytest.fixture(scope="module")
def chat() -> ChatAWRS:
    return ChatAWRS(lm=models.load(), num_particles=4, max_tokens=40, seed=0)


def test_langgraph_react_agent_makes_valid_tool_calls(chat):
    """The agent loop runs to a text answer; every tool call's arguments are valid under
    the tool's schema and its result is the sum. The model is chosen per turn (LangGraph's
    dynamic model): it must call a tool first (SmolLM2-135M answers in text when given
    the choice), then answers in text."""
    from langgraph.prebuilt import create_react_agent

    def pick(state, runtime):
        called = any(isinstance(m, ToolMessage) for m in state["messages"])
        return chat.bind_tools([add], tool_choice="none" if called else "any")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # moved to langchain.agents
        agent = create_react_agent(pick, [add])
    out = agent.invoke({"messages": [("user", "What is 2 + 3? Use the add tool.")]})
    msgs = out["messages"]
    calls = [tc for m in msgs if isinstance(m, AIMessage) for tc in m.tool_calls]
    assert calls
    schema = add.args_schema.model_json_schema()
    for tc in calls:
        assert tc["name"] == "add"
        jsonschema.validate(tc["args"], schema)
    results = {m.tool_call_id: m for m in msgs if isinstance(m, ToolMessage)}
    for tc in calls:
        assert results[tc["id"]].status == "success"
        assert results[tc["id"]].content == str(tc["args"]["a"] + tc["args"]["b"])
    assert isinstance(msgs[-1], AIMessage) and msgs[-1].content and not msgs[-1].tool_calls


def test_langchain_create_agent_structured_response(chat):
    """create_agent(response_format=Person): the profile declares structured output, so
    the agent binds OpenAI's response_format, which ChatAWRS turns into the schema's
    constraint; the structured response is a Person and the message validates."""
    from langchain.agents import create_agent

    agent = create_agent(chat, tools=[], response_format=Person)
    out = agent.invoke({"messages": [("user", "Ada Lovelace is 36. Give her name and age.")]})
    assert isinstance(out["structured_response"], Person)
    jsonschema.validate(json.loads(out["messages"][-1].content), Person.model_json_schema())
