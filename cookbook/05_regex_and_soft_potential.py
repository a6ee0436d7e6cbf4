"""A regex format in the proposal and a soft Python score as an importance weight.

The regex (a compiled outlines-core automaton) makes every particle a well-formed
username; a ``Potential`` scores names softly (log-weight -1 per letter: a preference
for short handles, not a rule), so SMC shifts the posterior towards shorter names
without ever forbidding long ones. The prefix score is the twist: particles that grow
long lose weight as they go and resampling moves effort to short ones. Over a few seeds
the table shows the posterior mean number of letters with and without the potential.

Run: python cookbook/05_regex_and_soft_potential.py [--particles 8] [--seeds 6]
"""

from __future__ import annotations

import argparse
import statistics

from awrs_adapters import generate, models
from awrs_adapters.constraints import Potential, Regex


def letters(s: str) -> int:
    return sum(ch.isalpha() for ch in s)


def main(particles: int = 8, seeds: int = 6) -> dict[str, float]:
    lm = models.load()
    fmt = Regex(r"[a-z]{3,8}[0-9]{0,3}")
    shorter = Potential(complete=lambda s: -1.0 * letters(s),
                        prefix=lambda s: -1.0 * letters(s), name="shorter")
    prompt = [{"role": "user", "content": "Suggest a username for Ada Lovelace (born 1815): "
               "lowercase letters then up to three digits, like ada815."}]
    means: dict[str, list[float]] = {"regex only": [], "regex & potential": []}
    print(f"{'seed':>4}  {'regex only':>28}  {'regex & potential':>28}")
    for seed in range(seeds):
        row = []
        for name, c in (("regex only", fmt), ("regex & potential", fmt & shorter)):
            r = generate(lm, prompt, c, num_particles=particles, max_tokens=10, seed=seed)
            assert r.ok and all(fmt.accepts(s) for s in r.posterior)
            means[name].append(sum(p * letters(s) for s, p in r.posterior.items()))
            row.append(f"{r.mode:>12} ({means[name][-1]:.2f} letters)")
        print(f"{seed:4}  {row[0]:>28}  {row[1]:>28}")
    out = {k: statistics.mean(v) for k, v in means.items()}
    print(f"posterior mean letters over {seeds} seeds: regex only {out['regex only']:.2f}, "
          f"with the potential {out['regex & potential']:.2f}")
    # the claim: the preference moves the posterior towards shorter names
    assert out["regex & potential"] < out["regex only"]
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--particles", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=6)
    a = ap.parse_args()
    main(a.particles, a.seeds)
