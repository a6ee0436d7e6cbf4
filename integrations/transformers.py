"""transformers integration: AWRS-SMC as a ``model.generate`` strategy, and a logits processor.

Overview:

* :func:`smc_generate` is a ``custom_generate`` callable: ``model.generate(**inputs,
  custom_generate=smc_generate, constraint=..., num_particles=8, max_new_tokens=...)``
  runs AWRS-SMC per prompt with generate's own preparation (generation config, logits
  processors, stopping criteria, padding). Like generate it returns a ``LongTensor`` (one
  row per prompt, drawn from that prompt's posterior, padded like generate pads;
  ``num_return_sequences=k`` with ``do_sample=True``: k draws from each prompt's
  posterior), or with ``return_dict_in_generate=True`` an :class:`SMCGenerateOutput`
  with ``.sequences``, ``.results`` (one :class:`~awrs_adapters.results.SMCResult` per
  prompt) and ``scores`` / ``logits`` when asked.
  transformers does not pass ``tokenizer=`` or ``streamer=`` to a callable strategy:
  pass the tokenizer as ``awrs_tokenizer=`` (or use the folder form below); generate's
  own ``streamer=`` is read from the ``generate`` call itself (``awrs_streamer=`` also
  works), so ``TextStreamer`` s behave as with plain sampling.
* The folder form, ``model.generate(**inputs, custom_generate=CUSTOM_GENERATE_DIR,
  trust_remote_code=True, tokenizer=tok, streamer=s, constraint=...)``, loads
  ``custom_generate/generate.py`` of this package from disk (offline) and accepts the
  usual ``tokenizer=`` and ``streamer=`` arguments.
* :class:`AWRSLogitsProcessor` (defined in
  :mod:`~awrs_adapters.integrations.transformers_processor`, re-exported here) is a
  ``LogitsProcessor`` for any ``generate`` call or pipeline. It is **locally constrained
  decoding**: every output is valid, but the distribution is biased like all masking (it
  cannot carry weights or resample). It finds one valid token per row by adaptive
  rejection sampling instead of masking the whole vocabulary. ``smc_generate`` is the
  unbiased path.

The strategy runs every prompt's population in lockstep on a
:class:`~awrs_adapters.scheduler.Scheduler` (one forward of all the batch's rows per
step, through one :class:`~awrs_adapters.lm.shared.SharedForward`), with the same step
hooks as every other entry point (stop strings, the streamer, stopping criteria that end
particles).

Example::

    >>> from awrs_adapters.constraints import Regex
    >>> from awrs_adapters.integrations.transformers import AWRSLogitsProcessor, smc_generate
    >>> from awrs_adapters.models import load
    >>> lm = load()                      # the embedded SmolLM2 (a TransformersLM)
    >>> model, tok = lm.model, lm.tokenizer
    >>> out = model.generate(**tok("Date:", return_tensors="pt"), custom_generate=smc_generate,
    ...                      constraint=Regex(r" [0-9]{4}-[0-9]{2}-[0-9]{2}"), num_particles=8,
    ...                      max_new_tokens=12, awrs_tokenizer=tok, return_dict_in_generate=True)
    >>> print(tok.batch_decode(out.sequences), out.results[0].posterior)
    ['Date: ...-...-...'] {' ...-...-...': ...}
    >>> lcd = AWRSLogitsProcessor(Regex(r" [0-9]{4}"), tok)
    >>> model.generate(**tok("Year:", return_tensors="pt"), logits_processor=[lcd], do_sample=True)
    tensor([[...]])
"""

from __future__ import annotations

import math
import sys
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    from transformers import LogitsProcessorList
    from transformers.utils import ModelOutput
except ImportError as e:  # pragma: no cover
    raise ImportError("this integration needs transformers: pip install transformers") from e

from ..api import make_rng
from ..errors import ConfigError
from ..lm.base import LanguageModel, ParticleBatch
from ..lm.transformers import TransformersLM
from ..protocol import as_constraint, split
from ..resampling import normalise
from ..results import Particle, SMCResult
from ..scheduler import Call, Scheduler
from ..smc import SMC
from ..streaming import RunParams
from .transformers_processor import AWRSLogitsProcessor, token_id_list
from .transformers_sampling import sampling_warpers, without_warpers

__all__ = ["CUSTOM_GENERATE_DIR", "AWRSLogitsProcessor", "SMCGenerateOutput", "smc_generate"]

