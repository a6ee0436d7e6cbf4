"""The ``awrs`` command line, on a tiny model saved to a folder (what --model accepts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from awrs_adapters.cli import main

from test_transformers_lm import get_tokenizer, tiny_llama


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    tok = get_tokenizer("byte_level")
    tiny_llama(len(tok), seed=0).save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def test_generate_json(model_dir, capsys):
    rc = main(["generate", "--prompt", "hi", "--regex", "[ab]{2,4}", "--model", model_dir,
               "--particles", "4", "--max-tokens", "6", "--seed", "0", "--json", "--raw"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["ok"]
    assert {"text", "posterior", "log_ml", "stats"} <= set(out)
    assert out["text"] in out["posterior"] and set(out["text"]) <= set("ab")
    assert abs(sum(out["posterior"].values()) - 1) < 1e-9
    # text: a posterior draw (the seed reproduces it); mode: the most probable string
    assert out["mode"] == max(out["posterior"], key=out["posterior"].get)
    args = ["generate", "--prompt", "hi", "--regex", "[ab]{2,4}", "--model", model_dir,
            "--particles", "4", "--max-tokens", "6", "--seed", "0", "--json", "--raw"]
    main(args)
    assert json.loads(capsys.readouterr().out)["text"] == out["text"]
    main([*args, "--answer", "mode"])
    assert json.loads(capsys.readouterr().out)["text"] == out["mode"]


def test_generate_table_and_exit_codes(model_dir, capsys, tmp_path):
    rc = main(["generate", "--prompt", "hi", "--regex", "[ab]{2,4}", "--model", model_dir,
               "--particles", "2", "--max-tokens", "6", "--seed", "0", "--quiet"])
    assert rc == 0 and "probability" in capsys.readouterr().out
    # no valid sample: a format longer than max_tokens allows
    rc = main(["generate", "--prompt", "hi", "--regex", "[ab]{50}", "--model", model_dir,
               "--particles", "2", "--max-tokens", "3", "--seed", "0", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "max_tokens" in err
    # bad arguments
    assert main(["generate", "--prompt", "x", "--particles", "0", "--model", model_dir]) == 2
    assert main(["generate", "--prompt", "x", "--regex", "[", "--model", model_dir]) == 2
    assert "not a valid regular expression" in capsys.readouterr().err
    assert main(["generate", "--prompt", "x", "--json-schema", str(tmp_path / "none.json")]) == 2
    assert main(["generate", "--prompt", "x", "--pydantic", "nomodule"]) == 2
    assert main(["generate"]) == 2  # argparse: --prompt missing


def test_schema_file_and_models_listing(model_dir, capsys, tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "boolean"}},
                                  "required": ["a"], "additionalProperties": False}))
    rc = main(["generate", "--prompt", "x", "--json-schema", str(schema), "--model", model_dir,
               "--particles", "4", "--max-tokens", "12", "--seed", "1", "--json", "--raw"])
    out = json.loads(capsys.readouterr().out)
    if rc == 0:
        assert json.loads(out["text"])["a"] in (True, False)
    else:
        assert rc == 1 and out["hint"]
    assert main(["models"]) == 0
    assert "smollm2-135m-instruct" in capsys.readouterr().out


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "awrs"
    assert script.exists()
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "generate" in out.stdout


def test_prompts_file_gives_one_json_line_per_prompt(model_dir, capsys, tmp_path):
    """Three prompts through one generate_batch: a text line, a JSON line with its own
    seed (its result is --prompt's with that seed), and a prompt longer than the model's
    256 positions, which fails alone (exit code 1, its 'error' says why)."""
    f = tmp_path / "prompts.txt"
    f.write_text("hi\n" + json.dumps({"prompt": "ab ab", "seed": 5}) + "\n\n" + "x" * 400 + "\n")
    args = ["--regex", "[ab]{2,4}", "--model", model_dir, "--particles", "4",
            "--max-tokens", "6", "--raw"]
    rc = main(["generate", "--prompts-file", str(f), "--seed", "0", *args])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 1 and [r["index"] for r in rows] == [0, 1, 2]
    assert rows[0]["ok"] and set(rows[0]["text"]) <= set("ab")
    assert not rows[2]["ok"] and "ConfigError" in rows[2]["error"]
    main(["generate", "--prompt", "ab ab", "--seed", "5", "--json", *args])
    alone = json.loads(capsys.readouterr().out)
    assert rows[1]["posterior"].keys() == alone["posterior"].keys()
    assert all(abs(rows[1]["posterior"][k] - v) < 1e-4 for k, v in alone["posterior"].items())
    bad = tmp_path / "bad.txt"
    bad.write_text('{"prompt": 3}\n')
    assert main(["generate", "--prompts-file", str(bad), *args]) == 2
    assert main(["generate", "--prompt", "x", "--prompts-file", str(f), *args]) == 2
