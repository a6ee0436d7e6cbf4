"""References that owe nothing to the sampler, and the sampler's side to compare them with.

Issue 24: a test's reference is computed from the definition, never from the sampler's
own machinery (prefix checks, masks, the same compiled automaton). This module holds

* independent membership functions for the compiled constraints: Python's ``re`` for
  ``Regex``, ``json.loads`` + ``jsonschema`` for ``JSONSchema``, Lark's own parser for
  ``Grammar`` and a hand parser of the Hermes wire format + ``jsonschema`` (+ pydantic
  validators) for ``ToolCalls``;
* :func:`language_mismatches`: every token sequence of a small vocabulary up to a
  depth, walked through the bound constraint (what the sampler can produce: every token
  passes ``check``, then EOS passes) against the reference on its decoded text;
* :func:`implied_posterior`: the target the sampler's token checks define (``Q``
  restricted to the sequences every check and every ``dead_prefix`` pruning lets
  through), to compare with ``exact_posterior`` of the reference;

The "broken variants" the tests' docstrings name were seen failing by monkeypatching the
library from a pytest plugin (``-p``) kept outside the repository, one variant at a time.

Not a test module (pytest does not collect it); the test files import it as
``from independent import ...`` (``tests/`` is on ``sys.path`` as for ``conftest``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jsonschema
import lark
import numpy as np

from awrs_adapters.constraints import Predicate
from awrs_adapters.lm import FunctionLM
from awrs_adapters.protocol import as_constraint, split
from awrs_adapters.vocab import Vocabulary

Reference = Callable[[str], bool]


# -- independent membership ------------------------------------------------------------
def regex_reference(pattern: str) -> Reference:
    """``re.fullmatch`` (patterns in the common subset of Python's and Rust's syntax)."""
    compiled = re.compile(pattern)
    return lambda text: compiled.fullmatch(text) is not None


def lark_reference(grammar: str) -> Reference:
    """Lark's own parser on the grammar text: LALR(1) where the grammar allows it (the
    same language, ~5x faster), else its Earley default."""
    try:
        parser = lark.Lark(grammar, parser="lalr")
    except lark.exceptions.GrammarError:
        parser = lark.Lark(grammar)

    def accepts(text: str) -> bool:
        try:
            parser.parse(text)
        except lark.exceptions.LarkError:
            return False
        return True

    return accepts


def _duplicate_keys_refused(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate keys {keys}")
    return dict(pairs)


def _whitespace_runs(text: str) -> list[str]:
    """The runs of whitespace outside JSON strings (a hand scanner: quotes, escapes)."""
    runs, cur, in_string, escaped = [], "", False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch in " \t\n\r":
            cur += ch
            continue
        if cur:
            runs.append(cur)
            cur = ""
        in_string = ch == '"'
    return runs + ([cur] if cur else [])


def json_schema_reference(
    schema: Mapping[str, Any], *, key_order: bool = True, whitespace: str = "json",
) -> Reference:
    """``json.loads`` then ``jsonschema``, with the library's documented writing rules:

    * no whitespace before or after the value (``whitespace_pattern`` is whitespace
      *between* JSON tokens);
    * between tokens, ``whitespace="json"``: any JSON whitespace (llguidance's default);
      ``"[ ]?"``: at most one space (outlines-core's default);
    * no key twice in an object (``json.loads`` would keep the last);
    * with ``key_order``, object keys in the order of the schema's ``properties`` (the
      same keys in another order are not a string the constraint produces).
    """
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def ordered(value: Any, sub: Mapping[str, Any]) -> bool:
        if isinstance(value, dict):
            props = list(sub.get("properties", {}))
            ranks = [props.index(k) for k in value if k in props]
            return ranks == sorted(ranks) and all(
                ordered(v, sub.get("properties", {}).get(k, {})) for k, v in value.items())
        if isinstance(value, list):
            return all(ordered(v, sub.get("items", {})) for v in value)
        return True

    def accepts(text: str) -> bool:
        if text != text.strip(" \t\n\r"):
            return False
        if whitespace == "[ ]?" and any(run != " " for run in _whitespace_runs(text)):
            return False
        try:
            value = json.loads(text, object_pairs_hook=_duplicate_keys_refused)
        except ValueError:
            return False
        return validator.is_valid(value) and (not key_order or ordered(value, schema))

    return accepts


def tool_calls_reference(
    tools: Sequence[Mapping[str, Any]],
    *,
    choice: str = "auto",
    parallel: bool = False,
    validators: Mapping[str, type] | None = None,
) -> Reference:
    """The wire format of ``awrs_adapters.constraints.tools`` written out by hand.

    Free text (``choice`` auto/none): any non-empty text not starting with
    ``<tool_call>``. Calls: one (or, with ``parallel``, several joined by ``\\n``) of
    ``<tool_call>\\n`` + a JSON object + ``\\n</tool_call>``, where the object is exactly
    ``{"name": <a declared tool>, "arguments": {...}}`` in ``json.dumps`` spacing
    (re-serialising it gives the same text; it then holds no raw newline), the
    arguments valid under the tool's ``parameters`` schema with undeclared arguments
    refused (strict function calling) and, where a pydantic class is given, passing
    its validators.
    """
    params = {t["function"]["name"]: dict(t["function"]["parameters"]) for t in tools}
    checks = {}
    for name, schema in params.items():
        schema.setdefault("additionalProperties", False)
        checks[name] = json_schema_reference(schema)
    models = dict(validators or {})
    text_ok = choice in ("auto", "none")
    calls_ok = choice != "none"
    head, tail = "<tool_call>\n", "\n</tool_call>"

    def one_call(block: str) -> bool:
        if not (block.startswith(head) and block.endswith(tail)):
            return False
        body = block[len(head): len(block) - len(tail)]
        try:
            obj = json.loads(body)
        except ValueError:
            return False
        if not isinstance(obj, dict) or list(obj) != ["name", "arguments"]:
            return False
        if json.dumps(obj, ensure_ascii=False) != body:
            return False
        name, args = obj["name"], obj["arguments"]
        if name not in params or choice not in ("auto", "required", "any", name):
            return False
        if not checks[name](json.dumps(args, ensure_ascii=False)):
            return False
        if name in models:
            try:
                models[name].model_validate(args)
            except Exception:
                return False
        return True

    def accepts(text: str) -> bool:
        if not text.startswith("<tool_call>"):
            return text_ok and text != ""
        if not calls_ok:
            return False
        blocks = text.split(tail + "\n" + head)
        if len(blocks) > 1 and not parallel:
            return False
        blocks = [b + tail for b in blocks[:-1]] + [blocks[-1]]
        blocks = [blocks[0]] + [head + b for b in blocks[1:]]
        return all(one_call(b) for b in blocks)

    return accepts


# -- the sampler's side ----------------------------------------------------------------
def language_mismatches(
    constraint: Any, vocab: Vocabulary, depth: int, reference: Reference, *,
    masks: bool = True,
) -> tuple[list[tuple[str, bool, bool]], int, int]:
    """Every token sequence of at most ``depth`` ordinary tokens: (text, sampler, reference)
    where they disagree, and how many sequences each side accepts.

    The sampler's side: every token passes ``check`` in turn and EOS passes after the
    last (special tokens must never pass). With ``masks``, ``fast_mask`` (what AWRS
    switches to) must equal the checks at every state reached (hold every token they
    accept, where a slow part checks more), so the language the masks define is the
    same. The reference sees only the decoded text (invalid UTF-8
    read as U+FFFD, as the finished output is).
    """
    bound = as_constraint(constraint).bind(vocab)
    eos = vocab.eos_token_id
    ordinary = [y for y in range(vocab.size) if y != eos and y not in vocab.special_ids]
    cache: dict[str, bool] = {}
    bad: list[tuple[str, bool, bool]] = []
    counts = [0, 0]

    def visit(seq_len: int, data: bytes, state: Any) -> None:
        text = data.decode("utf-8", errors="replace")
        want = cache[text] if text in cache else cache.setdefault(text, bool(reference(text)))
        got = state is not None and bound.check(state, eos)
        if state is not None:
            assert not any(bound.check(state, s) for s in vocab.special_ids), text
            mask = bound.fast_mask(state) if masks else None
            if mask is not None:  # exact without a slow part, else a superset
                checks = [bound.check(state, y) for y in range(vocab.size)]
                assert all(bool(m) == ok or (bound.has_slow and m)
                           for m, ok in zip(mask, checks)), f"fast_mask vs check after {text!r}"
        counts[0] += got
        counts[1] += want
        if got != want:
            bad.append((text, got, want))
        if seq_len == depth:
            return
        for y in ordinary:
            nxt = bound.advance(state, y) if state is not None and bound.check(state, y) else None
            visit(seq_len + 1, data + vocab.tokens[y], nxt)

    visit(0, b"", bound.initial_state())
    return bad, counts[0], counts[1]


def _allowed(bound: Any, state: Any, candidates: list[int], tokens: Sequence[bytes],
             sweep: bool) -> list[int]:
    """The tokens the sampler may propose: accepted by ``check`` (or ``sweep_check``) and
    in no subtree that ``dead_prefix`` of a rejected token declared dead, in any visiting
    order (stricter than any one order of the sampler: a sound ``dead_prefix`` never
    covers an accepted token)."""
    ok = bound.sweep_check if sweep else bound.check
    accepted, dead = [], []
    for y in candidates:
        if ok(state, y):
            accepted.append(y)
        elif tokens[y]:
            n = bound.dead_prefix(state, y)
            if n:
                dead.append(tokens[y][:n])
    return [y for y in accepted if not any(tokens[y].startswith(d) for d in dead)]


def implied_posterior(
    lm: FunctionLM, constraint: Any, max_tokens: int, *, sweep: bool = False,
) -> tuple[dict[str, float], float]:
    """The target the sampler's checks define: ``Q(x)`` over the token sequences whose
    every token the bound lets through (``check``/``sweep_check`` and ``dead_prefix``
    pruning) and whose end passes ``check(state, EOS)``; the end is forced at
    ``max_tokens`` as the engine does. Normalised, with its normaliser."""
    proposal, potentials = split(as_constraint(constraint))
    assert not potentials
    vocab = lm.vocab
    bound = proposal.bind(vocab)
    eos = vocab.eos_token_id
    ordinary = [y for y in range(vocab.size) if y != eos and y not in vocab.special_ids]
    out: dict[str, float] = {}

    def visit(prefix: tuple[int, ...], data: bytes, state: Any, logq: float) -> None:
        lp = lm.logprobs_of(prefix).double().numpy()
        if np.isfinite(lp[eos]) and bound.check(state, eos):
            text = data.decode("utf-8", errors="replace")
            out[text] = out.get(text, 0.0) + math.exp(logq + float(lp[eos]))
        if len(prefix) >= max_tokens:
            return
        live = [y for y in ordinary if np.isfinite(lp[y])]
        for y in _allowed(bound, state, live, vocab.tokens, sweep):
            visit(prefix + (y,), data + vocab.tokens[y], bound.advance(state, y),
                  logq + float(lp[y]))

    visit((), b"", bound.initial_state(), 0.0)
    total = sum(out.values())
    return ({k: v / total for k, v in out.items()} if total > 0 else {}), total


def definition(reference: Reference) -> Predicate:
    """The reference as a constraint with no prefix check, for ``exact_posterior``
    (which uses only the complete check)."""
    return Predicate(complete=reference, name="independent reference")


def check_sampler_against(
    lm: FunctionLM, constraint: Any, reference: Reference, max_tokens: int, *,
    lcd_gap: float, num_particles: int, seed: int = 0,
) -> float:
    """Assert the sampler's implied target equals the reference's exact posterior, that
    LCD is more than ``lcd_gap`` away from it (in TV) and that awrs-smc's posterior with
    ``num_particles`` is within ``lcd_gap``; return that TV."""
    from awrs_adapters import generate
    from awrs_adapters.testing import exact_lcd, exact_posterior, total_variation

    exact, z = exact_posterior(lm, definition(reference), max_tokens)
    implied, z_implied = implied_posterior(lm, constraint, max_tokens)
    assert z > 0 and math.isclose(z_implied, z, rel_tol=1e-12), (z_implied, z)
    assert total_variation(exact, implied) < 1e-12
    assert total_variation(exact, exact_lcd(lm, constraint, max_tokens)) > lcd_gap
    r = generate(lm, None, constraint, num_particles=num_particles, max_tokens=max_tokens,
                 seed=seed)
    tv = total_variation(exact, r.posterior)
    assert tv < lcd_gap, tv
    return tv
