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

    from awrs_adapters.constraints import Regex
    r = Regex(r"[0-9]{3}-[a-z]+")
    assert r.accepts("123-abc") and not r.accepts("12-abc")
"""

from __future__ import annotations

from typing import Any

from ..constraint import BoundConstraint, TokenConstraint
from ..errors import ConstraintError
from ..vocab import Vocabulary
from .cache import compiled_index
from .index import IndexBound, index_accepts
from .regex_errors import regex_diagnostic

__all__ = ["MAX_EXPANSION", "Regex", "expansion"]


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


def expansion(pattern: str) -> int:
    """Positions of ``pattern`` with counted repetitions unrolled (0 when Python cannot parse it).

    A proxy for the size of the automaton outlines-core builds eagerly: ``a{100000}``
    is 100,000, ``(ab){3}c`` is 7. Parsed with Python's ``re`` parser, whose syntax
    covers the counted repetitions of Rust's; a pattern it cannot read is not judged.
    """
    try:
        import re._parser as sre  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as sre  # type: ignore[no-redef]
    try:
        tree = sre.parse(pattern)
    except Exception:
        return 0
    cap = MAX_EXPANSION * 1000

    def size(items: Any) -> int:
        total = 0
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
                total += 1
            if total > cap:
                return cap
        return total

    return size(tree)


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
        from .grammar import byte_vocabulary

        compiled_index(byte_vocabulary(), self._compiled)  # raises ConstraintError

    def accepts(self, text: str) -> bool:
        return index_accepts(self._compiled, text)

    def bind(self, vocab: Vocabulary) -> BoundConstraint:
        return IndexBound(compiled_index(vocab, self._compiled), vocab)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"
