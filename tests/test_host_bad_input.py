"""Bad input at the hosts' edges (the integrations sweep of the host-contracts issue):
each case gets a typed error naming the fix, fast, or the right behaviour. Every case
here failed on the code before it (a hub lookup with retries, a raw torch/pathlib error,
a UnicodeEncodeError, a traceback, a silent reuse error)."""

from __future__ import annotations

import sys
import time

import pytest
import torch

from awrs_adapters import ConfigError, ConstraintError, models
from awrs_adapters.cli import main
from awrs_adapters.constraints import Grammar, Predicate
from awrs_adapters.stops import check_stop


@pytest.mark.parametrize("name", [None, 123, "", "   "])
def test_load_without_a_usable_name_fails_at_once(name):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="embedded model"):
        models.load(name)
    assert time.perf_counter() - t0 < 2  # no hub lookup, no retries


@pytest.mark.parametrize("device, match", [("banana", "not a torch device"),
                                           ("cuda", "no cuda device")])
def test_load_with_a_device_this_machine_lacks(device, match):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=match):
        models.load(device=device)


def test_load_with_a_cache_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        models.load(cache_dir=f)


def test_lone_surrogates_in_stops_and_grammars():
    with pytest.raises(ConfigError, match="lone surrogate"):
        check_stop(["ok", "\ud83d"])
    with pytest.raises(ConstraintError, match="lone surrogate"):
        Grammar('start: "\ud83d"')


def test_result_sample_takes_a_seed_or_none():
    from awrs_adapters import generate
    from awrs_adapters.toy import ends_with_a

    lm, c, T = ends_with_a()
    res = generate(lm, None, c, num_particles=8, max_tokens=T, seed=0)
    assert res.sample(0) in res.posterior and res.sample(None) in res.posterior
    with pytest.raises(ConfigError, match="seed"):
        res.sample("x")  # type: ignore[arg-type]


def test_cli_bad_combinations_exit_2_with_a_message(tmp_path, capsys, monkeypatch):
    assert main(["generate", "--prompt", "x", "--raw", "--system", "be brief"]) == 2
    assert "--system with --raw" in capsys.readouterr().err
    (tmp_path / "broken_mod.py").write_text("raise RuntimeError('module bug')\n")
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--prompt", "x", "--pydantic", "broken_mod:P"]) == 2
    err = capsys.readouterr().err
    assert "module bug" in err and "Traceback" not in err
    sys.modules.pop("broken_mod", None)


def test_cli_vllm_backend_without_vllm_exits_2_with_the_hint(capsys):
    pytest.importorskip("awrs_adapters.models")
    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    assert main(["generate", "--prompt", "x", "--backend", "vllm", "--max-tokens", "2"]) == 2
    err = capsys.readouterr().err
    assert "vllm" in err.lower() and "Traceback" not in err


# -- the logits processor and smc_generate ----------------------------------------------
@pytest.fixture(scope="module")
def setup():
    from test_integration_transformers import tiny_model_and_tokenizer

    return tiny_model_and_tokenizer()


LETTERS = Predicate(complete=lambda s: len(s) >= 1 and s.isalpha() and s.isascii(),
                    prefix=lambda s: s == "" or (s.isalpha() and s.isascii()))


def test_processor_checks_do_sample_and_refuses_beams(setup):
    from awrs_adapters.integrations.transformers import AWRSLogitsProcessor

    model, tok = setup
    with pytest.raises(ConfigError, match="do_sample='no'"):
        AWRSLogitsProcessor(LETTERS, tok, do_sample="no")  # type: ignore[arg-type]
    assert AWRSLogitsProcessor.supports_continuous_batching is False
    # rows that extend the last step's rows in another order (what beam search does when
    # beams overtake each other) cannot keep their per-row state: refused
    proc = AWRSLogitsProcessor(LETTERS, tok, do_sample=False, seed=0)
    ids = tok(["hello", "a b"], return_tensors="pt", padding=True)["input_ids"]
    V = model.config.vocab_size
    out = proc(ids, torch.zeros(2, V))
    step = torch.cat([ids, out.argmax(-1, keepdim=True)], dim=1)
    proc(step, torch.zeros(2, V))
    swapped = torch.cat([step[[1, 0]], torch.tensor([[5], [6]])], dim=1)
    with pytest.raises(ConfigError, match="num_beams"):
        proc(swapped, torch.zeros(2, V))