#: Pass as ``custom_generate=`` (with ``trust_remote_code=True``) for the folder form.
CUSTOM_GENERATE_DIR = str(Path(__file__).resolve().parent)


@dataclass
class SMCGenerateOutput(ModelOutput):
    """What ``generate`` returns with ``return_dict_in_generate=True``.

    ``sequences``: ``[batch * num_return_sequences, prompt + new]`` ids (each prompt's
    draws next to each other, as generate orders them); ``results``: one ``SMCResult``
    per prompt (its whole population); ``scores`` / ``logits`` (when
    ``output_scores`` / ``output_logits``): per new position, ``[rows, V]`` float
    tensors of the prior's processed / raw scores along the returned sequence (the
    constraint is not a mask here, so it is not in them; ``-inf`` where a row ended).
    """

    sequences: torch.LongTensor | None = None
    results: list[SMCResult] | None = None
    scores: tuple[torch.FloatTensor, ...] | None = None
    logits: tuple[torch.FloatTensor, ...] | None = None


# -- a LanguageModel view that applies generate's processors to the raw logits --------
class _ProcessedBatch(ParticleBatch):
    def __init__(self, lm: _ProcessedLM, inner: Any, prompt_ids: list[int], n: int) -> None:
        self.lm = lm
        self.inner = inner
        self.ids = torch.tensor([prompt_ids] * n, dtype=torch.long)
        procs = lm.processors
        if procs:  # raw logits -> generate's processors -> the LM's normalisation and merge
            inner.logits_processor = lambda scores: procs(self.ids.to(scores.device), scores)

    @property
    def num_rows(self) -> int:
        return self.inner.num_rows

    def logprobs(self) -> torch.Tensor:
        return self.inner.logprobs()

    def extend(self, token_ids: Sequence[int]) -> None:
        self.inner.extend(token_ids)
        self.ids = torch.cat([self.ids, torch.tensor(list(token_ids), dtype=torch.long)[:, None]], 1)

    def select(self, rows: Sequence[int]) -> None:
        self.inner.select(rows)
        self.ids = self.ids[torch.as_tensor([int(r) for r in rows], dtype=torch.long)]


class _ProcessedLM(LanguageModel):
    """A ``TransformersLM`` whose rows go through generate's processors first; its
    prompts share one forward per step (one :class:`~awrs_adapters.lm.shared.SharedForward`
    per ``generate`` call)."""

    def __init__(self, inner: TransformersLM, processors: Any) -> None:
        from ..lm.shared import SharedForward

        self.inner = inner
        self.group = SharedForward(inner)
        self.vocab = inner.vocab
        self.processors = processors

    def start(self, prompt: Any, num_particles: int) -> ParticleBatch:
        ids = self.inner.encode_prompt(prompt)
        return _ProcessedBatch(self, self.group.start(ids, num_particles), ids, num_particles)

    def prompt_length(self, prompt: Any) -> int:
        return self.inner.prompt_length(prompt)


_LMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _lm_for(model: Any, tokenizer: Any, ends: tuple[int, ...]) -> TransformersLM:
    per_model = _LMS.setdefault(model, {})
    key = (id(tokenizer), ends)
    if key not in per_model:
        per_model[key] = TransformersLM(model, tokenizer, eos_token_ids=list(ends) or None)
    return per_model[key]


class _AfterStep:
    """The runner's ``on_step`` for one prompt: generate's stopping criteria, the streamer.

    Criteria end the live particles they stop (``SMC.finish``: the text must pass the
    constraint's complete check); ``streamer`` gets the tokens every weighted particle
    shares as soon as they are fixed (``sent`` of them so far).
    """

    def __init__(self, row: torch.Tensor, criteria: list[Any], streamer: Any) -> None:
        self.row = row
        self.criteria = criteria
        self.streamer = streamer
        self.sent = 0

    def __call__(self, smc: SMC) -> None:
        live = smc.live
        if self.criteria and live:
            ids = torch.tensor([self.row.tolist() + list(smc.token_ids[i]) for i in live])
            stop = torch.zeros(len(live), dtype=torch.bool)
            for crit in self.criteria:
                stop |= torch.as_tensor(crit(ids, None)).reshape(-1).bool()
            smc.finish([i for i, s in zip(live, stop.tolist()) if s])
        if self.streamer is not None:
            common = smc.committed_tokens()
            if len(common) > self.sent:
                self.streamer.put(torch.tensor(common[self.sent:]))
                self.sent = len(common)


