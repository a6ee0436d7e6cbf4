"""Typed errors for bad values (issue 24, item 2).

A Predicate's check that returns something other than a bool, an ``async def`` check, a
token-id prompt that leaves no room for ``max_tokens``, a batch of prompts passed as one,
and a regex whose automaton would take minutes to hours to compile: each gets a typed
error naming the value and the fix, instead of a silent misreading or a hang.

Each test names, in its docstring, the broken variant it was seen to fail on.
"""

from __future__ import annotations

import gc
import inspect
import math
import re
import time
import warnings

import numpy as np
import pytest
import torch

from awrs_adapters import ConfigError, ConstraintError, LMError, generate
from awrs_adapters.constraints import Grammar, Potential, Predicate, Regex
from awrs_adapters.constraints.regex import (
    MAX_WEIGHTED_EXPANSION,
    _utf8_sequences,
    weighted_expansion,
)
from awrs_adapters.lm import TransformersLM

from conftest import hashed_lm
from test_transformers_lm import get_tokenizer, tiny_llama


def words_lm():
    return hashed_lm([b"a", b"b", b" ", b""], 3, seed=1)


# -- Predicate results ----------------------------------------------------------------------
BAD_RESULTS = {
    "str": "no", "nan": math.nan, "list": [], "None": None, "int": 1,
    "match": re.match("a", "a"),
}


@pytest.mark.parametrize("kind", list(BAD_RESULTS))
def test_a_check_returning_a_non_bool_is_an_error_naming_it(kind):
    """Broken variant: ``Predicate._run`` returning ``v`` instead of ``_as_bool(...)``
    (the old ``bool(v)`` reading): "no", NaN, 1 and a match object read as True, so the
    strings the function meant to reject got posterior mass; nothing was raised."""
    value = BAD_RESULTS[kind]

    def verdict(s: str):
        return value

    with pytest.raises(ConstraintError) as e:
        generate(words_lm(), None, Predicate(complete=verdict), max_tokens=3, seed=0)
    msg = str(e.value)
    assert "verdict" in msg and type(value).__name__ in msg and "bool(" in msg
    assert "on text" in msg
    # the prefix function too, and errors="reject" does not hide it (a bug, not a verdict)
    with pytest.raises(ConstraintError, match=f"prefix function.*{type(value).__name__}"):
        generate(words_lm(), None, Predicate(complete=lambda s: True, prefix=verdict,
                                             errors="reject"), max_tokens=3, seed=0)


def test_numpy_bools_are_read_as_bools():
    """Broken variant: ``_as_bool`` without the ``numpy.bool_`` case: a ConstraintError
    for a value that means exactly True or False."""
    ends_a = Predicate(complete=lambda s: np.bool_(s.endswith("a")),
                       prefix=lambda s: np.bool_(True))
    r = generate(words_lm(), None, ends_a, num_particles=8, max_tokens=3, seed=0)
    assert r.ok and all(t.endswith("a") for t in r.posterior)


async def _async_check(s: str) -> bool:
    return True


class _AsyncCallable:
    async def __call__(self, s: str) -> bool:
        return True


@pytest.mark.parametrize("fn", [_async_check, _AsyncCallable()])
def test_async_checks_are_refused_when_made(fn):
    """Broken variant: ``Predicate.__init__`` without ``_refuse_async``: made without a
    word (each call would then return a coroutine)."""
    with pytest.raises(ConfigError, match="async def.*plain def"):
        Predicate(complete=fn)
    with pytest.raises(ConfigError, match="prefix=.*async def"):
        Predicate(complete=lambda s: True, prefix=fn)
    with pytest.raises(ConfigError, match="async def"):
        Potential(complete=fn)


def test_a_returned_coroutine_is_an_error_and_is_closed():
    """Broken variant: ``_as_bool`` without the awaitable case (the coroutine is truthy:
    every text accepted) or without ``close()`` (left open, Python later warns that it
    was never awaited)."""
    made = []

    def sneaky(s: str):  # a plain function that hands back a coroutine
        coro = _async_check(s)
        made.append(coro)
        return coro

    with pytest.raises(ConstraintError, match="returned a coroutine.*plain def"):
        Predicate(complete=sneaky).accepts("x")
    assert inspect.getcoroutinestate(made[0]) == inspect.CORO_CLOSED
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConstraintError, match="returned a coroutine"):
            Potential(complete=sneaky).log_complete("x")
        gc.collect()
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in made)


# -- prompts on a transformers model ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    tok = get_tokenizer("byte_level")
    return TransformersLM(tiny_llama(len(tok), seed=0), tok)


