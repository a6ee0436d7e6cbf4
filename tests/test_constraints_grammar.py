"""Grammar (Lark syntax via llguidance): agreement with Lark itself (on text, on the token
language and in the posterior), token-level automaton, matchers never mutated, bad grammars."""

from __future__ import annotations

import random

import lark
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from independent import (
    check_sampler_against,
    language_mismatches,
    lark_reference,
)

from awrs_adapters import ConstraintError, generate
from awrs_adapters.constraints import Grammar
from awrs_adapters.lm import FunctionLM
from awrs_adapters.vocab import Vocabulary

from conftest import hashed_lm

GRAMMARS = {
    "arith": """
start: expr
expr: term (("+" | "-") term)*
term: factor (("*" | "/") factor)*
factor: NUMBER | "(" expr ")"
NUMBER: /[0-9]+/
""",
    "list": """
start: "[" [item ("," item)*] "]"
item: WORD | "true" | "false" | start
WORD: /[a-z]+/
""",
    "parens": """
start: p*
p: "(" p* ")"
""",
    "ignore": """
start: "a" "b"+ NAME?
NAME: /[xyz]+/
%ignore " "
""",
}
ALPHABET = {"arith": "0123456789+-*/()", "list": "[],abtruefalsz", "parens": "()",
            "ignore": "abxyz "}


def _gen_arith(r: random.Random, d: int = 0) -> str:
    def factor() -> str:
        return str(r.randint(0, 120)) if d > 2 or r.random() < 0.6 else "(" + _gen_arith(r, d + 1) + ")"

    def term() -> str:
        return factor() + "".join(r.choice("*/") + factor() for _ in range(r.randint(0, 2)))

    return term() + "".join(r.choice("+-") + term() for _ in range(r.randint(0, 2)))


def _gen_list(r: random.Random, d: int = 0) -> str:
    items = [r.choice(["true", "false", "ab", "zz", "t"]) if d > 1 or r.random() < 0.7
             else _gen_list(r, d + 1) for _ in range(r.randint(0, 3))]
    return "[" + ",".join(items) + "]"


def _gen_parens(r: random.Random, d: int = 0) -> str:
    return "".join("(" + (_gen_parens(r, d + 1) if d < 3 else "") + ")" for _ in range(r.randint(0, 2)))


def _gen_ignore(r: random.Random) -> str:
    parts = ["a"] + ["b"] * r.randint(1, 3) + ([r.choice(["x", "yz", "zzy"])] if r.random() < 0.5 else [])
    return r.choice(["", " "]).join(parts)


GENERATORS = {"arith": _gen_arith, "list": _gen_list, "parens": _gen_parens, "ignore": _gen_ignore}
_CACHE: dict[str, tuple[Grammar, lark.Lark]] = {}


def _pair(name: str) -> tuple[Grammar, lark.Lark]:
    if name not in _CACHE:
        _CACHE[name] = (Grammar(GRAMMARS[name]), lark.Lark(GRAMMARS[name]))
    return _CACHE[name]


def _lark_accepts(parser: lark.Lark, text: str) -> bool:
    try:
        parser.parse(text)
    except lark.exceptions.LarkError:
        return False
    return True


@st.composite
def grammar_strings(draw):
    name = draw(st.sampled_from(sorted(GRAMMARS)))
    if draw(st.booleans()):
        text = GENERATORS[name](random.Random(draw(st.integers(0, 10**6))))
    else:
        text = draw(st.text(alphabet=ALPHABET[name], max_size=10))
    return name, text


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(grammar_strings())
def test_accepts_agrees_with_lark(case):
    name, text = case
    # llguidance does not skip %ignore'd text before the first or after the last lexeme
    assume(name != "ignore" or text == text.strip(" "))
    g, parser = _pair(name)
    assert g.accepts(text) == _lark_accepts(parser, text), (name, text)


def test_generated_strings_are_accepted():
    r = random.Random(0)
    for name, gen in GENERATORS.items():
        g, parser = _pair(name)
        for _ in range(30):
            s = gen(r)
            assert _lark_accepts(parser, s) and g.accepts(s), (name, s)


# token-level: multi-byte tokens over the arithmetic alphabet
TOKS = [c.encode() for c in "0123456789+-*/()"] + [b"12", b"(1", b"+(", b"))", b"1+", b"0)", b"", b""]
SPECIAL, EOS = len(TOKS) - 2, len(TOKS) - 1
VOCAB = Vocabulary(TOKS, EOS, special_ids=[SPECIAL])


def _segment(data: bytes, draw) -> list[int]:
    out, i = [], 0
    while i < len(data):
        cands = [t for t in range(SPECIAL) if data.startswith(TOKS[t], i)]
        t = draw(st.sampled_from(cands))
        out.append(t)
        i += len(TOKS[t])
    return out


