"""Bad input gets a clear error (AWRSError subclasses) before any work, and loses nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from awrs_adapters import (
    AWRSError,
    ConfigError,
    ConstraintError,
    LMError,
    NoValidSampleError,
    VocabularyError,
    generate,
)
from awrs_adapters.constraints import Potential, Predicate, as_constraint
from awrs_adapters.lm import FunctionLM
from awrs_adapters.vocab import Vocabulary

from conftest import hashed_lm


@pytest.fixture
def lm():
    return hashed_lm([b"a", b"b", b"c", b""], 3, seed=1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_particles": 0}, "num_particles=0"),
        ({"num_particles": 2.5}, "num_particles=2.5"),
        ({"max_tokens": 0}, "max_tokens=0"),
        ({"temperature": -1.0}, "temperature=-1.0"),
        ({"temperature": float("nan")}, "temperature=nan"),
        ({"method": "beam"}, "method='beam'"),
        ({"resampling": "magic"}, "not a valid resampling scheme"),
        ({"ess_threshold": 1.5}, "ess_threshold=1.5"),
        ({"ess_threshold": "auto"}, "ess_threshold=.auto.*or None"),
        ({"ess_threshold": True}, "ess_threshold=True"),
        ({"seed": "abc"}, "seed='abc'"),
        ({"estimator": "exact"}, "estimator='exact'"),
    ],
)
def test_bad_arguments_fail_before_any_work(lm, kwargs, match):
    calls = []
    lm.next_logprobs, orig = (lambda p: calls.append(p) or orig(p)), lm.next_logprobs
    with pytest.raises(ConfigError, match=match) as e:
        generate(lm, None, None, **kwargs)
    assert isinstance(e.value, AWRSError) and isinstance(e.value, ValueError)
    assert calls == []  # nothing ran


def test_not_a_language_model():
    with pytest.raises(ConfigError, match="TransformersLM"):
        generate("gpt2", "hi")  # type: ignore[arg-type]


def test_not_a_constraint(lm):
    with pytest.raises(ConfigError, match="not a constraint"):
        generate(lm, None, 42)
    with pytest.raises(ConfigError, match="not callable"):
        Predicate(complete="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_or_inf_logprobs(bad):
    def f(prefix):
        return [0.0, bad, 0.0] if len(prefix) == 1 else [0.0, 0.0, 0.0]

    lm = FunctionLM([b"a", b"b", b""], 2, f)
    with pytest.raises(LMError, match="NaN|inf") as e:
        generate(lm, None, None, max_tokens=4, seed=0)
    assert "step 1" in str(e.value)


def test_vocabulary_mismatch():
    lm = FunctionLM([b"a", b"b", b""], 2, lambda p: [0.0, 0.0])
    with pytest.raises(VocabularyError, match="returned 2 values"):
        generate(lm, None, None, seed=0)
    with pytest.raises(VocabularyError, match="eos_token_id=5"):
        Vocabulary([b"a"], 5)
    with pytest.raises(VocabularyError, match="not bytes"):
        Vocabulary(["a", b""], 1)  # type: ignore[list-item]


def test_predicate_that_raises_names_the_text(lm):
    def boom(s: str) -> bool:
        if len(s) >= 2:
            raise KeyError("bad")
        return True

    with pytest.raises(ConstraintError, match=r"raised KeyError.*on text '\w\w'") as e:
        generate(lm, None, Predicate(complete=lambda s: True, prefix=boom), max_tokens=4, seed=0)
    assert "errors='reject'" in str(e.value)
    # with errors="reject" a raising check is a rejection: every output has < 2 chars
    r = generate(lm, None, Predicate(complete=lambda s: True, prefix=boom, errors="reject"),
                 max_tokens=4, num_particles=16, seed=0)
    assert r.ok and all(len(s) < 2 for s in r.posterior)


def test_potential_returning_nan_is_an_error(lm):
    with pytest.raises(ConstraintError, match="nan"):
        generate(lm, None, Potential(complete=lambda s: math.nan), max_tokens=3, seed=0)


def test_unsatisfiable_constraint_ends_with_ok_false_and_a_hint(lm):
    r = generate(lm, None, Predicate(complete=lambda s: False), max_tokens=3, seed=0)
    assert not r.ok and r.posterior == {}
    assert all(p.log_weight == -math.inf for p in r.particles)
    with pytest.raises(NoValidSampleError, match="num_particles") as e:
        r.mode  # noqa: B018
    assert "max_tokens" in str(e.value)
    with pytest.raises(NoValidSampleError):
        r.sample(np.random.default_rng(0))


def test_max_tokens_reached_says_so(lm):
    # needs 5 characters; only 3 tokens allowed
    r = generate(lm, None, Predicate(complete=lambda s: len(s) >= 5), max_tokens=3, seed=0)
    assert not r.ok
    assert "reached max_tokens=3" in r.hint and "raise max_tokens" in r.hint


def test_as_constraint_accepts_callables():
    c = as_constraint(lambda s: s == "ab")
    assert isinstance(c, Predicate) and c.accepts("ab") and not c.accepts("a")


def test_renamed_paths_warn_and_still_work() -> None:
    """The old names (one release): awrs_adapters.constraint, .examples, .runner,
    constraints.cache and SMCResult.text warn and give the renamed objects."""
    import importlib
    import sys
    import warnings

    from awrs_adapters import protocol, streaming, toy
    from awrs_adapters.constraints import index_cache

    for old, new in [("awrs_adapters.constraint", protocol), ("awrs_adapters.examples", toy),
                     ("awrs_adapters.runner", streaming),
                     ("awrs_adapters.constraints.cache", index_cache)]:
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=new.__name__):
            mod = importlib.import_module(old)
        assert mod is new
    lm, c, T = toy.ends_with_a()
    r = generate(lm, None, c, max_tokens=T, seed=0)
    with pytest.warns(DeprecationWarning, match="SMCResult.mode"):
        assert r.text == r.mode
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert r.to_dict()["mode"] == r.mode


def test_a_constraint_subclass_with_the_old_is_critic_name_still_weights() -> None:
    from awrs_adapters.constraints import Potential, Predicate
    from awrs_adapters.protocol import split

    with pytest.warns(DeprecationWarning, match="is_potential"):
        class OldSoft(Predicate):  # a Boolean base: only the old name can make it soft
            is_critic = True

    assert OldSoft.is_potential and not Predicate.is_potential
    p = OldSoft(complete=lambda s: True)
    assert split(p)[1] == [p]
    assert Potential.is_potential
