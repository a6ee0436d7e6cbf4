"""No swallowed errors, no silent time sinks (issue 24, items 1 and 3).

A validator or matcher that raises is a ConstraintError naming the keyword or the
grammar, never a silent accept (or a silent refusal of every text). A prefix function
that raises under ``errors="reject"`` rejects its own token only, and is counted. A slow
prefix function is stopped by the look-ahead's time budget, with one warning.

Each test names, in its docstring, the broken variant it was seen to fail on.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest

from awrs_adapters import ConstraintError, generate
from awrs_adapters.constraints import Grammar, JSONSchema, Predicate
from awrs_adapters.constraints.json_schema import SchemaCheck
from awrs_adapters.constraints.predicate import likely_first
from awrs_adapters.errors import ConfigError, LookaheadBudgetWarning
from awrs_adapters.lm import FunctionLM
from awrs_adapters.prefix_check import check_dead_prefix
from awrs_adapters.vocab import Vocabulary


# -- JSON schema: the end check ---------------------------------------------------------
@pytest.mark.parametrize("schema,ref,where", [
    ({"$ref": "http://example.com/person.json"}, "http://example.com/person.json", "at #"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
     "#/$defs/missing", "#/properties/a"),
])
def test_an_unresolvable_ref_is_refused_when_the_check_is_made(schema, ref, where):
    """Broken variant: SchemaCheck without ``self._check_refs()`` (and the old
    ``except Exception: ok = True``): made without a word, it accepted every output
    that reached the reference."""
    with pytest.raises(ConstraintError) as e:
        SchemaCheck(schema)
    msg = str(e.value)
    assert ref in msg and where in msg and "validate=False" in msg
    with pytest.raises(ConstraintError, match="cannot be resolved by the jsonschema check"):
        JSONSchema(schema)


def test_a_validator_that_cannot_decide_names_the_keyword_and_where_it_is():
    """Broken variant: ``_check`` with the old ``except Exception: ok = True`` (the
    validator cannot decide: leave it to the automaton) returns True for both texts."""
    # a relative reference under an $id is resolved when used, not when made
    c = SchemaCheck({"$id": "http://example.com/root.json", "type": "object",
                     "properties": {"a": {"$ref": "#/$defs/missing"}}})
    assert c('{"b": 1}')  # the reference is never reached: a verdict
    with pytest.raises(ConstraintError, match=r"keyword '\$ref'.*at #/properties/a"):
        c('{"a": 1}')

    # a format checker that raises (a bug, not a verdict) inside a nested subschema
    c = SchemaCheck({"type": "object", "properties": {
        "e": {"type": "array", "items": {"type": "string", "format": "email"}}}})

    def broken(value):
        raise KeyError("no such table")

    c.validator.format_checker.checkers["email"] = (broken, ())
    with pytest.raises(ConstraintError) as e:
        c('{"e": ["x@y.org"]}')
    msg = str(e.value)
    assert "keyword 'format'" in msg and "#/properties/e/items" in msg
    assert "KeyError" in msg and "validate=False" in msg
    assert isinstance(e.value.__cause__, KeyError)


def test_json_schema_accepts_reports_the_keyword_instead_of_accepting():
    """Broken variant: the old ``except Exception: ok = True``: ``accepts`` said True
    although the ``format`` keyword was never checked."""
    j = JSONSchema({"type": "object", "properties": {"e": {"type": "string", "format": "email"}},
                    "required": ["e"]})
    assert j.accepts('{"e": "x@y.org"}') and not j.accepts('{"e": "nope"}')

    def broken(value):
        raise RuntimeError("checker crashed")

    j._check.validator.format_checker.checkers["email"] = (broken, ())
    with pytest.raises(ConstraintError, match="keyword 'format'.*RuntimeError: checker crashed"):
        j.accepts('{"e": "z@y.org"}')


# -- grammars ---------------------------------------------------------------------------
def test_a_matcher_error_is_raised_with_llguidance_message_not_read_as_no():
    """Broken variant: ``ll_accepts`` with the old ``if base.is_error(): return False``
    (every text refused, no word)."""
    g = Grammar('start: "a" <|eos|>')  # valid Lark; names a token bytes do not have
    with pytest.raises(ConstraintError) as e:
        g.accepts("a")
    msg = str(e.value)
    assert "unknown special token" in msg and '<|eos|>' in msg
    assert 'grammar: start: "a" <|eos|>' in msg
    assert Grammar('start: "a"+').accepts("aa")  # a plain grammar is unaffected


# -- Predicate errors="reject" ----------------------------------------------------------
def _raises_on(bad: str, allowed: set[str]):
    def prefix(s: str) -> bool:
        if s == bad:
            raise IndexError(f"cannot read {s!r}")
        return set(s) <= allowed
    return prefix


def test_a_raising_prefix_call_rejects_its_token_only():
    """Broken variant: ``dead_prefix`` without the ``_status(...) is not False`` guard
    (and probes read as False): the raising "a" pruned every token starting with "a"
    ("ab" included), so no valid string was left and the run failed."""
    tokens = [b"a", b"ax", b"ab", b""]
    pred = Predicate(complete=lambda s: s == "ab", prefix=_raises_on("a", {"a", "b"}),
                     errors="reject", name="ab")
    bound = pred.bind(Vocabulary(tokens, 3))
    assert not bound.check(b"", 0)                 # "a" raised: rejected ...
    assert bound.dead_prefix(b"", 0) is None       # ... but proves nothing about "ab"
    assert not bound.check(b"", 1)                 # "ax" is really dead
    assert bound.dead_prefix(b"", 1) == 2          # (the raising probe "a" is skipped)
    assert bound.check(b"", 2)
    assert pred.errors_count == 1 and isinstance(pred.last_error, IndexError)
    # the shipped checker: no pruned subtree holds a token the definition allows
    report = check_dead_prefix(pred, Vocabulary(tokens, 3), depth=2)
    report.assert_ok()
    assert report.claims > 0

    # end to end: "a" holds most of the mass, so it is drawn first and rejected
    p = np.log([0.90, 0.05, 0.04, 0.01])
    lm = FunctionLM(tokens, 3, lambda prefix: p if not prefix else np.log([0.01, 0.01, 0.01, 0.97]))
    pred = Predicate(complete=lambda s: s == "ab", prefix=_raises_on("a", {"a", "b"}),
                     errors="reject", name="ab")
    r = generate(lm, None, pred, num_particles=4, max_tokens=3, seed=0)
    assert r.ok and set(r.posterior) == {"ab"}
    assert pred.errors_count == 1


def test_a_raising_call_inside_the_lookahead_prunes_nothing():
    """Broken variant: ``_some_char_fits`` reading a raising call as False (the old
    behaviour): the look-ahead of b"\\xc3" said dead, ``dead_prefix`` returned 1 and the
    valid token b"\\xc3\\xa9a" ("éa") was pruned with it."""
    def prefix(s: str) -> bool:
        if s.endswith("é"):
            raise ValueError("a bug at the end of the text")
        return set(s) <= {"a", "é"}

    tokens = [b"\xc3", b"\xc3\xa9a", b"a", b"x", b""]
    pred = Predicate(complete=lambda s: set(s) <= {"a", "é"}, prefix=prefix, errors="reject")
    bound = pred.bind(Vocabulary(tokens, 4))
    assert not bound.check(b"", 0)
    assert bound.dead_prefix(b"", 0) is None
    assert bound.check(b"", 1)                     # "éa" itself is fine
    assert pred.errors_count >= 1
    report = check_dead_prefix(pred, Vocabulary(tokens, 4), depth=3)
    report.assert_ok()
    assert report.claims > 0                       # ("x" is pruned, for a proven reason)


# -- the look-ahead's time budget --------------------------------------------------------
LEADS = [b"a", b"\xf0", b"\xf3", b"\xf4", b""]  # lone 4-byte leads: up to 262,144 chars


def _slow_prefix(calls: list[int], stop_after: int):
    def prefix(s: str) -> bool:
        calls[0] += 1
        if calls[0] > stop_after:  # the budget did not stop it: fail fast, not in minutes
            raise AssertionError(f"{calls[0]} calls: the look-ahead was not stopped")
        time.sleep(0.001)
        return set(s) <= {"a"}
    return prefix


def test_the_time_budget_stops_a_slow_lookahead_and_warns_once():
    """Broken variant: ``_some_char_fits`` without the clock check (and ``_budget_left``
    without the seconds test): the first look-ahead ran on past 2,000 calls of 1 ms (it
    would have taken about 200 s); and with ``self._bind`` not warning, no warning."""
    calls = [0]
    pred = Predicate(complete=lambda s: True, prefix=_slow_prefix(calls, 2000),
                     lookahead_seconds=0.2, name="slow letters")
    bound = pred.bind(Vocabulary(LEADS, 4))
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert bound.check(b"a", 1)        # out of time: the character is held back
        after_first = calls[0]
        assert bound.check(b"a", 2)        # spent: held back at once
        assert bound.check(b"aa", 3)
    elapsed = time.perf_counter() - t0
    assert 0.2 <= bound.lookahead_seconds_spent < 1.5 and elapsed < 3.0
    assert after_first < 1000 and calls[0] - after_first <= 2  # only the texts themselves
    assert bound.budget_bound == "lookahead_seconds"
    budget = [w for w in caught if issubclass(w.category, LookaheadBudgetWarning)]
    assert len(budget) == 1
    assert "'slow letters'" in str(budget[0].message)
    assert "lookahead_seconds=0.2" in str(budget[0].message)


def test_a_very_slow_function_overshoots_the_time_budget_by_one_call_at_most():
    """Broken variant: the clock read every 32 calls only (``slow = False``): 32 calls
    of 30 ms, about 1 s spent on a 0.3 s budget."""
    calls = [0]

    def prefix(s: str) -> bool:
        calls[0] += 1
        time.sleep(0.03)
        return set(s) <= {"a"}

    likely_first(range(0x10000, 0x40000))  # the order of b"\xf0"'s characters, cached
    bound = Predicate(complete=lambda s: True, prefix=prefix, lookahead_seconds=0.3,
                      name="very slow").bind(Vocabulary(LEADS, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LookaheadBudgetWarning)
        assert bound.check(b"a", 1)
    assert calls[0] <= 1 + 11                       # the text, then about 10 characters
    assert bound.lookahead_seconds_spent < 0.3 + 0.2


def test_the_call_budget_warns_once_naming_it_and_no_time_bound_is_kept():
    """Broken variant: ``_budget_left`` without ``self._bind("lookahead_budget")``: the
    call budget bound silently (no warning)."""
    pred = Predicate(complete=lambda s: True, prefix=lambda s: set(s) <= {"a"},
                     lookahead_budget=300_000, lookahead_seconds=None, name="letters")
    bound = pred.bind(Vocabulary(LEADS, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not bound.check(b"a", 1)    # 196,608 characters tried, none fits
        assert bound.check(b"a", 2)        # 262,144 > what is left: held back
        assert not bound.check(b"a", 3)    # 65,536 still fit: tried, no second warning
    budget = [w for w in caught if issubclass(w.category, LookaheadBudgetWarning)]
    assert len(budget) == 1 and "lookahead_budget=300,000 calls" in str(budget[0].message)
    assert bound.budget_bound == "lookahead_budget"


def test_a_fast_prefix_is_not_stopped_by_the_default_time_budget():
    """Broken variant: a default ``lookahead_seconds`` too small to reject one lone lead
    with a fast function (e.g. 0.01): b"\\xf0" would be held back instead of rejected."""
    pred = Predicate(complete=lambda s: True, prefix=lambda s: set(s) <= {"a"})
    bound = pred.bind(Vocabulary(LEADS, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LookaheadBudgetWarning)
        assert not bound.check(b"a", 1)
    assert bound.budget_bound is None and bound.lookahead_seconds_spent < 5.0


@pytest.mark.parametrize("value", [-1, math.nan, "5", True])
def test_bad_lookahead_seconds_is_a_config_error(value):
    """Broken variant: no check of ``lookahead_seconds`` in ``Predicate.__init__``."""
    with pytest.raises(ConfigError, match="lookahead_seconds="):
        Predicate(complete=lambda s: True, lookahead_seconds=value)
