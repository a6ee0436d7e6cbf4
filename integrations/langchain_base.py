"""What the LangChain chat model and LLM share: their fields, call arguments and run.

Overview: :class:`AWRSFields` declares the settings of
:class:`~awrs_adapters.integrations.langchain.ChatAWRS` and
:class:`~awrs_adapters.integrations.langchain.AWRSLLM` (model, particles, method, seed,
stop, timeout, retries...), checks a call's keyword arguments against
:data:`CALL_KWARGS` (a misspelt one is named with a suggestion), and runs the core
:func:`~awrs_adapters.streaming.run_streaming`. :func:`load_model` loads a named model once
per process; :func:`pieces_in_thread` runs the synchronous core in a worker thread and
yields the text it commits, for streaming (a stream its consumer abandons cancels the
run at its next step).

Example::

    >>> from awrs_adapters.integrations.langchain_base import pieces_in_thread
    >>> def run(on_text, cancel):
    ...     on_text("he")
    ...     on_text("llo")
    ...     return "done"
    >>> print(list(pieces_in_thread(run)))
    ['he', 'llo']
"""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydantic import Field, SecretStr

from ..api import DEFAULT_MAX_TOKENS, make_rng
from ..errors import ConfigError, NoValidSampleError
from ..lm.base import LanguageModel
from ..results import SMCResult
from ..scheduler import ANSWERS as _CALL_ANSWERS
from ..scheduler import Call
from ..streaming import RunParams, iter_in_thread, run_call

__all__ = ["CALL_KWARGS", "AWRSFields", "in_worker", "load_model", "pieces_in_thread"]

#: the cancel event of the async call running in this context (see :func:`in_worker`)
_CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "awrs_cancel", default=None)
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Worker threads of the async forms. asyncio's default executor has cpu_count + 4
    threads, which would let only that many concurrent ``ainvoke`` s step together;
    these threads only wait on the model's scheduler, so there are many."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="awrs")
        return _POOL


