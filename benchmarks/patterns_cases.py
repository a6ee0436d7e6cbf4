"""Named pattern-benchmark generations re-run with finished particles resampled or kept.

Takes (pattern, N, seed) cases of :mod:`benchmarks.patterns` (the same draws: the seed
offset of the split, the same proposal wrapper) and runs awrs-smc on each with
``resample_finished=True`` (the whole population resampled, the behaviour before) and
``False`` (the default: finished particles keep their place), reporting success, how many
particles ran to ``max_tokens``, and how many finished particles with weight were dropped
by a resampling (always 0 when they keep their place).

Run: python benchmarks/patterns_cases.py CASES.json [--name patterns_cases]
(CASES.json: a list of [pattern, N, seed])
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
import regex
import torch

from awrs_adapters import models
from awrs_adapters import smc as S

try:
    from benchmarks import patterns as P
    from benchmarks.common import report, table
except ImportError:
    import patterns as P

    from common import report, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", type=Path)
    ap.add_argument("--name", default="patterns_cases")
    a = ap.parse_args()
    cases = json.loads(a.cases.read_text())
    valid = []
    for p in P.load_patterns(1):
        try:
            regex.compile(p)
            valid.append(p)
        except regex.error:
            pass
    torch.set_grad_enabled(False)
    lm = models.load()
    dropped: list[int] = []
    orig = S.SMC._maybe_resample

    def traced(self: S.SMC) -> None:
        before = [(i, self.status[i], self.logw[i]) for i in range(self.N)]
        n = len(self.ancestors)
        orig(self)
        if len(self.ancestors) > n:
            kept = set(self.ancestors[-1].tolist())
            dropped.extend(1 for i, st, w in before if st == S.DONE and w > -np.inf and i not in kept)

    S.SMC._maybe_resample = traced  # type: ignore[method-assign]
    init = S.SMC.__init__
    rows = []
    for refin in (True, False):
        # wraps: run_one reads SMC's signature (to pass stop=), which must stay SMC's
        @functools.wraps(init)
        def patched(self, *args, _r=refin, **kw):  # type: ignore[no-untyped-def]
            init(self, *args, resample_finished=_r, **kw)

        S.SMC.__init__ = patched  # type: ignore[method-assign]
        for pat, N, s in cases:
            dropped.clear()
            r = P.run_one(lm, pat, "awrs-smc", N, seed=valid.index(pat) + 100_003 * s)
            rows.append((f"`{pat}`", N, s, "resampled" if refin else "kept (default)",
                         f"{r['success']:.2f}", r["truncated"], len(dropped)))
            print(rows[-1], flush=True)
    S.SMC.__init__ = init  # type: ignore[method-assign]
    body = ("awrs-smc, the pattern benchmark's draws for each (pattern, N, seed). Finished "
            "particles resampled with the others (before) or keeping their place (the "
            "default). 'dropped': finished particles with weight that a resampling "
            "removed.\n\n" + table(["pattern", "N", "seed", "finished particles", "success",
                                     "particles at max_tokens", "dropped"], rows))
    report(a.name, "Pattern cases: finished particles resampled or kept", body)


if __name__ == "__main__":
    main()