_ARITH_BOUND = Grammar(GRAMMARS["arith"]).bind(VOCAB)


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.integers(0, 10**6).map(lambda k: _gen_arith(random.Random(k))),
                 st.text(alphabet=ALPHABET["arith"], max_size=8)), st.data())
def test_token_automaton_agrees_with_accepts(text, data):
    g, parser = _pair("arith")
    expected = _lark_accepts(parser, text)
    b = _ARITH_BOUND
    s = b.initial_state()
    for y in _segment(text.encode(), data.draw):
        mask = b.fast_mask(s)
        ok = b.check(s, y)
        assert mask[y] == ok and not mask[SPECIAL]
        if not ok:
            assert not expected, text
            return
        s = b.advance(s, y)
    assert b.check(s, EOS) == expected == b.fast_mask(s)[EOS]


def test_mask_equals_checks_where_bytes_are_forced():
    # where the grammar forces bytes, llguidance's own bitmask admits only their
    # canonical tokenisation; the bound's mask must still equal its checks
    toks = [b"x", b"a", b"ab", b"c", b"b", b"abc", b"xab", b"y", b"abcd", b"d", b""]
    v = Vocabulary(toks, 10)
    b = Grammar('start: ("x" | "y") "ab" "c" "d"?').bind(v)
    frontier = [b.initial_state()]
    for _ in range(12):
        if not frontier:
            break
        s = frontier.pop()
        checks = [b.check(s, t) for t in range(len(toks))]
        assert b.fast_mask(s).tolist() == checks
        frontier.extend(b.advance(s, t) for t in range(10) if checks[t])
    s = b.advance(b.initial_state(), 0)  # after "x", "abc" is forced: a, ab, abc, abcd all valid
    assert [t for t in range(11) if b.check(s, t)] == [1, 2, 5, 8]


def test_states_are_never_mutated():
    b = _ARITH_BOUND
    s0 = b.initial_state()
    s1 = b.advance(s0, TOKS.index(b"(1"))
    before = b.fast_mask(s1).copy()
    a = b.advance(s1, TOKS.index(b"+"))
    c = b.advance(s1, TOKS.index(b")"))
    assert b.check(c, EOS) and not b.check(a, EOS)
    assert b.advance(s1, TOKS.index(b"+")) is a  # shared child, not a second fork
    b._masks.clear()
    np.testing.assert_array_equal(b.fast_mask(s1), before)
    assert not b.check(s1, EOS) and b.check(s1, TOKS.index(b"0)"))


@pytest.mark.parametrize("text, part", [
    ("start: (", "Expected token"),
    ("start: foo", 'unknown name: "foo"'),
    ("start: /(?=a)b/", "look-around"),
    ("", "not a grammar"),
])
def test_bad_grammar_names_the_offending_part(text, part):
    with pytest.raises(ConstraintError, match=part):
        Grammar(text)


def test_generate_with_a_grammar():
    lm = FunctionLM(TOKS, EOS, lambda p: np.zeros(len(TOKS)))
    r = generate(lm, None, Grammar(GRAMMARS["arith"]), num_particles=16, max_tokens=6, seed=0)
    _, parser = _pair("arith")
    assert r.ok
    assert all(_lark_accepts(parser, p.text) for p in r.particles if p.finished)


def test_grammar_the_vocabulary_cannot_finish_ends_with_a_hint():
    lm = FunctionLM([b"a", b"c", b""], 2, lambda p: [0.0, 0.0, 0.0])
    r = generate(lm, None, Grammar('start: "a" "b"'), num_particles=4, max_tokens=4, seed=0)
    assert not r.ok and "particles died" in r.hint


# -- the sampler's language against Lark's own parser (issue 24) -------------------------
# The reference is Lark (LALR here: the same language as its Earley default for these
# grammars, and fast enough to parse every text of a small vocabulary); the sampler's
# side walks llguidance's bound (checks, masks). Nothing is shared.
def _vocab(*toks: str) -> Vocabulary:
    return Vocabulary([t.encode() for t in toks] + [b""], len(toks))


LANGUAGE_CASES = {
    "arith": (_vocab("1", "12", "+", "*", "(", ")", "(1", "1+", "2)"), 4),
    "list": (_vocab("[", "]", ",", "a,", "true", "[t", "rue", "b]", "a", ",["), 4),
    "parens": (_vocab("(", ")", "((", "))", "()", ")("), 5),
}


