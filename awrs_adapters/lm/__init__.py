"""Language-model backends: the batched-particle interface and its implementations.

Overview: :class:`LanguageModel` / :class:`ParticleBatch` are the protocol;
:class:`FunctionLM` is an exact model given by a Python function;
``TransformersLM`` (imported lazily) wraps a Hugging Face causal LM; ``VLLMLM``
(imported lazily, optional ``vllm`` extra) runs on a vLLM engine.

Example::

    from awrs_adapters.lm import FunctionLM
    lm = FunctionLM([b"a", b"b", b""], 2, lambda prefix: [0.0, 0.0, 0.0])
"""

from __future__ import annotations

from typing import Any

from .base import LanguageModel, ParticleBatch
from .function import FunctionLM

__all__ = ["FunctionLM", "LanguageModel", "ParticleBatch", "TransformersLM", "VLLMLM"]


def __getattr__(name: str) -> Any:
    if name == "TransformersLM":
        from .transformers import TransformersLM

        return TransformersLM
    if name == "VLLMLM":
        from .vllm import VLLMLM

        return VLLMLM
    raise AttributeError(name)
