"""The OpenAI-compatible server, as a subprocess on a free port with the default model,
driven by the real ``openai`` client, LangChain's ``ChatOpenAI`` and raw HTTP.

References are independent of the sampler: ``jsonschema`` for JSON outputs, the pydantic
class itself for a registered validator, ``json.loads`` + ``jsonschema`` for tool-call
arguments."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from awrs_adapters import models  # noqa: E402

if not models.available()[0]["installed"]:
    pytest.skip("the embedded default model is not installed", allow_module_level=True)

MODEL = "smollm2-135m-instruct"
KEY = "sk-test-key-123"
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "age": {"type": "integer", "minimum": 0,
                                                   "maximum": 120}},
          "required": ["name", "age"], "additionalProperties": False}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    # one torch thread, as each test worker has (conftest): the suite runs two workers
    # on two cores, and a server with a thread per core would slow both
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"awrs-server-{port}.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from awrs_adapters.cli import main; raise SystemExit(main())",
         "serve", "--port", str(port), "--api-key", KEY, "--constraints", "server_constraints",
         "--max-tokens-limit", "256", "--max-body-bytes", "200000"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"the server exited: {log.read()[-3000:]}")
        time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(30)
    log.seek(0)
    text = log.read()
    log.close()
    assert KEY not in text  # the key is never logged


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=120)


def _post(server, path, body, key=KEY, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{server}{path}", headers=headers, timeout=120,
                      **({"content": body} if isinstance(body, bytes | str) else {"json": body}),
                      **kw)


def test_models_and_plain_chat(client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    r = client.chat.completions.create(model=MODEL, max_tokens=8, seed=0, messages=[
        {"role": "user", "content": "Say hello."}])
    c = r.choices[0]
    assert isinstance(c.message.content, str) and c.message.content
    assert c.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8
    assert r.model_extra["awrs"]["log_ml"] is not None


def test_stream_equals_the_same_seeds_response(client):
    """The stream's chunks concatenate to the answer the same request gets unstreamed
    (same seed: the same run and the same posterior draw); it ends with finish_reason
    and the usage chunk asked for. Broken variant that fails: streaming the posterior
    mode's tail while the unstreamed answer is a draw."""
    kw = dict(model=MODEL, max_tokens=12, seed=3, extra_body={"num_particles": 4},
              messages=[{"role": "user", "content": "Name three colours."}])
    full = client.chat.completions.create(**kw).choices[0].message.content
    chunks = list(client.chat.completions.create(**kw, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_json_schema_outputs_validate_and_n_draws(client):
    r = client.chat.completions.create(
        model=MODEL, max_tokens=40, seed=1, n=3, extra_body={"num_particles": 4},
        messages=[{"role": "user", "content": "Ada is 36. Give her as JSON."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": PERSON, "strict": True}})
    assert len(r.choices) == 3
    for c in r.choices:
        jsonschema.validate(json.loads(c.message.content), PERSON)


def test_registered_pydantic_validator_is_enforced(client):
    """"constraint": "EvenAge" names a class registered at start; its validator (even
    ages) holds in every draw (checked with the class itself)."""
    from server_constraints import EvenAge

    r = client.chat.completions.create(
        model=MODEL, max_tokens=16, seed=2, n=3, extra_body={"constraint": "EvenAge",
                                                             "num_particles": 4},
        messages=[{"role": "user", "content": "Give an age as JSON."}])
    for c in r.choices:
        EvenAge.model_validate_json(c.message.content)


def test_langchain_chat_openai_structured_output_and_tools(server):
    lc = pytest.importorskip("langchain_openai")
    from pydantic import BaseModel, Field

    class Person(BaseModel):
        name: str = Field(max_length=12)
        age: int = Field(ge=0, le=120)

    chat = lc.ChatOpenAI(base_url=f"{server}/v1", api_key=KEY, model=MODEL, max_tokens=40,
                         seed=0, max_retries=0, extra_body={"num_particles": 4})
    p = chat.with_structured_output(Person).invoke("Ada is 36. Give her as JSON.")
    assert isinstance(p, Person)

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    msg = chat.bind_tools([add], tool_choice="required").invoke("What is 2 + 3?")
    assert msg.tool_calls and all(tc["name"] == "add" for tc in msg.tool_calls)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
              "required": ["a", "b"]}
    for tc in msg.tool_calls:
        jsonschema.validate(tc["args"], schema)


def test_openai_tools_required_every_call_parses(client):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string", "maxLength": 10}},
            "required": ["city"], "additionalProperties": False}}}]
    r = client.chat.completions.create(
        model=MODEL, max_tokens=40, seed=4, n=2, tools=tools, tool_choice="required",
        extra_body={"num_particles": 4},
        messages=[{"role": "user", "content": "Weather in Paris?"}])
    for c in r.choices:
        assert c.finish_reason == "tool_calls" and c.message.tool_calls
        for tc in c.message.tool_calls:
            assert tc.function.name == "get_weather"
            jsonschema.validate(json.loads(tc.function.arguments),
                                tools[0]["function"]["parameters"])


def test_completions_endpoint_and_regex_extension(client):
    r = client.completions.create(model=MODEL, prompt="The year was", max_tokens=6, seed=0,
                                  extra_body={"regex": " [0-9]{4}", "num_particles": 4})
    import re

    assert re.fullmatch(" [0-9]{4}", r.choices[0].text)


OK_BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

