"""Bad input a user would try, each with a typed error (or a documented warning) naming the fix.

The cases of the fresh-install audit: misspelt call arguments, a ``stop`` string, a
Potential without a return, a bytes prompt, a huge counted repetition, a prompt longer
than the model reads, bad schema options, lone surrogates, malformed chat messages, token
ids past the vocabulary, negative retries/timeouts/seeds, a processor without tokenizer,
CLI file and seed errors, an all ``-inf`` row, an empty character class, and hints that
name the real cause of an empty result.
"""

from __future__ import annotations

import math
import time

import pytest
import torch
from transformers import LogitsProcessorList

from awrs_adapters import (
    AWRSError,
    ConfigError,
    ConstraintError,
    LMError,
    VocabularyError,
    generate,
)
from awrs_adapters.cli import main
from awrs_adapters.constraints import JSONSchema, Potential, Predicate, Regex
from awrs_adapters.integrations.langchain import AWRSLLM, ChatAWRS
from awrs_adapters.integrations.transformers import AWRSLogitsProcessor, smc_generate
from awrs_adapters.lm import FunctionLM, TransformersLM

from conftest import hashed_lm
from test_transformers_lm import get_tokenizer, tiny_llama


@pytest.fixture(scope="module")
def tiny():
    tok = get_tokenizer("byte_level")
    model = tiny_llama(len(tok), seed=0)
    return model, tok, TransformersLM(model, tok)


def words_lm():
    return hashed_lm([b"a", b"b", b" ", b""], 3, seed=1)


# -- LangChain ----------------------------------------------------------------------
def test_misspelt_call_arguments_are_named_with_the_closest_one():
    chat = ChatAWRS(lm=words_lm(), num_particles=2, max_tokens=4, seed=0)
    with pytest.raises(ConfigError, match=r"'num_particle' \(did you mean 'num_particles'\?\)"):
        chat.invoke("hi", num_particle=1000, temprature=0.5)
    with pytest.raises(ConfigError, match="temprature"):
        chat.bind(temprature=0.5).invoke("hi")
    with pytest.raises(ConfigError, match="num_partcles"):
        AWRSLLM(lm=words_lm(), max_tokens=3).invoke("hi", num_partcles=3)
    assert isinstance(chat.invoke("hi", num_particles=3).content, str)  # the right name works


@pytest.mark.parametrize("kw,match", [
    ({"timeout": -5}, "timeout=-5"), ({"timeout": 0}, "timeout=0"),
    ({"max_retries": -1}, "max_retries=-1"), ({"seed": -1}, "seed=-1"),
    ({"num_particles": 0}, "num_particles=0"), ({"temperature": -1.0}, "temperature=-1.0"),
])
def test_bad_fields_fail_at_construction_and_per_call(kw, match):
    with pytest.raises(ConfigError, match=match):
        ChatAWRS(lm=words_lm(), **kw)
    with pytest.raises(ConfigError, match=match):
        AWRSLLM(lm=words_lm(), **kw)
    with pytest.raises(ConfigError, match=match):
        ChatAWRS(lm=words_lm(), max_tokens=3).invoke("hi", **kw)


def test_stop_given_as_one_string_is_an_error_not_a_stop_at_every_character():
    with pytest.raises(ConfigError, match="stop"):
        ChatAWRS(lm=words_lm(), max_tokens=3, seed=0).invoke("x", stop="99")


# -- constraints ----------------------------------------------------------------------
def test_potential_returning_none_or_a_bool_is_an_error():
    lm = words_lm()
    with pytest.raises(ConstraintError, match="returned None"):
        generate(lm, None, Potential(complete=lambda s: None), max_tokens=3, seed=0)
    with pytest.raises(ConstraintError, match="Boolean check is a Predicate"):
        generate(lm, None, Potential(complete=lambda s: s.endswith("a")), max_tokens=3, seed=0)
    # errors="reject" still turns a raising function into -inf (weight 0)
    r = generate(lm, None, Potential(complete=lambda s: 1 / 0 if "b" in s else 0.0,
                                     errors="reject"), max_tokens=3, seed=0, num_particles=16)
    assert r.ok and all("b" not in t for t in r.posterior)