async def in_worker(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a worker thread (the context copied), awaited.

    Cancelling the awaiting task (``asyncio.wait_for`` timing out, a client that went
    away) sets the run's cancel event: the sampling inside ends at its next step and
    frees its rows instead of running to the end for nobody."""
    cancel = threading.Event()
    ctx = contextvars.copy_context()
    ctx.run(_CANCEL.set, cancel)
    call = functools.partial(ctx.run, functools.partial(fn, *args, **kwargs))
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool(), call)
    except asyncio.CancelledError:
        cancel.set()
        raise

_MODELS: dict[str, LanguageModel] = {}
_MODELS_LOCK = threading.Lock()


def load_model(name: str) -> LanguageModel:
    """The model ``name`` (``awrs_adapters.models.load``), loaded once per process."""
    with _MODELS_LOCK:
        if name not in _MODELS:
            from .. import models

            _MODELS[name] = models.load(name)
        return _MODELS[name]


#: ``run(on_text, cancel)`` in a worker thread, its text pieces as an iterator (the
#: generator returns ``run``'s result; leaving early sets ``cancel``)
pieces_in_thread = iter_in_thread


#: ``answer=`` values: a posterior draw (the wrappers' default) or the posterior's mode
ANSWERS = _CALL_ANSWERS

#: keyword arguments a call (``invoke(..., **kw)``, ``bind(**kw)``) may carry
CALL_KWARGS = frozenset(RunParams.__dataclass_fields__) | {
    "answer", "model", "constraint", "tools", "tool_choice", "parallel_tool_calls", "tool_validators",
    "response_format"}


class AWRSFields:
    """Fields and helpers shared by ``ChatAWRS`` and ``AWRSLLM`` (a mixin: list it first).

    Pydantic fields, each with its docstring; ``_params`` turns the fields and a call's
    keyword arguments into a validated :class:`~awrs_adapters.streaming.RunParams`, ``_run``
    runs it (``NoValidSampleError`` with the hint when nothing survived) and ``_metadata``
    describes the result.
    """

    model: str = Field(default="smollm2-135m-instruct")
    """An embedded model name (``awrs_adapters.models``), a Hugging Face id or a local path."""
    lm: Any = Field(default=None, exclude=True)
    """An already loaded ``awrs_adapters.lm.LanguageModel``; overrides ``model``."""
    num_particles: int = 8
    """Particles per call (N)."""
    max_tokens: int = DEFAULT_MAX_TOKENS
    """Tokens generated per particle before the end is forced."""
    temperature: float = 1.0
    """Sampling temperature; 0 decodes greedily (most probable valid token, no weights)."""
    method: str = "awrs-smc"
    """``awrs-smc`` (default), ``lcd``, ``sample-verify`` or ``mask-smc``."""
    ess_threshold: float | None = None
    """Resample when ESS < ess_threshold·N; None: 0.5 (at every N); 0 never resamples."""
    resampling: str = "stratified"
    """Resampling scheme."""
    twist: str = "end"
    """``end``: resampling anticipates whether a particle can end validly before
    ``max_tokens`` (target unchanged); ``none``: it does not."""
    estimator: str = "recursive"
    """AWRS weight estimator: ``recursive`` or ``geometric``."""
    resample_finished: bool = False
    """False: finished particles keep their place when the others are resampled."""
    seed: int | None = None
    """Seed of each call (None: fresh randomness)."""
    answer: str = "draw"
    """What a call answers with: ``draw`` (default) a string drawn from the posterior
    (with the seed's generator after the run, so a seed reproduces it), as
    ``smc_generate``, the server and ``SMCResult.sample`` do; ``mode`` the posterior's
    most probable string (``SMCResult.text``). The whole posterior is in the metadata
    either way."""
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
            return load_model(name)
        if self.lm is not None:
            return self.lm
        return load_model(self.model)

    def __init__(self, **data: Any) -> None:
        from ..lm import as_language_model

        if data.get("lm") is not None:
            data["lm"] = as_language_model(data["lm"])
        lm = data.get("lm")
        if lm is not None and not isinstance(lm, LanguageModel):
            if isinstance(lm, str):
                fix = f"for a model name pass model={lm!r}"
            elif hasattr(lm, "generate") and hasattr(lm, "config"):
                fix = ("wrap a transformers model first: "
                       "lm=awrs_adapters.lm.TransformersLM(model, tokenizer)")
            else:
                fix = "pass an awrs_adapters LanguageModel (models.load(...)) or model=<name>"
            raise ConfigError(f"lm={type(lm).__name__} is not a LanguageModel; {fix}")
        super().__init__(**data)
        self._params({})  # a value that cannot work fails here, not at the first call

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` under this model's own tokenizer (LangChain's default
        would load GPT-2 from the Hugging Face Hub); ``get_num_tokens`` counts these."""
        lm = self._lm_for({})
        tok = getattr(lm, "tokenizer", None)
        if tok is None:
            raise ConfigError(
                f"{type(lm).__name__} has no tokenizer to count tokens with; count with the "
                "tokenizer of the model it stands for")
        return list(tok.encode(text, add_special_tokens=False))

    def _params(self, kwargs: dict[str, Any]) -> RunParams:
        fields = RunParams.__dataclass_fields__
        unknown = sorted(k for k in kwargs if k not in CALL_KWARGS and not k.startswith("ls_"))
        if unknown:
            hints = [f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(
                k, sorted(CALL_KWARGS), n=1)) else repr(k) for k in unknown]
            raise ConfigError(
                f"unknown call argument(s) {', '.join(hints)}; a call takes "
                f"{sorted(CALL_KWARGS)} (and stop=)")
        answer = kwargs.get("answer", self.answer)
        if answer not in ANSWERS:
            raise ConfigError(f"answer={answer!r}; use 'draw' (a posterior draw, the default) "
                              "or 'mode' (the most probable string)")
        vals = {k: getattr(self, k) for k in fields}
        vals.update({k: v for k, v in kwargs.items() if k in fields})
        return RunParams(**vals)  # validates every value

    def _run(
        self, prompt: Any, stop: list[str] | None, kwargs: dict[str, Any], on_text: Any = None,
        constraint: Any = None, cancel: threading.Event | None = None,
    ) -> tuple[SMCResult, LanguageModel, str]:
        """Run one call: its result, the model, and the answer (see ``answer``); the
        pieces passed to ``on_text`` add up to that answer."""
        lm = self._lm_for(kwargs)
        if constraint is None:
            constraint = kwargs.get("constraint", self.constraint)
        params = self._params(kwargs)
        call = Call(prompt, constraint, params, stop=stop if stop is not None else self.stop,
                    on_text=on_text, cancel=cancel if cancel is not None else _CANCEL.get(),
                    answer=kwargs.get("answer", self.answer))
        res = run_call(lm, call)
        if not res.ok:
            raise NoValidSampleError(res.hint)
        assert call.answer_text is not None
        return res, lm, call.answer_text

    def _answer(self, res: SMCResult, kwargs: dict[str, Any],
                rng: np.random.Generator | None = None) -> str:
        """The text a call answers with (``answer``): a posterior draw or the mode."""
        if kwargs.get("answer", self.answer) == "mode":
            return res.mode
        return res.sample(rng if rng is not None else make_rng(kwargs.get("seed", self.seed)))

    @staticmethod
    def _metadata(res: SMCResult, model: str) -> dict[str, Any]:
        d = res.to_dict()
        st = d["stats"]
        return {
            "model_name": model,
            "method": d["method"],
            "posterior": d["posterior"],
            "particles": d["particles"],
            "log_ml": d["log_ml"],
            "ess_history": d["ess_history"],
            "resamples": st["resamples"],
            "timing": {k: st[k] for k in ("seconds", "seconds_per_token", "tokens", "lm_calls",
                                          "constraint_checks")},
        }
