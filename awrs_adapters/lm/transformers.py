"""The Hugging Face backend: any ``transformers`` causal LM as a batched particle model.

Overview: :class:`TransformersLM` wraps a causal LM and its tokenizer. ``start`` prefills
the prompt once (``logits_to_keep=1``) and repeats the KV cache for N particles; each
``extend`` runs ONE batched forward of one token per live row; ``logprobs`` is served
from that forward's logits; ``select`` (resampling, compaction) reorders the KV cache by
index (duplicates fork a row) and never recomputes: the index is composed lazily and
applied once, right before the next forward. The model's end tokens (``eos_token_id``
may be a list; the end-of-turn token of chat models) are merged into the core's one EOS
column by log-sum-exp. Works with transformers 5.23 (``past_key_values``) and 5.24+
(``cache``), detected from the forward signature.

Example::

    >>> from awrs_adapters import generate, models
    >>> from awrs_adapters.constraints import Regex
    >>> from awrs_adapters.lm import TransformersLM
    >>> # any local folder or Hub id (with a Hub): TransformersLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
    >>> lm = TransformersLM.from_pretrained(models.convert())  # the embedded SmolLM2, offline
    >>> r = generate(lm, [{"role": "user", "content": "A date in ISO format?"}],
    ...              Regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"), num_particles=4, max_tokens=12, seed=0)
    >>> print(r.posterior)
    {'...-...-...': ...}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..errors import ConfigError, ModelNotFoundError
from .base import ParticleBatch
from .hf import HFTokenizerLM, check_start_args

__all__ = ["TransformersBatch", "TransformersLM"]

_SHARED_LOAD_KWARGS = (
    "cache_dir",
    "revision",
    "local_files_only",
    "trust_remote_code",
    "token",
    "gguf_file",
    "subfolder",
)


def _resolve_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        named: torch.dtype = getattr(torch, dtype)
        return named
    raise ConfigError(
        f"dtype={dtype!r} is not a torch dtype; pass e.g. torch.float32 or 'bfloat16'"
    )


class TransformersLM(HFTokenizerLM):
    """A ``transformers`` causal LM and its tokenizer, as a :class:`LanguageModel`.

    Args:
        model: a causal LM (``AutoModelForCausalLM``); put in eval mode.
        tokenizer: its tokenizer (the byte table and the chat template come from it).
        dtype: move the model to this dtype (default: keep it). float32 is the safe
            choice on CPU; half precision works where the hardware supports it.
        device: move the model to this device (default: keep it).
        eos_token_ids: the end tokens merged into EOS (default: every end token the
            tokenizer and the model's configs name, see
            :func:`~awrs_adapters.lm.tokenizer_bytes.end_token_ids`).

    Attributes:
        model, tokenizer, vocab: the wrapped model and tokenizer, and the byte vocabulary.
        end_token_ids: the end ids merged into ``vocab.eos_token_id``.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        dtype: Any = None,
        device: str | torch.device | None = None,
        eos_token_ids: Sequence[int] | int | None = None,
    ) -> None:
        if not callable(model):
            raise ConfigError(
                f"model={type(model).__name__} is not callable; pass a transformers causal "
                "LM (AutoModelForCausalLM.from_pretrained(...))"
            )
        if tokenizer is None or not callable(tokenizer):
            raise ConfigError(
                f"tokenizer={tokenizer!r}; pass the model's tokenizer "
                "(AutoTokenizer.from_pretrained(...))"
            )
        dt = _resolve_dtype(dtype)
        if dt is not None or device is not None:
            model = model.to(device=device, dtype=dt)
        self.model = model.eval() if hasattr(model, "eval") else model
        self.device = self._model_device()
        self._init_vocab(tokenizer, self._logits_width(), eos_token_ids, self.model, self.device)
        params = inspect.signature(self.model.forward).parameters
        if "cache" in params:
            self._cache_arg = "cache"
        elif "past_key_values" in params:
            self._cache_arg = "past_key_values"
        else:  # a forward hidden behind **kwargs: go by the library version
            self._cache_arg = "cache" if _transformers_at_least(5, 24) else "past_key_values"
        self._keep_arg = "logits_to_keep" if "logits_to_keep" in params else None

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        dtype: Any = None,
        device: str | torch.device | None = None,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
        eos_token_ids: Sequence[int] | int | None = None,
        **model_kwargs: Any,
    ) -> TransformersLM:
        """Load a model and its tokenizer with ``transformers`` (hub id or local folder).

        ``model_kwargs`` go to ``AutoModelForCausalLM.from_pretrained``; the loading
        options both need (``gguf_file``, ``revision``, ``cache_dir``, ...) also go to
        ``AutoTokenizer.from_pretrained``, with ``tokenizer_kwargs``.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok_kwargs = {k: model_kwargs[k] for k in _SHARED_LOAD_KWARGS if k in model_kwargs}
        tok_kwargs.update(tokenizer_kwargs or {})
        dt = _resolve_dtype(dtype)
        if dt is not None:
            model_kwargs["dtype"] = dt
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, **tok_kwargs)
            model = AutoModelForCausalLM.from_pretrained(name_or_path, **model_kwargs)
        except OSError as e:
            raise ModelNotFoundError(
                f"name_or_path={name_or_path!r} could not be loaded ({e}); pass a local folder "
                "holding a transformers model, a hub id (with hub access), or an embedded "
                "model name from awrs_adapters.models.available()"
            ) from e
        return cls(model, tokenizer, device=device, eos_token_ids=eos_token_ids)

    def _model_device(self) -> torch.device:
        dev = getattr(self.model, "device", None)
        if isinstance(dev, torch.device):
            return dev
        try:
            first: torch.device = next(self.model.parameters()).device
            return first
        except (StopIteration, AttributeError, TypeError):
            return torch.device("cpu")

    def _logits_width(self) -> int:
        get = getattr(self.model, "get_output_embeddings", None)
        emb = get() if callable(get) else None
        w = getattr(emb, "weight", None)
        if w is not None:
            return int(w.shape[0])
        cfg = self.model.config
        cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        return int(cfg.vocab_size)

    # -- prompts ------------------------------------------------------------------
    @property
    def context_length(self) -> int | None:
        """Positions the model reads (``max_position_embeddings``), or None if unknown."""
        cfg = getattr(self.model, "config", None)
        if cfg is not None and hasattr(cfg, "get_text_config"):
            cfg = cfg.get_text_config()
        n = getattr(cfg, "max_position_embeddings", None)
        return int(n) if isinstance(n, int) and n > 0 else None

    def _embedding_rows(self) -> int:
        emb = getattr(self.model, "get_input_embeddings", None)
        rows = getattr(emb(), "num_embeddings", None) if callable(emb) else None
        return rows if isinstance(rows, int) else self.vocab.size

    # -- running ------------------------------------------------------------------
    def forward(
        self, input_ids: torch.Tensor, cache: Any = None, *, keep_last: bool = True,
        attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """One forward: ``(last-position logits [B, V], cache)``.

        ``attention_mask`` ``[B, cached + new]`` (1 = a real token) and ``position_ids``
        ``[B, new]``: rows padded to a common length (several prompts in one batch, see
        :mod:`awrs_adapters.lm.shared`); None: every position is real.
        """
        kwargs: dict[str, Any] = {self._cache_arg: cache, "use_cache": True}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        if keep_last and self._keep_arg is not None:
            kwargs[self._keep_arg] = 1
        out = self.model(input_ids=input_ids, **kwargs)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = getattr(out, "past_key_values", None)
        return out.logits[:, -1, :], new_cache

    def start(
        self, prompt: Any, num_particles: int, *, temperature: float = 1.0,
        max_tokens: int | None = None,
    ) -> TransformersBatch:
        """Prefill ``prompt`` once and return ``num_particles`` rows sharing its cache.

        ``temperature`` divides the raw logits (before the end tokens are merged); the
        engine's own ``temperature`` argument divides the merged log-probabilities,
        which is the same when the model has one end token. ``max_tokens`` (optional):
        refuse at once (ConfigError) a prompt that leaves fewer positions than that.
        Without it, a step that would write past the model's context length
        (``max_position_embeddings``) raises :class:`~awrs_adapters.errors.LMError`
        naming max_tokens and the context length, instead of running where the model's
        outputs are not defined.
        """
        t = check_start_args(num_particles, temperature)
        ids = self.encode_prompt(prompt, max_tokens=max_tokens)
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            logits, cache = self.forward(x, None)
            if cache is None:
                raise ConfigError(
                    f"{type(self.model).__name__} returned no KV cache (use_cache=True); pass a "
                    "causal LM whose forward returns its cache (any transformers decoder)"
                )
            if num_particles != 1:
                cache.batch_repeat_interleave(num_particles)
        batch = TransformersBatch(self, cache, logits.expand(num_particles, -1), num_particles, t)
        batch.prompt_tokens = batch.length = len(ids)
        return batch

    def row_logprobs(self, logits: torch.Tensor, processor: Callable[[torch.Tensor], torch.Tensor]
                     | None, temperature: float) -> torch.Tensor:
        """A batch's rows: ``processor`` (on a float32 copy), then :meth:`postprocess`."""
        if processor is not None:
            logits = processor(logits.float().clone())
        with torch.inference_mode():
            return self.postprocess(logits, temperature)

    def _name(self) -> str:
        cfg = getattr(self.model, "config", None)
        return str(getattr(cfg, "_name_or_path", "") or type(self.model).__name__)


