"""Regular expressions as fast token constraints.

Overview: :class:`Regex` compiles to an outlines-core ``Index`` over the model's byte
vocabulary (:class:`~.index.IndexBound`): the particle state is an ``int``, a check is
one ``get_next_state`` call (O(1)), and the exact allowed-token mask is available for
the AWRS switch. EOS is valid exactly when the text so far matches the whole pattern.
Compiled indexes are cached in memory and on disk (:mod:`.cache`).

``accepts(text)`` is the whole-string check, independent of any tokenizer: the same
pattern run over a one-byte-per-token vocabulary.

Regex syntax is that of Rust's ``regex`` crate (as in Outlines), implicitly anchored at
both ends like Python's ``re.fullmatch``; a leading ``^`` and a trailing ``$`` are
dropped; look-around, backreferences and ``\\b`` are not supported. A pattern is
checked when made: syntax (llguidance's parser message, :mod:`.regex_errors`), size
(:func:`expansion`, at most :data:`MAX_EXPANSION`) and compilation.

Example::

    >>> from awrs_adapters.constraints import Regex
    >>> r = Regex(r"[0-9]{3}-[a-z]+")
    >>> assert r.accepts("123-abc") and not r.accepts("12-abc")
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from ..errors import ConstraintError
from ..protocol import BoundConstraint, TokenConstraint
from ..vocab import Vocabulary
from .index import IndexBound, index_accepts
from .index_cache import compiled_index
from .regex_errors import regex_diagnostic

__all__ = ["MAX_EXPANSION", "MAX_WEIGHTED_EXPANSION", "Regex", "expansion", "weighted_expansion"]


def _strip_anchors(pattern: str) -> str:
    """Drop a leading ``^`` / trailing ``$``; reject anchors elsewhere."""
    positions: list[int] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif c in "^$":
            positions.append(i)
        i += 1
    p = pattern
    if positions and positions[-1] == len(p) - 1 and p[-1] == "$":
        p = p[:-1]
        positions.pop()
    if positions and positions[0] == 0 and p[0] == "^":
        p = p[1:]
        positions = [x - 1 for x in positions[1:]]
    if positions:
        raise ConstraintError(
            f"pattern={pattern!r} has an anchor {pattern[positions[0]]!r} at position "
            f"{positions[0]}; patterns always match the whole output, so drop anchors "
            "(a leading ^ and a trailing $ are accepted and ignored)"
        )
    return p


#: Above this many unrolled positions a Regex is refused (a{10000} compiles in 1.8 s here).
MAX_EXPANSION = 10_000

#: Above this :func:`weighted_expansion` a Regex is refused. Each position counts
#: ``w ** 0.7``, ``w`` the number of UTF-8 byte sequences of its character class (1 for
#: a literal or an ASCII range, 10 for ``.``, 62 for ``\d``, 886 for ``\w``): the
#: compile time of outlines-core grows like the square of this count. Measured on 2 CPU
#: cores, compiling over the byte vocabulary as ``Regex()`` does (seconds; the count in
#: brackets): ``[a-z]{3000}`` 0.42 (3,000), ``\d{300}`` 1.3 (5,400), ``\w{100}`` 4.8
#: (11,600), ``.{3000}`` 15 (15,000), ``\w{150}`` 21 (17,400), ``\d{1000}`` 31 (18,000),
#: ``\w{300}`` 59 (34,900); so ``\w{3000}`` (349,000) would take hours. The same cap as
#: :data:`MAX_EXPANSION`, which a pattern of literals and ASCII ranges meets first.
MAX_WEIGHTED_EXPANSION = 10_000

#: UTF-8 byte sequences of the classes Python's parser keeps as categories (counted
#: from Python's Unicode tables; Rust's differ a little, which an estimate can bear)
_CATEGORY_SEQUENCES = {
    "CATEGORY_DIGIT": 62, "CATEGORY_NOT_DIGIT": 180,
    "CATEGORY_SPACE": 10, "CATEGORY_NOT_SPACE": 25,
    "CATEGORY_WORD": 886, "CATEGORY_NOT_WORD": 888,
    "CATEGORY_LINEBREAK": 1, "CATEGORY_NOT_LINEBREAK": 10,
}
#: Rust-only Unicode classes, read for the estimate as ``\w`` (``\p{L}`` has 786
#: sequences); POSIX classes as one ASCII range
_RUST_ONLY = re.compile(r"\\[pP](\{[^}]*\}|[A-Za-z])|\[:\^?[a-z]+:\]")


def _utf8_sequences(lo: int, hi: int) -> int:
    """How many UTF-8 byte-range sequences encode the code points ``lo..hi`` (as the
    Rust regex crate splits a class before compiling it to bytes)."""
    n, todo = 0, [(lo, hi)]
    while todo:
        a, b = todo.pop()
        if a > b:
            continue
        if a <= 0xDFFF and b >= 0xD800:  # surrogates are not characters
            todo += [(a, min(b, 0xD7FF)), (max(a, 0xE000), b)]
            continue
        for top in (0x7F, 0x7FF, 0xFFFF):  # one encoded length per piece
            if a <= top < b:
                todo += [(a, top), (top + 1, b)]
                break
        else:
            length = 1 if b <= 0x7F else 2 if b <= 0x7FF else 3 if b <= 0xFFFF else 4
            for i in range(1, length):
                mask = (1 << (6 * i)) - 1
                if a & ~mask != b & ~mask:
                    if a & mask:
                        todo += [(a, a | mask), ((a | mask) + 1, b)]
                        break
                    if b & mask != mask:
                        todo += [(a, (b & ~mask) - 1), (b & ~mask, b)]
                        break
            else:
                n += 1
    return n


def _class_sequences(op: str, av: Any) -> int:
    """UTF-8 byte sequences of one position of Python's parse tree (1 for a literal)."""
    if op == "LITERAL":
        return 1
    if op == "NOT_LITERAL":
        return _utf8_sequences(0, av - 1) + _utf8_sequences(av + 1, 0x10FFFF)
    if op == "ANY":
        return _utf8_sequences(0, 9) + _utf8_sequences(11, 0x10FFFF)
    if op != "IN":
        return 1
    ranges: list[tuple[int, int]] = []
    cats = 0
    negate = False
    for kind, x in av:
        kind = str(kind)
        if kind == "NEGATE":
            negate = True
        elif kind == "LITERAL":
            ranges.append((x, x))
        elif kind == "RANGE":
            ranges.append(x)
        elif kind == "CATEGORY":
            cats += _CATEGORY_SEQUENCES.get(str(x), 886)
    ranges.sort()
    if negate:  # the complement of the listed ranges
        out, start = [], 0
        for a, b in ranges:
            if a > start:
                out.append((start, a - 1))
            start = max(start, b + 1)
        out.append((start, 0x10FFFF))
        ranges = out
    return max(1, cats + sum(_utf8_sequences(a, b) for a, b in ranges))


