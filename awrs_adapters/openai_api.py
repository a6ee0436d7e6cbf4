"""The OpenAI chat/completions wire format: requests -> calls, results -> responses.

Overview: :func:`parse_chat` and :func:`parse_completion` check a request body (a
``dict`` from JSON) field by field and return a :class:`Plan`: the prompt, the
constraint (from ``response_format``, ``tools``/``tool_choice``, or the extension fields
``regex``, ``grammar``, ``constraint``), the run parameters and ``n``. Every bad value
raises :class:`APIError` with the status, ``type``, ``param`` and ``code`` the API uses,
so a server can answer ``{"error": {...}}`` and never a traceback. :func:`chat_response`,
:func:`completion_response` and :func:`chunk` build the response objects; ``n`` choices
are ``n`` draws from the one posterior of the request. :mod:`awrs_adapters.server` serves
them over HTTP; this module imports no web framework.

Example::

    >>> from awrs_adapters.openai_api import Limits, parse_chat
    >>> plan = parse_chat({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
    ...                    "response_format": {"type": "json_object"}, "n": 2},
    ...                   model="m", registry={}, limits=Limits())
    >>> print(plan.constraint, plan.n, plan.params.max_tokens)
    JSONSchema(18 chars, backend='llguidance') 2 256
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .api import DEFAULT_MAX_TOKENS
from .errors import AWRSError
from .results import SMCResult
from .streaming import RunParams

__all__ = ["APIError", "Limits", "Plan", "chat_response", "chunk", "completion_response",
           "parse_chat", "parse_completion", "response_format_constraint"]

#: fields the API defines that only have their neutral value here (anything else: 400)
_NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "logprobs": False, "top_p": 1,
            "logit_bias": {}, "top_logprobs": None, "echo": False, "best_of": 1, "suffix": None}
#: accepted and ignored: bookkeeping that does not change the output
_IGNORED = {"user", "store", "metadata", "service_tier", "stream_options",
            "prompt_cache_key", "safety_identifier"}
_EXTENSIONS = {"num_particles", "method", "regex", "grammar", "constraint"}
_COMMON = {"model", "temperature", "max_tokens", "n", "seed", "stop", "stream"} | _EXTENSIONS
_CHAT = _COMMON | {"messages", "max_completion_tokens", "response_format", "tools",
                   "tool_choice", "parallel_tool_calls"}
_COMPLETION = _COMMON | {"prompt"}


class APIError(AWRSError):
    """A request the API refuses: ``status`` (400/401/404/413/422...), and the error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = (
            status, message, param, code, type)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (the server's ``--max-*`` options)."""

    max_tokens: int = 1024
    max_particles: int = 64
    max_n: int = 16
    default_max_tokens: int = DEFAULT_MAX_TOKENS
    default_particles: int = 8


@dataclass
class Plan:
    """One request, checked: what to run and how to answer."""

    prompt: Any
    constraint: Any
    params: RunParams
    n: int = 1
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    tools: bool = False  # the output is text or tool calls to parse


def _bad(param: str, message: str, code: str | None = "invalid_value") -> APIError:
    return APIError(400, f"{param}: {message}", param=param, code=code)


def _int(body: Mapping[str, Any], key: str, lo: int, hi: int | None, default: Any) -> Any:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(key, f"expected an integer, got {json.dumps(v)[:40]}", "invalid_type")
    if v < lo or (hi is not None and v > hi):
        raise _bad(key, f"{v} is out of range [{lo}, {hi if hi is not None else 'inf'}]")
    return v


def _check_fields(body: Any, allowed: set[str]) -> None:
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    for k, v in body.items():
        if k in allowed or k in _IGNORED:
            continue
        if k in _NEUTRAL:
            if v is None or v == _NEUTRAL[k]:
                continue
            raise _bad(k, f"only {json.dumps(_NEUTRAL[k])} is supported (the sampler "
                          "conditions the model exactly; it does not reshape it)", "unsupported")
        raise APIError(400, f"unknown field {k!r}", param=k, code="unknown_parameter")


def _common(body: Mapping[str, Any], model: str, limits: Limits, max_key: str) -> dict[str, Any]:
    name = body.get("model")
    if name is not None and name != model:
        raise APIError(404, f"the model {name!r} does not exist; this server serves {model!r}",
                       param="model", code="model_not_found")
    t = body.get("temperature", 1.0)
    t = 1.0 if t is None else t
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 2:
        raise _bad("temperature", f"expected a number in [0, 2], got {json.dumps(t)[:40]}")
    stop = body.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) and s for s in stop) and len(stop) <= 4:
        stops = list(stop)
    else:
        raise _bad("stop", "expected a string or a list of up to 4 non-empty strings")
    method = body.get("method", "awrs-smc")
    if method not in ("awrs-smc", "lcd", "sample-verify", "mask-smc"):
        raise _bad("method", f"{method!r}; use 'awrs-smc', 'lcd', 'sample-verify' or 'mask-smc'")
    seed = _int(body, "seed", 0, 2**63 - 1, None)
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise _bad("stream", "expected true or false", "invalid_type")
    opts = body.get("stream_options") or {}
    return dict(
        max_tokens=_int(body, max_key, 1, limits.max_tokens, limits.default_max_tokens),
        num_particles=_int(body, "num_particles", 1, limits.max_particles,
                           limits.default_particles),
        n=_int(body, "n", 1, limits.max_n, 1), temperature=float(t), stop=stops,
        method=method, seed=seed, stream=bool(stream),
        include_usage=bool(isinstance(opts, dict) and opts.get("include_usage")))


