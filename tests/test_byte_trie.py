"""The byte trie over the vocabulary and the subtree rejections built on it.

A prefix check that fails on ``text + s`` rejects every token whose bytes start with
``s``: AWRS removes the subtree and its mass at once, ``mask-smc`` jumps over it. The
checks here compare with references computed token by token from the complete
definition (every token classified by the predicate on its own text), and count calls.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from awrs_adapters import AWRS
from awrs_adapters.constraints import Predicate
from awrs_adapters.proposals import MaskSampler
from awrs_adapters.testing import check_proper_weighting
from awrs_adapters.vocab import Vocabulary

# every string of 1-3 letters over "abx": 39 tokens sharing prefixes, then EOS
WORDS = [("".join(w)).encode() for n in (1, 2, 3) for w in itertools.product("abx", repeat=n)]
VOCAB = Vocabulary(WORDS + [b""], len(WORDS))
EOS = len(WORDS)


def test_spans_are_exactly_the_tokens_with_that_prefix():
    trie = VOCAB.trie
    for s in [b"a", b"ab", b"x", b"xx", b"abx", b"b", b"c", b"\xff"]:
        got = sorted(trie.with_prefix(s).tolist())
        want = [i for i, t in enumerate(VOCAB.tokens) if t and t.startswith(s) and i != EOS]
        assert got == want, s
    v = Vocabulary([b"a", b"", b"a\xff", b"\xff", b"b"], 1, special_ids=[4])
    assert sorted(v.trie.with_prefix(b"a").tolist()) == [0, 2]  # EOS and specials left out
    assert v.trie.with_prefix(b"b").tolist() == []


class Calls:
    def __init__(self):
        self.n = 0

    def no_x(self, s: str) -> bool:
        self.n += 1
        return "x" not in s


def row(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(len(VOCAB.tokens), generator=g, dtype=torch.float64), 0)


def test_awrs_rejects_dead_subtrees_and_stays_properly_weighted():
    calls = Calls()
    c = Predicate(complete=lambda s: "x" not in s, prefix=calls.no_x)
    bound = c.bind(VOCAB)
    lp = row(0)
    rep = check_proper_weighting(AWRS(), lp, bound, b"a", n=3000, rng=np.random.default_rng(0))
    rep.assert_ok()
    # a dead end: after "x" nothing passes; one call per first byte proves it
    dead = Predicate(complete=lambda s: False, prefix=calls.no_x).bind(VOCAB)
    calls.n = 0
    draws = AWRS().sample(lp.reshape(1, -1), dead, [b"x"], np.random.default_rng(1))
    assert draws[0].token is None
    assert calls.n <= 6, calls.n  # 39 tokens, three subtrees (a, b, x) and EOS


def test_mask_sweep_jumps_over_dead_subtrees():
    calls = Calls()
    bound = Predicate(complete=lambda s: "x" not in s, prefix=calls.no_x).bind(VOCAB)
    lp = row(2)
    d = MaskSampler().sample(lp.reshape(1, -1), bound, [b""], np.random.default_rng(0))[0]
    ok = [i for i, t in enumerate(VOCAB.tokens) if i != EOS and b"x" not in t] + [EOS]
    Z = float(torch.exp(lp[ok]).sum())
    assert math.exp(d.log_weight) == pytest.approx(Z, rel=1e-12)
    assert d.checks < len(VOCAB.tokens)  # the 13 tokens starting with "x": one check
