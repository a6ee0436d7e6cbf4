"""Integrations: LangChain chat model and LLM, transformers generation strategy.

Overview: each integration imports its framework lazily, so ``import awrs_adapters``
stays light. Import the one you use:
``from awrs_adapters.integrations.langchain import ChatAWRS`` or
``from awrs_adapters.integrations.transformers import smc_generate``.
Modules: ``langchain`` (ChatAWRS, AWRSLLM), ``langchain_base`` (their shared fields and
run), ``langchain_messages`` (message and tool-call conversion), ``transformers`` (the
``custom_generate`` strategy), ``transformers_processor`` (AWRSLogitsProcessor). The models
and the strategy run through the core step loop, :mod:`awrs_adapters.streaming`.

Example::

    >>> import awrs_adapters.integrations as integrations
    >>> print(integrations.__name__)
    awrs_adapters.integrations
"""

from __future__ import annotations

__all__ = ["LANGCHAIN_HINT"]

#: the ImportError message of the LangChain modules when langchain-core is missing
LANGCHAIN_HINT = ("awrs_adapters.integrations.langchain needs langchain-core: "
                  "pip install 'awrs-adapters[langchain]'")
