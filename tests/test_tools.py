"""Tool calls: the ToolCalls constraint, its exact posterior, and ChatAWRS.bind_tools.

The exact-posterior and language references are computed from the definition by a hand
parser of the wire format, ``json.loads`` + ``jsonschema`` on the arguments and the
pydantic validators (``independent.tool_calls_reference``), never from the llguidance
grammar the sampler uses, its prefix checks or masks. LangChain runs here use exact toy
models (milliseconds); the default model runs the standard suite in
test_langchain_model.py.
"""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
from independent import (
    definition,
    implied_posterior,
    language_mismatches,
    tool_calls_reference,
)
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from pydantic import BaseModel
from typing_extensions import TypedDict

from awrs_adapters import ConfigError, generate
from awrs_adapters.constraints.tools import (
    ToolCalls,
    format_tool_calls,
    parse_tool_calls,
)
from awrs_adapters.integrations.langchain import ChatAWRS, messages_to_chat
from awrs_adapters.integrations.langchain_messages import ToolStream as _ToolStream
from awrs_adapters.lm.function import FunctionLM
from awrs_adapters.testing import exact_posterior, total_variation
from awrs_adapters.vocab import Vocabulary

from conftest import F, hashed_lm

HEAD = '<tool_call>\n{"name": "f", "arguments": {"x": '
TAIL = "}}\n</tool_call>"


def f_tool(minimum: int = 0) -> dict:
    return {"type": "function", "function": {
        "name": "f", "description": "take a number",
        "parameters": {"type": "object", "properties": {"x": {"type": "integer", "minimum": minimum}},
                       "required": ["x"]}}}


G_TOOL = {"type": "function", "function": {"name": "g", "parameters": {
    "type": "object", "properties": {"s": {"type": "string", "maxLength": 3}}, "required": ["s"]}}}


def call(name: str, args: dict) -> str:
    return format_tool_calls([(name, args)])


# -- the constraint from its definition ------------------------------------------------
def test_accepts_matches_the_definition():
    c = ToolCalls([f_tool(), G_TOOL])
    assert c.accepts(call("f", {"x": 3})) and c.accepts(call("g", {"s": "abc"}))
    assert c.accepts("The answer is 3.") and c.accepts("<b>bold</b>") and c.accepts("<tool")
    assert not c.accepts(call("f", {"x": -1}))  # minimum
    assert not c.accepts(call("g", {"s": "abcd"}))  # maxLength
    assert not c.accepts(call("f", {"x": 3, "y": 1}))  # undeclared argument
    assert not c.accepts(call("h", {}))  # unknown tool
    assert not c.accepts(call("f", {}))  # missing required argument
    assert not c.accepts('<tool_call>\n{"name": "f", "arguments": {"x":3}}\n</tool_call>')
    assert not c.accepts("")
    two = call("f", {"x": 1}) + "\n" + call("g", {"s": "a"})
    assert not c.accepts(two)  # one call unless parallel
    assert ToolCalls([f_tool(), G_TOOL], parallel=True).accepts(two)
    assert not ToolCalls([f_tool()], choice="required").accepts("hi")
    assert not ToolCalls([f_tool()], choice="none").accepts(call("f", {"x": 1}))
    assert ToolCalls([f_tool()], choice="none").accepts("hi")
    named = ToolCalls([f_tool(), G_TOOL], choice="g")
    assert named.accepts(call("g", {"s": "a"})) and not named.accepts(call("f", {"x": 1}))
    assert not named.accepts("hi")


def test_pydantic_validators_hold_and_prefixes_are_sound():
    c = ToolCalls([f_tool()], validators={"f": F})
    assert c.accepts(call("f", {"x": 3})) and not c.accepts(call("f", {"x": 4}))
    assert c._prefix(HEAD + "3") and c._prefix(HEAD + "4")  # 4 may become 41
    assert not c._prefix(HEAD + "4}")  # closed: 4 is even
    assert not c._prefix(HEAD + "4}}\n</tool_call>")


