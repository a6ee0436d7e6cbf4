"""The distribution installs with its layout: constraints/ and integrations/ map into the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import awrs_adapters, awrs_adapters.constraints as C, awrs_adapters.integrations, "
    "awrs_adapters.lm; import importlib.util as u; "
    "assert u.find_spec('constraints') is None and u.find_spec('integrations') is None; "
    "print(awrs_adapters.__file__); print(C.Predicate.__module__)"
)


def test_imports_from_outside_the_repo(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert "awrs_adapters.constraints.predicate" in out


@pytest.mark.timeout(600)
def test_regular_install_into_a_target(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    assert (target / "awrs_adapters" / "constraints" / "predicate.py").exists()
    assert (target / "awrs_adapters" / "integrations" / "__init__.py").exists()
    assert not (target / "constraints").exists() and not (target / "integrations").exists()
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); " + PROBE],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(target) in out
