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
from pydantic import ConfigDict, Field

from ..errors import ConfigError, NoValidSampleError
from ..lm.base import LanguageModel
from ..results import SMCResult
from ..smc import METHODS
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


def messages_to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> ``[{"role", "content"}]`` for the model's chat template."""
    out = []
    for m in messages:
        if isinstance(m, SystemMessage):
            role = "system"
        elif isinstance(m, HumanMessage):
            role = "user"
        elif isinstance(m, AIMessage):
            role = "assistant"
        elif isinstance(m, ToolMessage):
            role = "tool"
        elif isinstance(m, ChatMessage):
            role = m.role
        else:
            role = "user"
        out.append({"role": role, "content": _text_of(m.content)})
    return out


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

    def _lm_for(self, kwargs: dict[str, Any]) -> LanguageModel:
        name = kwargs.get("model")
        if name is not None and name != self.model:
            return _load(name)
        if self.lm is not None:
            return self.lm
        return _load(self.model)

    def _params(self, kwargs: dict[str, Any]) -> RunParams:
        fields = RunParams.__dataclass_fields__
        vals = {k: getattr(self, k) for k in fields}
        vals.update({k: v for k, v in kwargs.items() if k in fields})
        if vals["method"] not in METHODS:
            raise ConfigError(f"method={vals['method']!r}; use one of {list(METHODS)}")
        return RunParams(**vals)

    def _run(
        self, prompt: Any, stop: list[str] | None, kwargs: dict[str, Any], on_text: Any = None
    ) -> tuple[SMCResult, LanguageModel]:
        lm = self._lm_for(kwargs)
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
    timing. Tool calling is not supported.
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
        n_in = lm.prompt_length(prompt)
        n_out = res.stats.tokens
        return AIMessage(
            content=res.text,
            response_metadata=self._metadata(res, kwargs.get("model", self.model)),
            usage_metadata={"input_tokens": n_in, "output_tokens": n_out,
                            "total_tokens": n_in + n_out},
        )

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
        prompt = messages_to_chat(messages)
        res, lm = self._run(prompt, stop, kwargs)
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
        prompt = messages_to_chat(messages)
        pieces = _pieces_in_thread(lambda on_text: self._run(prompt, stop, kwargs, on_text=on_text))
        while True:
            try:
                item = next(pieces)
            except StopIteration as fin:
                res, lm = fin.value
                break
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=item))
            if run_manager:
                run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk
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