BAD = [
    # (name, body or raw bytes, key, status, code)
    ("malformed json", b"{not json", KEY, 400, "invalid_json"),
    ("body not an object", b"[1, 2]", KEY, 400, "invalid_json"),
    ("unknown field", {**OK_BODY, "frobnicate": 1}, KEY, 400, "unknown_parameter"),
    ("top_p truncation", {**OK_BODY, "top_p": 0.5}, KEY, 400, "unsupported"),
    ("logprobs", {**OK_BODY, "logprobs": True}, KEY, 400, "unsupported"),
    ("messages missing", {"model": MODEL}, KEY, 400, "invalid_type"),
    ("messages empty", {**OK_BODY, "messages": []}, KEY, 400, "invalid_type"),
    ("bad role", {**OK_BODY, "messages": [{"role": "wizard", "content": "x"}]}, KEY, 400,
     "invalid_type"),
    ("image part", {**OK_BODY, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}, KEY, 400,
     "unsupported_content"),
    ("max_tokens string", {**OK_BODY, "max_tokens": "10"}, KEY, 400, "invalid_type"),
    ("max_tokens zero", {**OK_BODY, "max_tokens": 0}, KEY, 400, "invalid_value"),
    ("max_tokens huge", {**OK_BODY, "max_tokens": 10**9}, KEY, 400, "invalid_value"),
    ("both token limits", {**OK_BODY, "max_completion_tokens": 4}, KEY, 400, "invalid_value"),
    ("temperature negative", {**OK_BODY, "temperature": -1}, KEY, 400, "invalid_value"),
    ("temperature string", {**OK_BODY, "temperature": "hot"}, KEY, 400, "invalid_value"),
    ("n zero", {**OK_BODY, "n": 0}, KEY, 400, "invalid_value"),
    ("n huge", {**OK_BODY, "n": 1000}, KEY, 400, "invalid_value"),
    ("seed negative", {**OK_BODY, "seed": -5}, KEY, 400, "invalid_value"),
    ("stop list of ints", {**OK_BODY, "stop": [1, 2]}, KEY, 400, "invalid_value"),
    ("too many particles", {**OK_BODY, "num_particles": 10**6}, KEY, 400, "invalid_value"),
    ("unknown method", {**OK_BODY, "method": "beam"}, KEY, 400, "invalid_value"),
    ("bad response_format", {**OK_BODY, "response_format": {"type": "xml"}}, KEY, 400,
     "invalid_value"),
    ("invalid schema", {**OK_BODY, "response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "nonsense"}}}}, KEY, 400, "invalid_constraint"),
    ("invalid regex", {**OK_BODY, "regex": "(unclosed"}, KEY, 400, "invalid_constraint"),
    ("invalid grammar", {**OK_BODY, "grammar": "start: ???"}, KEY, 400, "invalid_constraint"),
    ("regex and grammar", {**OK_BODY, "regex": "a", "grammar": "start: \"a\""}, KEY, 400,
     "invalid_value"),
    ("unknown constraint", {**OK_BODY, "constraint": "os.system"}, KEY, 404,
     "constraint_not_found"),
    ("unknown model", {**OK_BODY, "model": "gpt-9"}, KEY, 404, "model_not_found"),
    ("tool_choice without tools", {**OK_BODY, "tool_choice": "required"}, KEY, 400,
     "invalid_value"),
    ("unknown tool named", {**OK_BODY, "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "g"}}}, KEY, 400,
     "invalid_value"),
    ("tools malformed", {**OK_BODY, "tools": [{"name": "f"}]}, KEY, 400, "invalid_value"),
    ("tool answer to no call", {**OK_BODY, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "zz", "content": "1"}]}, KEY, 400, "invalid_value"),
    ("unsatisfiable schema", {**OK_BODY, "max_tokens": 3, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "string", "minLength": 50}}}}, KEY, 422, "no_valid_sample"),
    ("missing key", OK_BODY, None, 401, "invalid_api_key"),
    ("wrong key", OK_BODY, "sk-wrong", 401, "invalid_api_key"),
    ("huge body", {**OK_BODY, "messages": [{"role": "user", "content": "x" * 300000}]}, KEY,
     413, "request_too_large"),
]


@pytest.mark.parametrize("name, body, key, status, code", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_the_right_status_and_error_body(server, name, body, key, status,
                                                         code):
    r = _post(server, "/v1/chat/completions", body, key=key)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and "Traceback" not in r.text
    assert set(err) == {"message", "type", "param", "code"}


def test_unknown_route_and_method_use_the_error_shape(server):
    r = httpx.get(f"{server}/v1/nothing", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(f"{server}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert httpx.get(f"{server}/health").status_code == 200  # no key needed
    assert httpx.get(f"{server}/v1/models").status_code == 401


def test_disconnect_mid_stream_and_concurrent_clients(server, client):
    """A client that drops its stream does not stop the server; 6 concurrent clients all
    get valid JSON (they step together on the server's scheduler)."""
    body = {**OK_BODY, "max_tokens": 200, "stream": True, "num_particles": 4,
            "messages": [{"role": "user", "content": "Write a long story."}]}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.status_code == 200
        next(r.iter_lines())

    def one(k: int) -> dict:
        return json.loads(client.chat.completions.create(
            model=MODEL, max_tokens=40, seed=k, extra_body={"num_particles": 4},
            messages=[{"role": "user", "content": f"Person {k} as JSON."}],
            response_format={"type": "json_schema", "json_schema": {
                "name": "p", "schema": PERSON, "strict": True}}).choices[0].message.content)

    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        outs = list(ex.map(one, range(6)))
    for o in outs:
        jsonschema.validate(o, PERSON)
