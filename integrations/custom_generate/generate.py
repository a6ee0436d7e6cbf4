"""``model.generate(..., custom_generate=<this folder's parent>, trust_remote_code=True)``.

transformers loads this file from disk (no hub needed) and calls :func:`generate` with
every argument of the ``generate`` call; it forwards them to ``generate`` again with the
callable strategy, carrying ``tokenizer=`` and ``streamer=`` that transformers does not
pass to callables.

Example::

    from awrs_adapters.integrations.transformers import CUSTOM_GENERATE_DIR
    out = model.generate(**inputs, custom_generate=CUSTOM_GENERATE_DIR, trust_remote_code=True,
                         tokenizer=tok, constraint=..., num_particles=8, max_new_tokens=32)
"""

from __future__ import annotations

import functools
from typing import Any


def generate(model: Any, **kwargs: Any) -> Any:
    from awrs_adapters.integrations.transformers import smc_generate

    tokenizer = kwargs.pop("tokenizer", None)
    streamer = kwargs.pop("streamer", None)
    config = kwargs.get("generation_config") or model.generation_config
    stop_strings = kwargs.pop("stop_strings", None) or getattr(config, "stop_strings", None)
    if stop_strings:  # generate builds this from tokenizer=, which callables do not get
        from transformers import StoppingCriteriaList, StopStringCriteria

        criteria = StoppingCriteriaList(kwargs.pop("stopping_criteria", None) or [])
        criteria.append(StopStringCriteria(tokenizer, stop_strings))
        kwargs["stopping_criteria"] = criteria
    strategy = functools.partial(smc_generate, awrs_tokenizer=tokenizer, awrs_streamer=streamer)
    functools.update_wrapper(strategy, smc_generate)
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "inputs"}
    return model.generate(custom_generate=strategy, **kwargs)