def _tree_size(pattern: str, weight: Any) -> float:
    """Unrolled size of ``pattern`` with each position counted as ``weight(op, av)``
    (0 when Python's parser cannot read it)."""
    try:
        import re._parser as sre  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as sre  # type: ignore[no-redef]
    try:
        with warnings.catch_warnings():  # e.g. "possible nested set" for [[:alpha:]]
            warnings.simplefilter("ignore")
            tree = sre.parse(pattern)
    except Exception:
        return 0
    cap = MAX_EXPANSION * 1000

    def size(items: Any) -> float:
        total: float = 0
        for op, av in items:
            name = str(op)
            if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                lo, hi, sub = av
                reps = hi if hi != sre.MAXREPEAT else lo + 1
                total += size(sub) * max(reps, 1)
            elif name == "SUBPATTERN":
                total += size(av[-1])
            elif name == "BRANCH":
                total += sum(size(b) for b in av[1])
            elif name == "ATOMIC_GROUP":
                total += size(av)
            else:
                total += weight(name, av)
            if total > cap:
                return cap
        return total

    return size(tree)


def expansion(pattern: str) -> int:
    """Positions of ``pattern`` with counted repetitions unrolled (0 when Python cannot parse it).

    A proxy for the size of the automaton outlines-core builds eagerly: ``a{100000}``
    is 100,000, ``(ab){3}c`` is 7. Parsed with Python's ``re`` parser, whose syntax
    covers the counted repetitions of Rust's; a pattern it cannot read is not judged.
    """
    return int(_tree_size(pattern, lambda op, av: 1))


