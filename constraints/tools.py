"""Tool calls as a constraint: free text, or calls whose arguments fit each tool's schema.

Overview: :class:`ToolCalls` accepts exactly the outputs an agent loop can use under a
``tool_choice``: either free text (where the choice allows it) or one or more tool calls
in the wire format below, each naming a declared tool and carrying arguments valid under
that tool's JSON schema (checked by llguidance while sampling and by ``jsonschema`` at
the end) and, for tools given a pydantic model, accepted by the model's validators (the
:class:`~awrs_adapters.constraints.Pydantic` slow path: sound prefix checks while
sampling, ``model_validate_json`` at the end).

Wire format (the Hermes / Qwen2.5 tool format, which many chat templates render)::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Several calls are such blocks joined by one newline. The ``name`` key comes first, then
``arguments`` (key order is fixed, as for every schema here). Free text is any text that
does not begin with ``<tool_call>``, so an output is read one way only.
:func:`render_tools` writes the matching instructions for a system prompt and
:func:`format_tool_calls` writes past calls the same way.

Example::

    >>> from awrs_adapters.constraints.tools import ToolCalls, parse_tool_calls
    >>> add = {"type": "function", "function": {"name": "add", "parameters": {
    ...     "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    ...     "required": ["a", "b"]}}}
    >>> c = ToolCalls([add], choice="required")
    >>> out = '<tool_call>\\n{"name": "add", "arguments": {"a": 1, "b": 2}}\\n</tool_call>'
    >>> assert c.accepts(out) and not c.accepts("The answer is 3.")
    >>> assert parse_tool_calls(out)[0].arguments == {"a": 1, "b": 2}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..protocol import BoundConstraint, Constraint
from ..vocab import Vocabulary

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "CALL_TAG",
    "ToolCall",
    "ToolCalls",
    "call_arguments",
    "format_tool_calls",
    "normalize_tool",
    "parse_tool_calls",
    "render_chat",
    "render_tools",
]

CALL_OPEN = "<tool_call>\n"
CALL_CLOSE = "\n</tool_call>"
CALL_TAG = "<tool_call>"

#: tool_choice values that mean "must call some tool" / "must not call".
REQUIRED = ("any", "required")
NONE = ("none",)


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: the tool's name, its arguments (a dict) and their JSON text."""

    name: str
    arguments: dict[str, Any]
    raw_arguments: str


def normalize_tool(tool: Any) -> dict[str, Any]:
    """``{"name", "description", "parameters"}`` from an OpenAI-format tool dict.

    Accepts ``{"type": "function", "function": {...}}`` and the inner ``{"name",
    "description", "parameters"}``; a missing ``parameters`` means no arguments.
    """
    if isinstance(tool, Mapping) and tool.get("type") == "function" and "function" in tool:
        tool = tool["function"]
    if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str) or not tool["name"]:
        raise ConfigError(
            f"tool={tool!r:.120} is not an OpenAI-format tool; pass {{'type': 'function', "
            "'function': {'name': ..., 'description': ..., 'parameters': {JSON schema}}}"
        )
    params = tool.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(params, Mapping):
        raise ConfigError(f"tool {tool['name']!r}: parameters={params!r:.80} is not a JSON schema dict")
    return {"name": tool["name"], "description": tool.get("description", ""),
            "parameters": dict(params)}


def _rebase_refs(node: Any) -> Any:
    """Move ``$ref``s that point into the arguments schema under ``#/properties/arguments``.

    The arguments schema is embedded in the call object; its ``$defs``/``definitions``
    are hoisted to the call object's root, so refs to those stay as they are.
    """
    if isinstance(node, list):
        return [_rebase_refs(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _rebase_refs(v) for k, v in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#") and not ref.startswith(
            ("#/$defs/", "#/definitions/")):
        out["$ref"] = "#/properties/arguments" + ref[1:]
    return out


def _call_schema(name: str, params: dict) -> dict:
    """The JSON schema of one call object ``{"name": name, "arguments": {...}}``."""
    args = _rebase_refs(params)
    defs = {k: args.pop(k) for k in ("$defs", "definitions") if k in args}
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": args},
        "required": ["name", "arguments"],
        "additionalProperties": False,
        **defs,
        # one canonical spelling (json.dumps's): mass is not split over whitespace
        # variants, and past calls in the prompt read the same. Unsupported keywords
        # are enforced by the jsonschema check at the end.
        "x-guidance": {"whitespace_flexible": False, "item_separator": ", ",
                       "key_separator": ": ", "lenient": True,
                       "json_allow_general_unicode_escapes": True},
    }