@pytest.mark.parametrize("name", sorted(LANGUAGE_CASES))
def test_token_language_equals_lark(name):
    """Every token sequence of a small vocabulary (multi-byte tokens across lexemes) up
    to the depth: llguidance's bound accepts it (checks, then EOS; masks equal to the
    checks) iff Lark parses its text.

    Broken variants seen failing (monkeypatched): Grammar compiling a grammar one rule
    off for both ``accepts`` and ``bind`` (``"(" expr ")"`` as ``"(" term ")"``, ``"(" p*
    ")"`` as ``"(" p? ")"``, ``item ("," item)*`` as ``item ("," item)?``), which the
    self-referential reference cannot see.
    """
    vocab, depth = LANGUAGE_CASES[name]
    bad, _, n_ref = language_mismatches(Grammar(GRAMMARS[name]), vocab, depth,
                                        lark_reference(GRAMMARS[name]))
    assert not bad, bad[:5]
    assert n_ref > 50


def test_the_language_comparison_sees_a_wrong_grammar():
    """Control: the sampler of a grammar one symbol off (parenthesised terms, not
    expressions) against the intended grammar's reference disagrees (on "(1+1)")."""
    vocab, depth = LANGUAGE_CASES["arith"]
    wrong = GRAMMARS["arith"].replace('"(" expr ")"', '"(" term ")"')
    bad, _, _ = language_mismatches(Grammar(wrong), vocab, depth,
                                    lark_reference(GRAMMARS["arith"]), masks=False)
    assert "(1+1)" in {text for text, _, _ in bad}


@pytest.mark.xfail(strict=True, reason=(
    "library bug: Grammar (llguidance) does not skip %ignore'd text before the first or "
    "after the last lexeme ('ab ', ' ab' are rejected; Lark accepts them), so a "
    "grammar with %ignore samples a smaller language than the Lark grammar it is given"))
def test_ignored_text_at_either_end_is_skipped_as_lark_does():
    vocab = _vocab("a", "b", "ab", " ", "x", "yz", " b", "b ")
    bad, _, _ = language_mismatches(Grammar(GRAMMARS["ignore"]), vocab, 4,
                                    lark_reference(GRAMMARS["ignore"]))
    assert not bad, bad[:5]


def test_awrs_smc_samples_the_posterior_of_lark():
    """The exact posterior with Lark as the constraint (reference) against the target
    llguidance's checks define (exact, TV < 1e-12) and one AWRS-SMC run (2,000
    particles, seed 0; TV < 0.12: seeds 0-7 measured 0.04-0.06; LCD is at 0.28).

    Broken variants seen failing: the sampler given ``("ab" | "b")*`` for ``+`` (implied
    TV 0.38, sampled 0.34), ``"a"*`` for ``"a"?`` (implied 0.08, sampled 0.11).
    """
    grammar = 'start: ("ab" | "b")+ "a"?'
    lm = hashed_lm([b"a", b"b", b"ab", b"ba", b""], 4, seed=5)
    check_sampler_against(lm, Grammar(grammar), lark_reference(grammar), 4, lcd_gap=0.12,
                          num_particles=2000)


@pytest.mark.parametrize("family", ["byte_level", "sentencepiece"])
def test_llguidance_reads_the_tokenizer_as_we_do(family):
    """llguidance's own tokenizer (llguidance.hf) gives every token the bytes of
    lm/tokenizer_bytes.py and the same control tokens, so grammars use it; ours stays the
    fallback and this comparison (it fails when one table is changed, e.g. a token's
    bytes swapped) is the test of both."""
    import llguidance.hf

    from awrs_adapters.constraints.grammar import (
        _GreedyTokenizer,
        ll_token_mismatches,
        ll_tokenizer,
    )
    from awrs_adapters.lm.tokenizer_bytes import vocabulary_from_tokenizer

    from test_transformers_lm import get_tokenizer

    tok = get_tokenizer(family)
    vocab = vocabulary_from_tokenizer(tok, [tok.eos_token_id])
    ll = llguidance.hf.from_tokenizer(tok, n_vocab=vocab.size, eos_token=vocab.eos_token_id)
    assert ll_token_mismatches(ll, vocab) == []
    assert ll_tokenizer(vocab).is_special_token(vocab.eos_token_id)
    a, b = [i for i, t in enumerate(vocab.tokens) if t and i not in vocab.special_ids][:2]
    table = list(vocab.tokens)
    table[a], table[b] = table[b], table[a]
    swapped = Vocabulary(table, vocab.eos_token_id, special_ids=vocab.special_ids)
    assert ll_token_mismatches(ll, swapped) == [a, b]
    ours = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_GreedyTokenizer(vocab)),
                                  n_vocab=vocab.size, eos_token=vocab.eos_token_id)
    assert ll_token_mismatches(ours, vocab) == []
