"""Every cookbook recipe runs and its claim holds (small settings; recipes assert their claims)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "cookbook"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BOOK / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    # registered, as `python cookbook/NN.py` would be: pydantic resolves the recipe's
    # postponed annotations (`from __future__ import annotations`) through sys.modules
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_every_recipe_is_tested():
    recipes = sorted(p.stem for p in BOOK.glob("[0-9][0-9]_*.py"))
    assert recipes == sorted(RECIPES), "add the new recipe to RECIPES"


def test_01_why_the_posterior():
    tv = load("01_why_the_posterior").main(particles=2000)
    assert tv["lcd"] > 0.35


RECIPES = {
    "01_why_the_posterior": None,
    "02_structured_extraction_langchain": {"particles": 8},
    "03_text_to_sql": {"particles": 4},
    "04_transformers_generate": {"particles": 4},
    "05_regex_and_soft_potential": {"particles": 8},
    "06_sqlite_agent": {"particles": 2, "questions": 1, "max_tokens": 56},
}


@pytest.mark.model
@pytest.mark.parametrize("name", [k for k, v in RECIPES.items() if v is not None])
def test_recipe_on_the_default_model(name, tmp_path):
    kwargs = dict(RECIPES[name])
    if name == "03_text_to_sql":
        kwargs["figure"] = str(tmp_path / "smc.png")
    load(name).main(**kwargs)
    if name == "03_text_to_sql":
        assert (tmp_path / "smc.png").stat().st_size > 10_000  # the diagnostics figure