def _not_prefixed(tag: str) -> str:
    """A regex (llguidance's Lark syntax) for non-empty text not starting with ``tag``."""
    alts = []
    for k in range(len(tag)):
        head = re.escape(tag[:k])
        alts.append(f"{head}[^{re.escape(tag[k])}](.|\\n)*")
        if k:
            alts.append(head)
    return "|".join(alts).replace("/", "\\/")


def _args_end(body: str, start: int) -> int | None:
    """Index just past the JSON value starting at ``body[start]`` (None: unfinished)."""
    depth, i, n = 0, start, len(body)
    in_str = False
    while i < n:
        ch = body[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
                if depth == 0:
                    return i + 1
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"([^"\\]*)"\s*,\s*"arguments"\s*:\s*')


class ToolCalls(Constraint):
    """Free text or tool calls valid under the tools' schemas (see the module doc).

    Args:
        tools: OpenAI-format tool dicts (``langchain_core``'s ``convert_to_openai_tool``
            gives them for ``@tool`` functions, pydantic classes, TypedDicts, ...). Each
            ``parameters`` schema gets ``additionalProperties: false`` where unset, as
            strict function calling does: a call names only declared arguments.
        choice: ``"auto"`` (text or calls), ``"required"``/``"any"`` (one or more calls),
            ``"none"`` (text only) or a tool name (calls to that tool only).
        parallel: allow several calls in one output (default False: one call).
        validators: tool name -> pydantic model class whose validators the arguments
            must pass (e.g. the class a tool was made from, or a ``BaseTool``'s
            ``tool_call_schema``).

    Raises:
        ConfigError: no tools, a duplicate name, an unknown ``choice``.
        ConstraintError: a tool's schema cannot be compiled.
    """

    def __init__(
        self,
        tools: Sequence[Any],
        *,
        choice: str = "auto",
        parallel: bool = False,
        validators: Mapping[str, type] | None = None,
    ) -> None:
        from .json_schema import forbid_extra_keys
        from .schema_check import SchemaCheck

        specs = [normalize_tool(t) for t in tools]
        names = [s["name"] for s in specs]
        if not specs and choice not in NONE:
            raise ConfigError(f"tools={list(tools)!r}; pass at least one tool, or choice='none'")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"tool names must be unique; {dupes} appear more than once")
        if not isinstance(choice, str) or (
                choice not in ("auto", *REQUIRED, *NONE) and choice not in names):
            raise ConfigError(
                f"tool_choice={choice!r} names no tool; use 'auto', 'any', 'required', "
                f"'none' or one of {names}"
            )
        self.tools = specs
        self.choice = choice
        self.parallel = bool(parallel)
        self.names = names
        self._params = {s["name"]: forbid_extra_keys(s["parameters"]) for s in specs}
        self._checks = {n: SchemaCheck(p) for n, p in self._params.items()}
        self._models: dict[str, Any] = {}
        for name, model in (validators or {}).items():
            if name not in self._params:
                raise ConfigError(f"validators names {name!r}, which is not a tool; use one of {names}")
            from .pydantic import Pydantic

            self._models[name] = Pydantic(model)
        self.lark = self._grammar()
        import llguidance

        from .grammar import ll_check_grammar

        self.grammar = llguidance.LLMatcher.grammar_from_lark(self.lark)
        ll_check_grammar(self.grammar, "the tools' schemas",
                         "correct the tool's parameters schema named above")

    @property
    def allows_text(self) -> bool:
        return self.choice in ("auto", *NONE)

    @property
    def allows_calls(self) -> bool:
        return self.choice not in NONE

    def _grammar(self) -> str:
        lines = []
        starts = []
        if self.allows_text:
            starts.append("TEXT")
            lines.append(f"TEXT: /{_not_prefixed(CALL_TAG)}/")
        if self.allows_calls:
            starts.append("calls")
            lines.append('calls: call ("\\n" call)*' if self.parallel else "calls: call")
            chosen = [n for n in self.names if self.choice in (n, "auto", *REQUIRED)]
            alts = " | ".join(f"c{self.names.index(n)}" for n in chosen)
            lines.append(f'call: "<tool_call>\\n" ({alts}) "\\n</tool_call>"')
            for n in chosen:
                schema = _call_schema(n, self._params[n])
                lines.append(f"c{self.names.index(n)}: %json {json.dumps(schema)}")
        return "\n".join([f"start: {' | '.join(starts)}", *lines]) + "\n"

    # -- checks ------------------------------------------------------------------
    def _args_ok(self, name: str, raw: str) -> bool:
        if not self._checks[name](raw):
            return False
        model = self._models.get(name)
        return model is None or model._complete(raw)

    def _complete(self, text: str) -> bool:
        if not text.startswith(CALL_TAG):
            return self.allows_text
        calls = parse_tool_calls(text)
        if not calls or (len(calls) > 1 and not self.parallel):
            return False
        return all(c.name in self._checks and self._args_ok(c.name, c.raw_arguments)
                   for c in calls)

    def _prefix(self, text: str) -> bool:
        """Sound prefix check of the pydantic tools' validators (other checks: grammar)."""
        for name, args, closed in call_arguments(text):
            model = self._models.get(name)
            if model is not None and not (model._complete(args) if closed
                                          else model.check_prefix(args)):
                return False
        return True

    def accepts(self, text: str) -> bool:
        from .grammar import ll_accepts

        return ll_accepts(self.grammar, text) and self._complete(text)

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        from .grammar import LLGuidanceBound

        fast = LLGuidanceBound(self.grammar, vocab, complete=self._complete,
                               what="the tools' schemas")
        if not self._models:
            return fast
        from ..protocol import AndBound
        from .predicate import Predicate

        slow = Predicate(complete=lambda s: True, prefix=self._prefix, name="tool validators")
        return AndBound(vocab, [fast, slow.bind(vocab)])

    def __repr__(self) -> str:
        return f"ToolCalls({self.names}, choice={self.choice!r}, parallel={self.parallel})"


