"""The end-aware twist: a particle's chance of a valid end within the tokens left.

Overview (``SMC(twist="end")``, the default whenever SMC resamples). Intermediate
weights are blind to ``max_tokens``: under a loose prefix check a lineage that rambles
on keeps a high weight (nothing it writes is rejected) while one that wants to end where
the constraint does not let it loses mass, so resampling copies the rambler, which then
hits the wall with every copy. The twist anticipates the end. After a live particle's
next-token row is computed (the forward of the step after its draw), its valid-end
hazard is ``h = [the text passes the complete check]·(p(EOS) + p(tokens that begin with
a stop sequence))`` (the mass that would end it now, accepted), and with ``k = T − t + 1``
chances to end left (``t`` tokens written, ``T = max_tokens``, the forced end included)
its twist is ``ψ = 1 − (1 − max(h, h0))^k``, the chance of a valid end within the
remaining steps if that hazard held, with the prior hazard ``h0 = 1/(T + 1)`` for a
text that cannot end now. Far from the wall ``ψ`` is close to 1 for every particle (it
barely moves the weights); one step from it ``ψ ≈ h``, the weight the forced end will
give. It is applied as a critic's twist, ``w += log ψ_t − log ψ_{t−1}``, before the
resampling decision, and removed (``w −= log ψ``) when the particle finishes, where the
true end weight takes over: the weights at the end and ``log_ml`` are those of the
untwisted target (any twist ``0 < ψ <= 1`` leaves it unchanged), only which lineages
resampling copies moves. Without resampling (``ess_threshold=0``) it would cancel, and
it is not computed.

:func:`log_end_twist` is ``log ψ`` from the hazards; :func:`end_token_ids` the tokens
whose mass counts as ending (EOS and every token that begins with a stop sequence).

Example::

    >>> import numpy as np
    >>> from awrs_adapters.twist import log_end_twist
    >>> h = np.array([0.0, 0.01, 0.5, 1.0])    # hazards of four particles
    >>> print(np.exp(log_end_twist(h, steps_left=3, max_tokens=10)))  # ψ: ~0.25, 0.25, 0.875, 1
    [0.248... 0.248... 0.875     1.       ]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .vocab import Vocabulary

__all__ = ["end_hazards", "end_token_ids", "log_end_twist", "retwist"]


def end_token_ids(vocab: Vocabulary, stop: Sequence[str] = ()) -> torch.Tensor:
    """EOS and every token that begins with a stop sequence (ends the text as it is),
    sorted, as a long tensor."""
    ids = {vocab.eos_token_id}
    for s in stop:
        ids.update(vocab.trie.with_prefix(s.encode("utf-8")).tolist())
    return torch.tensor(sorted(ids), dtype=torch.long)


def log_end_twist(h: np.ndarray, steps_left: int, max_tokens: int) -> np.ndarray:
    """``log ψ = log(1 − (1 − max(h, h0))^k)`` per particle, with ``h0 = 1/(T + 1)``.

    ``h``: ``[n]`` valid-end hazards in [0, 1]; ``steps_left``: ``k``, the chances left to
    end (the forced end at ``max_tokens`` included); ``max_tokens``: ``T``. A hazard of 1
    gives ``ψ = 1`` (log 0.0).
    """
    hk = np.maximum(np.asarray(h, dtype=np.float64), 1.0 / (max_tokens + 1))
    with np.errstate(divide="ignore"):
        logpsi = np.log(-np.expm1(steps_left * np.log1p(-np.minimum(hk, 1.0))))
    out: np.ndarray = np.where(np.isfinite(logpsi), logpsi, 0.0)
    return out


def end_hazards(logp: torch.Tensor, end_ids: torch.Tensor) -> np.ndarray:
    """``[rows]`` float64: the probability mass of tokens ``end_ids`` in each row of
    log-probabilities ``logp`` ``[rows, V]`` (before the complete check)."""
    lend = torch.logsumexp(logp[:, end_ids.to(logp.device)].to(torch.float64), dim=1)
    out: np.ndarray = np.exp(np.minimum(lend.cpu().numpy(), 0.0))
    return out


def retwist(logw: np.ndarray, psi: np.ndarray, idx: np.ndarray, logpsi: np.ndarray) -> None:
    """Replace the twist of particles ``idx``, in place: ``logw += logpsi − psi`` and
    ``psi = logpsi`` (``[N]`` arrays; ``logpsi`` ``[len(idx)]``). Particles with weight
    0 (``-inf``) keep it, with twist 0."""
    w = logw[idx]
    ok = w > -np.inf
    logw[idx] = np.where(ok, w + logpsi - psi[idx], w)
    psi[idx] = np.where(ok, logpsi, 0.0)