def test_huge_counted_repetition_is_refused_at_once_with_the_alternative():
    t0 = time.perf_counter()
    with pytest.raises(ConstraintError, match=r"100,000 positions.*Grammar"):
        Regex("a{100000}")
    with pytest.raises(ConstraintError, match="20,000 positions"):
        Regex("(a{100}){200}")
    assert time.perf_counter() - t0 < 5.0
    assert Regex("[0-9]{1,1000}").accepts("7" * 1000)  # large but fine stays allowed


def test_empty_character_class_is_blamed_on_the_pattern_not_the_vocabulary():
    with pytest.raises(ConstraintError, match="can match no string") as e:
        Regex(r"x[^\s\S]")
    assert "vocabulary" not in str(e.value)


def test_json_schema_bad_recursion_depth_and_a_schema_nested_too_deep():
    with pytest.raises(ConstraintError, match="max_recursion_depth=-5"):
        JSONSchema({"type": "integer"}, max_recursion_depth=-5)
    schema: dict = {"type": "integer"}
    for _ in range(2000):
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(ConstraintError, match="nested too deeply.*\\$defs"):
        JSONSchema(schema)


# -- prompts --------------------------------------------------------------------------
def test_bad_prompts_on_a_transformers_model(tiny):
    _, tok, lm = tiny
    c = Predicate(complete=lambda s: len(s) >= 1)
    with pytest.raises(ConfigError, match="is bytes"):
        generate(lm, b"\xff\xfe hello", c, max_tokens=2, seed=0)
    with pytest.raises(ConfigError, match="lone surrogate"):
        generate(lm, "hi \ud800 there", c, max_tokens=2, seed=0)
    with pytest.raises(VocabularyError, match=r"\[999999\]"):
        generate(lm, [1, 2, 999999], c, max_tokens=2, seed=0)
    with pytest.raises(VocabularyError, match="outside"):
        generate(lm, torch.tensor([[1, -3]]), c, max_tokens=2, seed=0)
    saved = tok.chat_template
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                         "{% endfor %}")
    try:
        with pytest.raises(ConfigError, match=r"prompt\[0\].*content=5"):
            generate(lm, [{"role": "user", "content": 5}], c, max_tokens=2, seed=0)
        with pytest.raises(ConfigError, match=r"prompt\[1\] has role=None"):
            generate(lm, [{"role": "user", "content": "a"}, {"content": "b"}], c, max_tokens=2)
        with pytest.raises(ConfigError, match="content=None"):
            generate(lm, [{"role": "user"}], c, max_tokens=2, seed=0)
        with pytest.raises(ConfigError, match="lone surrogate"):
            generate(lm, [{"role": "user", "content": "\udfff"}], c, max_tokens=2, seed=0)
    finally:
        tok.chat_template = saved


def test_prompt_longer_than_the_model_reads_fails_before_running(tiny):
    _, _, lm = tiny
    limit = lm.context_length
    assert limit is not None
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=f"at most {limit}"):
        generate(lm, [5] * (limit + 10), None, max_tokens=2, seed=0)
    assert time.perf_counter() - t0 < 2.0


def test_all_minus_inf_row_is_named_as_such_not_as_fp16_overflow(tiny):
    model, tok, _ = tiny

    def ban_all(input_ids, scores):
        return torch.full_like(scores, -math.inf)

    inputs = tok(["hello"], return_tensors="pt")
    with pytest.raises(LMError, match="score -inf.*whole vocabulary") as e:
        model.generate(**inputs, custom_generate=smc_generate, return_dict_in_generate=True, awrs_tokenizer=tok,
                       logits_processor=LogitsProcessorList([ban_all]), max_new_tokens=2,
                       num_particles=2, seed=0)
    assert "fp16" not in str(e.value)


