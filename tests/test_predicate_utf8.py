"""Predicate prefix checks on tokens that end inside a multi-byte UTF-8 character.

A token may carry part of a character (``b"\\xc3"`` of "é"). The prefix check then asks
whether some way to finish the character keeps the text viable (one byte missing: at most
64 options), and holds the character back otherwise. Either way the check stays sound:
with or without prefix checks the exact posterior is the same.
"""

from __future__ import annotations

import pytest

from awrs_adapters.constraints import Predicate
from awrs_adapters.testing import exact_posterior, total_variation
from awrs_adapters.vocab import Vocabulary

from conftest import hashed_lm

# "a", both bytes of "é" (c3 a9) apart and together, "中" (e4 b8 ad) in pieces, EOS
TOKENS = [b"a", b"\xc3", b"\xa9", b"\xc3\xa9", b"\xe4", b"\xb8\xad", b"\xe4\xb8", b"\xad", b""]
EOS = len(TOKENS) - 1


def only(chars: str) -> Predicate:
    allowed = set(chars)
    return Predicate(complete=lambda s: bool(s) and set(s) <= allowed,
                     prefix=lambda s: set(s) <= allowed, name=f"only {chars!r}")


def check(pred: Predicate, prefix: bytes, token: bytes) -> bool:
    vocab = Vocabulary(TOKENS, EOS)
    bound = pred.bind(vocab)
    return bound.check(prefix, TOKENS.index(token))


def test_a_fragment_is_rejected_when_no_way_to_finish_the_character_fits():
    assert not check(only("a"), b"a", b"\xc3")        # no "é" allowed: c3 is a dead end
    assert check(only("aé"), b"a", b"\xc3")           # c3 may become "é"
    assert check(only("aé"), b"a\xc3", b"\xa9")       # and does
    assert not check(only("a"), b"a", b"\xe4\xb8")    # one byte from "中"-like CJK: none fit
    assert check(only("a中"), b"a", b"\xe4\xb8")
    # two bytes missing (4,096 options): rejected at once where none fits
    assert not check(only("a"), b"a", b"\xe4")
    assert check(only("a中"), b"a", b"\xe4")
    assert not check(only("a中"), b"a\xe4", b"\xe4")  # breaks the character: U+FFFD


def test_three_bytes_missing_and_the_lookahead_bound():
    vocab = Vocabulary([b"a", b"\xf0", b"\xf0\x9f", b""], 3)
    emoji = "\U0001f600"

    def only_(chars: str, lookahead: int) -> Predicate:
        return Predicate(complete=lambda s: True, prefix=lambda s: set(s) <= set(chars),
                         lookahead=lookahead)

    everything = 0x40000 - 0x10000  # every character an f0 can begin
    assert not only_("a", everything).bind(vocab).check(b"a", 1)
    assert only_("a" + emoji, everything).bind(vocab).check(b"a", 1)  # found, 62,976 in
    assert not only_("a", 4096).bind(vocab).check(b"a", 2)  # f0 9f: 4,096 options
    assert only_("a" + emoji, 4096).bind(vocab).check(b"a", 2)
    # past the bound a lone f0 is held back (accepted, sound); a drawn token continuing
    # it is resolved two bytes short (4,096 options), a sweep holds it back until one
    # byte short, where its 64 options decide
    bound = only_("a", 4096).bind(Vocabulary([b"a", b"\xf0", b"\x9f", b"\x9f\x98", b""], 4))
    assert bound.check(b"a", 1) and bound.sweep_check(b"a", 1)
    assert not bound.check(b"a\xf0", 2)
    assert bound.sweep_check(b"a\xf0", 2)
    assert not bound.check(b"a\xf0", 3) and not bound.sweep_check(b"a\xf0", 3)


def test_a_lone_four_byte_lead_is_resolved_by_default():
    # the dead end the dev split showed: "a" then a lone f0 where only ASCII may follow
    vocab = Vocabulary([b"a", b"\xf0", b"\xf3", b"\xf4", b"\x9f", b""], 5)
    emoji = "\U0001f600"
    calls: list[str] = []

    def counted(allowed: str) -> Predicate:
        def prefix(s: str) -> bool:
            calls.append(s)
            return set(s) <= set(allowed)
        return Predicate(complete=lambda s: True, prefix=prefix)

    bound = counted("a").bind(vocab)
    for lead in (1, 2, 3):
        assert not bound.check(b"a", lead)
        assert bound.sweep_check(b"a", lead)  # a sweep holds it back (sound, cheap)
    n = len(calls)
    assert n > 0x30000 + 0x40000 + 0x10000  # every character each lead could begin
    assert not bound.check(b"a", 2) and len(calls) == n  # cached per text
    # where a character fits, assigned characters come first: the emoji is found long
    # before the 62,976 code points below it that precede it in plain order
    calls.clear()
    assert counted("a" + emoji).bind(vocab).check(b"a", 1)
    assert len(calls) < 62_976


def test_undecodable_bytes_are_read_as_replacement_characters():
    # e0 80 can never become a character: the finished text reads U+FFFD U+FFFD, and a
    # prefix function that accepts them must see them (it used to be rejected outright)
    vocab = Vocabulary([b"a", b"\xe0", b"\x80", b"\xc3", b"\xa9", b""], 5)
    no_x = Predicate(complete=lambda s: "x" not in s, prefix=lambda s: "x" not in s)
    bound = no_x.bind(vocab)
    assert bound.check(b"\xe0", 2)
    assert bound.check(b"a\xc3", 0)     # "é" broken by "a": U+FFFD then "a"
    assert bound.check(b"\xc3", 5)      # ends inside a character: "\ufffd" is accepted


def test_invalid_sequences_are_rejected():
    vocab = Vocabulary([b"\xe0", b"\x80", b""], 2)
    bound = only("aé").bind(vocab)
    # e0 80 .. is an overlong form: no byte can finish it into a character
    assert not bound.check(b"\xe0", 1)


@pytest.mark.parametrize("chars", ["a", "aé", "a中", "é中"])
def test_prefix_checks_do_not_change_the_exact_posterior(chars):
    lm = hashed_lm(TOKENS, EOS, seed=3)
    with_prefix = only(chars)
    end_only = Predicate(complete=with_prefix.complete_fn)
    p1, z1 = exact_posterior(lm, with_prefix, 4)
    p2, z2 = exact_posterior(lm, end_only, 4)
    assert z1 == pytest.approx(z2, rel=1e-12) and z1 > 0
    assert total_variation(p1, p2) < 1e-12


def test_the_lookahead_budget_bounds_the_calls_of_one_generation():
    vocab = Vocabulary([b"a", b"\xf0", b"\xf3", b"\xf4", b""], 4)
    calls = [0]

    def prefix(s: str) -> bool:
        calls[0] += 1
        return set(s) <= {"a"}

    bound = Predicate(complete=lambda s: True, prefix=prefix,
                      lookahead_budget=300_000).bind(vocab)
    assert not bound.check(b"a", 1)             # f0: 196,608 characters tried, none fits
    spent = calls[0]
    assert bound.check(b"a", 2)                 # f3 (262,144) exceeds what is left: held back
    assert calls[0] - spent <= 2                # (only the text and U+FFFD were tried)
    assert not bound.check(b"aa", 3)            # f4 (65,536) still fits the budget
    assert calls[0] <= 300_000 + 10
    with pytest.raises(Exception, match="lookahead_budget"):
        Predicate(complete=lambda s: True, lookahead_budget=-1)