def test_a_prompt_one_short_of_the_context_stops_at_the_step_that_would_pass_it(tiny):
    """Broken variant: ``TransformersBatch.extend`` without the context-length check:
    generation ran on past ``max_position_embeddings`` with no word."""
    limit = tiny.context_length
    assert limit == 256
    with pytest.raises(LMError) as e:
        generate(tiny, [5] * (limit - 1), None, num_particles=2, max_tokens=5, seed=0)
    msg = str(e.value)
    assert "255 tokens" in msg and "256 positions" in msg and "max_tokens <= 1" in msg
    # a prompt and max_tokens that fit exactly still run
    r = generate(tiny, [5] * (limit - 3), None, num_particles=2, max_tokens=3, seed=0)
    assert r.ok


def test_start_with_max_tokens_refuses_before_any_work(tiny):
    """Broken variant: ``encode_prompt`` without the ``len(ids) + max_tokens`` test: the
    prefill ran and nothing was raised."""
    with pytest.raises(ConfigError, match=r"max_tokens=3 .*256 positions.*max_tokens <= 2"):
        tiny.start([5] * 254, 2, max_tokens=3)
    assert tiny.start([5] * 254, 2, max_tokens=2).num_rows == 2


def test_a_batch_of_prompts_is_refused_and_one_row_is_squeezed(tiny):
    """Broken variant: the old ``prompt.reshape(-1)`` for tensors: a [2, n] batch became
    one prompt of 2n tokens without a word (and numpy arrays were refused outright)."""
    ids = [3, 4, 5]
    assert tiny.encode_prompt(torch.tensor([ids])) == ids
    assert tiny.encode_prompt(np.array([ids])) == ids
    assert tiny.encode_prompt(np.array(ids, dtype=np.int32)) == ids
    with pytest.raises(ConfigError, match=r"shape \[2, 3\]: a batch of 2 prompts.*one prompt"):
        generate(tiny, torch.tensor([ids, ids]), None, max_tokens=2, seed=0)
    with pytest.raises(ConfigError, match=r"array of shape \[2, 3\]"):
        tiny.encode_prompt(np.array([ids, ids]))
    with pytest.raises(ConfigError, match=r"shape \[1, 1, 3\]"):
        tiny.encode_prompt(torch.tensor([[ids]]))
    with pytest.raises(ConfigError, match="bool tensor"):
        tiny.encode_prompt(torch.tensor([True, False]))
    with pytest.raises(ConfigError, match="float64 array"):
        tiny.encode_prompt(np.array([1.0, 2.0]))


# -- regex size --------------------------------------------------------------------------
def test_utf8_sequence_counts():
    """Broken variant: ``_utf8_sequences`` without the surrogate split (11 for every
    code point instead of 9) or without the per-length split."""
    assert _utf8_sequences(0, 0x7F) == 1
    assert _utf8_sequences(0x80, 0x7FF) == 1
    assert _utf8_sequences(0, 0x10FFFF) == 9          # 1 + 1 + 4 (E0, E1-EC, ED, EE-EF) + 3
    assert _utf8_sequences(0x41, 0x41) == 1
    assert _utf8_sequences(0xE9, 0xE9) == 1           # é: one two-byte sequence
    assert weighted_expansion("a{100}") == 100
    assert weighted_expansion(r".{100}") == pytest.approx(100 * 10 ** 0.7)
    assert weighted_expansion(r"\w{100}") == pytest.approx(100 * 886 ** 0.7)
    assert weighted_expansion(r"\p{L}{10}") == weighted_expansion(r"\w{10}")  # Rust-only


@pytest.mark.parametrize("pattern,size", [
    (r"\w{3000}", "346,996"), (r"\d{1000}", "17,975"), (r".{3000}", "15,036"),
    (r"\p{L}{1000}", "115,665"),
])
def test_a_regex_whose_automaton_takes_minutes_is_refused_at_once(pattern, size):
    """Broken variant: ``Regex._validate`` without the ``weighted_expansion`` cap:
    ``.{3000}`` compiled for 15 s here, ``\\d{1000}`` 31 s, and ``\\w{3000}`` would take
    hours (``\\w{300}`` took 59 s), all under the 10,000-position cap."""
    t0 = time.perf_counter()
    with pytest.raises(ConstraintError) as e:
        Regex(pattern)
    assert time.perf_counter() - t0 < 2.0
    msg = str(e.value)
    assert f"estimated automaton size of {size}" in msg and f"{MAX_WEIGHTED_EXPANSION:,}" in msg
    assert "Grammar('start: /<pattern>/')" in msg and "Predicate(" in msg and "regex" in msg


def test_the_size_cap_keeps_what_compiles_in_seconds():
    """Broken variant: a cap of 1,000 instead of 10,000 refuses ``\\w{20}`` and
    ``[a-z]{3000}`` (0.4 s each here)."""
    assert Regex(r"\w{20}").accepts("a" * 20)
    assert Regex("[a-z]{3000}").accepts("b" * 3000)
    assert Regex("[0-9]{1,1000}").accepts("7" * 1000)
    # the suggested fix works where the cap refuses
    assert Grammar(r"start: /\w{3000}/").accepts("é" * 3000)
