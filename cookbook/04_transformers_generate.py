"""``model.generate`` with AWRS-SMC (``custom_generate=smc_generate``) and with the processor.

Users who already call ``model.generate`` add arguments: ``custom_generate=smc_generate``
with a ``constraint`` samples the posterior (weights, resampling, ``.results``), while
``AWRSLogitsProcessor`` works in any generate call or pipeline as locally constrained
decoding (valid, biased like masking).

Run: python cookbook/04_transformers_generate.py
"""

from __future__ import annotations

import time

from awrs_adapters import models
from awrs_adapters.constraints import Regex
from awrs_adapters.integrations.transformers import (
    CUSTOM_GENERATE_DIR,
    AWRSLogitsProcessor,
    smc_generate,
)


def main(particles: int = 4) -> None:
    lm = models.load()
    model, tok = lm.model, lm.tokenizer
    date = Regex(r"(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]")
    msgs = [[{"role": "user", "content": f"When did {e}? Answer as YYYY-MM-DD."}]
            for e in ("Apollo 11 land on the Moon", "the Berlin Wall fall")]
    texts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in msgs]
    tok.padding_side = "left"
    inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    L = inputs["input_ids"].shape[1]

    t0 = time.perf_counter()
    out = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=date,
                         num_particles=particles, max_new_tokens=12, do_sample=True,
                         awrs_tokenizer=tok, seed=0)
    print(f"smc_generate ({time.perf_counter() - t0:.1f} s):")
    for row, res in zip(tok.batch_decode(out.sequences[:, L:], skip_special_tokens=True), out.results):
        print(f"  {row!r}  posterior {dict(list(res.posterior.items())[:3])}  log_ml {res.log_ml:.2f}")
        assert date.accepts(row) and row in res.posterior

    folder = model.generate(**inputs, custom_generate=CUSTOM_GENERATE_DIR, return_dict_in_generate=True, trust_remote_code=True,
                            tokenizer=tok, constraint=date, num_particles=particles,
                            max_new_tokens=12, do_sample=True, seed=0)
    print(f"folder form: {tok.batch_decode(folder.sequences[:, L:], skip_special_tokens=True)}")

    proc = AWRSLogitsProcessor(date, tok, seed=0)
    t0 = time.perf_counter()
    lcd = model.generate(**inputs, logits_processor=[proc], do_sample=True, max_new_tokens=12)
    rows = tok.batch_decode(lcd[:, L:], skip_special_tokens=True)
    print(f"AWRSLogitsProcessor ({time.perf_counter() - t0:.1f} s, {proc.checks} checks): {rows}")
    for i, row in enumerate(rows):
        if i not in proc.dead_rows:
            assert date.accepts(row), row


if __name__ == "__main__":
    main()
