"""Every module's ``Example::`` block runs (offline, in a fresh interpreter), so the
examples cannot drift from the code. Three blocks are not Python to run here, each
skipped with its reason. Drift this caught: batching's and the scheduler's examples
passed a bare string as a constraint, the TransformersLM example needed the Hugging Face
Hub, the custom_generate folder's example used names it never defined."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = {
    "awrs_adapters/demo.py": "shell commands (python -m awrs_adapters.demo), run by make demo",
    "awrs_adapters/server.py": "serves until stopped; create_app is tested in test_server.py",
}


def _examples() -> list[tuple[str, str]]:
    out = []
    for root in ("awrs_adapters", "constraints", "integrations"):
        for f in sorted((ROOT / root).rglob("*.py")):
            doc = ast.get_docstring(ast.parse(f.read_text())) or ""
            m = re.search(r"Example::\n\n((?:(?:    .*)?\n)+)", doc + "\n")
            if m:
                out.append((str(f.relative_to(ROOT)), textwrap.dedent(m.group(1))))
    return out


EXAMPLES = _examples()


def _param(path: str, code: str) -> object:
    marks = []
    if "models.load" in code or "load(" in code:
        marks.append(pytest.mark.model)
    if path in SKIP:
        marks.append(pytest.mark.skip(reason=SKIP[path]))
    if "vllm" in path and __import__("importlib.util").util.find_spec("vllm") is None:
        marks.append(pytest.mark.skip(reason="needs vLLM (make test-vllm)"))
    return pytest.param(code, id=path, marks=marks)


def test_examples_were_found():
    assert len(EXAMPLES) >= 40


@pytest.mark.parametrize("code", [_param(p, c) for p, c in EXAMPLES])
def test_module_example_runs(code: str, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    # in a scratch folder: an example may write files (diagnostics saves a plot)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
