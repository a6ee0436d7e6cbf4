"""A regex format in the proposal and a soft Python score as an importance weight.

The regex (a compiled outlines-core automaton) makes every particle a well-formed
username; a ``Potential`` scores finished names softly (log-weight -1 per digit, a
preference, not a rule), so SMC shifts the posterior towards names with fewer digits
without ever forbidding them. The table shows the posterior mean number of digits with
and without the potential.

Run: python cookbook/05_regex_and_soft_potential.py [--particles 8]
"""

from __future__ import annotations

import argparse
import math

from awrs_adapters import generate, models
from awrs_adapters.constraints import Potential, Regex


def digits(s: str) -> int:
    return sum(ch.isdigit() for ch in s)


def main(particles: int = 8) -> None:
    lm = models.load()
    fmt = Regex(r"[a-z]{3,8}[0-9]{0,3}")
    fewer_digits = Potential(complete=lambda s: -1.0 * digits(s),
                             prefix=lambda s: -1.0 * digits(s), name="fewer_digits")
    prompt = [{"role": "user", "content": "Suggest a username for Ada Lovelace (born 1815): "
               "lowercase letters then up to three digits, like ada815."}]
    plain = generate(lm, prompt, fmt, num_particles=particles, max_tokens=10, seed=0)
    soft = generate(lm, prompt, fmt & fewer_digits, num_particles=particles, max_tokens=10, seed=0)
    for name, r in (("regex only", plain), ("regex & potential", soft)):
        mean_digits = sum(p * digits(s) for s, p in r.posterior.items())
        print(f"{name:18} mean digits {mean_digits:.2f}  top {list(r.posterior.items())[:3]}")
        assert r.ok and all(fmt.accepts(s) for s in r.posterior)
    # soft, not hard: the potential never sets a weight to zero
    assert all(math.isfinite(fewer_digits.log_complete(s)) for s in plain.posterior)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--particles", type=int, default=8)
    main(ap.parse_args().particles)
