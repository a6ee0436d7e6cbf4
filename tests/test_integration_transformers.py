"""transformers integration: smc_generate through model.generate, and AWRSLogitsProcessor.

Tiny randomly initialised Llama models with tokenizers trained in the tests
(builders shared with test_transformers_lm).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import LogitsProcessorList, StoppingCriteriaList, StopStringCriteria

from awrs_adapters import ConfigError, generate
from awrs_adapters.constraints import Potential, Predicate, Regex
from awrs_adapters.integrations.transformers import (
    CUSTOM_GENERATE_DIR,
    AWRSLogitsProcessor,
    SMCGenerateOutput,
    smc_generate,
)
from awrs_adapters.lm import TransformersLM
from awrs_adapters.testing import exact_lcd, exact_posterior, total_variation
from awrs_adapters.toy import ends_with_a
from awrs_adapters.vocab import decode_prefix

from test_transformers_lm import get_tokenizer, tiny_llama


def letters(s: str) -> bool:
    return s.isascii() and (s == "" or s.replace(" ", "").isalpha())


LETTERS = Predicate(complete=lambda s: len(s) >= 2 and letters(s), prefix=letters)


def stream(seed: int, b: int = 0, B: int = 1) -> np.random.Generator:
    """Prompt b's random stream in smc_generate(seed=seed) over B prompts."""
    return np.random.default_rng(seed).spawn(B)[b]


def same(a, b, tol: float = 1e-5) -> None:
    assert a.posterior.keys() == b.posterior.keys()
    assert all(abs(a.posterior[s] - p) < tol for s, p in b.posterior.items())
    assert abs(a.log_ml - b.log_ml) < tol


def tiny_model_and_tokenizer():
    """A tiny random Llama and a trained byte-level tokenizer that pads on the left."""
    tok = get_tokenizer("byte_level")
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tiny_llama(len(tok), seed=0), tok


@pytest.fixture(scope="module")
def setup():
    return tiny_model_and_tokenizer()


def test_smc_generate_batch_of_two_prompts_matches_direct_generate(setup):
    model, tok = setup
    inputs = tok(["hello there", "a"], return_tensors="pt", padding=True)
    # no do_sample, no top_k: it samples, and generate's default top_k=50 is not applied
    calls = []
    hook = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True,
                             constraint=LETTERS, num_particles=16, max_new_tokens=6,
                             awrs_tokenizer=tok, seed=3)
    finally:
        hook.remove()
    # the two prompts step together: one prefill, then at most one forward per step
    # (one prompt after the other would take about twice as many)
    assert len(calls) <= 1 + max(r.stats.steps for r in out.results)
    assert isinstance(out, SMCGenerateOutput)
    L = inputs["input_ids"].shape[1]
    assert out.sequences.shape[0] == 2 and torch.equal(out.sequences[:, :L], inputs["input_ids"])
    lm = TransformersLM(model, tok)
    for b, res in enumerate(out.results):
        assert res.ok
        text = tok.decode(out.sequences[b, L:], skip_special_tokens=True)
        assert LETTERS.accepts(text) and text in res.posterior
        ids = inputs["input_ids"][b][inputs["attention_mask"][b].bool()].tolist()
        # each prompt draws from its own stream, spawned from the seed's; the two prompts
        # stepped together (one padded forward), so the match is to float round-off
        direct = generate(lm, ids, LETTERS, num_particles=16, max_tokens=6, seed=stream(3, b, 2))
        same(direct, res)