def call_arguments(text: str) -> list[tuple[str, str, bool]]:
    """For each call begun in ``text`` (a prefix of the wire format) whose arguments have
    begun: ``(name, arguments text so far, whether the arguments value is closed)``.

    The arguments text only grows as ``text`` grows (it starts at the value's first
    character), so it can be streamed.
    """
    out = []
    if not text.startswith(CALL_TAG):
        return out
    for block in text.split(CALL_CLOSE):
        body = block.lstrip("\n")
        if not body.startswith(CALL_OPEN):
            break
        body = body[len(CALL_OPEN):]
        m = _HEAD.match(body)
        if m is None or m.end() >= len(body):  # the head is not settled yet
            break
        end = _args_end(body, m.end())
        out.append((m.group(1), body[m.end(): len(body) if end is None else end], end is not None))
    return out


def parse_tool_calls(text: str, *, strict: bool = True) -> list[ToolCall] | None:
    """The calls in ``text``, or None when it is not (only) tool calls.

    ``strict`` (default): the exact wire format, nothing else in the text.
    ``strict=False`` reads unconstrained output: every ``<tool_call>...</tool_call>``
    block anywhere, with any whitespace; None if there is none or one fails to parse.
    """
    if strict:
        if not text.startswith(CALL_OPEN):
            return None
        bodies, rest = [], text
        while True:
            if not rest.startswith(CALL_OPEN):
                return None
            end = rest.find(CALL_CLOSE)
            if end < 0:
                return None
            bodies.append(rest[len(CALL_OPEN):end])
            rest = rest[end + len(CALL_CLOSE):]
            if not rest:
                break
            if not rest.startswith("\n"):
                return None
            rest = rest[1:]
    else:
        bodies = re.findall(r"<tool_call>(.*?)</tool_call>", text, flags=re.S)
        if not bodies:
            return None
    out = []
    for body in bodies:
        try:
            obj = json.loads(body)
        except ValueError:
            return None
        if not (isinstance(obj, dict) and isinstance(obj.get("name"), str)):
            return None
        args = obj.get("arguments", {})
        if isinstance(args, str) and not strict:  # some models write the JSON as a string
            try:
                args = json.loads(args)
            except ValueError:
                return None
        if not isinstance(args, dict):
            return None
        m = _HEAD.match(body) if strict else None
        raw = body[m.end():_args_end(body, m.end())] if m else json.dumps(args, ensure_ascii=False)
        out.append(ToolCall(obj["name"], args, raw))
    return out