def test_refs_in_arguments_schema_resolve():
    class Pt(BaseModel):
        x: int

    class Seg(BaseModel):
        a: Pt
        b: Pt

    from langchain_core.utils.function_calling import convert_to_openai_tool

    spec = convert_to_openai_tool(Seg)
    c = ToolCalls([spec], choice="required")
    ok = call("Seg", {"a": {"x": 1}, "b": {"x": 2}})
    assert c.accepts(ok) and not c.accepts(call("Seg", {"a": {"x": 1}, "b": {"y": 2}}))


def test_bad_tool_choice_and_tools_raise_typed_errors():
    with pytest.raises(ConfigError, match="tool_choice='nope'"):
        ToolCalls([f_tool()], choice="nope")
    with pytest.raises(ConfigError, match="unique"):
        ToolCalls([f_tool(), f_tool()])
    with pytest.raises(ConfigError, match="OpenAI-format"):
        ToolCalls([{"description": "no name"}])
    with pytest.raises(ConfigError, match="tool_choice='nope'"):
        ChatAWRS(lm=toy_lm()).bind_tools([f_tool()], tool_choice="nope")


def test_parse_strict_and_lenient():
    text = call("f", {"x": 3}) + "\n" + call("g", {"s": "é"})
    got = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in got] == [("f", {"x": 3}), ("g", {"s": "é"})]
    assert got[0].raw_arguments == '{"x": 3}'
    assert parse_tool_calls("hi") is None and parse_tool_calls(call("f", {"x": 3}) + " ") is None
    loose = 'Sure! <tool_call> {"name": "f", "arguments": "{\\"x\\": 2}"} </tool_call>'
    assert parse_tool_calls(loose) is None
    assert parse_tool_calls(loose, strict=False)[0].arguments == {"x": 2}
    assert parse_tool_calls("<tool_call>{bad</tool_call>", strict=False) is None


# -- exact posterior -------------------------------------------------------------------
TOKENS = [HEAD.encode(), b"1", b"2", TAIL.encode(), b"hi", b"<", b""]
EOS = 6
T = 5


def toy_lm():
    base = hashed_lm(TOKENS, EOS, seed=11, eos_bias=0.5).next_logprobs

    def next_logprobs(prefix):
        lp = base(prefix).copy()
        # give the call branch real mass beside text: open, an odd digit, close, end
        if not prefix:
            lp[0] += 4.0
        elif prefix == (0,):
            lp[1] += 3.0
        elif prefix[0] == 0 and len(prefix) in (2, 3):
            lp[3] += 2.5
        elif prefix[0] == 0 and prefix[-1] == 3:
            lp[EOS] += 2.0
        return lp

    return FunctionLM(TOKENS, EOS, next_logprobs)


def project(d: dict[str, float]) -> dict[str, float]:
    """Every text answer in one bucket (there are hundreds), each call on its own."""
    out: dict[str, float] = {}
    for s, p in d.items():
        k = s if s.startswith("<tool_call>") else "TEXT"
        out[k] = out.get(k, 0.0) + p
    return out


def combine(results):
    zs = [math.exp(r.log_ml) for r in results if r.log_ml is not None and r.ok]
    acc: dict[str, float] = {}
    for z, r in zip(zs, [r for r in results if r.log_ml is not None and r.ok]):
        for s, p in r.posterior.items():
            acc[s] = acc.get(s, 0.0) + z * p
    tot = sum(zs)
    return {s: v / tot for s, v in acc.items()}


@pytest.mark.parametrize("choice", ["auto", "required"])
def test_smc_matches_exact_posterior(choice):
    """Pooled AWRS-SMC runs against the exact posterior of the independent reference
    (hand parser + jsonschema + the pydantic validator), and the target the bound's
    checks define against the same (exact).

    Broken variant seen failing (monkeypatched): ToolCalls dropping the pydantic
    validators for grammar and end check alike (even x called: implied TV 0.07 for
    auto, 0.24 for required, where ``exact_posterior(lm, c)`` sees 0).
    """
    lm = toy_lm()
    c = ToolCalls([f_tool()], choice=choice, validators={"f": F})
    ref = tool_calls_reference([f_tool()], choice=choice, validators={"f": F})
    exact, z = exact_posterior(lm, definition(ref), T)
    implied, z_implied = implied_posterior(lm, c, T)
    assert z_implied == pytest.approx(z, rel=1e-12)
    assert total_variation(exact, implied) < 1e-12
    calls = {s for s in exact if s.startswith("<tool_call>")}
    assert calls and z > 0
    # only odd x: the pydantic validator holds in the reference (checked by accepts)
    assert all(json.loads(s[len("<tool_call>\n"):-len("\n</tool_call>")])["arguments"]["x"] % 2
               for s in calls)
    if choice == "auto":
        assert 0.2 < project(exact)["TEXT"] < 0.8  # both branches carry mass
    runs = [generate(lm, None, c, num_particles=8, max_tokens=T, seed=s) for s in range(600)]
    tv = total_variation(project(combine(runs)), project(exact))
    assert tv < 0.06, tv  # measured 0.02-0.04 (Monte Carlo error at 600 runs)


