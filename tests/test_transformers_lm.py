"""TransformersLM on tiny random Llama models with tokenizers trained here (no hub, seconds).

Two tokenizer families: byte-level BPE (GPT-2 byte map) and SentencePiece-style BPE
(``▁`` for spaces, ``<0xNN>`` byte fallback). Checks: KV-cache logprobs after steps,
resampling with duplicate ancestors and compaction equal a fresh full forward; the byte
table round trip; chat prompts; EOS merging; temperature; transformers 5.23's
``past_key_values`` API; generate() end to end with a Predicate.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from awrs_adapters import generate
from awrs_adapters.constraints import Predicate
from awrs_adapters.errors import ConfigError, VocabularyError
from awrs_adapters.lm import TransformersLM
from awrs_adapters.lm.tokenizer_bytes import (
    end_token_ids,
    gpt2_byte_decoder,
    roundtrip_mismatches,
    tokenizer_family,
    vocabulary_from_tokenizer,
)

CORPUS = [
    "hello world, héllo wörld! the date is 2024-05-17 and the time 12:30.",
    "日本語のテキスト 🙂 naïve café — “quotes” ab ba aab abba",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "{\"name\": \"Ada\", \"age\": 36} [1, 2, 3] a-b_c/d\\e\ttab\nnew line",
] * 20

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    # a non-special added token with characters of the byte map: decoded as is
    tok.add_tokens([AddedToken("héllo wörld", special=False)])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", unk_token="<|endoftext|>"
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def sentencepiece_tokenizer() -> PreTrainedTokenizerFast:
    """Llama-2 style: ▁ for spaces (normalizer), BPE with byte fallback <0xNN>."""
    specials = ["<unk>", "<s>", "</s>", "<start_of_turn>", "<end_of_turn>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, show_progress=False, limit_alphabet=40
    )
    tok.train_from_iterator(CORPUS, trainer)
    # add the 256 byte-fallback tokens to the model's vocabulary (as sentencepiece does)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    spec["model"]["byte_fallback"] = True
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    hf.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    hf.chat_template = (
        "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n"
        "{{ m['content'] }}<end_of_turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    )
    return hf


_TOKENIZERS: dict[str, PreTrainedTokenizerFast] = {}


def get_tokenizer(family: str) -> PreTrainedTokenizerFast:
    if family not in _TOKENIZERS:
        _TOKENIZERS[family] = (
            byte_level_tokenizer() if family == "byte_level" else sentencepiece_tokenizer()
        )
    return _TOKENIZERS[family]


def tiny_llama(vocab_size: int, seed: int = 0, eos: int | list[int] | None = None) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.5,  # peaked, context-dependent distributions
        tie_word_embeddings=False,
        eos_token_id=eos,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(params=["byte_level", "sentencepiece"])
def family(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def tok(family: str) -> PreTrainedTokenizerFast:
    return get_tokenizer(family)


@pytest.fixture
def lm(tok: PreTrainedTokenizerFast) -> TransformersLM:
    return TransformersLM(tiny_llama(len(tok)), tok)


def full_logprobs(lm: TransformersLM, ids: list[int], temperature: float = 1.0) -> torch.Tensor:
    """A fresh forward of the whole sequence, no cache, postprocessed like the batch."""
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids]), use_cache=False).logits[:, -1, :]
    return lm.postprocess(logits, temperature)[0]


# -- the byte table ---------------------------------------------------------------


def test_family_detected(family: str, tok: PreTrainedTokenizerFast) -> None:
    assert tokenizer_family(tok) == family


def test_bytes_roundtrip_every_token(tok: PreTrainedTokenizerFast) -> None:
    v = vocabulary_from_tokenizer(tok)
    assert v.size == len(tok)
    assert roundtrip_mismatches(tok, v, n_random=300) == []


def test_byte_level_table_details() -> None:
    tok = get_tokenizer("byte_level")
    v = vocabulary_from_tokenizer(tok)
    bd = gpt2_byte_decoder()
    assert len(bd) == 256 and bd["Ġ"] == 32 and bd["Ċ"] == 10
    i = tok.convert_tokens_to_ids("Ġ")
    assert v.tokens[i] == b" "
    # partial UTF-8 tokens keep their bytes (é is c3 a9; a lone c3 token exists)
    partial = [t for t in v.tokens if t and t[-1] >= 0xC0]
    assert partial, "the trained vocabulary should hold a token ending inside a character"
    for name in ("<|endoftext|>", "<|im_start|>"):
        assert tok.convert_tokens_to_ids(name) in v.special_ids
    assert v.tokens[tok.convert_tokens_to_ids("héllo wörld")] == "héllo wörld".encode()


def test_sentencepiece_table_details() -> None:
    tok = get_tokenizer("sentencepiece")
    v = vocabulary_from_tokenizer(tok)
    assert v.tokens[tok.convert_tokens_to_ids("<0x0A>")] == b"\n"
    assert v.tokens[tok.convert_tokens_to_ids("<0xE6>")] == b"\xe6"
    sp = [i for i, t in enumerate(tok.convert_ids_to_tokens(range(len(tok)))) if t.startswith("▁") and len(t) > 1]
    assert sp and all(v.tokens[i].startswith(b" ") for i in sp)
    assert all(v.tokens[i] == b"" for i in v.special_ids)
    # the unknown token is a control token, never text
    assert tok.convert_tokens_to_ids("<unk>") in v.special_ids
    # encoding text with a character outside the vocabulary goes through byte fallback
    ids = tok("a ✓")["input_ids"]
    assert v.token_bytes(ids) == " a ✓".encode()


def test_end_tokens_and_vocabulary_errors() -> None:
    tok = get_tokenizer("sentencepiece")
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    eos = tok.convert_tokens_to_ids("</s>")
    assert end_token_ids(tok)[:1] == [eos] and eot in end_token_ids(tok)
    with pytest.raises(VocabularyError, match="eos_ids"):
        vocabulary_from_tokenizer(tok, [len(tok) + 3])


# -- the KV cache path ------------------------------------------------------------


def test_cache_matches_full_forward_after_steps_and_resampling(lm: TransformersLM) -> None:
    tok = lm.tokenizer
    prompt = "the date is"
    p_ids = lm.encode_prompt(prompt)
    N = 4
    batch = lm.start(prompt, N)
    rows: list[list[int]] = [[] for _ in range(N)]
    g = torch.Generator().manual_seed(0)
    ordinary = [i for i in range(len(tok)) if i not in lm.vocab.special_ids and i != lm.eos_token_id]

    def step() -> None:
        toks = [ordinary[int(j)] for j in torch.randint(len(ordinary), (batch.num_rows,), generator=g)]
        batch.extend(toks)
        for r, t in zip(rows, toks):
            r.append(t)

    def check() -> None:
        lp = batch.logprobs()
        assert lp.shape == (len(rows), lm.vocab.size)
        for i, r in enumerate(rows):
            ref = full_logprobs(lm, p_ids + r)
            torch.testing.assert_close(lp[i], ref, atol=1e-4, rtol=0)
            assert math.isclose(float(torch.logsumexp(lp[i], 0)), 0.0, abs_tol=1e-5)

    check()  # the prefill's logits, repeated
    for _ in range(3):
        step()
    check()
    # resample with duplicate ancestors
    sel = [2, 2, 0, 1]
    batch.select(sel)
    rows = [list(rows[k]) for k in sel]
    check()  # logits are reindexed at once
    step()
    step()
    check()
    # compaction (two particles finished), then a resampling composed lazily with it
    batch.select([3, 1])
    rows = [list(rows[k]) for k in [3, 1]]
    step()
    batch.select([1, 1, 0])
    rows = [list(rows[k]) for k in [1, 1, 0]]
    check()
    step()
    check()
    assert batch.num_rows == 3
    batch.select([])
    assert batch.num_rows == 0 and batch.logprobs().shape == (0, lm.vocab.size)
    batch.extend([])


def test_one_forward_per_step_and_none_on_select(tok: PreTrainedTokenizerFast) -> None:
    model = tiny_llama(len(tok))
    calls: list[tuple[int, ...]] = []

    def hook(mod: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        calls.append(tuple(kwargs["input_ids"].shape))

    model.register_forward_pre_hook(hook, with_kwargs=True)
    lm = TransformersLM(model, tok)
    batch = lm.start("hello", 5)
    assert len(calls) == 1 and calls[0][0] == 1  # the prompt is prefilled once, batch 1
    for _ in range(3):
        batch.logprobs()
        batch.extend([lm.vocab.tokens.index(b"a")] * batch.num_rows)
        batch.select([0, 0, 1, 4, 2])
    batch.logprobs()
    assert calls[1:] == [(5, 1)] * 3


def test_prefill_uses_logits_to_keep(tok: PreTrainedTokenizerFast) -> None:
    model = tiny_llama(len(tok))
    seen: dict[str, object] = {}

    def hook(mod: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen.setdefault("keep", kwargs.get("logits_to_keep"))

    model.register_forward_pre_hook(hook, with_kwargs=True)
    TransformersLM(model, tok).start("hello world", 2)
    assert seen["keep"] == 1


class OldAPIModel(torch.nn.Module):
    """transformers 5.23's forward: ``past_key_values`` in and out."""

    def __init__(self, inner: LlamaForCausalLM) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.generation_config = inner.generation_config

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.inner.get_output_embeddings()

    def forward(self, input_ids=None, past_key_values=None, use_cache=None, logits_to_keep=0):  # noqa: ANN001
        out = self.inner(
            input_ids=input_ids, cache=past_key_values, use_cache=use_cache, logits_to_keep=logits_to_keep
        )
        return SimpleNamespace(logits=out.logits, past_key_values=out.cache)


