"""Diagnostics a user can look at: a text summary and a figure of an SMC run.

Overview: :func:`summary` returns a readable table (method, log_ml, ESS, resamples,
costs, and the posterior's top strings); :func:`plot` draws with matplotlib the ESS per
step with resampling marks, the final normalised weights, and the particle ancestry
(each particle's line goes back through its ancestors at every resampling).
``SMCResult.summary()`` and ``SMCResult.plot(path)`` call these.

Example::

    >>> from awrs_adapters import generate
    >>> from awrs_adapters.toy import ends_with_a
    >>> lm, c, T = ends_with_a()
    >>> r = generate(lm, None, c, num_particles=16, max_tokens=T, seed=0)
    >>> print(r.summary())
    method               awrs-smc
    particles            16
    ok                   True
    log_ml               -0.4404
    final ESS            10.59
    steps / resamples    3 / 0
    tokens drawn         38
    LM calls             3
    checks per token     2.42
    masks                0
    seconds (per token)  ...
    set-up seconds       ...
    <BLANKLINE>
    probability  string
         0.9709  'a'
         0.0291  'ba'
    >>> r.plot("run.png")
    'run.png'
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from . import resampling as rs

if TYPE_CHECKING:
    from .results import SMCResult

__all__ = ["ancestry", "plot", "summary"]


def summary(res: SMCResult, top: int = 10) -> str:
    """A plain-text table of the run and its ``top`` most probable strings."""
    s = res.stats
    lml = "n/a (no weights)" if res.log_ml is None else f"{res.log_ml:.4f}"
    rows = [
        ("method", res.method),
        ("particles", str(len(res.particles))),
        ("ok", str(res.ok)),
        ("log_ml", lml),
        ("final ESS", f"{res.ess:.2f}"),
        ("steps / resamples", f"{s.steps} / {s.resamples}"),
        ("tokens drawn", str(s.tokens)),
        ("LM calls", str(s.lm_calls)),
        ("checks per token", f"{s.checks_per_token:.2f}"),
        ("masks", str(s.masks)),
        ("seconds (per token)", f"{s.seconds:.3f} ({1000 * s.seconds_per_token:.2f} ms)"),
        ("set-up seconds", f"{s.setup_seconds:.3f}"),
    ]
    w = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(w)}  {v}" for k, v in rows]
    post = list(res.posterior.items())[:top]
    if post:
        lines.append("")
        lines.append(f"{'probability':>11}  string")
        lines += [f"{p:11.4f}  {t!r}" for t, p in post]
    elif res.hint:
        lines += ["", res.hint]
    return "\n".join(lines)


def ancestry(res: SMCResult) -> np.ndarray:
    """``[steps + 1, N]``: row t holds, for each final particle j, the index its line had
    after step t (before that step's resampling); row 0 is the start."""
    N = len(res.particles)
    steps = len(res.resampled)
    rows = np.empty((steps + 1, N), dtype=np.int64)
    k = len(res.ancestors)
    cur = np.arange(N)
    for t in range(steps, 0, -1):
        if res.resampled[t - 1]:  # resampling at the end of step t picked these ancestors
            k -= 1
            cur = res.ancestors[k][cur]
        rows[t] = cur
    rows[0] = cur
    return rows


def plot(res: SMCResult, path: str | None = None) -> Any:
    """Draw ESS per step, final weights and ancestry; save to ``path`` or return the figure.

    The figure is a ``matplotlib.figure.Figure`` built without pyplot: no backend is
    switched and no global figure is left open (a notebook keeps its inline plots; a
    returned figure displays there as usual).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover
        raise ImportError("plot needs matplotlib: pip install 'awrs-adapters[plot]'") from e
    N = len(res.particles)
    fig = Figure(figsize=(14, 3.8))
    axes = fig.subplots(1, 3)
    ax = axes[0]
    steps = np.arange(1, len(res.ess_history) + 1)
    ax.plot(steps, res.ess_history, marker="o", ms=3, label="ESS")
    ax.axhline(res.ess_threshold * N, color="grey", ls="--", lw=1, label="τ·N")
    rs_steps = [t + 1 for t, r in enumerate(res.resampled) if r]
    if rs_steps:
        ax.scatter(rs_steps, [res.ess_history[t - 1] for t in rs_steps], color="red", zorder=3,
                   label="resampled")
    ax.set(xlabel="step (token)", ylabel="ESS", title="Effective sample size", ylim=(0, N * 1.05))
    ax.legend(fontsize=8)
    ax = axes[1]
    lw = np.array([p.log_weight for p in res.particles])
    W = np.zeros(N)
    fin = np.isfinite(lw)
    if fin.any():
        W[fin] = rs.normalise(lw[fin])
    colors = ["tab:blue" if p.finished and math.isfinite(p.log_weight) else "tab:grey"
              for p in res.particles]
    ax.bar(np.arange(N), W, color=colors)
    ax.set(xlabel="particle", ylabel="normalised weight", title="Final weights (grey: dead)")
    ax = axes[2]
    anc = ancestry(res)
    for j in range(N):
        ax.plot(np.arange(anc.shape[0]), anc[:, j], color="tab:blue", alpha=0.35, lw=1)
    for t in rs_steps:
        ax.axvline(t, color="red", alpha=0.2, lw=1)
    ax.set(xlabel="step", ylabel="ancestor index", title="Particle ancestry")
    fig.suptitle(f"{res.method}: N={N}, log_ml={res.log_ml if res.log_ml is None else round(res.log_ml, 3)}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        return path
    return fig
