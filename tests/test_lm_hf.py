"""The shared Hugging Face-tokenizer base: TransformersLM and VLLMLM read one tokenizer alike.

vLLM cannot run on this machine (its CPU build needs AVX-512), so VLLMLM is built on the
smallest object with a vLLM engine's attributes (``generate``, ``llm_engine.model_config``)
and its ``next_logits`` is fed rows from the transformers model: everything VLLMLM does
itself (vocabulary, end tokens, prompts, argument checks, postprocessing, row bookkeeping)
runs for real; tests/test_vllm.py compares the two on a real engine where vLLM is installed.
Broken variants seen failing: VLLMLM with its own end-token list (`ends = [eos]`), the
environment left set after ``from_pretrained``, the old ``>= 1`` message.
"""

from __future__ import annotations

import os
import re
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from awrs_adapters import generate
from awrs_adapters.constraints import Regex
from awrs_adapters.errors import ConfigError, LMError
from awrs_adapters.lm import TransformersLM
from awrs_adapters.lm.hf import HFTokenizerLM
from awrs_adapters.lm.vllm import VLLMLM

from test_transformers_lm import get_tokenizer, tiny_llama


class _EngineOverTransformers:
    """What VLLMLM reads from ``vllm.LLM``; logits from a transformers model."""

    def __init__(self, hf: TransformersLM, max_model_len: int = 256) -> None:
        self.hf = hf
        cfg = hf.model.config
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(
            tokenizer="unused", trust_remote_code=False, model="tiny-llama",
            hf_config=cfg, max_model_len=max_model_len,
            get_vocab_size=lambda: hf.vocab.size))

    def generate(self, *a: object, **k: object) -> None:  # pragma: no cover - not called
        raise AssertionError("next_logits is replaced in these tests")


@pytest.fixture(params=["byte_level", "sentencepiece"])
def pair(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    tok = get_tokenizer(request.param)
    hf = TransformersLM(tiny_llama(len(tok), eos=[tok.eos_token_id]), tok)
    monkeypatch.setattr("awrs_adapters.lm.vllm._config_shim",
                        lambda mc: SimpleNamespace(generation_config=None, config=mc.hf_config))
    vl = VLLMLM(_EngineOverTransformers(hf), tok)

    def next_logits(sequences):
        with torch.no_grad():
            return torch.cat([hf.model(input_ids=torch.tensor([list(s)])).logits[:, -1, :]
                              for s in sequences])

    vl.next_logits = next_logits  # type: ignore[method-assign]
    return hf, vl


def test_both_backends_are_one_base(pair) -> None:
    hf, vl = pair
    assert isinstance(hf, HFTokenizerLM) and isinstance(vl, HFTokenizerLM)
    assert vl.vocab.tokens == hf.vocab.tokens and vl.vocab.eos_token_id == hf.vocab.eos_token_id
    assert vl.end_token_ids == hf.end_token_ids
    for prompt in ("hello world", [{"role": "user", "content": "the date"}], [5, 6, 7], None):
        assert vl.encode_prompt(prompt) == hf.encode_prompt(prompt)


def test_postprocess_is_the_same_code(pair) -> None:
    hf, vl = pair
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, hf.vocab.size, generator=g) * 4
    for t in (1.0, 0.7):
        assert torch.equal(vl.postprocess(x, t), hf.postprocess(x, t))
    dead = x.clone()
    dead[1] = -torch.inf
    for lm in (hf, vl):  # a row with nothing possible is refused by both
        with pytest.raises(LMError, match=r"row\(s\) \[1\]"):
            lm.postprocess(dead)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "4"])
def test_start_refuses_bad_particle_counts_with_the_right_bound(pair, bad) -> None:
    for lm in pair:
        with pytest.raises(ConfigError, match=r"num_particles=.*pass an int >= 0"):
            lm.start("hi", bad)
        with pytest.raises(ConfigError, match="temperature"):
            lm.start("hi", 2, temperature=0.0)


def test_vllm_rows_match_transformers_rows(pair) -> None:
    hf, vl = pair
    a, b = hf.start("hello", 3), vl.start("hello", 3)
    for step in ([5, 6, 7], [8, 8, 9]):
        assert torch.allclose(a.logprobs(), b.logprobs(), atol=1e-5)
        a.extend(step)
        b.extend(step)
        a.select([2, 0, 0])
        b.select([2, 0, 0])
    assert torch.allclose(a.logprobs(), b.logprobs(), atol=1e-5)


def test_vllm_checks_the_context_length(pair) -> None:
    hf, _ = pair
    vl = VLLMLM(_EngineOverTransformers(hf, max_model_len=8), hf.tokenizer)
    vl.next_logits = pair[1].next_logits  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match="max_tokens"):
        vl.start([1, 2, 3, 4, 5, 6], 2, max_tokens=4)
    b = vl.start([1, 2, 3, 4, 5, 6], 2)
    b.logprobs()
    b.extend([7, 7])
    b.extend([7, 7])
    with pytest.raises(LMError, match="context length"):
        b.logprobs()


def test_generate_runs_on_the_vllm_wrapper(pair) -> None:
    _, vl = pair
    r = generate(vl, "the date", Regex("[0-9]{2}"), num_particles=4, max_tokens=6, seed=0)
    ok = [p for p in r.particles if p.log_weight > float("-inf")]
    assert ok and all(re.fullmatch("[0-9]{2}", p.text) for p in ok)


def test_from_pretrained_leaves_the_environment_as_it_was(monkeypatch, pair) -> None:
    """vLLM's in-process switch is set while the engine is built, and only then."""
    hf, _ = pair
    seen: dict[str, str | None] = {}

    class LLM(_EngineOverTransformers):
        def __init__(self, **kwargs: object) -> None:
            seen.update({k: os.environ.get(k) for k in
                         ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_CPU_KVCACHE_SPACE")})
            super().__init__(hf)

    fake = types.ModuleType("vllm")
    fake.LLM = LLM  # type: ignore[attr-defined]
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = SimpleNamespace(is_cpu=lambda: True)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    monkeypatch.setattr("awrs_adapters.lm.vllm.logits_capture_class", lambda: object)
    monkeypatch.setattr("awrs_adapters.lm.vllm.AutoTokenizer", None, raising=False)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        classmethod(lambda cls, *a, **k: hf.tokenizer))
    lm = VLLMLM.from_pretrained("tiny")
    assert seen == {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"
    assert "VLLM_CPU_KVCACHE_SPACE" not in os.environ
    assert lm.vocab.size == hf.vocab.size