def test_smc_generate_passes_the_twist(setup):
    """``twist`` reaches SMC: ``twist="none"`` equals direct generate with it (and differs
    from the default "end" twist on this seed); an unknown twist is a ConfigError.
    Broken variant seen failing: smc_generate accepting ``twist`` but not passing it."""
    model, tok = setup
    inputs = tok(["hello there"], return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    lm = TransformersLM(model, tok)
    kw = dict(custom_generate=smc_generate, return_dict_in_generate=True, constraint=LETTERS, num_particles=16,
              max_new_tokens=6, awrs_tokenizer=tok)
    out = model.generate(**inputs, seed=5, twist="none", **kw).results[0]
    direct = {t: generate(lm, ids, LETTERS, num_particles=16, max_tokens=6, seed=stream(5),
                          twist=t) for t in ("none", "end")}
    same(out, direct["none"])
    assert direct["none"].log_ml != direct["end"].log_ml
    with pytest.raises(ConfigError, match="twist"):
        model.generate(**inputs, seed=5, twist="bogus", **kw)


def test_smc_generate_samples_by_default_greedy_only_when_asked(setup):
    model, tok = setup
    assert len(tok) > 50  # so that a default top_k=50 would change the posterior
    inputs = tok(["hello"], return_tensors="pt")
    lm = TransformersLM(model, tok)
    ids = inputs["input_ids"][0].tolist()
    # a checkpoint's own config asking for sampling with truncation is not applied either
    saved = model.generation_config
    model.generation_config = type(saved)(**{**saved.to_dict(), "do_sample": True, "top_k": 3,
                                             "top_p": 0.5})
    try:
        out = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=LETTERS,
                             num_particles=8, max_new_tokens=5, awrs_tokenizer=tok, seed=5)
    finally:
        model.generation_config = saved
    res = out.results[0]
    assert len(res.particles) == 8 and res.log_ml is not None
    direct = generate(lm, ids, LETTERS, num_particles=8, max_tokens=5, seed=stream(5))
    same(direct, res)
    # temperature from the call is the prior's (applied before the EOS merge, as TransformersLM)
    hot = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=LETTERS,
                         num_particles=8, max_new_tokens=5, temperature=1.7, awrs_tokenizer=tok,
                         seed=5)
    direct = generate(lm, ids, LETTERS, num_particles=8, max_tokens=5, temperature=1.7,
                      seed=stream(5))
    assert math.isclose(direct.log_ml, hot.results[0].log_ml, rel_tol=1e-4, abs_tol=1e-4)
    for kw in ({"do_sample": False}, {"temperature": 0.0}):
        with pytest.warns(UserWarning, match="greedily.*num_particles=8"):
            g = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=LETTERS,
                               num_particles=8, max_new_tokens=5, awrs_tokenizer=tok, **kw)
        assert len(g.results[0].particles) == 1 and g.results[0].log_ml is None
    # truncation the call asks for is applied before the constraint; when it removes every
    # valid token, the warning says so
    nine = Regex("9")
    ok = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=nine,
                        num_particles=4, max_new_tokens=3, awrs_tokenizer=tok, seed=0)
    assert ok.results[0].ok
    with pytest.warns(UserWarning, match="top_k=1 in the call truncated"):
        cut = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=nine,
                             num_particles=4, max_new_tokens=3, top_k=1, awrs_tokenizer=tok,
                             seed=0)
    assert not cut.results[0].ok and "top_k=1" in cut.results[0].hint
    with pytest.raises(ConfigError, match="top_p=1.5"):
        model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=nine, top_p=1.5,
                       max_new_tokens=3, awrs_tokenizer=tok)


def test_smc_generate_greedy_and_processors(setup):
    model, tok = setup
    inputs = tok(["hello"], return_tensors="pt")
    nonempty = Predicate(complete=lambda s: len(s) >= 1)
    a = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=nonempty,
                       num_particles=1, max_new_tokens=5, do_sample=False, awrs_tokenizer=tok)
    b = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=nonempty,
                       num_particles=1, max_new_tokens=5, do_sample=False, awrs_tokenizer=tok)
    assert torch.equal(a.sequences, b.sequences) and a.results[0].log_ml is None
    # a user processor that bans a token is honoured (applied before the constraint)
    banned = int(a.sequences[0, inputs["input_ids"].shape[1]])

    def ban(input_ids, scores):
        scores[:, banned] = -math.inf
        return scores

    c = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=nonempty,
                       num_particles=8, max_new_tokens=5, do_sample=True,
                       logits_processor=LogitsProcessorList([ban]), awrs_tokenizer=tok, seed=0)
    assert all(banned not in p.token_ids for p in c.results[0].particles)