def test_past_key_values_api(tok: PreTrainedTokenizerFast) -> None:
    inner = tiny_llama(len(tok))
    old = TransformersLM(OldAPIModel(inner), tok)
    new = TransformersLM(inner, tok)
    import inspect

    if "cache" not in inspect.signature(inner.forward).parameters:
        pytest.skip("transformers < 5.24 is itself the past_key_values API (every other test runs it)")
    assert old._cache_arg == "past_key_values" and new._cache_arg == "cache"
    a, b = old.start("hello", 3), new.start("hello", 3)
    t = [lm_t for lm_t in range(3, 6)]
    for batch in (a, b):
        batch.extend(t)
        batch.select([2, 0, 2])
        batch.extend(t)
    torch.testing.assert_close(a.logprobs(), b.logprobs(), atol=1e-5, rtol=0)


# -- prompts ----------------------------------------------------------------------


def test_chat_prompt_goes_through_template(lm: TransformersLM) -> None:
    tok = lm.tokenizer
    msgs = [{"role": "user", "content": "Give a date."}]
    ids = lm.encode_prompt(msgs)
    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    assert lm.prompt_length(msgs) == len(ids)
    start_marker = "<|im_start|>" if "<|im_start|>" in tok.get_vocab() else "<start_of_turn>"
    assert tok.convert_tokens_to_ids(start_marker) in ids
    assert tok.decode(ids).rstrip().endswith(("assistant", "model"))
    batch = lm.start(msgs, 2)
    torch.testing.assert_close(batch.logprobs()[0], full_logprobs(lm, ids), atol=1e-4, rtol=0)


