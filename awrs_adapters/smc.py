"""Sequential Monte Carlo over token sequences, with AWRS (or a reference) as proposal.

Overview: :class:`SMC` is an iterator; ``next(smc)`` runs one step, ``run()`` finishes
and returns an :class:`~awrs_adapters.results.SMCResult`. Each step: one batched LM call
for all live particles; every live particle takes one proposal draw (its log weight
grows by the draw's log estimate); potentials add ``log φ(prefix_t) − log φ(prefix_{t−1})``
(the complete score at EOS); a particle that draws EOS is finished, one whose draw failed
is dead (``-inf``); then the unfinished slots (live and dead particles) are resampled from
the live particles when their ESS is below τ times their number (τ = 0.5 at every N),
each taking the log-mean-exp of those slots' old weights.
At ``max_tokens`` every live particle is forced to EOS with ``w += log p(EOS)`` and the
completeness check.

End-aware twist (``twist="end"``, the default whenever SMC resamples): before each
resampling decision every live particle's weight carries ``log ψ``, its chance of a valid
end within the remaining tokens, removed when it finishes (see :mod:`awrs_adapters.twist`);
the target and ``log_ml`` are unchanged, only which lineages resampling copies moves.

Finished particles keep their place (``resample_finished=False``, the default): only the
unfinished slots are refilled, from the live particles (see
:func:`awrs_adapters.resampling.refill`).

The model (LM + constraint + potentials) is kept apart from the engine: users pass or
compose constraints, never subclass ``SMC``.

Example::

    >>> import numpy as np
    >>> from awrs_adapters.smc import SMC
    >>> from awrs_adapters.lm import FunctionLM
    >>> lm = FunctionLM([b"a", b"b", b""], 2, lambda p: [0.0, 0.0, 0.0] if len(p) < 3 else [-9, -9, 0])
    >>> smc = SMC(lm, None, lambda s: s.endswith("a"), num_particles=8, rng=np.random.default_rng(0))
    >>> for _ in smc:
    ...     print(smc.t, smc.ess)
    1 6.058...
    2 6.506...
    3 5.672...
    4 1.801...
    5 1.801...
    6 1.801...
    7 1.801...
    8 1.801...
    9 1.801...
    >>> print(smc.result().posterior)
    {'a': 0.666..., 'aba': 0.333..., 'baba': 0.000..., 'abba': 8.222...e-05, 'abbba': 6.087...e-08, 'bbbba': 1.352...e-08, 'bbbbbbba': 1.354...e-19}
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from . import resampling as rs
from .arguments import METHODS, MIN_TEMPERATURE, TWISTS, validate_args
from .awrs import TokenDraw, TokenSampler
from .deadline import DeadlineBound
from .errors import ConfigError, GenerationTimeoutError
from .hints import failure_hint
from .lm.base import LanguageModel, check_logprobs
from .proposals import make_proposal
from .protocol import as_constraint, split
from .results import Particle, SMCResult, Stats
from .stops import StopBound, check_stop
from .twist import end_hazards, end_token_ids, log_end_twist, retwist
from .vocab import decode_prefix, decode_text

__all__ = ["DEAD", "DONE", "LIVE", "METHODS", "MIN_TEMPERATURE", "SMC", "TWISTS", "validate_args"]

#: a particle's status (``SMC.status[i]``): still drawing, finished (EOS, a stop, a
#: criterion), or dead (weight 0)
LIVE, DONE, DEAD = 0, 1, 2


class SMC:
    """SMC over the particles of one prompt.

    Args:
        lm: the language model (prior).
        prompt: passed to ``lm.start``.
        constraint: anything :func:`~awrs_adapters.constraints.as_constraint` accepts;
            Boolean parts go into the proposal, potential parts weight the particles.
        num_particles: N.
        max_tokens: tokens per particle before EOS is forced.
        method: ``"awrs-smc"``, ``"lcd"``, ``"sample-verify"`` or ``"mask-smc"``.
        ess_threshold: τ; resample when ESS < τ·N (ignored by lcd and sample-verify,
            which keep N independent particles; 0 never resamples). None (default): 0.5
            at every N.
        resampling: scheme name (see :mod:`awrs_adapters.resampling`).
        temperature: applied to the LM's log-probabilities; 0 decodes greedily (the
            most probable valid token at each step; no weights, ``log_ml`` None). Greedy
            particles would all be identical, so one is run whatever ``num_particles``.
        rng: the only source of randomness.
        estimator: AWRS estimator for ``awrs-smc`` (``"recursive"`` or ``"geometric"``).
        switch: AWRS fast-mask switch policy.
        stop: stop sequences: a particle ends at the token that completes the first one,
            its output being the text before it, which must pass the constraint's
            complete check (see :mod:`awrs_adapters.stops`).
        twist: ``"end"`` (default): the end-aware twist steers resampling away from
            lineages that cannot end before ``max_tokens`` (see the module doc; it
            leaves the target and ``log_ml`` unchanged); ``"none"``: resample on the
            untwisted weights.
        resample_finished: False (default): finished particles keep their slot and
            weight, and only the others are resampled (see the module doc); True: the
            whole population is resampled, finished particles included.
        deadline: ``time.perf_counter()`` seconds after which a token draw stops with
            :class:`~awrs_adapters.errors.GenerationTimeoutError` (within one check;
            see :mod:`awrs_adapters.deadline`); None (default): no limit. The runner
            sets it from ``timeout``.
    """

    def __init__(
        self,
        lm: LanguageModel,
        prompt: Any,
        constraint: Any = None,
        *,
        num_particles: int = 8,
        max_tokens: int = 128,
        method: str = "awrs-smc",
        ess_threshold: float | None = None,
        resampling: str = "stratified",
        temperature: float = 1.0,
        rng: np.random.Generator,
        estimator: str = "recursive",
        switch: str | int = "adaptive",
        stop: Sequence[str] | None = None,
        twist: str = "end",
        resample_finished: bool = False,
        deadline: float | None = None,
    ) -> None:
        validate_args(num_particles, max_tokens, method, ess_threshold, resampling, temperature,
                      twist)
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"rng={rng!r}; pass a numpy.random.Generator (np.random.default_rng(seed))")
        self.t0 = time.perf_counter()
        self.deadline = deadline
        self.lm = lm
        self.vocab = lm.vocab
        self.eos = lm.vocab.eos_token_id
        proposal_c, self.potentials = split(as_constraint(constraint))
        self.stop = check_stop(stop)
        self.bound = proposal_c.bind(lm.vocab)
        self.stop_bound: StopBound | None = None
        if self.stop:
            self.bound = self.stop_bound = StopBound(self.bound, proposal_c.accepts, self.stop)
        self.temperature = float(temperature)
        self.greedy = self.temperature == 0.0
        self.N = 1 if self.greedy else int(num_particles)
        self.max_tokens = int(max_tokens)
        self.method = method
        self.tau = (0.0 if method in ("lcd", "sample-verify")
                    else rs.resolve_ess_threshold(ess_threshold, self.N))
        self.resampling = resampling
        self.resample_finished = bool(resample_finished)
        self.rng = rng
        self.proposal: TokenSampler = make_proposal(method, estimator, switch, self.greedy)
        if self.greedy:  # the most probable valid token at each step; no weights
            self.tau = 0.0

        N = self.N
        self.token_ids: list[tuple[int, ...]] = [()] * N
        self.data: list[bytes] = [b""] * N
        s0 = self.bound.initial_state()
        self.cstate: list[Any] = [s0] * N
        self.logw = np.zeros(N)
        self.phi = np.zeros(N)  # potentials' last prefix log-weight
        # the end-aware twist: log ψ of each particle's current twist (0 when none), and
        # the rows computed ahead for it (the next step's log-probabilities, live order)
        self.end_twist = twist == "end" and self.tau > 0.0 and not self.greedy
        self.psi = np.zeros(N)
        self._next_logp: torch.Tensor | None = None
        self._cont = False  # advance() left live particles for settle() to twist
        self._end_ids: torch.Tensor | None = None
        self.status = np.full(N, LIVE, dtype=np.int8)
        self.truncated = np.zeros(N, dtype=bool)
        self.stopped = np.zeros(N, dtype=bool)
        self.t = 0
        self.ess_history: list[float] = []
        self.resampled: list[bool] = []
        self.ancestors: list[np.ndarray] = []
        self.stats = Stats()
        # why particles died, for the hint (the causes: awrs_adapters.hints.failure_hint)
        self.deaths: dict[str, int] = dict.fromkeys(
            ("dead_end", "potential", "incomplete", "no_end"), 0)
        self.phi0 = 0.0
        if self.potentials:
            # the weights start at the twist of the empty text, so that the increments
            # telescope to the complete score: exp(log_ml) then estimates Z itself
            self.phi0 = self._potential_prefix("")
            self.phi[:] = self.phi0
            self.logw[:] = self.phi0
            if self.phi0 == -math.inf:  # nothing can be accepted: every particle is dead
                self.status[:] = DEAD
        # a model that merges several end tokens applies temperature to its raw logits
        # (before the merge), which dividing merged log-probabilities cannot reproduce
        self._lm_temperature = (
            not self.greedy and self.temperature != 1.0 and getattr(lm, "raw_temperature", False)
        )
        if self._lm_temperature:
            self.batch = lm.start(prompt, N, temperature=self.temperature)  # type: ignore[call-arg]
        else:
            self.batch = lm.start(prompt, N)  # row j <-> j-th live particle, in index order
        if self.done:
            self.batch.select([])
        # compiling the constraint and prefilling the prompt are set-up, not decoding
        self.stats.setup_seconds = time.perf_counter() - self.t0
        self.t0 = time.perf_counter()

    # -- state --------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return not bool(np.any(self.status == LIVE))

    @property
    def live(self) -> list[int]:
        """Indices of the particles still drawing, in order (row ``j`` of the LM batch)."""
        return np.flatnonzero(self.status == LIVE).tolist()

    @property
    def ess(self) -> float:
        return rs.ess(self.logw)

    def _potential_prefix(self, text: str) -> float:
        return float(sum(c.log_prefix(text) for c in self.potentials))  # type: ignore[attr-defined]

    def _potential_complete(self, text: str) -> float:
        return float(sum(c.log_complete(text) for c in self.potentials))  # type: ignore[attr-defined]

    # -- one step -----------------------------------------------------------------
    def __iter__(self) -> Iterator[SMC]:
        return self

    def __next__(self) -> SMC:
        if self.done:
            raise StopIteration
        self.step()
        return self

    def _logprobs(self) -> torch.Tensor:
        t0 = time.perf_counter()
        logp = self.batch.logprobs()
        self.stats.lm_seconds += time.perf_counter() - t0
        self.stats.lm_calls += 1
        check_logprobs(logp, self.t)
        if self.temperature not in (0.0, 1.0) and not self._lm_temperature:
            logp = torch.log_softmax(logp / self.temperature, dim=-1)
        return logp

    def step(self) -> None:
        """Advance every live particle by one token, reweight, maybe resample."""
        self.advance()
        self.settle()

    def advance(self) -> None:
        """First half of :meth:`step`: draw a token for every live particle and extend.

        Reads this step's next-token rows (the batch's forward) and hands the new tokens
        to the batch; a batch that shares its forwards with other prompts' batches (see
        :mod:`awrs_adapters.batching`) runs them once every prompt has advanced.
        """
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise GenerationTimeoutError(f"generation passed its deadline before step {self.t + 1}")
        live = np.flatnonzero(self.status == LIVE)
        logp = self._next_logp if self._next_logp is not None else self._logprobs()
        self._next_logp = None
        self.stats.tokens += len(live)
        states = [self.cstate[i] for i in live]
        if self.t >= self.max_tokens:
            draws = self._force_eos(logp, states)
        else:
            bound: Any = self.bound  # or the deadline's wrapper around it
            if self.deadline is not None:
                bound = DeadlineBound(bound, self.deadline, (
                    f"generation passed its deadline inside the token draws of step "
                    f"{self.t + 1} ({len(live)} live particles)"))
            draws = self.proposal.sample(logp, bound, states, self.rng)
        cont_rows: list[int] = []
        cont_tokens: list[int] = []
        for j, (i, d) in enumerate(zip(live, draws, strict=True)):
            self.stats.constraint_checks += d.checks
            self.stats.masks += d.masks
            self._apply(int(i), d)
            if self.status[i] == LIVE:
                cont_rows.append(j)
                cont_tokens.append(d.token)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        if len(cont_rows) < len(live):
            self.batch.select(cont_rows)
        if cont_rows:
            self.batch.extend(cont_tokens)
        self.stats.lm_seconds += time.perf_counter() - t0
        self.t += 1
        self.stats.steps += 1
        self._cont = bool(cont_rows)

    def settle(self) -> None:
        """Second half of :meth:`step`: the end-aware twist (which reads the next rows),
        then the resampling decision."""
        if self.end_twist and self._cont:
            self._next_logp = self._logprobs()
            self._retwist(self._next_logp)
        self._cont = False
        self._maybe_resample()

    # -- the end-aware twist ---------------------------------------------------------
    def _retwist(self, logp: torch.Tensor) -> None:
        """Replace each live particle's end-aware twist by the one for its current text.

        ``logp``: ``[live, V]`` next-token log-probabilities of the live particles (in
        index order). See :mod:`awrs_adapters.twist` for ``ψ``.
        """
        live = np.flatnonzero(self.status == LIVE)
        if not len(live):
            return
        if self._end_ids is None:
            self._end_ids = end_token_ids(self.vocab, self.stop)
        h = end_hazards(logp, self._end_ids)
        for j, i in enumerate(live):
            if h[j] > 0.0 and not self.bound.trivial:
                self.stats.constraint_checks += 1
                if not self.bound.check(self.cstate[i], self.eos):
                    h[j] = 0.0
        # chances left to end, the forced end included
        logpsi = log_end_twist(h, self.max_tokens - self.t + 1, self.max_tokens)
        retwist(self.logw, self.psi, live, logpsi)

    def _untwist(self, i: int) -> None:
        """Particle ``i`` finished: its true end weight replaces the end-aware twist."""
        if self.psi[i] != 0.0:
            if self.logw[i] > -math.inf:
                self.logw[i] -= self.psi[i]
            self.psi[i] = 0.0

    def _force_eos(self, logp: torch.Tensor, states: list[Any]) -> list[TokenDraw]:
        out = []
        for j, s in enumerate(states):
            lp = float(logp[j, self.eos])
            checks = 0 if self.bound.trivial else 1
            accepted = self.bound.trivial or self.bound.check(s, self.eos)
            ok = lp > -math.inf and accepted
            if not accepted:
                self.deaths["incomplete"] += 1
            elif not ok:
                self.deaths["no_end"] += 1
            out.append(TokenDraw(self.eos if ok else None, lp if ok else -math.inf, checks))
        live = np.flatnonzero(self.status == LIVE)
        self.truncated[live] = True
        return out

    def _score_complete(self, i: int) -> None:
        """Replace particle i's last twist by the potentials' complete score of its text."""
        if self.potentials:
            text = decode_text(self.data[i])
            self.logw[i] += self._potential_complete(text) - self.phi[i]

    def _apply(self, i: int, d: TokenDraw) -> None:
        if d.token is None or d.log_weight == -math.inf:
            if self.t < self.max_tokens:  # forced ends are counted by _force_eos
                self.deaths["dead_end"] += 1
            self.status[i] = DEAD
            self.logw[i] = -math.inf
            self.psi[i] = 0.0
            return
        self.logw[i] += d.log_weight
        cut = None
        if self.stop_bound is not None:
            cut = self.stop_bound.stop_at(self.cstate[i], d.token)
        if d.token != self.eos:
            self.token_ids[i] = self.token_ids[i] + (d.token,)
            self.data[i] = self.data[i] + self.vocab.tokens[d.token]
        self.cstate[i] = self.bound.advance(self.cstate[i], d.token)
        if d.token == self.eos or cut is not None:
            self.status[i] = DONE
            if cut is not None:  # a stop sequence: the output is the text before it
                self.data[i] = self.data[i][:cut]
                self.stopped[i] = True
            self._untwist(i)
            self._score_complete(i)
        elif self.potentials:
            phi = self._potential_prefix(decode_prefix(self.data[i]))
            self.logw[i] += phi - self.phi[i] if phi > -math.inf else -math.inf
            self.phi[i] = phi
        if self.logw[i] == -math.inf:
            self.deaths["potential"] += 1
            self.status[i] = DEAD

    def _maybe_resample(self) -> None:
        e = self.ess
        self.ess_history.append(e)
        # the slots resampling may refill: all of them, or (the default) every slot but
        # the finished particles', which keep their place and weight (see the module doc)
        pool = (np.arange(self.N) if self.resample_finished
                else np.flatnonzero(self.status != DONE))
        e_pool = e if len(pool) == self.N else rs.ess(self.logw[pool])
        if (self.tau <= 0.0 or self.done or not len(pool) or e_pool >= self.tau * len(pool)
                or e_pool == 0.0):
            self.resampled.append(False)
            return
        a, logw = rs.refill(self.resampling, self.logw, pool, self.rng)
        row_of = np.cumsum(self.status == LIVE) - 1  # a live particle's row in the batch
        new_rows = [int(row_of[k]) for k in a if self.status[k] == LIVE]
        t0 = time.perf_counter()
        self.batch.select(new_rows)
        if self._next_logp is not None:
            self._next_logp = self._next_logp[torch.as_tensor(new_rows, dtype=torch.long)]
        self.stats.lm_seconds += time.perf_counter() - t0
        self.token_ids, self.data, self.cstate = (
            [x[k] for k in a] for x in (self.token_ids, self.data, self.cstate))
        self.phi, self.psi, self.status, self.truncated, self.stopped = (
            x[a] for x in (self.phi, self.psi, self.status, self.truncated, self.stopped))
        self.logw = logw
        self.ancestors.append(np.asarray(a))
        self.resampled.append(True)
        self.stats.resamples += 1

    def finish(self, indices: list[int] | np.ndarray) -> None:
        """End live particles ``indices`` where they are (a stopping criterion fired).

        The output so far is the particle's final text: it must pass the constraint's
        complete check (the particle dies otherwise), and potentials add their complete
        score, as at EOS. The proposal did not know the criterion, so this weighting is
        exact but may waste particles; stop *sequences* belong in ``stop=`` instead.
        The LM rows of those particles are freed.
        """
        live = np.flatnonzero(self.status == LIVE)
        ending = set(int(i) for i in indices) & set(live.tolist())
        if not ending:
            return
        keep = [j for j, i in enumerate(live) if int(i) not in ending]
        self.batch.select(keep)
        if self._next_logp is not None:
            self._next_logp = self._next_logp[torch.as_tensor(keep, dtype=torch.long)]
        for i in ending:
            self.status[i] = DONE
            self.stopped[i] = True
            self._untwist(i)
            if not self.bound.trivial and not self.bound.check(self.cstate[i], self.eos):
                self.deaths["incomplete"] += 1
                self.status[i] = DEAD
                self.logw[i] = -math.inf
            else:
                self._score_complete(i)
                if self.logw[i] == -math.inf:
                    self.deaths["potential"] += 1
                    self.status[i] = DEAD

    def committed_prefix(self) -> bytes:
        """Bytes shared by every particle that still has weight: they can no longer change."""
        alive = [self.data[i] for i in range(self.N) if self.logw[i] > -math.inf]
        shared: bytes = _common_prefix(alive, b"")
        return shared

    def committed_tokens(self) -> tuple[int, ...]:
        """Token ids shared by every particle that still has weight (see ``committed_prefix``)."""
        alive = [self.token_ids[i] for i in range(self.N) if self.logw[i] > -math.inf]
        shared: tuple[int, ...] = _common_prefix(alive, ())
        return shared

    # -- results ------------------------------------------------------------------
    def run(self) -> SMCResult:
        """Run to the end and return the result."""
        for _ in self:
            pass
        return self.result()

    def result(self) -> SMCResult:
        """The result for the current population (call when ``done``)."""
        self.stats.seconds = time.perf_counter() - self.t0
        particles = [
            Particle(
                text=decode_text(self.data[i]),
                token_ids=self.token_ids[i],
                log_weight=float(self.logw[i]),
                finished=bool(self.status[i] == DONE),
                truncated=bool(self.truncated[i]),
                stopped=bool(self.stopped[i]),
            )
            for i in range(self.N)
        ]
        log_ml = None if self.method == "lcd" or self.greedy else rs.log_mean_exp(self.logw)
        res = SMCResult(particles=particles, log_ml=log_ml, ess_history=self.ess_history,
                        resampled=self.resampled, stats=self.stats, method=self.method,
                        ancestors=self.ancestors, ess_threshold=self.tau)
        if not res.ok:
            res.hint = self._hint()
        return res

    def _hint(self) -> str:
        return failure_hint(n=self.N, max_tokens=self.max_tokens, method=self.method,
                            deaths=self.deaths, stop=self.stop, no_start=self.phi0 == -math.inf)


def _common_prefix(seqs: list[Any], empty: Any) -> Any:
    """The longest common prefix of ``seqs`` (all bytes or all tuples); ``empty`` if none."""
    if not seqs:
        return empty
    lo, hi = min(seqs), max(seqs)  # the common prefix of all is that of min and max
    n = 0
    while n < len(lo) and n < len(hi) and lo[n] == hi[n]:
        n += 1
    return lo[:n]
