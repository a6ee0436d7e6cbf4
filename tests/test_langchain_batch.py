"""ChatAWRS.batch / abatch: every input's particles step together (one forward per step),
with the results, callbacks and errors of invoke. A tiny random Llama (prompt-dependent,
seconds), the real LangChain runnables."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage

import awrs_adapters.batching as batching
from awrs_adapters.constraints import Predicate
from awrs_adapters.errors import ConfigError
from awrs_adapters.integrations.langchain import ChatAWRS
from awrs_adapters.lm import TransformersLM

from test_transformers_lm import get_tokenizer, tiny_llama

INPUTS = ["hello there", "a", "the quick brown fox jumps"]


@pytest.fixture(scope="module")
def chat() -> ChatAWRS:
    tok = get_tokenizer("sentencepiece")
    lm = TransformersLM(tiny_llama(len(tok), seed=4), tok)
    c = Predicate(complete=lambda s: len(s) >= 2, prefix=lambda s: "\n" not in s)
    return ChatAWRS(lm=lm, constraint=c, num_particles=3, max_tokens=6, seed=0)


@pytest.fixture
def calls(monkeypatch):
    seen = []
    real = batching.generate_batch

    def spy(lm, reqs, *a, **kw):
        seen.append((len(reqs), kw.get("max_rows")))
        return real(lm, reqs, *a, **kw)

    monkeypatch.setattr(batching, "generate_batch", spy)
    return seen


def _same(a: AIMessage, b: AIMessage) -> None:
    assert a.content == b.content
    pa, pb = a.response_metadata["posterior"], b.response_metadata["posterior"]
    assert pa.keys() == pb.keys() and all(abs(pa[k] - pb[k]) < 1e-4 for k in pa)


def test_batch_shares_steps_and_gives_invokes_results(chat, calls, monkeypatch):
    """Broken variant caught: keys that never match (every input run again one by one)."""
    runs = []
    real_run = ChatAWRS._run
    monkeypatch.setattr(ChatAWRS, "_run", lambda self, *a, **k: runs.append(1) or real_run(self, *a, **k))
    outs = chat.batch(INPUTS)
    assert calls == [(3, None)] and runs == []  # one generate_batch, no single runs
    for x, o in zip(INPUTS, outs, strict=True):
        _same(o, chat.invoke(x))


def test_abatch_and_max_concurrency(chat, calls):
    outs = asyncio.run(chat.abatch(INPUTS, config={"max_concurrency": 1}))
    assert calls == [(3, 3)]  # at most one input's 3 rows per forward
    for x, o in zip(INPUTS, outs, strict=True):
        _same(o, chat.invoke(x))


def test_each_input_gets_its_own_callback_run(chat):
    class Count(BaseCallbackHandler):
        def __init__(self):
            self.starts = self.ends = 0

        def on_chat_model_start(self, *a, **k):
            self.starts += 1

        def on_llm_end(self, *a, **k):
            self.ends += 1

    h = Count()
    chat.batch(INPUTS, config={"callbacks": [h]})
    assert h.starts == h.ends == 3


def test_a_failing_input_fails_alone(chat):
    long = "x " * 400  # longer than the tiny model's 256 positions
    outs = chat.batch([INPUTS[0], long, INPUTS[1]], return_exceptions=True)
    assert isinstance(outs[1], ConfigError)
    _same(outs[0], chat.invoke(INPUTS[0]))
    _same(outs[2], chat.invoke(INPUTS[1]))
    with pytest.raises(ConfigError):
        chat.batch([INPUTS[0], long])