# -- transformers processor ----------------------------------------------------------------
def test_logits_processor_needs_a_tokenizer_and_reports_cut_rows(tiny):
    model, tok, _ = tiny
    with pytest.raises(ConfigError, match="tokenizer=None"):
        AWRSLogitsProcessor(Regex("[0-9]{10}"), None)
    proc = AWRSLogitsProcessor(Regex("[0-9]{10}"), tok, seed=0)
    inputs = tok(["hello"], return_tensors="pt")
    out = model.generate(**inputs, logits_processor=[proc], do_sample=True, top_k=0,
                         max_new_tokens=3, pad_token_id=tok.eos_token_id)
    with pytest.warns(UserWarning, match=r"row\(s\) \[0\] stopped before"):
        assert proc.unfinished_rows(out) == [0]
    proc = AWRSLogitsProcessor(Regex("[0-9]{2}"), tok, seed=0)
    out = model.generate(**inputs, logits_processor=[proc], do_sample=True, top_k=0,
                         max_new_tokens=3, pad_token_id=tok.eos_token_id)
    assert proc.unfinished_rows(out) == []


# -- hints name the cause ---------------------------------------------------------------
def test_hint_names_a_potential_or_a_zero_end_not_max_tokens():
    lm = words_lm()
    r = generate(lm, None, Potential(complete=lambda s: -math.inf), max_tokens=3, seed=0)
    assert not r.ok and "Potential" in r.hint and "raise max_tokens" not in r.hint
    # the end has probability 0 everywhere: the text is fine, the model cannot end it
    no_end = FunctionLM([b"a", b"b", b""], 2, lambda p: [0.0, 0.0, -math.inf])
    r = generate(no_end, None, Predicate(complete=lambda s: True), max_tokens=2, seed=0)
    assert not r.ok and "end token probability 0" in r.hint
    assert "raise max_tokens" not in r.hint
    # and a format longer than max_tokens still says to raise it
    r = generate(lm, None, Predicate(complete=lambda s: len(s) >= 9), max_tokens=2, seed=0)
    assert "reached max_tokens=2" in r.hint and "raise max_tokens" in r.hint


# -- CLI --------------------------------------------------------------------------------
def test_cli_bad_files_and_seed_exit_2_with_a_message(tmp_path, capsys):
    assert main(["generate", "--prompt", "x", "--json-schema", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    binary = tmp_path / "g.lark"
    binary.write_bytes(b"\x00\xff\xfe\x81 binary")
    assert main(["generate", "--prompt", "x", "--grammar", str(binary)]) == 2
    assert "not a UTF-8 text file" in capsys.readouterr().err
    assert main(["generate", "--prompt", "x", "--regex", "a", "--seed", "-1"]) == 2
    assert "seed=-1" in capsys.readouterr().err


def test_every_error_here_is_an_awrs_error():
    for cls in (ConfigError, ConstraintError, LMError, VocabularyError):
        assert issubclass(cls, AWRSError)


# -- the default model: generate's defaults do not kill a satisfiable constraint --------
@pytest.mark.model
def test_smc_generate_default_top_k_does_not_kill_a_constraint_that_must_end():
    """The audit's case: do_sample=True, no top_k, Regex("[0-9]{2}"), max_new_tokens=6.

    With transformers' default top_k=50 applied before the constraint, EOS after two
    digits fell outside the top 50 and every particle died on 3 of 3 seeds.
    """
    import importlib.util

    from awrs_adapters import models

    if importlib.util.find_spec(models.EMBEDDED[models.DEFAULT_MODEL].package) is None:
        pytest.skip("the default model's package is not installed")
    lm = models.load()
    model, tok = lm.model, lm.tokenizer
    ids = tok("The year is", return_tensors="pt")  # with top_k=50: ok=False on 3 of 3 seeds
    for seed in range(3):
        out = model.generate(**ids, custom_generate=smc_generate, return_dict_in_generate=True, awrs_tokenizer=tok,
                             constraint=Regex("[0-9]{2}"), do_sample=True, max_new_tokens=6,
                             num_particles=4, seed=seed)
        res = out.results[0]
        assert res.ok and res.log_ml is not None, res.hint
        new = out.sequences[0, ids["input_ids"].shape[1]:].tolist()
        text = tok.decode([t for t in new if t not in lm.end_token_ids])
        assert Regex("[0-9]{2}").accepts(text), text