# -- the token language against the hand-written reference (issue 24) -------------------
GH = '<tool_call>\n{"name": "g", "arguments": {"s": "'
LANG_TOKENS = [HEAD, "1", "2", "3", TAIL, "<", GH, "abcd", "ab", '"}}\n</tool_call>',
               call("f", {"x": 3}), "\n"]
LANG_VOCAB = Vocabulary([t.encode() for t in LANG_TOKENS] + [b""], len(LANG_TOKENS))
LANG_TOOLS = [f_tool(minimum=2), G_TOOL]


@pytest.mark.parametrize("choice, parallel", [("auto", False), ("none", False),
                                              ("required", True), ("g", False)])
def test_token_language_equals_the_wire_format_reference(choice, parallel):
    """Every sequence of up to 4 tokens of LANG_VOCAB (22,621: text, calls of f and g
    whole or in pieces, odd/even and below/above minimum x, a string over maxLength,
    two calls): the bound accepts it (checks, EOS; masks a superset of the checks)
    iff the hand-written reference does.

    Broken variants seen failing (monkeypatched): ToolCalls dropping the pydantic
    validators (x = 2 called); the arguments schema compiled without ``minimum`` for
    grammar and end check alike (x = 1 called); both invisible to a reference built on
    ``ToolCalls.accepts``.
    """
    c = ToolCalls(LANG_TOOLS, choice=choice, parallel=parallel, validators={"f": F})
    ref = tool_calls_reference(LANG_TOOLS, choice=choice, parallel=parallel,
                               validators={"f": F})
    # masks on the call-only choices (the text choices have ~17,000 live states)
    bad, n_sampler, _ = language_mismatches(c, LANG_VOCAB, 4, ref,
                                            masks=choice not in ("auto", "none"))
    assert not bad, bad[:5]
    assert n_sampler > 20


def test_the_language_comparison_sees_a_wrong_tool_schema():
    """Control: the sampler of the tools with f's ``minimum`` at 0 and no validator,
    against the intended reference, calls f with x = 1 and x = 2."""
    c = ToolCalls([f_tool(minimum=0), G_TOOL], choice="required")
    bad, _, _ = language_mismatches(c, LANG_VOCAB, 4, tool_calls_reference(
        LANG_TOOLS, choice="required", validators={"f": F}), masks=False)
    wrong = {text for text, got, want in bad if got and not want}
    assert call("f", {"x": 1}) in wrong and call("f", {"x": 2}) in wrong


# -- LangChain -------------------------------------------------------------------------
def toy_chat(**kw) -> ChatAWRS:
    # a head that names the pydantic tool "F" instead of the token "<" (with no token
    # to go on after it, "<" is a dead end of this vocabulary: weighted, but it kills
    # every particle that takes it)
    tokens = [*TOKENS[:5], HEAD.replace('"f"', '"F"').encode(), TOKENS[EOS]]
    lm = hashed_lm(tokens, EOS, seed=11, eos_bias=0.5)
    return ChatAWRS(**{"lm": lm, "num_particles": 8, "max_tokens": 8, "seed": 0, **kw})


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_bind_tools_returns_schema_valid_tool_calls(temperature):
    chat = toy_chat(temperature=temperature).bind_tools([F], tool_choice="any")
    for seed in range(5):
        msg = chat.invoke("call f", seed=seed)
        assert msg.content == "" and len(msg.tool_calls) == 1
        tc = msg.tool_calls[0]
        assert tc["name"] == "F" and tc["id"].startswith("call_") and tc["type"] == "tool_call"
        F.model_validate(tc["args"])  # validators hold
        jsonschema.validate(tc["args"], F.model_json_schema())
        assert {"posterior", "particles", "log_ml"} <= set(msg.response_metadata)