def _generate_local(name: str) -> Any:
    """An argument of the ``model.generate`` call that runs this strategy, as the caller
    passed it (``streamer``, ``logits_processor``).

    transformers keeps only a callable strategy's own new arguments, so ``streamer``
    never arrives, and ``logits_processor`` arrives merged with what the config built;
    both are still locals of ``generate``, found a few frames up (the strategy is called
    from ``generate``'s body). None when this strategy was called some other way or
    transformers' layout changed.
    """
    f = sys._getframe(1)
    for _ in range(8):
        if f is None:
            return None
        if (f.f_code.co_name == "generate"
                and f.f_code.co_filename.replace("\\", "/").endswith("generation/utils.py")):
            return f.f_locals.get(name)
        f = f.f_back
    return None


def _draw(res: SMCResult, rng: np.random.Generator) -> Particle | None:
    ps = [p for p in res.particles if p.finished and p.log_weight > -math.inf]
    if not ps:
        return None
    w = normalise(np.array([p.log_weight for p in ps]))
    return ps[int(rng.choice(len(ps), p=w))]


def smc_generate(
    model: Any,
    input_ids: torch.LongTensor,
    logits_processor: Any = None,
    stopping_criteria: Any = None,
    generation_config: Any = None,
    synced_gpus: bool = False,
    streamer: Any = None,
    *,
    constraint: Any = None,
    num_particles: int = 8,
    method: str = "awrs-smc",
    ess_threshold: float | None = None,
    resampling: str = "stratified",
    twist: str = "end",
    seed: int | np.random.Generator | None = None,
    awrs_tokenizer: Any = None,
    awrs_streamer: Any = None,
    do_sample: bool | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    num_return_sequences: int | None = None,
    **model_kwargs: Any,
) -> torch.LongTensor | SMCGenerateOutput:
    """A ``custom_generate`` strategy for ``model.generate``: AWRS-SMC per prompt.

    It **samples by default** (``num_particles`` weighted particles and a ``log_ml``),
    whatever transformers' ``do_sample`` default says: it decodes greedily (one particle,
    the most probable valid token each step, a warning when ``num_particles > 1``) only
    when the call passes ``do_sample=False`` or ``temperature=0``. The target is the
    model at ``temperature`` (the call's, else the model's generation config, else 1)
    conditioned on the constraint. Truncation (``top_k``, ``top_p``, ``min_p``) is
    applied only when the call passes it: the defaults generate would fill in
    (``top_k=50``) or a checkpoint's config sets are tuned for unconstrained sampling,
    and applied before the constraint they can remove every valid token (the end a
    constraint needs falls outside the top 50 and every particle dies). When passed,
    they are part of the prior (applied to the raw logits before the constraint).

    Honours ``max_new_tokens``/``max_length``, your logits processors (applied to the
    raw logits before the constraint: they define the prior), ``eos_token_id`` (all
    merged into one end), stopping criteria
    (a particle they stop ends there, and its text must pass the constraint's complete
    check; ``stop_strings`` end the output before the stop, see
    :mod:`awrs_adapters.stops`), left-padded batches (each prompt gets its own
    population and its own random stream spawned from the seed's; the populations step
    together, one forward per step). ``twist`` is SMC's end-aware resampling twist
    (``"end"``, the default, or ``"none"``; see :mod:`awrs_adapters.smc`). ``seed`` (int
    or ``numpy.random.Generator``) makes runs reproducible; by default it is drawn from
    torch's generator, so ``torch.manual_seed`` works as with plain generate. ``awrs_tokenizer`` is required unless the model folder
    has a tokenizer; ``awrs_streamer`` receives the prompt first (as from generate, so
    ``TextStreamer(skip_prompt=True)`` works), then the tokens every weighted particle
    shares as soon as they are fixed, then the rest (batch of one prompt). When no
    particle of a prompt survives, its row is the prompt alone, ``results[b].ok`` is
    False and a warning gives ``results[b].hint``.
    """
    cfg = generation_config if generation_config is not None else model.generation_config
    tok = awrs_tokenizer
    if tok is None:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(model.config.name_or_path)
        except Exception as e:
            raise ConfigError(
                "smc_generate needs the tokenizer to read the constraint's bytes; pass "
                "awrs_tokenizer=tokenizer to generate (transformers does not forward "
                "tokenizer= to a callable strategy), or use custom_generate=CUSTOM_GENERATE_DIR"
            ) from e
    if getattr(cfg, "constraints", None) is not None or getattr(cfg, "force_words_ids", None):
        # transformers' old constrained-beam-search settings (a GenerationConfig field, so
        # a misspelt constraint= lands there instead of reaching this strategy)
        raise ConfigError(
            "constraints= / force_words_ids= are transformers' constrained beam search "
            "settings, which smc_generate does not run; pass constraint= (singular: a "
            "Regex, JSONSchema, Predicate, pydantic class...)")
    if (getattr(cfg, "num_beams", None) or 1) > 1:
        raise ConfigError(
            f"num_beams={cfg.num_beams}: smc_generate samples from the constrained posterior; "
            "beam search has no posterior to sample from. Drop num_beams (use "
            "num_return_sequences for several draws, or num_particles for more particles)")
    # generate put the prompt into its own streamer already (before calling this)
    prompt_sent = False
    if streamer is None and awrs_streamer is None:
        streamer = _generate_local("streamer")
        prompt_sent = streamer is not None
    streamer = awrs_streamer if awrs_streamer is not None else streamer
    ends = tuple(token_id_list(getattr(cfg, "eos_token_id", None)))
    base = _lm_for(model, tok, ends)
    attn = model_kwargs.get("attention_mask")
    B, L = input_ids.shape
    max_len = getattr(cfg, "max_length", None)
    max_new = getattr(cfg, "max_new_tokens", None) or ((max_len - L) if max_len else 20)
    if max_new < 1:
        raise ConfigError(f"max_new_tokens={max_new}; the prompt already fills max_length={max_len}")
    greedy, warpers, cut = sampling_warpers(cfg, do_sample, temperature, top_k, top_p, min_p)
    if greedy and isinstance(num_particles, int) and num_particles > 1:
        warnings.warn(
            f"smc_generate decodes greedily ({'do_sample=False' if do_sample is False else 'temperature=0'}"
            f" in the call): one particle, no weights, log_ml None, instead of num_particles="
            f"{num_particles}. Drop it to sample the constrained posterior.", stacklevel=3)
    # a warper the caller passed in generate's logits_processor= is theirs: kept
    procs = (without_warpers(logits_processor, _generate_local("logits_processor"))
             if getattr(cfg, "do_sample", False) else logits_processor)
    procs = list(procs or []) + warpers
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    rng = make_rng(seed)
    lm = _ProcessedLM(base, LogitsProcessorList(procs) if procs else None)
    proposal, potentials = split(as_constraint(constraint))
    c = proposal if not potentials else as_constraint(constraint)
    # max length and EOS are the engine's own business (forced end with its weight and
    # the completeness check); stopping a particle there would return invalid text
    # stop strings are part of the target (the text before one must pass the constraint,
    # and the proposal knows it); other criteria end particles after the fact
    from transformers.generation.stopping_criteria import (
        EosTokenCriteria,
        MaxLengthCriteria,
        StopStringCriteria,
    )

    criteria = [k for k in (stopping_criteria or [])
                if not isinstance(k, MaxLengthCriteria | EosTokenCriteria)]
    stop_strings: list[str] = []
    for k in criteria:  # the criterion generate builds from stop_strings=, or a user's
        if isinstance(k, StopStringCriteria):
            stop_strings.extend(getattr(k, "stop_strings", ()))
    criteria = [k for k in criteria if not isinstance(k, StopStringCriteria)]
    extra = getattr(cfg, "stop_strings", None) or []
    stop_strings += [extra] if isinstance(extra, str) else list(extra)
    stop_strings = list(dict.fromkeys(stop_strings))
    # each prompt its own stream (spawned from the seed's): a prompt's draws do not
    # depend on the other prompts it steps with
    streams = rng.spawn(B)
    params = [RunParams(num_particles=num_particles, max_tokens=int(max_new), method=method,
                        ess_threshold=ess_threshold, resampling=resampling, twist=twist,
                        temperature=0.0 if greedy else 1.0, seed=streams[b]) for b in range(B)]
    # one population per prompt, then k draws from its posterior. The call's
    # num_return_sequences reaches this strategy as is; one set on a GenerationConfig
    # made generate repeat each prompt that many times (next to each other) already
    rep = int(getattr(cfg, "num_return_sequences", None) or 1)
    k = rep if num_return_sequences is None else num_return_sequences
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"num_return_sequences={k!r}; pass an int >= 1 (draws per prompt)")
    if B % rep:
        raise ConfigError(f"{B} input rows are not a multiple of num_return_sequences={rep}")
    if streamer is not None and B == 1 and not prompt_sent:
        streamer.put(input_ids.cpu())  # as generate does: TextStreamer(skip_prompt=True) skips it
    # every prompt's population steps in lockstep: one forward of all their rows per step
    calls, steps = [], []
    for b in range(0, B, rep):
        row = input_ids[b]
        keep = row if attn is None else row[attn[b].bool()]
        prompt = [int(i) for i in keep.tolist()]
        steps.append(_AfterStep(row, criteria, streamer if B == 1 else None))
        calls.append(Call(prompt, c, params[b], stop=stop_strings, on_step=steps[-1]))
    Scheduler(lm, share=False).run_here(calls)  # rows share lm's SharedForward
    results, rows, news = [], [], []
    for (b, call), step in zip(zip(range(0, B, rep), calls, strict=True), steps, strict=True):
        row = input_ids[b]
        res = call.future.result()  # a prompt that failed (bad input) raises here
        sent = step.sent
        if not res.ok:
            if cut:
                res.hint += (
                    f" {', '.join(cut)} in the call truncated the model before the constraint: it "
                    "removes valid tokens too (often the end the constraint needs). Drop it: the "
                    "constraint already restricts the output.")
            warnings.warn(f"smc_generate: prompt {b // rep}: {res.hint}", stacklevel=3)
        results.append(res)
        for _ in range(k):
            chosen = _draw(res, params[b].seed)  # type: ignore[arg-type]
            new = [] if chosen is None else list(chosen.token_ids)
            if chosen is not None and not (chosen.truncated or chosen.stopped):
                new.append(ends[0] if ends else base.vocab.eos_token_id)  # it drew EOS
            rows.append([int(i) for i in row.tolist()] + new)
            news.append(len(new))
        if streamer is not None and B == 1:
            if new[sent:]:
                streamer.put(torch.tensor(new[sent:]))
            streamer.end()
    pad = getattr(cfg, "pad_token_id", None)
    if pad is None:
        pad = ends[0] if ends else base.vocab.eos_token_id
    width = max(len(r) for r in rows)
    seqs = torch.full((len(rows), width), int(pad), dtype=torch.long)
    for b, r in enumerate(rows):
        seqs[b, : len(r)] = torch.tensor(r, dtype=torch.long)
    seqs = seqs.to(input_ids.device)
    if not getattr(cfg, "return_dict_in_generate", False):
        return seqs  # generate's contract: a LongTensor unless the dict is asked for
    out = SMCGenerateOutput(sequences=seqs, results=results)
    if getattr(cfg, "output_scores", False) or getattr(cfg, "output_logits", False):
        src = torch.tensor([(r // k) * rep for r in range(len(rows))])  # each row's input row
        raw, scored = _scores(model, seqs, None if attn is None else attn[src.to(attn.device)],
                              L, news, lm.processors)
        out.logits = raw if getattr(cfg, "output_logits", False) else None
        out.scores = scored if getattr(cfg, "output_scores", False) else None
    return out


@torch.no_grad()
def _scores(model: Any, seqs: torch.Tensor, attn: torch.Tensor | None, L: int, news: list[int],
            procs: Any) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Raw and processed next-token scores along ``seqs`` (one forward of every row)."""
    B, width = seqs.shape
    mask = torch.zeros(B, width, dtype=torch.long, device=seqs.device)
    mask[:, :L] = 1 if attn is None else attn.to(mask.device)
    for b, n in enumerate(news):
        mask[b, L:L + n] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=seqs, attention_mask=mask, position_ids=pos).logits.float()
    raw, scored = [], []
    for t in range(width - L):
        x = logits[:, L - 1 + t].clone()
        y = procs(seqs[:, :L + t], x.clone()) if procs else x.clone()
        ended = torch.tensor([t >= n for n in news], device=x.device)
        raw.append(x.masked_fill(ended[:, None], -math.inf))
        scored.append(y.masked_fill(ended[:, None], -math.inf))
    return tuple(raw), tuple(scored)
