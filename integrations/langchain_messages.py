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

    >>> from langchain_core.messages import HumanMessage, SystemMessage
    >>> from awrs_adapters.integrations.langchain_messages import ToolStream, messages_to_chat
    >>> print(messages_to_chat([SystemMessage("be brief"), HumanMessage("hi")]))
    [{'role': 'system', 'content': 'be brief'}, {'role': 'user', 'content': 'hi'}]
    >>> s = ToolStream()
    >>> chunks = s.feed('<tool_call>\\n{"name": "f", "arguments": {"x": 1')
    >>> [(c.tool_call_chunks[0]["name"], c.tool_call_chunks[0]["args"]) for c in chunks]
    [('f', ''), (None, '{"x": 1')]
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


#: content blocks the text model cannot read: refused rather than dropped
_MEDIA = frozenset({"image", "image_url", "input_image", "audio", "input_audio", "video",
                    "file", "document", "pdf"})
#: blocks with nothing for the prompt (the calls are in ``tool_calls``; hidden reasoning)
_SKIP = frozenset({"tool_use", "tool_call", "tool_call_chunk", "function_call", "reasoning",
                   "thinking", "redacted_thinking", "server_tool_call", "server_tool_result"})


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type") if isinstance(block, dict) else type(block).__name__
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind in _SKIP:
            continue
        elif kind in _MEDIA:
            raise ConfigError(
                f"{where} has a {kind!r} content block; this model reads text only: describe "
                "it in text, or use a multimodal chat model for this message")
        else:
            raise ConfigError(
                f"{where} has a content block of type {kind!r}, which this model cannot read; "
                "pass text (a string or {'type': 'text', 'text': ...} blocks)")
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
    turn of ``<tool_response>`` blocks in the order of the calls they answer (matched by
    ``tool_call_id``), so roles still alternate (Gemma's template requires it).

    Raises:
        ConfigError: a message class it cannot place (it names the ones it can), a
            content block the text model cannot read (images, audio, files), or a
            ToolMessage whose ``tool_call_id`` answers no call before it.
    """
    from ..constraints.tools import render_chat

    turns: list[dict[str, Any]] = []
    for k, m in enumerate(messages):
        content = _text_of(m.content, f"message {k} ({type(m).__name__})")
        if isinstance(m, SystemMessage):
            turns.append({"role": "system", "content": content})
        elif isinstance(m, HumanMessage):
            turns.append({"role": "user", "content": content})
        elif isinstance(m, AIMessage):
            turns.append({"role": "assistant", "content": content, "tool_calls": [
                {"name": c["name"], "args": c["args"], "id": c.get("id")} for c in m.tool_calls]})
        elif isinstance(m, ToolMessage):
            turns.append({"role": "tool", "content": content, "tool_call_id": m.tool_call_id})
        elif isinstance(m, ChatMessage):
            turns.append({"role": m.role, "content": content})
        else:
            raise ConfigError(
                f"message {k} is a {type(m).__name__}; ChatAWRS renders SystemMessage, "
                "HumanMessage, AIMessage (with tool_calls), ToolMessage and ChatMessage: "
                "convert it to one of those")
    return render_chat(turns, tools, tool_choice, parallel)


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