def test_smc_generate_stop_strings_and_errors(setup):
    model, tok = setup
    inputs = tok(["hello"], return_tensors="pt")
    with pytest.raises(ConfigError, match="awrs_tokenizer"):
        model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=LETTERS,
                       max_new_tokens=3)
    # transformers drops tokenizer= for callables, so stop strings come as a criterion
    # (the folder form builds it from stop_strings=); either way they are stop sequences
    # of the target: the output is the text before the stop (awrs_adapters.stops)
    stop = StoppingCriteriaList([StopStringCriteria(tok, ["e"])])
    out = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, num_particles=8,
                         max_new_tokens=8, do_sample=True, awrs_tokenizer=tok, seed=1,
                         stopping_criteria=stop)
    folder = model.generate(**inputs, custom_generate=CUSTOM_GENERATE_DIR, return_dict_in_generate=True, trust_remote_code=True,
                            tokenizer=tok, num_particles=8, max_new_tokens=8, do_sample=True,
                            seed=1, stop_strings=["e"])
    for res in (out.results[0], folder.results[0]):
        assert any(p.stopped for p in res.particles)
        for p in res.particles:
            assert "e" not in p.text
            if p.stopped:
                assert "e" in tok.decode(list(p.token_ids))


def test_folder_form_works_offline(setup):
    model, tok = setup
    inputs = tok(["hello"], return_tensors="pt")
    out = model.generate(**inputs, custom_generate=CUSTOM_GENERATE_DIR, return_dict_in_generate=True, trust_remote_code=True,
                         tokenizer=tok, constraint=LETTERS, num_particles=8, max_new_tokens=5,
                         do_sample=True, top_k=0, seed=2)
    assert isinstance(out, SMCGenerateOutput) and out.results[0].ok
    # the same rule as the callable: no do_sample means sampling, N particles and log_ml
    plain = model.generate(**inputs, custom_generate=CUSTOM_GENERATE_DIR, return_dict_in_generate=True, trust_remote_code=True,
                           tokenizer=tok, constraint=LETTERS, num_particles=8, max_new_tokens=5,
                           seed=2)
    assert len(plain.results[0].particles) == 8 and plain.results[0].log_ml is not None
    with pytest.warns(UserWarning, match="greedily"):
        greedy = model.generate(**inputs, custom_generate=CUSTOM_GENERATE_DIR, return_dict_in_generate=True,
                                trust_remote_code=True, tokenizer=tok, constraint=LETTERS,
                                num_particles=8, max_new_tokens=5, do_sample=False)
    assert len(greedy.results[0].particles) == 1 and greedy.results[0].log_ml is None


def test_streamer_gets_shared_tokens_then_the_rest(setup):
    model, tok = setup

    class Collect:
        def __init__(self):
            self.tokens: list[int] = []
            self.ended = False

        def put(self, value):
            self.tokens.extend(int(t) for t in value.reshape(-1).tolist())

        def end(self):
            self.ended = True

    s = Collect()
    inputs = tok(["hello"], return_tensors="pt")
    out = model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, constraint=LETTERS,
                         num_particles=8, max_new_tokens=6, do_sample=True, top_k=0,
                         awrs_tokenizer=tok, awrs_streamer=s, seed=4)
    assert s.ended and s.tokens == out.sequences[0].tolist()  # the prompt first, as generate


def test_output_contract_tensor_by_default_dict_when_asked(setup):
    """generate's contract: a LongTensor unless return_dict_in_generate=True (then the
    same sequences with the SMC results); tokenizer.batch_decode takes the tensor.
    Broken variant that fails: always returning SMCGenerateOutput (the old behaviour)."""
    model, tok = setup
    inputs = tok(["hello there", "a"], return_tensors="pt", padding=True)
    kw = dict(custom_generate=smc_generate, constraint=LETTERS, num_particles=8,
              max_new_tokens=5, awrs_tokenizer=tok, seed=11)
    plain = model.generate(**inputs, **kw)
    full = model.generate(**inputs, **kw, return_dict_in_generate=True)
    assert type(plain) is torch.Tensor and plain.dtype == torch.long
    assert torch.equal(plain, full.sequences) and len(full.results) == 2
    assert len(tok.batch_decode(plain)) == 2


