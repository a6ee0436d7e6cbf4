"""LangChain integration, the LLM: string-in/string-out sampling with AWRS-SMC.

Overview: :class:`AWRSLLM` is a ``BaseLLM`` with the fields of
:class:`~awrs_adapters.integrations.langchain.ChatAWRS` (see
:mod:`~awrs_adapters.integrations.langchain_base`). Each prompt's generations are its
final particles, the answer first; ``llm_output`` holds ``log_ml``, the ESS history and
timing per prompt. Several prompts in one call step together on the model's scheduler.
Re-exported by :mod:`awrs_adapters.integrations.langchain`.

Example::

    >>> from awrs_adapters.constraints import Regex
    >>> from awrs_adapters.integrations.langchain import AWRSLLM
    >>> llm = AWRSLLM(num_particles=4, max_tokens=8)      # the embedded SmolLM2 by default
    >>> llm.invoke("The capital of France is", constraint=Regex(r" [A-Z][a-z]+"))
    ' ...'
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models import BaseLLM
    from langchain_core.outputs import Generation, GenerationChunk, LLMResult
except ImportError as e:  # pragma: no cover - exercised only without the extra
    from . import LANGCHAIN_HINT

    raise ImportError(LANGCHAIN_HINT) from e
from pydantic import ConfigDict

from ..results import SMCResult
from ..streaming import particle_table
from .langchain_base import AWRSFields, in_worker, pieces_in_thread

__all__ = ["AWRSLLM"]


class AWRSLLM(AWRSFields, BaseLLM):
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
        def one(prompt: str) -> tuple[SMCResult, str]:
            on_text = None
            if run_manager is not None:
                def on_text(piece: str, rm: CallbackManagerForLLMRun = run_manager) -> None:
                    rm.on_llm_new_token(piece)
            res, _, text = self._run(prompt, stop, kwargs, on_text=on_text)
            return res, text

        if len(prompts) > 1:  # at the same time: they step together on the model's scheduler
            with ThreadPoolExecutor(min(len(prompts), 64), thread_name_prefix="awrs-llm") as ex:
                runs = list(ex.map(one, prompts))
        else:
            runs = [one(p) for p in prompts]
        generations, outputs = [], []
        for res, text in runs:
            post = res.posterior
            # the answer first (invoke returns it), then the rest, most probable first
            rows = sorted(particle_table(res), key=lambda r: (r["text"] != text,
                                                              -post.get(r["text"], 0.0), -r["weight"]))
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

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> LLMResult:
        """``_generate`` in a worker thread; a cancelled call stops sampling at the next step."""
        sync = run_manager.get_sync() if run_manager is not None else None
        return await in_worker(self._generate, prompts, stop, sync, **kwargs)

    def batch(  # type: ignore[override]
        self, inputs: list[Any], config: Any = None, *, return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """LangChain's LLM batch (all prompts in one ``generate``, stepping together);
        with ``return_exceptions=True`` each input runs as its own call, so a bad prompt
        fails alone instead of replacing every result with its error."""
        if not return_exceptions:
            return super().batch(inputs, config, **kwargs)
        from langchain_core.runnables.config import get_config_list

        configs = get_config_list(config, len(inputs))
        limit = configs[0].get("max_concurrency") if inputs else None

        def one(i: int) -> Any:
            try:
                return self.invoke(inputs[i], configs[i], **kwargs)
            except Exception as e:
                return e

        if not inputs:
            return []
        with ThreadPoolExecutor(min(limit or len(inputs), 64), thread_name_prefix="awrs-llm") as ex:
            return list(ex.map(one, range(len(inputs))))

    async def abatch(  # type: ignore[override]
        self, inputs: list[Any], config: Any = None, *, return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """As :meth:`batch`: with ``return_exceptions=True`` a bad prompt fails alone."""
        if not return_exceptions:
            return await super().abatch(inputs, config, **kwargs)
        from langchain_core.runnables import Runnable

        return await Runnable.abatch(self, inputs, config, return_exceptions=True, **kwargs)

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        for item in pieces_in_thread(lambda on_text, cancel: self._run(
                prompt, stop, kwargs, on_text=on_text, cancel=cancel)):
            chunk = GenerationChunk(text=item)
            if run_manager:
                run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk
