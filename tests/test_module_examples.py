"""Every module's example is a doctest and runs (offline, in a fresh interpreter), output
checked, so the examples cannot drift from the code.

Each module docstring's ``Example::`` block is written as an interactive session
(``>>>`` with the output it prints). Outputs are checked with ``ELLIPSIS`` (floats are
written to three decimals, ``0.666...``) and ``NORMALIZE_WHITESPACE``. Examples on the
real embedded model show ``...`` for what they print: their samples depend on float
kernels that differ between CPUs, so only that they run is checked. Two blocks are not
Python to run here, each skipped with its reason (the deprecated aliases' examples are
their new module's). Drift this caught: batching's and the scheduler's examples passed a
bare string as a constraint, the TransformersLM example needed the Hugging Face Hub, the
custom_generate folder's example used names it never defined, the AWRSLLM example passed
a regex as a string.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = {
    "awrs_adapters/demo.py": "shell commands (python -m awrs_adapters.demo), run by make demo",
    "awrs_adapters/server.py": "serves until stopped; create_app is tested in test_server.py",
}
#: renamed modules whose old path is a deprecated alias (one release): their example is
#: the new module's, run there
ALIASES = {"awrs_adapters/constraint.py", "awrs_adapters/examples.py", "awrs_adapters/runner.py",
           "constraints/cache.py"}
PACKAGES = {"awrs_adapters": "awrs_adapters", "constraints": "awrs_adapters.constraints",
            "integrations": "awrs_adapters.integrations"}

RUN = """
import doctest, importlib, sys
m = importlib.import_module(sys.argv[1])
r = doctest.testmod(m, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
sys.exit(1 if r.failed or not r.attempted else 0)
"""


def _module_name(rel: str) -> str:
    top, _, rest = rel.partition("/")
    parts = rest[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGES[top], *parts])


def _examples() -> list[tuple[str, str]]:
    out = []
    for root in PACKAGES:
        for f in sorted((ROOT / root).rglob("*.py")):
            rel = str(f.relative_to(ROOT))
            if rel in ALIASES:
                continue
            doc = ast.get_docstring(ast.parse(f.read_text())) or ""
            m = re.search(r"Example::\n\n((?:(?:    .*)?\n)+)", doc + "\n")
            if m:
                out.append((rel, m.group(1)))
    return out


EXAMPLES = _examples()


def _param(path: str, block: str) -> object:
    marks = []
    if "models." in block or "load(" in block or "ChatAWRS(" in block or "AWRSLLM(" in block:
        marks.append(pytest.mark.model)
    if path in SKIP:
        marks.append(pytest.mark.skip(reason=SKIP[path]))
    if "vllm" in path and importlib.util.find_spec("vllm") is None:
        marks.append(pytest.mark.skip(reason="needs vLLM (make test-vllm)"))
    return pytest.param(path, id=path, marks=marks)


def test_examples_were_found_and_are_doctests():
    assert len(EXAMPLES) >= 50
    plain = [p for p, block in EXAMPLES if p not in SKIP and ">>> " not in block]
    assert plain == [], f"examples not written as doctests: {plain}"


@pytest.mark.parametrize("path", [_param(p, b) for p, b in EXAMPLES])
def test_module_example_runs(path: str, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    # in a scratch folder: an example may write files (diagnostics saves a plot)
    p = subprocess.run([sys.executable, "-c", RUN, _module_name(path)], capture_output=True,
                       text=True, timeout=300, env=env, cwd=tmp_path)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
