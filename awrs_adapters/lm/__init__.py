"""Language-model backends: the batched-particle interface and its implementations.

Overview: :class:`LanguageModel` / :class:`ParticleBatch` are the protocol;
:class:`FunctionLM` is an exact model given by a Python function;
``TransformersLM`` (imported lazily) wraps a Hugging Face causal LM; ``VLLMLM``
(imported lazily, optional ``vllm`` extra) runs on a vLLM engine.

Example::

    >>> from awrs_adapters.lm import FunctionLM
    >>> lm = FunctionLM([b"a", b"b", b""], 2, lambda prefix: [0.0, 0.0, 0.0])
"""

from __future__ import annotations

from typing import Any

from .base import LanguageModel, ParticleBatch
from .function import FunctionLM

__all__ = ["FunctionLM", "LanguageModel", "ParticleBatch", "TransformersLM", "VLLMLM",
           "as_language_model"]

_OUTLINES_LMS: Any = None


def as_language_model(obj: Any) -> Any:
    """``obj`` if it is a :class:`LanguageModel`; an Outlines transformers model
    (``outlines.from_transformers(model, tokenizer)``) as a ``TransformersLM`` of the same
    model and tokenizer (made once per Outlines object); anything else unchanged (the
    caller's check names it)."""
    global _OUTLINES_LMS
    if isinstance(obj, LanguageModel) or not type(obj).__module__.startswith("outlines"):
        return obj
    model, tok = getattr(obj, "model", None), getattr(obj, "hf_tokenizer", None)
    if model is None or tok is None or not hasattr(model, "generate"):
        return obj  # another Outlines backend (llama.cpp, vLLM server...): not a local HF model
    import weakref

    from .transformers import TransformersLM

    if _OUTLINES_LMS is None:
        _OUTLINES_LMS = weakref.WeakKeyDictionary()
    lm = _OUTLINES_LMS.get(obj)
    if lm is None:
        lm = _OUTLINES_LMS[obj] = TransformersLM(model, tok)
    return lm


def __getattr__(name: str) -> Any:
    if name == "TransformersLM":
        from .transformers import TransformersLM

        return TransformersLM
    if name == "VLLMLM":
        from .vllm import VLLMLM

        return VLLMLM
    raise AttributeError(name)
