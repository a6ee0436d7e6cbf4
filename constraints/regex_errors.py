"""Error messages for regular expressions that cannot be compiled.

Overview: outlines-core's own errors rarely say where a pattern goes wrong.
:func:`regex_diagnostic` asks llguidance's parser (same Rust regex syntax) for a message
with a caret under the offending part; :func:`index_error_message` turns an outlines-core
compile failure into a message that says what to fix. :class:`~.regex.Regex`,
:class:`~.json_schema.JSONSchema` and the index cache (:mod:`.cache`) use them.

Example::

    >>> from awrs_adapters.constraints.regex_errors import regex_diagnostic
    >>> assert regex_diagnostic("[0-9]+") == ""
    >>> print(regex_diagnostic("(a"))      # llguidance's parser message, with a caret
    at 1(8): invalid regex "(a" (in regex): regex parse error:
        (a
        ^
    error: unclosed group
       1 | start: /(a/
                  ^
"""

from __future__ import annotations

__all__ = ["index_error_message", "regex_diagnostic"]


def index_error_message(pattern: str, err: Exception) -> str:
    """The message for outlines-core's failure ``err`` to compile ``pattern``, with a fix."""
    msg = str(err).strip()
    detail = regex_diagnostic(pattern)
    shown = pattern if len(pattern) <= 200 else pattern[:200] + "..."
    out = f"outlines-core cannot compile the pattern {shown!r}: {msg}"
    if detail:
        out += f"\n{detail}"
    if "incompatible" in msg and "characters: []" in msg:
        # no character at all leaves that state: the pattern itself matches nothing there
        out = (f"pattern {shown!r} can match no string: part of it accepts no character at "
               "all (an empty character class such as [^\\s\\S], or an intersection with "
               "nothing in common)\nfix: rewrite that part of the pattern")
    elif "incompatible" in msg:
        out += "\nfix: the vocabulary has no token for some character the pattern needs"
    else:
        out += (
            "\nfix: use the regex syntax of Rust's regex crate without look-around, "
            "backreferences or \\b word boundaries"
        )
    return out


def regex_diagnostic(pattern: str) -> str:
    """llguidance's parser message (with a caret under the offending part), or ''.

    Only syntax errors count: llguidance's own size limits say nothing about whether
    outlines-core can compile the pattern.
    """
    try:
        import llguidance

        g = llguidance.LLMatcher.grammar_from_regex(pattern)
        msg = llguidance.LLMatcher.validate_grammar(g) or ""
    except Exception:  # pragma: no cover - llguidance missing or changed
        return ""
    if any(w in msg for w in ("too big", "limit", "fuel", "too complex")):
        return ""
    return msg
