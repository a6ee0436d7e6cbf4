"""LangChain integration: a chat model and an LLM that sample with AWRS-SMC.

Overview: :class:`ChatAWRS` is a ``BaseChatModel`` (invoke, batch, stream and their
async forms; ``bind(constraint=...)``; ``with_structured_output``); :class:`AWRSLLM` is a
``BaseLLM`` for string-in/string-out chains. Both run the synchronous core; the async
forms run it in a worker thread, so the event loop is never blocked. The particle set,
posterior, ``log_ml`` and ESS history come back in ``response_metadata`` (chat) or
``llm_output`` / ``generation_info`` (LLM). Streaming is honest: a chunk is emitted only
once every weighted particle shares it.

Example::

    from pydantic import BaseModel
    from awrs_adapters.integrations.langchain import ChatAWRS

    class Person(BaseModel):
        name: str
        age: int

    chat = ChatAWRS(num_particles=4, max_tokens=48)     # the embedded SmolLM2 by default
    person = chat.with_structured_output(Person).invoke("Ada Lovelace was 36. Extract.")
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator, Sequence
from operator import itemgetter
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel, BaseLLM
    from langchain_core.messages import (
        AIMessage,
        AIMessageChunk,
        BaseMessage,
        ChatMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
    )
    from langchain_core.outputs import (
        ChatGeneration,
        ChatGenerationChunk,
        ChatResult,
        Generation,
        GenerationChunk,
        LLMResult,
    )
    from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "awrs_adapters.integrations.langchain needs langchain-core: "
        "pip install 'awrs-adapters[langchain]'"
    ) from e
from pydantic import ConfigDict, Field, SecretStr

from ..errors import ConfigError, NoValidSampleError
from ..lm.base import LanguageModel
from ..results import SMCResult
from ._runner import RunParams, particle_table, run_streaming

__all__ = ["AWRSLLM", "ChatAWRS"]

_MODELS: dict[str, LanguageModel] = {}
_MODELS_LOCK = threading.Lock()


def _load(name: str) -> LanguageModel:
    with _MODELS_LOCK:
        if name not in _MODELS:
            from .. import models

            _MODELS[name] = models.load(name)
        return _MODELS[name]


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


def _tool_constraint(tools: list[dict], choice: str, parallel: bool, validators: dict) -> Any:
    """The :class:`~awrs_adapters.constraints.tools.ToolCalls` of a binding (cached)."""
    import json

    from ..constraints.tools import ToolCalls

    key = json.dumps([tools, choice, parallel, sorted((k, id(v)) for k, v in validators.items())],
                     sort_keys=True, default=str)
    with _MODELS_LOCK:
        hit = _TOOL_CONSTRAINTS.get(key)
    if hit is None:
        hit = ToolCalls(tools, choice=choice, parallel=parallel, validators=validators)
        with _MODELS_LOCK:
            if len(_TOOL_CONSTRAINTS) > 64:
                _TOOL_CONSTRAINTS.clear()
            _TOOL_CONSTRAINTS[key] = hit
    return hit


def _call_id() -> str:
    import uuid

    return f"call_{uuid.uuid4().hex[:24]}"


def _tool_choice(choice: Any, names: list[str]) -> str:
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


class _ToolStream:
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
                self.calls.append([_call_id(), 0])
                chunks.append(AIMessageChunk(content="", tool_call_chunks=[
                    {"name": name, "args": "", "id": self.calls[i][0], "index": i}]))
            if len(args) > self.calls[i][1]:
                chunks.append(AIMessageChunk(content="", tool_call_chunks=[
                    {"name": None, "args": args[self.calls[i][1]:], "id": None, "index": i}]))
                self.calls[i][1] = len(args)
        return chunks


def _pieces_in_thread(run: Any) -> Iterator[str]:
    """Run ``run(on_text)`` in a worker thread; yield the pieces it passes to ``on_text``.

    The core is synchronous; this lets ``_stream`` hand out text as it is committed. The
    generator's return value (``StopIteration.value``) is what ``run`` returned; an
    exception raised by ``run`` is re-raised in the consumer's thread.
    """
    import queue

    q: queue.Queue = queue.Queue()
    done = object()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["res"] = run(q.put)
        except BaseException as e:  # re-raised in the consumer's thread
            box["err"] = e
        q.put(done)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    while (item := q.get()) is not done:
        yield item
    t.join()
    if "err" in box:
        raise box["err"]
    return box["res"]


#: keyword arguments a call (``invoke(..., **kw)``, ``bind(**kw)``) may carry
_CALL_KWARGS = frozenset(RunParams.__dataclass_fields__) | {
    "model", "constraint", "tools", "tool_choice", "parallel_tool_calls", "tool_validators"}


class _AWRSFields:
    """Fields and helpers shared by :class:`ChatAWRS` and :class:`AWRSLLM`."""

    model: str = Field(default="smollm2-135m-instruct")
    """An embedded model name (``awrs_adapters.models``), a Hugging Face id or a local path."""
    lm: Any = Field(default=None, exclude=True)
    """An already loaded ``awrs_adapters.lm.LanguageModel``; overrides ``model``."""
    num_particles: int = 8
    """Particles per call (N)."""
    max_tokens: int = 256
    """Tokens generated per particle before the end is forced."""
    temperature: float = 1.0
    """Sampling temperature; 0 decodes greedily (most probable valid token, no weights)."""
    method: str = "awrs-smc"
    """``awrs-smc`` (default), ``lcd``, ``sample-verify`` or ``mask-smc``."""
    ess_threshold: float = 0.5
    """Resample when ESS < ess_threshold·N."""
    resampling: str = "stratified"
    """Resampling scheme."""
    seed: int | None = None
    """Seed of each call (None: fresh randomness)."""
    constraint: Any = Field(default=None, exclude=True)
    """Default constraint (any the library accepts); ``bind(constraint=...)`` overrides."""
    stop: list[str] | None = None
    """Default stop sequences; the output ends before the first one."""
    timeout: float | None = None
    """Seconds per call before ``GenerationTimeoutError``."""
    max_retries: int = 0
    """Retries (next draws of the seed's generator) when no particle survives."""
    streaming: bool = False
    """Chat model: route ``invoke`` through ``_stream`` (callbacks get tokens as committed)."""
    api_key: SecretStr | None = Field(default=None, exclude=True)
    """Accepted so ``ChatAWRS`` can replace a hosted chat model unchanged; a local model
    needs no key and ignores it."""

    def _lm_for(self, kwargs: dict[str, Any]) -> LanguageModel:
        name = kwargs.get("model")
        if name is not None and name != self.model:
            return _load(name)
        if self.lm is not None:
            return self.lm
        return _load(self.model)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._params({})  # a value that cannot work fails here, not at the first call

    def _params(self, kwargs: dict[str, Any]) -> RunParams:
        fields = RunParams.__dataclass_fields__
        unknown = sorted(k for k in kwargs if k not in _CALL_KWARGS and not k.startswith("ls_"))
        if unknown:
            hints = [f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(
                k, sorted(_CALL_KWARGS), n=1)) else repr(k) for k in unknown]
            raise ConfigError(
                f"unknown call argument(s) {', '.join(hints)}; a call takes "
                f"{sorted(_CALL_KWARGS)} (and stop=)")
        vals = {k: getattr(self, k) for k in fields}
        vals.update({k: v for k, v in kwargs.items() if k in fields})
        return RunParams(**vals)  # validates every value

    def _run(
        self, prompt: Any, stop: list[str] | None, kwargs: dict[str, Any], on_text: Any = None,
        constraint: Any = None,
    ) -> tuple[SMCResult, LanguageModel]:
        lm = self._lm_for(kwargs)
        if constraint is None:
            constraint = kwargs.get("constraint", self.constraint)
        res = run_streaming(lm, prompt, constraint, self._params(kwargs),
                            stop=stop if stop is not None else self.stop, on_text=on_text)
        if not res.ok:
            raise NoValidSampleError(res.hint)
        return res, lm

    @staticmethod
    def _metadata(res: SMCResult, model: str) -> dict[str, Any]:
        s = res.stats
        return {
            "model_name": model,
            "method": res.method,
            "posterior": res.posterior,
            "particles": particle_table(res),
            "log_ml": res.log_ml,
            "ess_history": res.ess_history,
            "resamples": s.resamples,
            "timing": {"seconds": s.seconds, "seconds_per_token": s.seconds_per_token,
                       "tokens": s.tokens, "lm_calls": s.lm_calls,
                       "constraint_checks": s.constraint_checks},
        }


