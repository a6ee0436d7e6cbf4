"""One public entry point (``generate`` / ``stream``) with one set of defaults, used by
every host: the settings a wrapper takes are ``RunParams``' fields with its defaults,
``generate`` takes them all, and its streaming form yields committed text, steps and
the result."""

from __future__ import annotations

import inspect
import math
import threading

import numpy as np
import pytest

from awrs_adapters import DEFAULT_MAX_TOKENS, Event, generate, generate_batch, stream
from awrs_adapters.cli import _parser
from awrs_adapters.constraints import Predicate
from awrs_adapters.errors import ConfigError, GenerationTimeoutError
from awrs_adapters.lm import FunctionLM
from awrs_adapters.openai_api import Limits
from awrs_adapters.streaming import RunParams
from awrs_adapters.toy import ends_with_a

from conftest import hashed_lm


def _default(fn, name):
    return inspect.signature(fn).parameters[name].default


def test_every_entry_point_has_the_same_defaults():
    """generate, generate_batch, stream (generate's), the CLI, the server and the
    LangChain models take RunParams' defaults. Broken variant caught: the CLI's old
    64-token default."""
    from awrs_adapters.integrations.langchain_base import AWRSFields

    params = RunParams()
    assert params.max_tokens == DEFAULT_MAX_TOKENS
    for name in RunParams.__dataclass_fields__:
        assert _default(generate, name) == getattr(params, name), name
        field = AWRSFields.__annotations__.get(name)
        assert field is not None, f"LangChain models lack {name}"
        assert getattr(AWRSFields, name) == getattr(params, name), name
    assert _default(generate_batch, "max_tokens") == DEFAULT_MAX_TOKENS
    gen = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for cmd in ("generate", "serve"):
        assert gen[cmd].get_default("max_tokens") == DEFAULT_MAX_TOKENS, cmd
    assert Limits().default_max_tokens == DEFAULT_MAX_TOKENS


def _dies_often() -> tuple[FunctionLM, Predicate]:
    # the text must end in 'a'; the model mostly writes b's and ends: most particles die
    lm = FunctionLM([b"a", b"b", b""], 2,
                    lambda p: [math.log(0.02), math.log(0.49), math.log(0.49)] if p else
                    [math.log(0.02), math.log(0.98), -math.inf])
    return lm, Predicate(complete=lambda s: s.endswith("a"), prefix=lambda s: True)


def test_generate_retries_when_every_particle_died():
    """max_retries draws again from the seed's generator: a seed whose first run leaves
    no particle succeeds on a retry, and the retried run equals the second draw of the
    same generator. Broken variant caught: max_retries ignored (result not ok)."""
    lm, c = _dies_often()
    seed = next(s for s in range(200)
                if not generate(lm, None, c, num_particles=2, max_tokens=3, seed=s,
                                ess_threshold=0).ok)
    r = generate(lm, None, c, num_particles=2, max_tokens=3, seed=seed, ess_threshold=0,
                 max_retries=50)
    assert r.ok and r.mode.endswith("a")
    rng = np.random.default_rng(seed)
    while not (again := generate(lm, None, c, num_particles=2, max_tokens=3, seed=rng,
                                 ess_threshold=0)).ok:
        pass
    assert again.posterior == r.posterior


def test_generate_takes_timeout_estimator_and_stop():
    lm, c, T = ends_with_a()
    a = generate(lm, None, c, num_particles=16, max_tokens=T, seed=1, estimator="geometric")
    assert a.ok and set(a.posterior) <= {"a", "aa", "ba"}
    with pytest.raises(ConfigError, match="estimator"):
        generate(lm, None, c, estimator="exact")
    slow = Predicate(complete=lambda s: True, prefix=lambda s: (threading.Event().wait(0.05), True)[1])
    with pytest.raises(GenerationTimeoutError, match="timeout=0.2"):
        generate(FunctionLM([b"a", b"b", b""], 2, lambda p: [0.0, 0.0, -9.0]), None, slow,
                 num_particles=4, max_tokens=50, timeout=0.2, seed=0)
    s = generate(hashed_lm([b"a", b"b", b""], 2, seed=1), None, None, num_particles=4,
                 max_tokens=12, seed=0, stop=["b"])
    assert all("b" not in t for t in s.posterior)


