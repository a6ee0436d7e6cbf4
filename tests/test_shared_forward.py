"""Several prompts in one padded KV cache (``lm/shared.py``): each row's next-token
distribution is its unbatched one, one forward per step for every prompt.

The reference is a fresh forward of each row's whole sequence (prompt + tokens), no
cache, no padding: the definition, not the group's machinery."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from awrs_adapters.lm import TransformersLM
from awrs_adapters.lm.shared import SharedForward

from test_transformers_lm import full_logprobs, get_tokenizer, tiny_llama

PROMPTS = ["hello there, how are you today?", "a", "the quick brown fox"]


@pytest.fixture(scope="module")
def lm() -> TransformersLM:
    tok = get_tokenizer("byte_level")
    return TransformersLM(tiny_llama(len(tok), seed=3), tok)


def _check(lm: TransformersLM, members, seqs, tol=1e-4) -> None:
    for m, rows in zip(members, seqs, strict=True):
        lp = m.logprobs()
        assert lp.shape[0] == len(rows)
        for r, ids in enumerate(rows):
            ref = full_logprobs(lm, ids)
            assert torch.allclose(lp[r], ref, atol=tol), (r, (lp[r] - ref).abs().max())


def test_rows_match_their_unbatched_forward_through_steps_masks_and_resampling(lm):
    """Prompts of different lengths; steps where one member does not extend (masked
    slot); resampling with duplicates; a member that empties. Broken variants caught:
    position ids from the padded length, masked rows losing their logits."""
    group = SharedForward(lm)
    ns = [3, 2, 4]
    members = [group.start(p, n) for p, n in zip(PROMPTS, ns, strict=True)]
    seqs = [[list(m.ids) for _ in range(n)] for m, n in zip(members, ns, strict=True)]
    _check(lm, members, seqs)
    assert group.forwards == 1  # one prefill of the three prompts
    rng = np.random.default_rng(0)
    V = lm.vocab.size
    for step in range(6):
        for k, m in enumerate(members):
            if m.n == 0 or (step == 2 and k == 1):  # member 1 skips step 2: a masked slot
                continue
            if step == 3:  # resample with duplicates
                rows = sorted(rng.integers(0, m.n, m.n).tolist())
                m.select(rows)
                seqs[k] = [list(seqs[k][r]) for r in rows]
            toks = rng.integers(3, V, m.n).tolist()
            m.extend(toks)
            for r, t in enumerate(toks):
                seqs[k][r].append(t)
        if step == 4:
            members[2].select([])  # every particle of prompt 2 finished
            seqs[2] = []
        before = group.forwards
        _check(lm, members, seqs)
        assert group.forwards == before + 1  # one forward for every member's rows


def test_select_after_extend_moves_the_pending_tokens(lm):
    group = SharedForward(lm)
    a, b = group.start(PROMPTS[0], 2), group.start(PROMPTS[2], 2)
    a.logprobs()
    a.extend([10, 11])
    b.extend([12, 13])
    a.select([1, 1, 0])
    _check(lm, [a, b], [[a.ids + [11], a.ids + [11], a.ids + [10]],
                        [b.ids + [12], b.ids + [13]]])


def test_prompts_join_a_running_group(lm):
    """Continuous batching: a shorter and a longer prompt join after two steps (the new
    cache, then the running one, padded on the left); every row still equals its fresh
    forward, and the joiners' first rows come from their prefill."""
    group = SharedForward(lm)
    a = group.start(PROMPTS[2], 2)
    seqs = {a: [list(a.ids), list(a.ids)]}
    rng = np.random.default_rng(1)
    for step in range(6):
        if step == 2:
            b = group.start(PROMPTS[1], 3)  # shorter than the running cache
            seqs[b] = [list(b.ids) for _ in range(3)]
        if step == 3:
            c = group.start("x" * 60, 1)  # longer: the running cache is padded
            seqs[c] = [list(c.ids)]
        _check(lm, list(seqs), list(seqs.values()))
        for m in seqs:
            toks = rng.integers(3, lm.vocab.size, m.n).tolist()
            m.extend(toks)
            for r, t in enumerate(toks):
                seqs[m][r].append(t)
    _check(lm, list(seqs), list(seqs.values()))


def test_generate_batch_on_a_transformers_model_matches_generate(lm):
    """Three prompts of different lengths through one shared forward per step: each
    prompt's posterior is the one generate() gives alone with the same seed (the rows
    agree to float round-off, which moves no draw here)."""
    from awrs_adapters import Request, generate, generate_batch
    from awrs_adapters.constraints import Predicate

    c = Predicate(complete=lambda s: "e" in s, prefix=lambda s: "z" not in s)
    reqs = [Request(p, seed=k) for k, p in enumerate(PROMPTS)]
    out = generate_batch(lm, reqs, c, num_particles=4, max_tokens=6)
    for k, p in enumerate(PROMPTS):
        alone = generate(lm, p, c, num_particles=4, max_tokens=6, seed=k)
        assert out[k].posterior.keys() == alone.posterior.keys()
        for s, w in alone.posterior.items():
            assert out[k].posterior[s] == pytest.approx(w, rel=1e-4)
        assert out[k].log_ml == pytest.approx(alone.log_ml, abs=1e-4)