class ChatAWRS(_AWRSFields, BaseChatModel):
    """Chat model sampling with AWRS-SMC on a local transformers model.

    Messages go through the model's chat template. ``bind(constraint=...)`` takes any
    constraint of the library or an Outlines type; ``with_structured_output`` takes a
    pydantic class (its validators hold), a JSON-schema dict or a TypedDict.
    ``usage_metadata.output_tokens`` counts tokens drawn over all particles (the compute
    spent); ``response_metadata`` carries the particles, posterior, ``log_ml``, ESS and
    timing.

    Tool calling: ``bind_tools`` renders the tools into the system message and constrains
    the output to free text or calls valid under the tools' schemas (see
    :mod:`awrs_adapters.constraints.tools` for the wire format); the message then carries
    ``tool_calls``. ``api_key`` is accepted and ignored (a local model has no key).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    @property
    def _llm_type(self) -> str:
        return "awrs-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "num_particles": self.num_particles,
                "max_tokens": self.max_tokens, "temperature": self.temperature,
                "method": self.method}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "awrs"
        params["ls_model_name"] = kwargs.get("model", self.model)
        params["ls_temperature"] = kwargs.get("temperature", self.temperature)
        params["ls_max_tokens"] = kwargs.get("max_tokens", self.max_tokens)
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _message(self, res: SMCResult, lm: LanguageModel, prompt: Any, kwargs: dict) -> AIMessage:
        from ..constraints.tools import parse_tool_calls

        n_in = lm.prompt_length(prompt)
        n_out = res.stats.tokens
        content, tool_calls = res.text, []
        calls = parse_tool_calls(res.text) if kwargs.get("tools") else None
        if calls:
            content = ""
            tool_calls = [{"name": c.name, "args": c.arguments, "id": _call_id(),
                           "type": "tool_call"} for c in calls]
        return AIMessage(
            content=content,
            tool_calls=tool_calls,
            response_metadata=self._metadata(res, kwargs.get("model", self.model)),
            usage_metadata={"input_tokens": n_in, "output_tokens": n_out,
                            "total_tokens": n_in + n_out},
        )

    def _prepare(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        """The prompt and constraint of a call (tools bound with ``bind_tools`` included)."""
        self._params(kwargs)  # a misspelt or bad argument fails before any work
        tools = kwargs.get("tools")
        if not tools:
            return messages_to_chat(messages), None
        names = [t["function"]["name"] for t in tools]
        choice = _tool_choice(kwargs.get("tool_choice"), names)
        parallel = bool(kwargs.get("parallel_tool_calls"))  # None: one call per turn
        user = kwargs.get("constraint", self.constraint)
        if choice == "none" and user is not None:
            constraint = user
        else:
            if user is not None:
                raise ConfigError(
                    "both tools and a constraint are bound; a tool call's arguments are "
                    "constrained by the tool's schema: drop constraint=, or bind the tools "
                    "with tool_choice='none'"
                )
            constraint = _tool_constraint(tools, choice, parallel,
                                          kwargs.get("tool_validators") or {})
        return messages_to_chat(messages, tools, choice, parallel), constraint

    def bind_tools(  # type: ignore[override]
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | bool | dict | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable:
        """Bind tools: the output is text or calls valid under the tools' schemas.

        Args:
            tools: ``@tool`` functions, ``BaseTool``s, pydantic classes, TypedDicts,
                functions with docstrings, or OpenAI-format dicts. The arguments of a
                pydantic class, and of a ``BaseTool`` whose ``tool_call_schema`` is one,
                must also pass its validators.
            tool_choice: None/``"auto"`` (text or calls), ``"any"``/``"required"``/True
                (one or more calls), a tool name or ``{"type": "function", "function":
                {"name": ...}}`` (calls to that tool), ``"none"``/False (text only).
            parallel_tool_calls: True allows several calls in one message; None (the
                default) and False allow one. Hosted models default to several; small
                local models, given the choice, tend to repeat a call until
                ``max_tokens``, and an agent loop makes sequential calls anyway.

        Raises:
            ConfigError: ``tool_choice`` names no bound tool.
        """
        from langchain_core.tools import BaseTool
        from langchain_core.utils.function_calling import convert_to_openai_tool
        from langchain_core.utils.pydantic import is_basemodel_subclass

        formatted = [convert_to_openai_tool(t) for t in tools]
        names = [t["function"]["name"] for t in formatted]
        choice = _tool_choice(tool_choice, names)  # fail at bind time, not at invoke
        validators = {}
        for t, f in zip(tools, formatted):
            model = t.tool_call_schema if isinstance(t, BaseTool) else t
            if isinstance(model, type) and is_basemodel_subclass(model):
                validators[f["function"]["name"]] = model
        return super().bind(tools=formatted, tool_choice=choice,
                            parallel_tool_calls=parallel_tool_calls,
                            tool_validators=validators, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            from langchain_core.language_models.chat_models import generate_from_stream

            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        prompt, constraint = self._prepare(messages, kwargs)
        res, lm = self._run(prompt, stop, kwargs, constraint=constraint)
        msg = self._message(res, lm, prompt, kwargs)
        return ChatResult(generations=[ChatGeneration(message=msg)],
                          llm_output={"log_ml": res.log_ml, "model_name": msg.response_metadata["model_name"]})

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        prompt, constraint = self._prepare(messages, kwargs)
        pieces = _pieces_in_thread(
            lambda on_text: self._run(prompt, stop, kwargs, on_text=on_text, constraint=constraint))
        shaper = _ToolStream() if kwargs.get("tools") else None
        while True:
            try:
                item = next(pieces)
            except StopIteration as fin:
                res, lm = fin.value
                break
            msgs = shaper.feed(item) if shaper else [AIMessageChunk(content=item)]
            for m in msgs:
                chunk = ChatGenerationChunk(message=m)
                if run_manager:
                    run_manager.on_llm_new_token(m.content if isinstance(m.content, str) else "",
                                                 chunk=chunk)
                yield chunk
        if shaper is not None and shaper.mode is None and shaper.text:  # e.g. the text "<to"
            shaper.mode = "text"
            for m in shaper.feed(""):
                yield ChatGenerationChunk(message=m)
        msg = self._message(res, lm, prompt, kwargs)
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", response_metadata=msg.response_metadata,
                                   usage_metadata=msg.usage_metadata, chunk_position="last")
        )

    def with_structured_output(  # type: ignore[override]
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        include_raw: bool = False,
        method: str = "json_schema",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable:
        """Constrain the output to ``schema`` and parse it.

        Args:
            schema: a pydantic class, v2 or v1 (parsed to an instance; its validators
                are checked during sampling), a JSON-schema dict or a TypedDict (parsed to
                a dict; objects get ``additionalProperties: false`` where it is unset).
            include_raw: return ``{"raw", "parsed", "parsing_error"}`` as LangChain's chat
                models do.
            method: ``"json_schema"`` (default) or ``"function_calling"``: both constrain
                the output to the schema (there is no tool call); ``"json_mode"``: any JSON
                object when ``schema`` is None, else also the schema. (Other chat models'
                JSON mode only guarantees JSON and leaves the schema to the prompt; the
                parser then rejects what does not match. Conditioning on the schema here
                samples exactly the outputs the parser would accept, so json_mode never
                fails where json_schema would succeed.)
            strict: accepted for compatibility; the constraint is always strict.
        """
        if kwargs:
            raise ConfigError(f"with_structured_output got unsupported arguments {sorted(kwargs)}")
        if method not in ("json_schema", "function_calling", "json_mode"):
            raise ConfigError(
                f"method={method!r}; use 'json_schema', 'function_calling' or 'json_mode'"
            )
        from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
        from langchain_core.utils.function_calling import convert_to_json_schema
        from langchain_core.utils.pydantic import is_basemodel_subclass

        from ..constraints import JSONSchema, Pydantic
        from ..constraints.regex import forbid_extra_keys

        is_model = isinstance(schema, type) and is_basemodel_subclass(schema)
        if schema is None:
            if method != "json_mode":
                raise ConfigError(f"schema=None needs method='json_mode' (got method={method!r})")
            constraint: Any = JSONSchema({"type": "object"})
        elif is_model:
            constraint = Pydantic(schema)  # type: ignore[arg-type]
        else:
            # as in strict structured output elsewhere: only the schema's keys (JSON
            # Schema's default would let the model add keys until max_tokens)
            constraint = JSONSchema(forbid_extra_keys(convert_to_json_schema(schema)))
        parser: Runnable = (PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
                            if is_model else JsonOutputParser())
        llm = self.bind(
            constraint=constraint,
            ls_structured_output_format={"kwargs": {"method": method, "strict": strict},
                                         "schema": schema},
        )
        if include_raw:
            parser_assign = RunnablePassthrough.assign(
                parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
            )
            parser_none = RunnablePassthrough.assign(parsed=lambda _: None)
            with_fallback = parser_assign.with_fallbacks([parser_none], exception_key="parsing_error")
            return RunnableMap(raw=llm) | with_fallback
        return llm | parser


class AWRSLLM(_AWRSFields, BaseLLM):
    """String-in/string-out LLM sampling with AWRS-SMC (same fields as :class:`ChatAWRS`).

    Each prompt's generations are the final particles as ``Generation`` objects, the most
    probable string first (then by weight), with ``generation_info`` = ``{"weight",
    "log_weight", "probability" (posterior of its text), "finished"}``; ``llm_output``
    holds ``log_ml``, ESS and timing per prompt. The prompt is used as is (no chat
    template).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    @property
    def _llm_type(self) -> str:
        return "awrs"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "num_particles": self.num_particles,
                "max_tokens": self.max_tokens, "method": self.method}

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        generations, outputs = [], []
        for prompt in prompts:
            on_text = None
            if run_manager is not None:
                def on_text(piece: str, rm: CallbackManagerForLLMRun = run_manager) -> None:
                    rm.on_llm_new_token(piece)
            res, _ = self._run(prompt, stop, kwargs, on_text=on_text)
            post = res.posterior
            rows = sorted(particle_table(res), key=lambda r: (-post.get(r["text"], 0.0), -r["weight"]))
            generations.append([
                Generation(text=r["text"], generation_info={**r, "probability": post.get(r["text"], 0.0)})
                for r in rows if r["finished"] and r["weight"] > 0
            ])
            outputs.append(self._metadata(res, kwargs.get("model", self.model)))
        return LLMResult(generations=generations, llm_output={
            "model_name": kwargs.get("model", self.model),
            "log_ml": [o["log_ml"] for o in outputs],
            "ess_history": [o["ess_history"] for o in outputs],
            "runs": outputs,
        })

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        for item in _pieces_in_thread(lambda on_text: self._run(prompt, stop, kwargs, on_text=on_text)):
            chunk = GenerationChunk(text=item)
            if run_manager:
                run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk
