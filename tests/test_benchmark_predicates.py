"""The pattern benchmark's predicate is sound: an unsound prefix check changes the target.

The benchmark once checked a prefix with ``regex.match(s, partial=True)`` and
``m.end() == len(s)``; ``match`` prefers a complete match of a shorter prefix to a partial
match of the whole text, so every extension of a text that already matched was rejected
(``(\\w+)(?=.*\\1).*\\1``: after "TT" it refused "TTT", which matches). Under that check a
text had to end the moment it first matched, and the benchmark measured that target
instead of the pattern's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from awrs_adapters.testing import check_prefix_soundness
from awrs_adapters.vocab import Vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import patterns  # noqa: E402  (benchmarks/patterns.py)

TOKENS = [b"T", b"h", b" ", b"1", b"a", b""]

#: patterns of the dev split where a match can be extended to a longer match, and some
#: where it cannot (anchored, atomic): the check must be sound on both
PATTERNS = [r"(\w+)(?=.*\1).*\1", r"^(.)(.)(.)(?:\1\2\3)+$", r"(?>(?:[a-z]++)(?:\d++))",
            r"\b(?!\w*[aeiou]\w*[aeiou])\w+\b", r"^(?:(.)(?:(?!\1).)*\1){3}$", r"a+1*"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_predicate_is_sound(pattern):
    vocab = Vocabulary(TOKENS, len(TOKENS) - 1)
    assert check_prefix_soundness(patterns.Counted(pattern).constraint(), vocab, 4) == []