def test_string_and_id_prompts(lm: TransformersLM) -> None:
    tok = lm.tokenizer
    assert lm.encode_prompt("hello") == tok("hello")["input_ids"]
    assert lm.encode_prompt([5, 6, 7]) == [5, 6, 7]
    assert lm.prompt_length("") == 1  # an empty prompt starts from BOS (or EOS)
    with pytest.raises(ConfigError, match="prompt="):
        lm.encode_prompt(3.5)


def test_chat_prompt_without_template_is_an_error(tok: PreTrainedTokenizerFast) -> None:
    t2 = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, eos_token=tok.eos_token)
    lm = TransformersLM(tiny_llama(len(t2)), t2)
    with pytest.raises(ConfigError, match="chat template"):
        lm.start([{"role": "user", "content": "hi"}], 2)


# -- EOS, temperature, padding ----------------------------------------------------


def test_eos_merge_multiple_end_ids() -> None:
    tok = get_tokenizer("byte_level")
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    model = tiny_llama(len(tok), eos=[im_end, eot])
    lm = TransformersLM(model, tok)
    assert lm.end_token_ids == [im_end, eot]
    assert lm.eos_token_id == im_end and eot in lm.vocab.special_ids
    batch = lm.start("hello", 2)
    lp = batch.logprobs()
    with torch.no_grad():
        raw = torch.log_softmax(model(input_ids=torch.tensor([lm.encode_prompt("hello")])).logits[0, -1], -1)
    torch.testing.assert_close(lp[0, im_end], torch.logaddexp(raw[im_end], raw[eot]), atol=1e-5, rtol=0)
    assert lp[0, eot] == -math.inf
    assert math.isclose(float(torch.logsumexp(lp[0], 0)), 0.0, abs_tol=1e-5)
    others = [i for i in range(len(tok)) if i not in (im_end, eot)]
    torch.testing.assert_close(lp[0, others], raw[others], atol=1e-5, rtol=0)
    # generation_config's list is read too, and explicit ids win
    model.config.eos_token_id = None
    model.generation_config.eos_token_id = [eot, im_end]
    assert TransformersLM(model, tok).end_token_ids[:2] == [im_end, eot]
    assert TransformersLM(model, tok, eos_token_ids=[eot]).eos_token_id == eot


def test_temperature_divides_logits(tok: PreTrainedTokenizerFast) -> None:
    model = tiny_llama(len(tok))
    lm = TransformersLM(model, tok)  # two end tokens: merged after the temperature
    T = 0.7
    batch = lm.start("hello", 2, temperature=T)
    batch.extend([5, 9])
    with torch.no_grad():
        ids = lm.encode_prompt("hello") + [9]
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    torch.testing.assert_close(
        batch.logprobs()[1], lm.postprocess((logits / T)[None])[0], atol=1e-4, rtol=0
    )
    # with one end token, the engine's temperature on log-probs is the same thing
    lm1 = TransformersLM(model, tok, eos_token_ids=[tok.eos_token_id])
    b1 = lm1.start("hello", 1, temperature=T)
    ref = torch.log_softmax(lm1.start("hello", 1).logprobs() / T, -1)
    torch.testing.assert_close(b1.logprobs(), ref, atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="temperature"):
        lm.start("hello", 2, temperature=0.0)


def test_padded_embedding_rows_are_never_sampled(tok: PreTrainedTokenizerFast) -> None:
    lm = TransformersLM(tiny_llama(len(tok) + 7), tok)
    assert lm.vocab.size == len(tok) + 7
    pad = list(range(len(tok), len(tok) + 7))
    assert set(pad) <= lm.vocab.special_ids
    lp = lm.start("hi", 1).logprobs()
    assert torch.isneginf(lp[0, pad]).all()
    assert math.isclose(float(torch.logsumexp(lp[0], 0)), 0.0, abs_tol=1e-5)


def test_dtype_and_device_respected(tok: PreTrainedTokenizerFast) -> None:
    lm = TransformersLM(tiny_llama(len(tok)), tok, dtype="bfloat16", device="cpu")
    assert lm.model.dtype == torch.bfloat16 and lm.device.type == "cpu"
    lp = lm.start("hi", 2).logprobs()
    assert lp.dtype == torch.float32 and lp.device.type == "cpu"
    with pytest.raises(ConfigError, match="dtype"):
        TransformersLM(tiny_llama(len(tok)), tok, dtype="float77")


def test_mismatched_tokenizer_is_an_error(tok: PreTrainedTokenizerFast) -> None:
    with pytest.raises((ConfigError, VocabularyError)):
        TransformersLM(tiny_llama(len(tok) - 50), tok)
    with pytest.raises(VocabularyError, match="eos_ids"):
        TransformersLM(tiny_llama(len(tok)), tok, eos_token_ids=[10**6])


# -- end to end -------------------------------------------------------------------


def test_generate_with_predicate(lm: TransformersLM) -> None:
    def prefix_ok(s: str) -> bool:  # sound: a bad character never goes away
        return not any(ch.isdigit() or ch in "eE" for ch in s)

    c = Predicate(complete=lambda s: 1 <= len(s) and prefix_ok(s), prefix=prefix_ok, name="no_e")
    r = generate(lm, "the date is", c, num_particles=4, max_tokens=6, seed=0)
    assert r.ok, r.hint
    assert r.posterior and all(c.accepts(s) for s in r.posterior)
    assert math.isclose(sum(r.posterior.values()), 1.0, abs_tol=1e-9)
    assert r.log_ml is not None and r.log_ml <= 0.0
    # chat prompt, temperature, and the lcd method through the same backend
    r2 = generate(
        lm, [{"role": "user", "content": "a word?"}], c, num_particles=3, max_tokens=5, seed=1,
        temperature=0.8, method="lcd",
    )
    assert r2.ok and all(c.accepts(s) for s in r2.posterior)