def _run_params(c: dict[str, Any]) -> RunParams:
    return RunParams(num_particles=c["num_particles"], max_tokens=c["max_tokens"],
                     method=c["method"], temperature=c["temperature"],
                     seed=np.random.default_rng(c["seed"]))


def _extension_constraint(body: Mapping[str, Any], registry: Mapping[str, Any]) -> Any:
    """The constraint of ``regex`` / ``grammar`` / ``constraint`` (at most one)."""
    given = [k for k in ("regex", "grammar", "constraint") if body.get(k) is not None]
    if len(given) > 1:
        raise _bad(given[1], f"give one of regex, grammar, constraint (got {given})")
    if not given:
        return None
    key = given[0]
    v = body[key]
    if not isinstance(v, str):
        raise _bad(key, "expected a string", "invalid_type")
    if key == "constraint":
        if v not in registry:
            raise APIError(404, f"constraint {v!r} is not registered; this server has "
                                f"{sorted(registry)[:20]}", param=key, code="constraint_not_found")
        return registry[v]
    from .constraints import Grammar, Regex

    return _compiled(key, lambda: Regex(v) if key == "regex" else Grammar(v))


def _compiled(param: str, make: Any) -> Any:
    from .errors import ConfigError, ConstraintError

    try:
        return make()
    except (ConfigError, ConstraintError, ValueError) as e:
        raise _bad(param, str(e), "invalid_constraint") from None


def response_format_constraint(rf: Any) -> Any:
    """The constraint of an OpenAI ``response_format`` (None for ``text``).

    ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`` -> the schema
    (``strict``: only its keys, as the API's strict mode); ``{"type": "json_object"}`` ->
    any JSON object. The LangChain chat model takes it too (LangChain 1.x agents bind it).

    Raises:
        ConfigError: ``rf`` is not one of these shapes.
        ConstraintError: the schema does not compile.
    """
    from .errors import ConfigError, ConstraintError

    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise ConfigError(f"response_format={json.dumps(rf, default=repr)[:80]}; expected "
                          "{'type': 'text' | 'json_object' | 'json_schema', ...}")
    from .constraints import JSONSchema

    if rf["type"] == "text":
        return None
    if rf["type"] == "json_object":
        return JSONSchema({"type": "object"})
    js = rf.get("json_schema")
    if not isinstance(js, dict) or not isinstance(js.get("schema"), dict):
        raise ConfigError("response_format.json_schema: expected {'name': ..., 'schema': {...}}")
    from .constraints.json_schema import forbid_extra_keys

    schema = js["schema"]
    if js.get("strict"):  # strict: only the schema's keys, as the API's strict mode
        schema = forbid_extra_keys(schema)
    try:
        return JSONSchema(schema)
    except (ConfigError, ConstraintError, ValueError) as e:
        raise ConstraintError(f"response_format.json_schema.schema: {e}") from None


