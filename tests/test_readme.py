"""Every Python block of README.md runs as written and shows what the README says it shows.

Each block is executed in a fresh namespace in a temporary working folder (a block may
write files, e.g. ``r.plot("run.png")``); then the check registered for it reads what the
block printed and left behind. The quick start's numbers are checked against the exact
posterior and LCD distribution of its toy model computed by hand from the model's
definition (never from the sampler), and against the figures the README's comments quote.
Blocks that load the embedded model are marked ``model`` (skipped by ``make test-fast``).
"""

from __future__ import annotations

import ast
import importlib.util
import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from awrs_adapters import models
from awrs_adapters.testing import total_variation

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def _printed(out: str, label: str) -> dict[str, float]:
    """The dict printed on the line that starts with ``label``."""
    line = next(x for x in out.splitlines() if x.split(" ", 1)[0] == label)
    return ast.literal_eval(line[len(label):].strip())


def _quoted(code: str, label: str) -> str:
    """The README's comment on the line that prints ``label``."""
    line = next(x for x in code.splitlines() if f'print("{label}' in x)
    return line.split("#", 1)[1]


def check_quick_start(code: str, ns: dict, out: str) -> None:
    """awrs-smc within TV 0.03 of the exact posterior (measured 0.003 at 2,000 particles,
    seed 0), LCD more than 0.3 from it and at its own exact distribution.

    The reference, from the model's definition (``examples.ends_with_a``): a or b (½ each);
    after a: EOS 0.9, a 0.1; after b: EOS 0.95, a 0.05; then EOS. Strings ending in "a":
    Q(a) = .45, Q(aa) = .05, Q(ba) = .025 (b, .475, is rejected). LCD: a and b both can
    still end in "a" (½ each), after b only a remains: a .45, aa .05, ba .5.
    Broken variant seen failing: AWRS drawing without weights (awrs-smc = LCD: TV 0.45).
    """
    q = {"a": 0.5 * 0.9, "aa": 0.5 * 0.1, "ba": 0.5 * 0.05}
    z = sum(q.values())
    exact = {k: v / z for k, v in q.items()}
    lcd_exact = {"a": 0.45, "aa": 0.05, "ba": 0.5}

    assert total_variation(_printed(out, "exact"), exact) < 1e-12
    quoted = dict(re.findall(r"(\w+) (\.\d+)", _quoted(code, "exact")))
    assert quoted.keys() == exact.keys()
    assert all(abs(exact[k] - float(v)) < 5e-4 for k, v in quoted.items()), quoted

    smc, lcd = _printed(out, "awrs-smc"), _printed(out, "lcd")
    assert total_variation(smc, exact) < 0.03, smc
    assert total_variation(lcd, exact) > 0.3, lcd
    assert total_variation(lcd, lcd_exact) < 0.05, lcd
    ba = re.search(r"ba ≈ (\.\d+)", _quoted(code, "lcd")).group(1)  # "ba ≈ .5"
    assert abs(lcd["ba"] - float(ba)) < 0.05

    text, log_ml, _ = out.strip().splitlines()[-1].split()  # smc.text, log_ml, checks
    assert text == "a" == max(exact, key=exact.get)
    assert abs(math.exp(float(log_ml)) / z - 1) < 0.1  # an unbiased estimate of Z = .525

    digits = ns["digits"]
    assert digits.accepts("2024") and not digits.accepts("202") and not digits.accepts("20a4")
    assert digits.check_prefix("20") and not digits.check_prefix("2a")


def check_real_model(code: str, ns: dict, out: str) -> None:
    """Each output of the embedded model is what its constraint allows: the regex date,
    a Person, the posterior's JSON valid for Person, the processor's digits; the figure
    was written."""
    r = ns["r"]
    pattern = re.search(r'Regex\(r"(.*?)"\)', code).group(1)
    assert r.ok and re.fullmatch(pattern, r.mode), r.mode
    assert r.summary().splitlines()[0] in out
    assert Path("run.png").stat().st_size > 10_000

    person_cls = ns["Person"]
    assert isinstance(ns["person"], person_cls)

    post = ns["out"].results[0].posterior
    assert post and abs(sum(post.values()) - 1) < 1e-9
    for text in post:
        person_cls.model_validate_json(text)

    ids, inputs, tok = ns["ids"], ns["inputs"], ns["tokenizer"]
    new = tok.decode(ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert re.fullmatch(r"[0-9]*", new), new  # a valid prefix of [0-9]+


def check_server(code: str, ns: dict, out: str) -> None:
    """Both choices the server returned are valid under the request's schema (checked with
    ``jsonschema``, not the sampler) and the response carries the posterior's ESS."""
    import jsonschema

    line = next(x for x in out.splitlines() if x.startswith("served "))
    objs = ast.literal_eval(line[len("served "):line.rindex("]") + 1])
    assert len(objs) == 2
    for o in objs:
        jsonschema.validate(o, ns["schema"])
    assert float(line[line.rindex("]") + 1:]) > 0


CHECKS: dict[str, Callable[[str, dict, str], None]] = {
    "ends_with_a()": check_quick_start,
    "models.load()": check_real_model,
    "create_app(": check_server,
}


def _params():
    for i, code in enumerate(BLOCKS):
        first = next(line for line in code.splitlines() if line.strip())
        marks = [pytest.mark.model] if "models.load" in code or "ChatAWRS(" in code else []
        yield pytest.param(code, id=f"block{i}:{first[:40]}", marks=marks)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


def test_every_block_has_a_check():
    for code in BLOCKS:
        assert sum(marker in code for marker in CHECKS) == 1, code[:200]


@pytest.mark.parametrize("code", list(_params()))
def test_readme_block_runs(code, tmp_path, monkeypatch, capsys):
    if "models.load" in code and importlib.util.find_spec(
            models.EMBEDDED[models.DEFAULT_MODEL].package) is None:
        pytest.skip("the default model's package is not installed")
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__readme__"}
    exec(compile(code, str(README), "exec"), ns)
    out = capsys.readouterr().out
    assert out.strip()  # every block shows its result
    for marker, check in CHECKS.items():
        if marker in code:
            check(code, ns, out)