class TransformersBatch(ParticleBatch):
    """Rows of one prompt: a KV cache, the last logits, and a pending row index.

    ``select`` indexes the logits at once and composes the cache index lazily; the
    cache is gathered once, right before the next forward.
    """

    def __init__(
        self, lm: TransformersLM, cache: Any, logits: torch.Tensor, n: int, temperature: float
    ) -> None:
        self.lm = lm
        self.cache = cache
        self.logits = logits
        self.n = n
        self.temperature = temperature
        self._lp: torch.Tensor | None = None
        self._pending: torch.Tensor | None = None  # cache row index not yet applied
        #: optional ``fn(scores [rows, V] float32 copy) -> scores``, applied to the raw
        #: logits before normalisation and the EOS merge (e.g. generate's processors)
        self.logits_processor: Callable[[torch.Tensor], torch.Tensor] | None = None
        #: positions in the KV cache (every row has the same), and of the prompt
        self.length = 0
        self.prompt_tokens = 0

    @property
    def num_rows(self) -> int:
        return self.n

    def logprobs(self) -> torch.Tensor:
        if self._lp is None:
            self._lp = self.lm.row_logprobs(self.logits, self.logits_processor, self.temperature)
        return self._lp

    def extend(self, token_ids: Sequence[int]) -> None:
        if len(token_ids) != self.n:
            raise ValueError(f"extend got {len(token_ids)} tokens for {self.n} rows")
        if self.n == 0:
            return
        self.lm.check_room(self.length, self.prompt_tokens)
        x = torch.tensor(token_ids, dtype=torch.long).reshape(self.n, 1)
        if x.device != self.lm.device:
            x = x.to(self.lm.device)
        with torch.inference_mode():
            if self._pending is not None:
                self._apply_pending()
            self.logits, self.cache = self.lm.forward(x, self.cache, keep_last=False)
        self.length += 1
        self._lp = None

    def _apply_pending(self) -> None:
        idx = self._pending
        self._pending = None
        if idx is None:
            return
        idx = idx.to(self.lm.device)
        reorder = getattr(self.cache, "reorder_cache", None)
        if callable(reorder):
            reorder(idx)
        else:
            self.cache.batch_select_indices(idx)

    def select(self, rows: Sequence[int]) -> None:
        n = len(rows)
        if n == self.n and all(int(r) == i for i, r in enumerate(rows)):
            return
        idx = torch.as_tensor([int(r) for r in rows], dtype=torch.long)
        if n and (int(idx.min()) < 0 or int(idx.max()) >= self.n):
            raise IndexError(f"select rows {list(rows)} out of range for {self.n} rows")
        self.n = n
        if n == 0:  # every particle finished or died: free the cache
            self.cache = None
            self._pending = None
            self.logits = self.logits[:0]
            self._lp = None if self._lp is None else self._lp[:0]
            return
        dev_idx = idx.to(self.logits.device)
        self.logits = self.logits.index_select(0, dev_idx)
        if self._lp is not None:
            self._lp = self._lp.index_select(0, dev_idx.to(self._lp.device))
        self._pending = idx if self._pending is None else self._pending.index_select(0, idx)


def _transformers_at_least(major: int, minor: int) -> bool:
    """Whether the installed transformers is at least ``major.minor`` (pre-releases of it
    included: ``5.24.0.dev0`` counts as 5.24)."""
    try:
        import transformers
        from packaging.version import InvalidVersion, Version

        return Version(transformers.__version__).release[:2] >= (major, minor)
    except (ImportError, InvalidVersion):
        return True