def format_tool_calls(calls: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """Past calls ``[(name, args), ...]`` in the wire format (as the model would write them)."""
    return "\n".join(
        CALL_OPEN + json.dumps({"name": n, "arguments": dict(a)}, ensure_ascii=False) + CALL_CLOSE
        for n, a in calls
    )


def render_tools(tools: Sequence[Any], choice: str = "auto", parallel: bool = False) -> str:
    """System-prompt instructions for the wire format (the Qwen2.5 / Hermes wording)."""
    specs = [normalize_tool(t) for t in tools]
    lines = "\n".join(json.dumps({"type": "function", "function": s}, ensure_ascii=False)
                      for s in specs)
    text = (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{lines}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments "
        "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )
    if choice in REQUIRED:
        text += "\n\nYou must call at least one function."
    elif choice in NONE:
        text += "\n\nDo not call a function now: answer in text."
    elif choice != "auto":
        text += f"\n\nYou must call the function {choice}."
    if not parallel and choice not in NONE:
        text += " Call at most one function."
    return text


def render_chat(
    turns: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None = None,
    choice: str = "auto", parallel: bool = False,
) -> list[dict[str, str]]:
    """A conversation -> ``[{"role", "content"}]`` for the chat template, in the wire format.

    ``turns``: ``{"role", "content"}`` dicts (text content); an ``"assistant"`` turn may
    carry ``"tool_calls": [{"name", "args", "id"}]`` (written as ``<tool_call>`` blocks
    after its text) and a ``"tool"`` turn a ``"tool_call_id"``. Consecutive tool turns
    become one user turn of ``<tool_response>`` blocks (roles still alternate: Gemma's
    template requires it) in the order of the calls they answer, so a response cannot be
    read as another call's. ``tools`` become instructions appended to the system turn
    (one is added first when there is none). The LangChain chat model and the
    OpenAI-compatible server both render through here.

    Raises:
        ConfigError: a tool turn whose ``tool_call_id`` answers none of the calls of the
            assistant turn before it.
    """
    out: list[dict[str, str]] = []
    calls: list[Any] = []  # ids of the last assistant turn's calls
    i = 0
    while i < len(turns):
        t = turns[i]
        if t["role"] != "tool":
            content = t.get("content") or ""
            if t["role"] == "assistant":
                made = t.get("tool_calls") or []
                calls = [c.get("id") for c in made]
                if made:
                    block = format_tool_calls([(c["name"], c["args"]) for c in made])
                    content = f"{content}\n{block}" if content else block
            out.append({"role": t["role"], "content": content})
            i += 1
            continue
        j = i
        while j < len(turns) and turns[j]["role"] == "tool":
            j += 1
        run = list(turns[i:j])
        if calls and any(r.get("tool_call_id") is not None for r in run):
            stray = [r.get("tool_call_id") for r in run if r.get("tool_call_id") not in calls]
            if stray:
                raise ConfigError(
                    f"tool message tool_call_id={stray[0]!r} answers none of the preceding "
                    f"assistant message's calls {calls}; give each tool message the id of the "
                    "call it answers")
            run.sort(key=lambda r: calls.index(r.get("tool_call_id")))
        out.append({"role": "user", "content": "\n".join(
            f"<tool_response>\n{r.get('content') or ''}\n</tool_response>" for r in run)})
        i = j
    if tools:
        text = render_tools(tools, choice, parallel)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{text}"}
        else:
            out.insert(0, {"role": "system", "content": text})
    return out