def test_stream_yields_committed_text_steps_and_the_result():
    """The text pieces add up to result.mode, one step event per engine step, the
    result last; the same run as generate with the seed."""
    lm = hashed_lm([b"a", b"b", b"c", b""], 3, seed=2, eos_bias=-1.0)
    c = Predicate(complete=lambda s: len(s) >= 3)
    events = list(stream(lm, None, c, num_particles=4, max_tokens=8, seed=4))
    assert all(isinstance(e, Event) for e in events) and events[-1].kind == "done"
    res = events[-1].result
    ref = generate(lm, None, c, num_particles=4, max_tokens=8, seed=4)
    assert res is not None and res.posterior == ref.posterior and res.log_ml == ref.log_ml
    assert "".join(e.text for e in events if e.kind == "text") == res.mode
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(1, res.stats.steps + 1))
    assert all(0 <= e.live <= 4 and e.ess >= 0 for e in steps)


def test_leaving_a_stream_stops_the_run():
    """After the consumer breaks out, the run ends at its next step instead of running
    to max_tokens. Broken variant caught: the cancel event not passed on (all 400 steps run)."""
    seen = []
    c = Predicate(complete=lambda s: seen.append(len(s)) or False)  # never accepted
    lm = FunctionLM([b"a", b""], 1, lambda p: [0.0, -math.inf])  # never ends
    it = stream(lm, None, c, num_particles=2, max_tokens=400, seed=0)
    for e in it:
        if e.kind == "step" and e.step == 3:
            break
    it.close()
    threading.Event().wait(0.5)
    steps_seen = len(seen)
    threading.Event().wait(0.3)
    assert len(seen) == steps_seen  # nothing runs any more
    assert max((n for n in seen), default=0) < 50


def test_stream_refuses_callbacks_and_raises_errors_in_the_loop():
    lm, c, T = ends_with_a()
    with pytest.raises(ConfigError, match="on_text"):
        next(stream(lm, None, c, on_text=print))
    with pytest.raises(ConfigError, match="num_particles"):
        list(stream(lm, None, c, num_particles=0))


def test_progress_bar(capsys):
    lm, c, T = ends_with_a()
    generate(lm, None, c, max_tokens=T, seed=0, progress=True)
    assert "tokens" in capsys.readouterr().err


def test_one_serialisation_of_a_result():
    """SMCResult.to_dict is plain JSON and is what the LangChain metadata and
    particle_table carry (one serialiser, not four)."""
    import json

    from awrs_adapters.integrations.langchain import ChatAWRS
    from awrs_adapters.streaming import particle_table

    lm, c, T = ends_with_a()
    r = generate(lm, None, c, num_particles=16, max_tokens=T, seed=3)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["ok"] and d["mode"] == r.mode and d["posterior"] == r.posterior
    assert abs(sum(p["weight"] for p in d["particles"]) - 1) < 1e-9
    assert [p["text"] for p in d["particles"]] == [p.text for p in r.particles]
    assert d["stats"]["tokens"] == r.stats.tokens and d["log_ml"] == r.log_ml
    assert particle_table(r) == r.to_dict()["particles"]
    meta = ChatAWRS(lm=lm, constraint=c, num_particles=16, max_tokens=T, seed=3).invoke(
        "x").response_metadata
    assert meta["particles"] == d["particles"] and meta["posterior"] == d["posterior"]
    dead = generate(lm, None, lambda s: False, num_particles=2, max_tokens=T, seed=0)
    assert json.loads(json.dumps(dead.to_dict()))["text"] is None