def test_auto_may_answer_in_text_and_none_never_calls():
    texts = {toy_chat().bind_tools([f_tool()]).invoke("x", seed=s).content for s in range(12)}
    assert any(t for t in texts)  # some seeds answer in text under "auto"
    for s in range(6):
        msg = toy_chat().bind_tools([f_tool()], tool_choice="none").invoke("x", seed=s)
        assert not msg.tool_calls and not msg.content.startswith("<tool_call>")


def test_stream_chunks_merge_into_the_tool_call_and_never_retract():
    chat = toy_chat().bind_tools([f_tool()], tool_choice="f")
    chunks = list(chat.stream("go"))
    full = chunks[0]
    for ch in chunks[1:]:
        full = full + ch
    assert isinstance(full, AIMessageChunk) and len(full.tool_calls) == 1
    assert full.tool_calls[0]["name"] == "f" and isinstance(full.tool_calls[0]["args"]["x"], int)
    assert full.content == ""
    # streamed args are exactly the final call's arguments text
    args = "".join(c["args"] or "" for ch in chunks for c in ch.tool_call_chunks)
    assert json.loads(args) == full.tool_calls[0]["args"]


def test_tool_stream_shapes_text_and_calls():
    s = _ToolStream()
    out = [c for piece in ["<", "to", "ol_call>\n{\"na", 'me": "f", "argu', 'ments": ', '{"x"',
                           ": 12", "}}\n</tool", "_call>"] for c in s.feed(piece)]
    args = "".join(c.tool_call_chunks[0]["args"] for c in out)
    assert args == '{"x": 12}' and out[0].tool_call_chunks[0]["name"] == "f"
    t = _ToolStream()
    assert t.feed("<") == [] and t.feed("b>") [0].content == "<b>"


def test_messages_render_tools_calls_and_responses():
    msgs = [SystemMessage("be brief"), HumanMessage("1+2?"),
            AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "c1"},
                                      {"name": "ping", "args": {}, "id": "c2"}]),
            ToolMessage("3", tool_call_id="c1"), ToolMessage("ok", tool_call_id="c2")]
    out = messages_to_chat(msgs, [f_tool()], "auto")
    assert out[0]["role"] == "system" and out[0]["content"].startswith("be brief\n\n# Tools")
    assert '"name": "f"' in out[0]["content"]
    assert out[2] == {"role": "assistant", "content": format_tool_calls(
        [("add", {"a": 1, "b": 2}), ("ping", {})])}
    assert out[3] == {"role": "user", "content":
                      "<tool_response>\n3\n</tool_response>\n<tool_response>\nok\n</tool_response>"}
    assert len(out) == 4
    assert messages_to_chat([HumanMessage("hi")], [f_tool()], "required")[0]["content"].endswith(
        "You must call at least one function. Call at most one function.")


def test_bind_tools_accepts_what_langchain_users_pass():
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    class Weather(TypedDict):
        """Weather at a city."""

        city: str

    def mul(a: int, b: int) -> int:
        """Multiply two integers.

        Args:
            a: first
            b: second
        """
        return a * b

    bound = ChatAWRS(lm=toy_lm()).bind_tools([add, Weather, mul, F, f_tool(3)],
                                             tool_choice={"type": "function", "function": {"name": "mul"}})
    kw = bound.kwargs
    assert [t["function"]["name"] for t in kw["tools"]] == ["add", "Weather", "mul", "F", "f"]
    assert kw["tool_choice"] == "mul" and set(kw["tool_validators"]) == {"add", "F"}


def test_tools_and_constraint_together_is_an_error():
    from awrs_adapters.constraints import Regex

    chat = ChatAWRS(lm=toy_lm(), constraint=Regex("hi")).bind_tools([f_tool()])
    with pytest.raises(ConfigError, match="both tools and a constraint"):
        chat.invoke("x")


def test_api_key_and_standard_params_are_accepted():
    chat = ChatAWRS(lm=toy_lm(), api_key="sk-test", timeout=60, max_retries=2, stop=[],
                    temperature=0, max_tokens=5)
    assert chat.api_key.get_secret_value() == "sk-test"
