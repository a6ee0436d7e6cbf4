"""``model.generate(..., custom_generate=<this folder's parent>, trust_remote_code=True)``.

transformers loads this file from disk (no hub needed) and calls :func:`generate` with
every argument of the ``generate`` call; it forwards them to ``generate`` again with the
callable strategy, carrying ``tokenizer=`` and ``streamer=`` that transformers does not
pass to callables.

Example::

    >>> from awrs_adapters import models
    >>> from awrs_adapters.constraints import Regex
    >>> from awrs_adapters.integrations.transformers import CUSTOM_GENERATE_DIR
    >>> lm = models.load()
    >>> model, tok = lm.model, lm.tokenizer
    >>> inputs = tok(["A year: "], return_tensors="pt")
    >>> out = model.generate(**inputs, custom_generate=CUSTOM_GENERATE_DIR, trust_remote_code=True,
    ...                      tokenizer=tok, constraint=Regex(r"(19|20)[0-9]{2}"), num_particles=4,
    ...                      max_new_tokens=6, seed=0)
    >>> print(tok.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    ['...']
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
