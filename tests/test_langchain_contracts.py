"""ChatAWRS keeps LangChain's host contracts (issue: host contracts): each test names the
behaviour a LangChain user relies on, reproduced with real LangChain objects (parsers,
bindings, messages) on exact toy models."""

from __future__ import annotations

import jsonschema
import pytest
from langchain_core.messages import (
    AIMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from test_langchain import chat as words_chat
from test_tools import toy_chat

from awrs_adapters import ConfigError
from awrs_adapters.constraints import Regex
from awrs_adapters.integrations.langchain import ChatAWRS, messages_to_chat

from conftest import F


def test_function_calling_structured_output_makes_a_tool_call():
    """with_structured_output(method="function_calling", include_raw=True): the raw
    message carries the tool call (as other chat models bind the schema as a tool) and
    the parsed value is the schema's instance. Before: raw.tool_calls == []."""
    runnable = toy_chat().with_structured_output(F, method="function_calling", include_raw=True)
    for seed in range(3):
        out = runnable.invoke("call F", seed=seed)
        raw = out["raw"]
        assert out["parsing_error"] is None and isinstance(out["parsed"], F)
        assert len(raw.tool_calls) == 1 and raw.tool_calls[0]["name"] == "F"
        jsonschema.validate(raw.tool_calls[0]["args"], F.model_json_schema())
        assert raw.response_metadata["finish_reason"] == "tool_calls"


def test_bind_tools_accepts_strict_and_checks_its_flags():
    msg = toy_chat().bind_tools([F], tool_choice="any", strict=True).invoke("call F")
    assert len(msg.tool_calls) == 1
    with pytest.raises(ConfigError, match="parallel_tool_calls='false'"):
        toy_chat().bind_tools([F], parallel_tool_calls="false")
    with pytest.raises(ConfigError, match="parallel_tool_calls"):
        toy_chat().invoke("x", parallel_tool_calls="false")


@pytest.mark.parametrize("kw", [{"tool_choice": "any"}, {"tool_choice": "F"},
                                {"parallel_tool_calls": True}])
def test_tool_arguments_without_tools_are_refused(kw):
    with pytest.raises(ConfigError, match="no tools bound"):
        words_chat().invoke("x", **kw)


def test_a_constraint_bound_before_bind_tools_is_kept():
    """chat.bind(constraint=...).bind_tools([...]) used to drop the constraint (free text
    written); now the binding keeps it and the combination raises as the other order."""
    bound = toy_chat().bind(constraint=Regex("[0-9]")).bind_tools([F])
    assert bound.kwargs["constraint"] is not None and bound.kwargs["tools"]
    with pytest.raises(ConfigError, match="both tools and a constraint"):
        bound.invoke("x")
    text_only = toy_chat().bind(constraint=Regex("(hi)+")).bind_tools([F], tool_choice="none")
    assert set(text_only.invoke("x").content.split("hi")) == {""}


def test_finish_reason_and_usage_describe_the_returned_message():
    """finish_reason: stop (ended), length (max_tokens reached); usage counts the returned
    message's tokens, not every particle's."""
    msg = words_chat(seed=1).invoke("go")
    assert msg.response_metadata["finish_reason"] in ("stop", "length")
    u = msg.usage_metadata
    mine = [p for p in msg.response_metadata["particles"] if p["text"] == msg.content]
    assert mine and u["output_tokens"] <= 10 < msg.response_metadata["timing"]["tokens"]
    assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"]
    short = words_chat(seed=1, max_tokens=3, constraint=None).invoke("go")
    assert short.response_metadata["finish_reason"] in ("stop", "length")
    forced = words_chat(seed=1, max_tokens=2,
                        constraint=Regex("[abc. ]{2,}")).invoke("go")
    assert forced.response_metadata["finish_reason"] == "length"
    assert forced.usage_metadata["output_tokens"] == 2


def test_profile_declares_what_agents_read():
    prof = ChatAWRS(lm=words_chat().lm).profile
    assert prof["tool_calling"] and prof["tool_choice"] and prof["structured_output"]
    assert prof["image_inputs"] is False


def test_get_num_tokens_uses_the_models_own_tokenizer():
    """LangChain's default counts with GPT-2 from the Hub (it hangs offline)."""
    from awrs_adapters.lm import TransformersLM

    from test_transformers_lm import get_tokenizer, tiny_llama

    tok = get_tokenizer("byte_level")
    chat = ChatAWRS(lm=TransformersLM(tiny_llama(len(tok), seed=3), tok))
    assert chat.get_num_tokens("hello there") == len(tok.encode("hello there",
                                                                add_special_tokens=False))
    with pytest.raises(ConfigError, match="no tokenizer"):
        words_chat().get_num_tokens("abc")


@pytest.mark.parametrize("lm, fix", [("smollm2-135m-instruct", "model='smollm2"),
                                     (object(), "LanguageModel")])
def test_lm_that_is_not_a_language_model_is_refused(lm, fix):
    with pytest.raises(ConfigError, match=fix):
        ChatAWRS(lm=lm)


def test_tool_responses_follow_the_order_of_their_calls():
    """Two calls answered out of order: each response is rendered in its call's place
    (the pairing survives), so add(2, 3) is followed by 5, not by the other call's 30."""
    ai = AIMessage(content="", tool_calls=[
        {"name": "add", "args": {"a": 2, "b": 3}, "id": "c1", "type": "tool_call"},
        {"name": "add", "args": {"a": 10, "b": 20}, "id": "c2", "type": "tool_call"}])
    msgs = [HumanMessage("sum"), ai, ToolMessage("30", tool_call_id="c2"),
            ToolMessage("5", tool_call_id="c1")]
    chat = messages_to_chat(msgs)
    last = chat[-1]["content"]
    assert last.index("\n5\n") < last.index("\n30\n")
    with pytest.raises(ConfigError, match="tool_call_id='nope'"):
        messages_to_chat([HumanMessage("x"), ai, ToolMessage("1", tool_call_id="nope")])


def test_unreadable_messages_and_blocks_raise_typed_errors():
    image = {"type": "image", "url": "https://example.com/cat.png"}
    with pytest.raises(ConfigError, match="reads text only"):
        messages_to_chat([HumanMessage(content=[{"type": "text", "text": "what is it"}, image])])
    with pytest.raises(ConfigError, match="FunctionMessage"):
        messages_to_chat([SystemMessage("s"), FunctionMessage(content="1", name="f")])
    ok = messages_to_chat([HumanMessage(content=[{"type": "text", "text": "hi"}])])
    assert ok == [{"role": "user", "content": "hi"}]


def test_response_format_is_read_as_openai_defines_it():
    """LangChain 1.x agents bind OpenAI's response_format; a bad one or one next to a
    constraint is a ConfigError (the agent test runs the good one on the default model)."""
    with pytest.raises(ConfigError, match="response_format"):
        words_chat().invoke("x", response_format={"type": "xml"})
    with pytest.raises(ConfigError, match="both response_format and a constraint"):
        words_chat().invoke("x", response_format={"type": "json_object"})
    msg = words_chat(constraint=None).invoke("x", response_format={"type": "text"})
    assert isinstance(msg.content, str)
