"""LangChain integration: a chat model and an LLM that sample with AWRS-SMC.

Overview: :class:`ChatAWRS` is a ``BaseChatModel`` (invoke, batch, stream and their
async forms; ``bind(constraint=...)``; ``with_structured_output``); :class:`AWRSLLM` is a
``BaseLLM`` for string-in/string-out chains (in
:mod:`~awrs_adapters.integrations.langchain_llm`, re-exported here). Both run the synchronous core; the async
forms run it in a worker thread, so the event loop is never blocked. The particle set,
posterior, ``log_ml`` and ESS history come back in ``response_metadata`` (chat) or
``llm_output`` / ``generation_info`` (LLM). Streaming is honest: a chunk is emitted only
once every weighted particle shares it. Their shared fields and run are in
:mod:`~awrs_adapters.integrations.langchain_base`; message and tool-call conversion
(:func:`messages_to_chat`, re-exported here) in
:mod:`~awrs_adapters.integrations.langchain_messages`.

Example::

    >>> from pydantic import BaseModel
    >>> from awrs_adapters.integrations.langchain import ChatAWRS
    >>> class Person(BaseModel):
    ...     name: str
    ...     age: int
    >>> chat = ChatAWRS(num_particles=4, max_tokens=48)     # the embedded SmolLM2 by default
    >>> person = chat.with_structured_output(Person).invoke("Ada Lovelace was 36. Extract.")
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Iterator, Sequence
from operator import itemgetter
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
    from langchain_core.outputs import (
        ChatGeneration,
        ChatGenerationChunk,
        ChatResult,
    )
    from langchain_core.runnables import Runnable, RunnableBinding, RunnableMap, RunnablePassthrough
except ImportError as e:  # pragma: no cover - exercised only without the extra
    from . import LANGCHAIN_HINT

    raise ImportError(LANGCHAIN_HINT) from e
from pydantic import ConfigDict, model_validator

from ..api import make_rng
from ..errors import ConfigError
from ..lm.base import LanguageModel
from ..results import SMCResult
from .langchain_base import AWRSFields, in_worker, pieces_in_thread
from .langchain_llm import AWRSLLM
from .langchain_messages import (
    ToolStream,
    messages_to_chat,
    new_call_id,
    normalize_tool_choice,
    tool_constraint,
)

__all__ = ["AWRSLLM", "ChatAWRS", "messages_to_chat"]

#: results computed ahead by ``ChatAWRS.batch``/``abatch`` (one shared forward per step
#: for every input), keyed by the rendered prompt and the call's arguments; each input's
#: ``_generate`` (run by LangChain's own batch, callbacks and all) takes its result here
_AHEAD: contextvars.ContextVar[dict | None] = contextvars.ContextVar("awrs_batch_ahead",
                                                                      default=None)


def _call_key(prompt: Any, stop: Any, kwargs: dict[str, Any]) -> str:
    # LangChain's generate() pops the tracing-only arguments before _generate sees them
    args = sorted((k, repr(v)) for k, v in kwargs.items()
                  if k not in ("stop", "structured_output_format") and not k.startswith("ls_"))
    return json.dumps([prompt, stop, args], sort_keys=True, default=repr)


class _Binding(RunnableBinding):
    """A ``ChatAWRS`` with bound arguments whose ``bind_tools`` keeps them."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable:
        inner = self.bound.bind_tools(tools, **kwargs)  # type: ignore[attr-defined]
        return _Binding(bound=inner.bound, kwargs={**self.kwargs, **inner.kwargs},
                        config={**self.config, **inner.config})