def _response_format(body: Mapping[str, Any]) -> Any:
    from .errors import ConfigError

    rf = body.get("response_format")
    if rf is None:
        return None
    try:
        return response_format_constraint(rf)
    except ConfigError as e:
        raise _bad("response_format", str(e)) from None
    except AWRSError as e:
        raise _bad("response_format.json_schema.schema", str(e), "invalid_constraint") from None


def _content(v: Any, where: str) -> str:
    if v is None or isinstance(v, str):
        return v or ""
    if isinstance(v, list):
        out = []
        for part in v:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                out.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise _bad(where, f"a {kind!r} content part; this model reads text only",
                           "unsupported_content")
        return "".join(out)
    raise _bad(where, "expected a string or a list of text parts", "invalid_type")


def _turns(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "expected a non-empty list of messages", "invalid_type")
    turns: list[dict[str, Any]] = []
    for k, m in enumerate(messages):
        where = f"messages[{k}]"
        if not isinstance(m, dict) or m.get("role") not in (
                "system", "developer", "user", "assistant", "tool"):
            raise _bad(where, "expected {'role': system|developer|user|assistant|tool, "
                              "'content': ...}", "invalid_type")
        role = "system" if m["role"] == "developer" else m["role"]
        turn: dict[str, Any] = {"role": role, "content": _content(m.get("content"), where)}
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = c.get("function") if isinstance(c, dict) else None
                try:
                    if not isinstance(fn, dict):
                        raise TypeError("no function")
                    args = json.loads(fn["arguments"]) if isinstance(fn["arguments"], str) else fn["arguments"]
                    calls.append({"name": str(fn["name"]), "args": args, "id": c.get("id")})
                except (TypeError, KeyError, ValueError):
                    raise _bad(f"{where}.tool_calls", "expected [{'id', 'type': 'function', "
                               "'function': {'name', 'arguments' (JSON text)}}]") from None
            turn["tool_calls"] = calls
        if role == "tool":
            turn["tool_call_id"] = m.get("tool_call_id")
        turns.append(turn)
    return turns


def _tools(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str, bool] | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    par = body.get("parallel_tool_calls")
    if par is not None and not isinstance(par, bool):
        raise _bad("parallel_tool_calls", "expected true or false", "invalid_type")
    if not tools:
        if choice not in (None, "none", "auto") or par:
            raise _bad("tool_choice", "tool_choice / parallel_tool_calls without tools")
        return None
    if not isinstance(tools, list) or not all(
            isinstance(t, dict) and t.get("type") == "function"
            and isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)
            for t in tools):
        raise _bad("tools", "expected [{'type': 'function', 'function': {'name', 'parameters'}}]")
    names = [t["function"]["name"] for t in tools]
    if choice is None or choice == "auto":
        c = "auto"
    elif choice in ("none", "required"):
        c = choice
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict) \
            and choice["function"].get("name") in names:
        c = choice["function"]["name"]
    else:
        raise _bad("tool_choice", f"{json.dumps(choice)[:60]}; use 'auto', 'none', 'required' "
                                  f"or {{'type': 'function', 'function': {{'name': one of {names}}}}}")
    return tools, c, bool(par)


