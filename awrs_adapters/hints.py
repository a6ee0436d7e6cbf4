"""What to try when every particle died: the hint of an empty result.

Overview: :func:`failure_hint` turns the engine's death counts into the message that
``SMCResult.hint`` carries and ``NoValidSampleError`` shows: how many particles ran into
``max_tokens``, a dead end, a potential's zero, a missing end token or a stop sequence,
and what to change (particles, ``max_tokens``, the prompt, the constraint).

Example::

    >>> from awrs_adapters.hints import failure_hint
    >>> print(failure_hint(n=8, max_tokens=16, method="awrs-smc",
    ...                    deaths={"incomplete": 8, "dead_end": 0, "potential": 0, "no_end": 0}))
    all 8 particles died: no complete string of at most 16 tokens was accepted by the constraint (awrs-smc). 8 particle(s) reached max_tokens=16 (or a stopping criterion) before the constraint accepted their text: raise max_tokens. Try more particles (num_particles), a larger max_tokens, a prompt that asks for the format, or check that the constraint can be satisfied at all (e.g. its accepts() on an example).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["failure_hint"]


def failure_hint(*, n: int, max_tokens: int, method: str, deaths: Mapping[str, int],
                 stop: Sequence[str] = (), no_start: bool = False) -> str:
    """The hint for a run of ``n`` particles where none produced an accepted string.

    ``deaths``: particle counts by cause (``incomplete``: not accepted when
    ``max_tokens`` or a stopping criterion ended it; ``no_end``: accepted but p(EOS) = 0
    there; ``potential``: a potential scored -inf; ``dead_end``: no valid next token);
    ``stop``: the run's stop sequences; ``no_start``: a potential ruled out the empty
    prefix (nothing could start).
    """
    if no_start:
        return (
            "no particle could start: a potential's prefix score on the empty text is "
            "-inf, which rules out every output. If some output should be accepted, "
            "make its prefix function return a finite log-weight on '' (a twist may be "
            "-inf only where no completion can score above -inf)."
        )
    d = {k: int(deaths.get(k, 0)) for k in ("dead_end", "potential", "incomplete", "no_end")}
    msg = (
        f"all {n} particles died: no complete string of at most "
        f"{max_tokens} tokens was accepted by the constraint ({method}). "
    )
    if d["incomplete"]:
        msg += (
            f"{d['incomplete']} particle(s) reached max_tokens={max_tokens} (or a "
            "stopping criterion) before the constraint accepted their text: raise "
            "max_tokens. "
        )
    if d["no_end"]:
        msg += (
            f"{d['no_end']} particle(s) had an accepted text at max_tokens but the model "
            "gives the end token probability 0 there (a logits processor or bias that "
            "removes it, or an eos_token_id that is not the model's end). "
        )
    if d["potential"]:
        msg += (
            f"{d['potential']} particle(s) were given weight 0 by a Potential (a score of "
            "-inf): check what its functions return on the texts they saw. "
        )
    if d["dead_end"]:
        msg += (
            f"{d['dead_end']} draw(s) met a dead end (no next token keeps the text valid "
            "with probability > 0): a prefix check that cannot see a dead end coming, or "
            "a model that gives every valid token probability 0. "
        )
    if stop:
        msg += (
            f"Stop sequences {list(stop)} end an output where they first appear, "
            "and the text before them must pass the constraint: a stop the constraint "
            "needs inside its output (e.g. '\\n' in a multi-line format) makes it "
            "unsatisfiable. "
        )
    longer = d["incomplete"] or d["dead_end"] or not any(d.values())
    msg += (
        "Try more particles (num_particles), "
        + ("a larger max_tokens, " if longer else "")
        + "a prompt that asks for the format, or check that the constraint can be "
        "satisfied at all (e.g. its accepts() on an example)."
    )
    return msg