def weighted_expansion(pattern: str) -> float:
    """:func:`expansion` with each position counted as ``w ** 0.7``, ``w`` the number of
    UTF-8 byte sequences of its character class: an estimate whose square grows like the
    compile time (see :data:`MAX_WEIGHTED_EXPANSION`). ``a{100}`` is 100, ``.{100}`` 501,
    ``\\w{100}`` 11,620. Rust-only classes (``\\p{L}``, ``[[:alpha:]]``) are read as
    ``\\w`` and as one ASCII range; a pattern Python cannot parse is 0 (not judged).
    """
    estimate = _RUST_ONLY.sub(
        lambda m: r"\w" if m.group(0).startswith("\\") else "a-z", pattern)
    return _tree_size(estimate, lambda op, av: _class_sequences(op, av) ** 0.7)


class Regex(TokenConstraint):
    """The output must match ``pattern`` as a whole (like ``re.fullmatch``).

    Args:
        pattern: a regular expression in the syntax of Rust's ``regex`` crate (Outlines'
            syntax); anchored at both ends.

    Raises:
        ConstraintError: the pattern is invalid or unsupported (look-around,
            backreferences, ``\\b``); the message carries outlines-core's error and a
            caret under the offending part.
    """

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str):
            raise ConstraintError(
                f"pattern={pattern!r} is not a string; pass a regular expression, e.g. "
                "Regex(r'[0-9]+')"
            )
        self.pattern = pattern
        self._compiled = _strip_anchors(pattern)
        self._validate()

    def _validate(self) -> None:
        detail = regex_diagnostic(self._compiled)
        if detail:
            raise ConstraintError(
                f"pattern={self.pattern!r} is not a valid regular expression: {detail}\n"
                "fix: use the syntax of Rust's regex crate without look-around, "
                "backreferences or \\b"
            )
        size = expansion(self._compiled)
        if size > MAX_EXPANSION:
            raise ConstraintError(
                f"pattern={self.pattern!r:.80} unrolls to about {size:,} positions (counted "
                f"repetitions multiply); outlines-core builds the whole automaton up front, "
                f"which past ~{MAX_EXPANSION:,} takes minutes and cannot be interrupted. Lower "
                "the counts, or use Grammar('start: /<pattern>/') (llguidance builds it "
                "lazily)")
        cost = weighted_expansion(self._compiled)
        if cost > MAX_WEIGHTED_EXPANSION:
            raise ConstraintError(
                f"pattern={self.pattern!r:.80} has an estimated automaton size of {cost:,.0f} "
                f"(positions weighted by how many UTF-8 byte sequences their classes take: "
                f"\\w counts 116, \\d 18, . 5, a literal 1); above "
                f"{MAX_WEIGHTED_EXPANSION:,} outlines-core's compile takes from seconds to "
                "hours and cannot be interrupted (\\w{300} took 59 s, \\w{3000} would take "
                "hours). Lower the counts or narrow the classes (e.g. [a-zA-Z0-9_] for \\w), "
                "use Grammar('start: /<pattern>/') (llguidance builds it lazily), or check "
                "it in Python: Predicate(complete=lambda s: bool(regex.fullmatch(p, s)), "
                "prefix=lambda s: bool(regex.fullmatch(p, s, partial=True))) with the "
                "'regex' package")
        from .grammar import byte_vocabulary

        compiled_index(byte_vocabulary(), self._compiled)  # raises ConstraintError

    def accepts(self, text: str) -> bool:
        return index_accepts(self._compiled, text)

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        return IndexBound(compiled_index(vocab, self._compiled), vocab)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"
