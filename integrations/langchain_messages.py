"""LangChain messages and tool calls <-> the model's chat and its tool-call wire format.

Overview: :func:`messages_to_chat` turns LangChain messages (tool calls and tool results
included) into ``[{"role", "content"}]`` for the model's chat template, in the wire format
of :mod:`awrs_adapters.constraints.tools` (Hermes / Qwen2.5). :func:`normalize_tool_choice`
reads LangChain's / OpenAI's ``tool_choice``; :func:`tool_constraint` builds (and caches)
the :class:`~awrs_adapters.constraints.tools.ToolCalls` constraint of a binding;
:class:`ToolStream` turns committed output text into message chunks (content, or
``tool_call_chunks``) that never retract.
:class:`~awrs_adapters.integrations.langchain.ChatAWRS` uses them all.

Example::

    from langchain_core.messages import HumanMessage, SystemMessage
    from awrs_adapters.integrations.langchain_messages import ToolStream, messages_to_chat
    print(messages_to_chat([SystemMessage("be brief"), HumanMessage("hi")]))
    s = ToolStream()
    print(s.feed('<tool_call>\\n{"name": "f", "arguments": {"x": 1'))
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from typing import Any

try:
    from langchain_core.messages import (
        AIMessage,
        AIMessageChunk,
        BaseMessage,
        ChatMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
    )
except ImportError as e:  # pragma: no cover - exercised only without the extra
    from . import LANGCHAIN_HINT

    raise ImportError(LANGCHAIN_HINT) from e

from ..errors import ConfigError

__all__ = ["ToolStream", "messages_to_chat", "new_call_id", "normalize_tool_choice",
           "tool_constraint"]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def messages_to_chat(
    messages: Sequence[BaseMessage], tools: Sequence[dict] | None = None,
    tool_choice: str = "auto", parallel: bool = False,
) -> list[dict[str, str]]:
    """LangChain messages -> ``[{"role", "content"}]`` for the model's chat template.

    Tool use is written in the wire format of :mod:`awrs_adapters.constraints.tools`
    (Hermes / Qwen2.5): ``tools`` become instructions appended to the system message (one
    is added first when there is none); an ``AIMessage``'s ``tool_calls`` become
    ``<tool_call>`` blocks after its text; consecutive ``ToolMessage``s become one user
    turn of ``<tool_response>`` blocks, so roles still alternate (Gemma's template
    requires it).
    """
    from ..constraints.tools import format_tool_calls, render_tools

    out: list[dict[str, str]] = []
    for m in messages:
        content = _text_of(m.content)
        if isinstance(m, SystemMessage):
            role = "system"
        elif isinstance(m, HumanMessage):
            role = "user"
        elif isinstance(m, AIMessage):
            role = "assistant"
            if m.tool_calls:
                calls = format_tool_calls([(c["name"], c["args"]) for c in m.tool_calls])
                content = f"{content}\n{calls}" if content else calls
        elif isinstance(m, ToolMessage):
            block = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1]["role"] == "user" and out[-1]["content"].startswith("<tool_response>"):
                out[-1] = {"role": "user", "content": out[-1]["content"] + "\n" + block}
                continue
            role, content = "user", block
        elif isinstance(m, ChatMessage):
            role = m.role
        else:
            role = "user"
        out.append({"role": role, "content": content})
    if tools:
        text = render_tools(tools, tool_choice, parallel)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{text}"}
        else:
            out.insert(0, {"role": "system", "content": text})
    return out


_TOOL_CONSTRAINTS: dict[str, Any] = {}
_TOOL_CONSTRAINTS_LOCK = threading.Lock()


def tool_constraint(tools: list[dict], choice: str, parallel: bool, validators: dict) -> Any:
    """The :class:`~awrs_adapters.constraints.tools.ToolCalls` of a binding (cached).

    ``tools`` are OpenAI-format dicts, ``choice`` a normalised tool choice (see
    :func:`normalize_tool_choice`), ``validators`` maps tool names to pydantic classes.
    """
    from ..constraints.tools import ToolCalls

    key = json.dumps([tools, choice, parallel, sorted((k, id(v)) for k, v in validators.items())],
                     sort_keys=True, default=str)
    with _TOOL_CONSTRAINTS_LOCK:
        hit = _TOOL_CONSTRAINTS.get(key)
    if hit is None:
        hit = ToolCalls(tools, choice=choice, parallel=parallel, validators=validators)
        with _TOOL_CONSTRAINTS_LOCK:
            if len(_TOOL_CONSTRAINTS) > 64:
                _TOOL_CONSTRAINTS.clear()
            _TOOL_CONSTRAINTS[key] = hit
    return hit


def new_call_id() -> str:
    """A fresh tool-call id, ``call_`` and 24 hex digits."""
    return f"call_{uuid.uuid4().hex[:24]}"


def normalize_tool_choice(choice: Any, names: list[str]) -> str:
    """LangChain/OpenAI ``tool_choice`` -> ``auto`` / ``required`` / ``none`` / a name."""
    if choice is None or choice == "auto":
        return "auto"
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice is False or choice == "none":
        return "none"
    if isinstance(choice, dict):
        fn = choice.get("function") if choice.get("type") == "function" else None
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if isinstance(name, str):
            choice = name
    if isinstance(choice, str) and choice in names:
        return choice
    raise ConfigError(
        f"tool_choice={choice!r} names no bound tool; use None/'auto', 'any'/'required'/True, "
        f"'none'/False, or one of {names}"
    )


class ToolStream:
    """Turns committed output text into message chunks that never retract.

    Text mode (the output does not start with ``<tool_call>``): content deltas. Tool
    mode: ``tool_call_chunks``: the name and id once a call's head is committed, then
    its arguments' JSON text as it is committed (never the closing tags).
    """

    def __init__(self) -> None:
        self.text = ""
        self.mode: str | None = None
        self.sent = 0
        self.calls: list[list[Any]] = []  # [id, args chars sent]

    def feed(self, piece: str) -> list[AIMessageChunk]:
        from ..constraints.tools import CALL_TAG, call_arguments

        self.text += piece
        t = self.text
        if self.mode is None:
            if t.startswith(CALL_TAG):
                self.mode = "tools"
            elif not CALL_TAG.startswith(t):
                self.mode = "text"
            else:
                return []
        if self.mode == "text":
            out = [AIMessageChunk(content=t[self.sent:])] if len(t) > self.sent else []
            self.sent = len(t)
            return out
        chunks = []
        for i, (name, args, _closed) in enumerate(call_arguments(t)):
            if i == len(self.calls):
                self.calls.append([new_call_id(), 0])
                chunks.append(AIMessageChunk(content="", tool_call_chunks=[
                    {"name": name, "args": "", "id": self.calls[i][0], "index": i}]))
            if len(args) > self.calls[i][1]:
                chunks.append(AIMessageChunk(content="", tool_call_chunks=[
                    {"name": None, "args": args[self.calls[i][1]:], "id": None, "index": i}]))
                self.calls[i][1] = len(args)
        return chunks
