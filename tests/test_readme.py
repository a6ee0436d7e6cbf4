"""Every Python block of README.md runs as written, so the examples cannot drift from the code.

Each block is executed in a fresh namespace in a temporary working folder (a block may
write files, e.g. ``r.plot("run.png")``). Blocks that load the embedded model are marked
``model`` (skipped by ``make test-fast``).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from awrs_adapters import models

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def _params():
    for i, code in enumerate(BLOCKS):
        first = next(line for line in code.splitlines() if line.strip())
        marks = [pytest.mark.model] if "models.load" in code or "ChatAWRS(" in code else []
        yield pytest.param(code, id=f"block{i}:{first[:40]}", marks=marks)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", list(_params()))
def test_readme_block_runs(code, tmp_path, monkeypatch, capsys):
    if "models.load" in code and importlib.util.find_spec(
            models.EMBEDDED[models.DEFAULT_MODEL].package) is None:
        pytest.skip("the default model's package is not installed")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip()  # every block shows its result