def test_processor_reused_for_a_prompt_one_token_longer(setup):
    """A second call whose prompt is one token longer than the first call's last step
    used to pass for a continuation ("token not allowed in state..."); now it is a new
    call and every finished row is valid. Broken variant seen failing: the old rule (a
    call continues when its length is the last one's + 1): the row is a dead end."""
    from awrs_adapters.integrations.transformers import AWRSLogitsProcessor

    model, tok = setup
    proc = AWRSLogitsProcessor(LETTERS, tok, seed=0)
    first = tok(["hello"], return_tensors="pt")
    L = first["input_ids"].shape[1]
    out = model.generate(**first, logits_processor=[proc], do_sample=True, top_k=0,
                         max_new_tokens=3)
    # another prompt, exactly as long as the first call's last input_ids + 1, ending in a
    # token the constraint would refuse if it were read as the next generated token
    digit = tok.encode("1", add_special_tokens=False)[-1]
    ids = torch.cat([torch.tensor([[digit]]), out[:, 1: L + 2], torch.tensor([[digit]])], dim=1)
    second = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                            logits_processor=[proc], do_sample=True, top_k=0, max_new_tokens=4)
    assert second.shape[0] == 1
    assert not proc.dead_rows  # read as a continuation, the prompt's "1" was a dead end
    assert proc.unfinished_rows(second, warn=False) in ([], [0])  # cut by max_new_tokens only


def test_smc_generate_refuses_beam_search(setup):
    """num_beams=3 used to run three populations and call it beam search."""
    from awrs_adapters.integrations.transformers import smc_generate

    model, tok = setup
    with pytest.raises(ConfigError, match="num_beams=3"):
        model.generate(**tok(["hello"], return_tensors="pt"), custom_generate=smc_generate,
                       constraint=LETTERS, num_beams=3, max_new_tokens=3, awrs_tokenizer=tok)


def test_smc_generate_refuses_a_misspelt_constraint(setup):
    """constraints= (plural) is a GenerationConfig field of transformers' constrained beam
    search, so it never reached the strategy, which ran unconstrained. Other typos
    (num_particle=) are refused by transformers itself."""
    from awrs_adapters.integrations.transformers import smc_generate

    model, tok = setup
    inputs = tok(["hello"], return_tensors="pt")
    with pytest.raises(ConfigError, match="pass constraint="):
        model.generate(**inputs, custom_generate=smc_generate, constraints=LETTERS,
                       max_new_tokens=3, awrs_tokenizer=tok)
    with pytest.raises(ValueError, match="num_particle"):
        model.generate(**inputs, custom_generate=smc_generate, constraint=LETTERS,
                       num_particle=2, max_new_tokens=3, awrs_tokenizer=tok)


def test_smc_generate_applies_top_h(setup):
    """top_h (transformers' TopHLogitsWarper) was stripped with generate's other warpers
    and never rebuilt: silently ignored. Now it is part of the prior like top_k/top_p:
    the same seed gives a different log_ml with it than without."""
    from awrs_adapters.integrations.transformers import smc_generate

    model, tok = setup
    kw = dict(custom_generate=smc_generate, constraint=LETTERS, num_particles=8,
              max_new_tokens=4, awrs_tokenizer=tok, seed=1, return_dict_in_generate=True)
    inputs = tok(["hello"], return_tensors="pt")
    plain = model.generate(**inputs, **kw).results[0]
    cut = model.generate(**inputs, **kw, top_h=0.3).results[0]
    assert plain.ok and cut.log_ml != plain.log_ml