@pytest.mark.model
def test_default_model_batched_rows_match_unbatched_rows():
    """SmolLM2-135M, chat prompts of 3 different lengths, 5 steps with resampling:
    KL(unbatched || batched) <= 1e-4 on every row (measured max ~1e-7)."""
    from awrs_adapters import models

    lm = models.load()
    prompts = [[{"role": "user", "content": t}] for t in (
        "Hi.", "Name a fruit.", "Alice Smith is 34 and lives in Paris. Give her as JSON.")]
    group = SharedForward(lm)
    members = [group.start(p, 2) for p in prompts]
    alone = [lm.start(p, 2) for p in prompts]
    rng = np.random.default_rng(0)
    worst = 0.0
    for step in range(5):
        for m, a in zip(members, alone, strict=True):
            lp_m, lp_a = m.logprobs(), a.logprobs()
            kl = torch.sum(lp_a.exp() * (lp_a - lp_m).nan_to_num(0.0, 0.0, 0.0), dim=-1)
            worst = max(worst, float(kl.max()))
            toks = [int(torch.multinomial(lp_a[r].exp(), 1, generator=torch.Generator().manual_seed(
                int(rng.integers(1 << 30))))) for r in range(2)]
            if step == 2:
                m.select([1, 1]), a.select([1, 1])
                toks = [toks[1], toks[1]]
            m.extend(toks)
            a.extend(toks)
    assert worst <= 1e-4, worst


def test_max_rows_caps_each_forward_and_queued_prompts_join(lm, monkeypatch):
    """Five prompts of 3 rows under max_rows=7: at most two prompts at a time, the rest
    join the running cache as others finish; every forward has <= 7 rows and each
    prompt's posterior is generate()'s with its seed. Broken variant caught: the bound
    ignored (a forward of 15 rows)."""
    from awrs_adapters import Request, generate, generate_batch
    from awrs_adapters.constraints import Predicate

    groups = []
    real_init = SharedForward.__init__

    def spy(self, *a, **k):
        real_init(self, *a, **k)
        groups.append(self)

    monkeypatch.setattr(SharedForward, "__init__", spy)
    c = Predicate(complete=lambda s: len(s) >= 2, prefix=lambda s: "z" not in s)
    prompts = PROMPTS + ["zebra crossing", "one more prompt here"]
    reqs = [Request(p, seed=k, max_tokens=3 + k) for k, p in enumerate(prompts)]
    out = generate_batch(lm, reqs, c, num_particles=3, max_rows=7)
    assert len(groups) == 1 and max(groups[0].rows_per_forward) <= 7
    assert groups[0].forwards > 5  # later prompts joined: prefills beyond the first
    monkeypatch.setattr(SharedForward, "__init__", real_init)
    for k, p in enumerate(prompts):
        alone = generate(lm, p, c, num_particles=3, max_tokens=3 + k, seed=k)
        assert out[k].posterior.keys() == alone.posterior.keys()
        assert all(abs(out[k].posterior[s] - w) < 1e-4 for s, w in alone.posterior.items())


def test_concurrent_calls_share_forwards_and_keep_their_results(lm):
    """Four run_streaming calls from four threads on one TransformersLM step together on
    the model's scheduler (some step carries several calls, so one forward their rows)
    and each returns what it returns alone (share_forward=False), to float round-off."""
    import threading

    from awrs_adapters.constraints import Predicate
    from awrs_adapters.scheduler import scheduler_for
    from awrs_adapters.streaming import RunParams, run_streaming

    c = Predicate(complete=lambda s: len(s) >= 2, prefix=lambda s: "q" not in s)
    prompts = PROMPTS + ["lorem ipsum dolor"]
    params = [RunParams(num_particles=3, max_tokens=8, seed=k) for k in range(4)]
    alone = [run_streaming(lm, p, c, q, share_forward=False) for p, q in zip(prompts, params)]
    out: dict[int, object] = {}
    barrier = threading.Barrier(4)

    def call(k: int) -> None:
        barrier.wait()
        out[k] = run_streaming(lm, prompts[k], c, params[k])

    threads = [threading.Thread(target=call, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert max(scheduler_for(lm).calls_per_step) > 1
    for k in range(4):
        assert out[k].posterior.keys() == alone[k].posterior.keys()
        assert all(abs(out[k].posterior[s] - w) < 1e-4 for s, w in alone[k].posterior.items())


def test_positions_no_row_attends_to_are_dropped(lm):
    """When the long prompt's rows leave, the cache shrinks to the short prompt's real
    positions (and its rows still match their fresh forwards)."""
    group = SharedForward(lm)
    a, b = group.start("a much longer prompt than the other one", 2), group.start("hi", 1)
    seqs = {a: [list(a.ids)] * 2, b: [list(b.ids)]}
    _check(lm, [a, b], [seqs[a], seqs[b]])
    a.extend([5, 6])
    b.extend([7])
    a.logprobs()
    a.select([])
    b.extend([8])
    _check(lm, [b], [[b.ids + [7, 8]]])
    assert group.mask.shape[1] == len(b.ids) + 2 and bool(group.mask.all())