def test_num_return_sequences_draws_k_times_from_each_posterior(setup):
    """num_return_sequences=3: 3 rows per prompt, next to each other, each a draw from
    that prompt's one population (its text is in that prompt's posterior); one SMCResult
    per prompt. (transformers' own check, which wants do_sample=True, never sees the
    argument: the strategy takes it.)"""
    model, tok = setup
    inputs = tok(["hello there", "a"], return_tensors="pt", padding=True)
    L = inputs["input_ids"].shape[1]
    out = model.generate(**inputs, custom_generate=smc_generate, constraint=LETTERS,
                         num_particles=8, max_new_tokens=5, awrs_tokenizer=tok, seed=2,
                         num_return_sequences=3, return_dict_in_generate=True)
    assert out.sequences.shape[0] == 6 and len(out.results) == 2
    scored = model.generate(**inputs, custom_generate=smc_generate, constraint=LETTERS,
                            num_particles=8, max_new_tokens=5, awrs_tokenizer=tok, seed=2,
                            num_return_sequences=3, return_dict_in_generate=True,
                            output_scores=True)
    assert torch.equal(scored.sequences, out.sequences) and scored.scores[0].shape[0] == 6
    for r in range(6):
        res = out.results[r // 3]
        new = [t for t in out.sequences[r, L:].tolist() if t not in (tok.eos_token_id,)]
        text = b"".join(TransformersLM(model, tok).vocab.tokens[t] for t in new).decode()
        assert text in res.posterior, (r, text, res.posterior)


@pytest.mark.parametrize("how", ["awrs_streamer", "streamer"])
def test_text_streamer_with_skip_prompt_prints_the_new_text(setup, how):
    """transformers' TextStreamer(skip_prompt=True) skips the first put as the prompt:
    the strategy must put the prompt first, or the first committed chunk is lost.
    ``streamer=`` (generate's own argument, the callable form): transformers drops it
    before calling a callable strategy and puts the prompt itself; the strategy reads it
    from the generate call and does not put the prompt again. Broken variants caught: no
    prompt put first; generate's streamer not read (nothing printed)."""
    from transformers import TextStreamer

    model, tok = setup
    printed: list[str] = []

    class Capture(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            printed.append(text)

    inputs = tok(["hello"], return_tensors="pt")
    L = inputs["input_ids"].shape[1]
    streamer = Capture(tok, skip_prompt=True, skip_special_tokens=True)
    out = model.generate(**inputs, custom_generate=smc_generate, constraint=LETTERS,
                         num_particles=8, max_new_tokens=6, awrs_tokenizer=tok, seed=4,
                         **{how: streamer})
    assert "".join(printed) and "".join(printed) == tok.decode(out[0, L:], skip_special_tokens=True)


def test_a_warper_passed_in_logits_processor_is_kept_when_the_config_samples(setup):
    """logits_processor=[TopKLogitsWarper(3)] with a config that samples: the warpers generate
    builds from the config are rebuilt by the strategy, but the caller's own stays: every
    score row has at most 3 finite entries. Broken variant caught: stripping every
    warper by type (the old behaviour: the caller's top-k silently dropped)."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList, TopKLogitsWarper

    model, tok = setup
    inputs = tok(["hello"], return_tensors="pt")
    cfg = GenerationConfig(do_sample=True, top_k=0, max_new_tokens=3)  # the config samples
    out = model.generate(**inputs, custom_generate=smc_generate, constraint=LETTERS,
                         generation_config=cfg,
                         logits_processor=LogitsProcessorList([TopKLogitsWarper(3)]),
                         num_particles=4, awrs_tokenizer=tok, seed=1,
                         return_dict_in_generate=True, output_scores=True)
    assert out.scores and all(int(torch.isfinite(sc[0]).sum()) <= 3 for sc in out.scores)


def test_output_scores_and_logits_are_the_priors_along_the_sequence(setup):
    """output_logits: at each new position, the model's raw logits given the row's real
    tokens so far (reference: a fresh forward of the unpadded prefix); output_scores:
    the same through the processors (here a temperature warper); -inf where a row ended."""
    model, tok = setup
    inputs = tok(["hello there", "a"], return_tensors="pt", padding=True)
    L = inputs["input_ids"].shape[1]
    out = model.generate(**inputs, custom_generate=smc_generate, constraint=LETTERS,
                         num_particles=4, max_new_tokens=4, awrs_tokenizer=tok, seed=5,
                         temperature=0.5, return_dict_in_generate=True, output_scores=True,
                         output_logits=True)
    width = out.sequences.shape[1]
    assert len(out.logits) == len(out.scores) == width - L
    for b in range(2):
        prompt = out.sequences[b, :L][inputs["attention_mask"][b].bool()].tolist()
        new = out.sequences[b, L:].tolist()
        n = len(new) if tok.pad_token_id not in new else new.index(tok.pad_token_id)
        for t in range(width - L):
            if t >= n:
                assert torch.isinf(out.logits[t][b]).all()
                continue
            with torch.no_grad():
                ref = model(torch.tensor([prompt + new[:t]])).logits[0, -1].float()
            assert torch.allclose(out.logits[t][b], ref, atol=1e-4)
            assert torch.allclose(out.scores[t][b], ref / 0.5, atol=1e-3)


def test_logits_processor_valid_strings(setup):
    model, tok = setup
    inputs = tok(["hello", "a b"], return_tensors="pt", padding=True)
    L = inputs["input_ids"].shape[1]
    proc = AWRSLogitsProcessor(LETTERS, tok, seed=0)
    for do_sample in (True, False):
        proc.do_sample = do_sample
        proc.sampler.greedy = not do_sample
        out = model.generate(**inputs, logits_processor=[proc], do_sample=do_sample, top_k=0,
                             max_new_tokens=5)
        for i, row in enumerate(out[:, L:].tolist()):
            if i in proc.dead_rows:
                continue
            ended = tok.eos_token_id in row
            row = row[: row.index(tok.eos_token_id)] if ended else row
            data = b"".join(proc.vocab.tokens[t] for t in row)
            if ended:  # a finished row is accepted as a whole
                assert LETTERS.accepts(data.decode()), data
            else:  # cut by max_new_tokens: still a valid prefix
                assert letters(decode_prefix(data)), data
    assert proc.checks > 0
    with pytest.raises(ConfigError, match="Potential"):
        AWRSLogitsProcessor(Potential(lambda s: 0.0), tok)


def test_logits_processor_samples_exact_lcd_not_the_posterior(setup):
    """Drive the processor as generate does, on scores of the exact "ends with a" model."""
    _, tok = setup
    flm, c, T = ends_with_a()
    a_id, b_id = tok.convert_tokens_to_ids("a"), tok.convert_tokens_to_ids("b")
    eos = tok.eos_token_id
    V = len(tok)
    proc = AWRSLogitsProcessor(c, tok, seed=0, eos_token_id=eos)
    B = 4000
    ids = torch.full((B, 1), tok.bos_token_id or 0, dtype=torch.long)
    ours = {a_id: 0, b_id: 1, eos: 2}
    done = torch.zeros(B, dtype=torch.bool)
    for _ in range(T + 1):
        scores = torch.full((B, V), -math.inf)
        for r in range(B):
            gen = tuple(ours[int(t)] for t in ids[r, 1:] if int(t) != eos)
            lp = flm.logprobs_of(gen) if len(gen) < T else torch.tensor([-math.inf, -math.inf, 0.0])
            scores[r, a_id], scores[r, b_id], scores[r, eos] = lp[0], lp[1], lp[2]
        out = proc(ids, scores)
        nxt = out.argmax(-1)  # the processor leaves one finite score per row
        assert torch.all(torch.isfinite(out).sum(-1) == 1)
        nxt[done] = eos
        done |= nxt == eos
        ids = torch.cat([ids, nxt[:, None]], 1)
        if done.all():
            break
    texts = [tok.decode([t for t in row[1:].tolist() if t != eos]) for row in ids]
    emp = {s: texts.count(s) / B for s in set(texts)}
    assert total_variation(emp, exact_lcd(flm, c, T)) < 0.03
    assert total_variation(emp, exact_posterior(flm, c, T)[0]) > 0.35