class ChatAWRS(AWRSFields, BaseChatModel):
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

    @model_validator(mode="after")
    def _set_profile(self) -> ChatAWRS:
        """What LangChain 1.x agents read to choose a strategy (``create_agent`` uses
        ``structured_output`` to pick provider-native structured output)."""
        if self.profile is None:
            prof: dict[str, Any] = {
                "tool_calling": True, "tool_choice": True, "structured_output": True,
                "text_inputs": True, "text_outputs": True, "image_inputs": False,
                "audio_inputs": False, "video_inputs": False, "pdf_inputs": False,
                "tool_call_streaming": True, "max_output_tokens": self.max_tokens}
            n = getattr(self.lm, "context_length", None)
            if isinstance(n, int):
                prof["max_input_tokens"] = n
            self.profile = prof  # type: ignore[assignment]
        return self

    def bind(self, **kwargs: Any) -> Runnable:
        """As ``Runnable.bind``; the binding's ``bind_tools`` keeps these arguments (a
        plain binding would hand ``bind_tools`` to the model and drop them)."""
        return _Binding(bound=self, kwargs=kwargs, config={})

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

    def _message(self, res: SMCResult, lm: LanguageModel, prompt: Any, kwargs: dict,
                 text: str) -> AIMessage:
        from ..constraints.tools import parse_tool_calls

        n_in = lm.prompt_length(prompt)
        content, tool_calls = text, []
        # the particles behind the returned text: its token count, and why it ended
        mine = [p for p in res.particles if p.finished and p.text == content]
        n_out = min((len(p.token_ids) for p in mine), default=0)
        reason = "length" if mine and all(p.truncated for p in mine) else "stop"
        calls = parse_tool_calls(text) if kwargs.get("tools") else None
        if calls:
            content = ""
            tool_calls = [{"name": c.name, "args": c.arguments, "id": new_call_id(),
                           "type": "tool_call"} for c in calls]
            reason = "tool_calls"
        meta = self._metadata(res, kwargs.get("model", self.model))
        meta["finish_reason"] = reason
        return AIMessage(
            content=content,
            tool_calls=tool_calls,
            response_metadata=meta,
            usage_metadata={"input_tokens": n_in, "output_tokens": n_out,
                            "total_tokens": n_in + n_out},
        )

    def _prepare(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        """The prompt and constraint of a call (tools bound with ``bind_tools`` included)."""
        self._params(kwargs)  # a misspelt or bad argument fails before any work
        tools = kwargs.get("tools")
        par = kwargs.get("parallel_tool_calls")
        if par is not None and not isinstance(par, bool):
            raise ConfigError(f"parallel_tool_calls={par!r}; pass True, False or None")
        rf = kwargs.get("response_format")
        if rf is not None:  # OpenAI's form, which LangChain 1.x agents bind
            from ..openai_api import response_format_constraint

            if kwargs.get("constraint", self.constraint) is not None:
                raise ConfigError("both response_format and a constraint are bound; keep one")
            kwargs = {**kwargs, "constraint": response_format_constraint(rf)}
        if not tools:
            choice = kwargs.get("tool_choice")
            if choice not in (None, "auto", "none", False) or par:
                raise ConfigError(
                    f"tool_choice={choice!r}, parallel_tool_calls={par!r} with no tools bound; "
                    "bind the tools with bind_tools([...], tool_choice=...)")
            return messages_to_chat(messages), kwargs.get("constraint")
        names = [t["function"]["name"] for t in tools]
        choice = normalize_tool_choice(kwargs.get("tool_choice"), names)
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
            constraint = tool_constraint(tools, choice, parallel,
                                          kwargs.get("tool_validators") or {})
        return messages_to_chat(messages, tools, choice, parallel), constraint

    def bind_tools(  # type: ignore[override]
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | bool | dict | None = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
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
            strict: accepted for compatibility (OpenAI's strict mode): every call is
                sampled valid under its schema whatever it says.

        Raises:
            ConfigError: ``tool_choice`` names no bound tool; a non-bool
                ``parallel_tool_calls`` or ``strict``.
        """
        for name, v in (("parallel_tool_calls", parallel_tool_calls), ("strict", strict)):
            if v is not None and not isinstance(v, bool):
                raise ConfigError(f"{name}={v!r}; pass True, False or None")
        from langchain_core.tools import BaseTool
        from langchain_core.utils.function_calling import convert_to_openai_tool
        from langchain_core.utils.pydantic import is_basemodel_subclass

        formatted = [convert_to_openai_tool(t) for t in tools]
        names = [t["function"]["name"] for t in formatted]
        choice = normalize_tool_choice(tool_choice, names)  # fail at bind time, not at invoke
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
        ahead = _AHEAD.get()
        done = ahead.get(_call_key(prompt, stop, kwargs)) if ahead is not None else None
        if done:
            res, lm, rng = done.pop()
            text = self._answer(res, kwargs, rng)
        else:
            res, lm, text = self._run(prompt, stop, kwargs, constraint=constraint)
        msg = self._message(res, lm, prompt, kwargs, text)
        return ChatResult(generations=[ChatGeneration(message=msg)],
                          llm_output={"log_ml": res.log_ml, "model_name": msg.response_metadata["model_name"]})

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        """``_generate`` in a worker thread (see :func:`~.langchain_base.in_worker`), so
        that concurrent ``ainvoke`` s step together and share each forward; a cancelled
        ``ainvoke`` stops sampling at the next step."""
        sync = run_manager.get_sync() if run_manager is not None else None
        return await in_worker(self._generate, messages, stop, sync, **kwargs)

    # -- batches: every input's particles in one forward per step ----------------------
    def _ahead(self, inputs: Sequence[Any], config: Any, kwargs: dict[str, Any]) -> dict | None:
        """Run every input through :func:`~awrs_adapters.batching.generate_batch`.

        Returns ``{call key: [(result, lm, generator), ...]}`` for the inputs that produced a valid
        sample; the others (an error, nothing valid) are left to the input's own call,
        which raises, retries and reports exactly as ``invoke`` does. ``max_concurrency``
        bounds the inputs in one forward.
        """
        from langchain_core.runnables.config import get_config_list

        from ..batching import Request, generate_batch

        if self.streaming or len(inputs) < 2:
            return None
        stop = kwargs.get("stop")
        params = self._params({k: v for k, v in kwargs.items() if k != "stop"})
        lm = self._lm_for(kwargs)
        keys, reqs = [], []
        for x in inputs:
            try:
                msgs = self._convert_input(x).to_messages()
                prompt, constraint = self._prepare(msgs, {k: v for k, v in kwargs.items()
                                                          if k != "stop"})
            except Exception:  # reported by the input's own call
                continue
            if constraint is None:
                constraint = kwargs.get("constraint", self.constraint)
            keys.append(_call_key(prompt, stop, {k: v for k, v in kwargs.items() if k != "stop"}))
            # each input its own generator, as invoke: the run's draws, then the answer's
            reqs.append(Request(prompt, constraint=constraint, seed=make_rng(params.seed)))
        if len(reqs) < 2:
            return None
        mc = get_config_list(config, len(inputs))[0].get("max_concurrency")
        rows = 1 if params.temperature == 0 else params.num_particles
        out = generate_batch(
            lm, reqs, num_particles=params.num_particles, max_tokens=params.max_tokens,
            method=params.method, ess_threshold=params.ess_threshold,
            resampling=params.resampling, temperature=params.temperature,
            stop=stop if stop is not None else self.stop, twist=params.twist,
            estimator=params.estimator, resample_finished=params.resample_finished,
            timeout=params.timeout, max_rows=None if mc is None else mc * rows,
            return_exceptions=True)
        ahead: dict[str, list] = {}
        for key, req, res in reversed(list(zip(keys, reqs, out, strict=True))):  # popped in order
            if isinstance(res, SMCResult) and res.ok:
                ahead.setdefault(key, []).append((res, lm, req.seed))
        return ahead

    def batch(  # type: ignore[override]
        self, inputs: list[Any], config: Any = None, *, return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """``invoke`` on every input, their particles stepping together: one forward per
        step for all inputs (``max_concurrency`` inputs at a time). Results, callbacks and
        errors are those of ``invoke`` (an input that fails fails alone)."""
        ahead = self._ahead(inputs, config, kwargs)
        token = _AHEAD.set(ahead)
        try:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        finally:
            _AHEAD.reset(token)

    async def abatch(  # type: ignore[override]
        self, inputs: list[Any], config: Any = None, *, return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """The async form of :meth:`batch` (the shared steps run in a worker thread)."""
        ahead = await asyncio.to_thread(self._ahead, inputs, config, kwargs)
        token = _AHEAD.set(ahead)
        try:
            return await super().abatch(inputs, config, return_exceptions=return_exceptions,
                                        **kwargs)
        finally:
            _AHEAD.reset(token)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        prompt, constraint = self._prepare(messages, kwargs)
        pieces = pieces_in_thread(
            lambda on_text, cancel: self._run(prompt, stop, kwargs, on_text=on_text,
                                              constraint=constraint, cancel=cancel))
        shaper = ToolStream() if kwargs.get("tools") else None
        while True:
            try:
                item = next(pieces)
            except StopIteration as fin:
                res, lm, text = fin.value
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
        msg = self._message(res, lm, prompt, kwargs, text)
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
            method: ``"json_schema"`` (default): the output is the schema's JSON;
                ``"function_calling"``: the schema is bound as a tool the model must
                call (``raw.tool_calls`` carries the call, its arguments valid under the
                schema and its validators); ``"json_mode"``: any JSON
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
        from ..constraints.json_schema import forbid_extra_keys

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
        fmt = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        if method == "function_calling" and schema is not None:
            # as other chat models: the schema is bound as the one tool the model must
            # call, and the parser reads the call (raw.tool_calls carries it)
            from langchain_core.output_parsers.openai_tools import (
                JsonOutputKeyToolsParser,
                PydanticToolsParser,
            )
            from langchain_core.utils.function_calling import convert_to_openai_tool

            try:
                name = convert_to_openai_tool(schema)["function"]["name"]
            except Exception as e:
                raise ConfigError(
                    f"method='function_calling' needs a schema with a name (a pydantic class, "
                    f"a TypedDict or a JSON schema with a 'title'): {e}") from e
            llm = self.bind_tools([schema], tool_choice=name, parallel_tool_calls=False,
                                  ls_structured_output_format=fmt)
            parser = (PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                      if is_model else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True))
        else:
            llm = self.bind(constraint=constraint, ls_structured_output_format=fmt)
        if include_raw:
            parser_assign = RunnablePassthrough.assign(
                parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
            )
            parser_none = RunnablePassthrough.assign(parsed=lambda _: None)
            with_fallback = parser_assign.with_fallbacks([parser_none], exception_key="parsing_error")
            return RunnableMap(raw=llm) | with_fallback
        return llm | parser