def parse_chat(body: Any, *, model: str, registry: Mapping[str, Any], limits: Limits) -> Plan:
    """Check a ``/v1/chat/completions`` body; raise :class:`APIError` for a bad one."""
    _check_fields(body, _CHAT)
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise _bad("max_tokens", "give max_tokens or max_completion_tokens, not both")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    c = _common(body, model, limits, key)
    turns = _turns(body.get("messages"))
    tools = _tools(body)
    if body.get("response_format") is not None and any(
            body.get(k) is not None for k in ("regex", "grammar", "constraint")):
        raise _bad("response_format", "give response_format or one of regex/grammar/constraint")
    constraint = _response_format(body)
    if constraint is None:
        constraint = _extension_constraint(body, registry)
    from .constraints.tools import ToolCalls, render_chat

    try:
        if tools is not None and tools[1] != "none":
            if constraint is not None:
                raise _bad("tools", "tools and a response constraint together; a call's "
                                    "arguments follow its tool's schema")
            constraint = _compiled("tools", lambda: ToolCalls(tools[0], choice=tools[1],
                                                              parallel=tools[2]))
        prompt = render_chat(turns, *(tools or (None, "auto", False)))
    except AWRSError as e:
        if isinstance(e, APIError):
            raise
        raise _bad("messages", str(e)) from None
    return Plan(prompt=prompt, constraint=constraint, params=_run_params(c), n=c["n"],
                stop=c["stop"], stream=c["stream"], include_usage=c["include_usage"],
                tools=tools is not None and tools[1] != "none")


def parse_completion(body: Any, *, model: str, registry: Mapping[str, Any],
                     limits: Limits) -> Plan:
    """Check a ``/v1/completions`` body (one prompt string, used as is: no template)."""
    _check_fields(body, _COMPLETION)
    c = _common(body, model, limits, "max_tokens")
    p = body.get("prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], str):
        p = p[0]
    if not isinstance(p, str):
        raise _bad("prompt", "expected a string (one prompt per request)", "invalid_type")
    return Plan(prompt=p, constraint=_extension_constraint(body, registry),
                params=_run_params(c), n=c["n"], stop=c["stop"], stream=c["stream"],
                include_usage=c["include_usage"])


# -- responses --------------------------------------------------------------------------
def draws(res: SMCResult, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` texts drawn from the posterior (one request, one population)."""
    return [res.sample(rng) for _ in range(n)]


def _finish(res: SMCResult, text: str) -> str:
    mine = [p for p in res.particles if p.finished and p.text == text]
    return "length" if mine and all(p.truncated for p in mine) else "stop"


def _tokens(res: SMCResult, text: str) -> int:
    return min((len(p.token_ids) for p in res.particles if p.finished and p.text == text),
               default=0)


def _extension(res: SMCResult) -> dict[str, Any]:
    return {"posterior": res.posterior, "log_ml": res.log_ml, "ess": res.ess,
            "num_particles": len(res.particles)}


def message(text: str, res: SMCResult, tools: bool) -> tuple[dict[str, Any], str]:
    """The assistant message of one draw and its finish reason."""
    if tools:
        from .constraints.tools import parse_tool_calls

        calls = parse_tool_calls(text)
        if calls:
            return {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in calls]}, "tool_calls"
    return {"role": "assistant", "content": text}, _finish(res, text)


def chat_response(res: SMCResult, texts: list[str], *, model: str, prompt_tokens: int,
                  tools: bool, rid: str | None = None) -> dict[str, Any]:
    choices = []
    for i, t in enumerate(texts):
        msg, reason = message(t, res, tools)
        choices.append({"index": i, "message": msg, "finish_reason": reason, "logprobs": None})
    out_tokens = sum(_tokens(res, t) for t in texts)
    return {"id": rid or f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": model, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": out_tokens,
                      "total_tokens": prompt_tokens + out_tokens},
            "awrs": _extension(res)}


def completion_response(res: SMCResult, texts: list[str], *, model: str,
                        prompt_tokens: int) -> dict[str, Any]:
    choices = [{"index": i, "text": t, "finish_reason": _finish(res, t), "logprobs": None}
               for i, t in enumerate(texts)]
    out_tokens = sum(_tokens(res, t) for t in texts)
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
            "created": int(time.time()), "model": model, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": out_tokens,
                      "total_tokens": prompt_tokens + out_tokens},
            "awrs": _extension(res)}


def chunk(rid: str, model: str, created: int, delta: dict[str, Any] | None = None,
          finish: str | None = None, index: int = 0, chat: bool = True) -> dict[str, Any]:
    """One server-sent event's object of a streamed response."""
    if chat:
        return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish,
                             "logprobs": None}]}
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": index, "text": (delta or {}).get("content", ""),
                         "finish_reason": finish, "logprobs": None}]}
