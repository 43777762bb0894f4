"""``gateshift config`` as a user runs it: keys, defaults, docs, a recipe and overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateshift.cli.main import build_parser, main

DEMO = Path(__file__).parents[2] / "configs" / "demo.yaml"


def test_prints_a_keys_default_and_doc(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "optim.*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("optim.lr: float = 0.01")
    assert lines[at + 1] == "    learning rate for a global batch of `lr_batch` clips"
    assert all(ln.startswith(("optim.", "    ")) for ln in lines) and len(lines) == 2 * 14


def test_values_after_a_config_file_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--config", str(DEMO), "model.*", "model.num_segments=4", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["model.name"]["value"] == "resnet18_gsm"  # from demo.yaml
    assert table["model.num_segments"] == {"type": "int", "value": 4, "doc": "frames per clip (T)"}
    assert "optim.lr" not in table


def test_errors_name_the_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "nothing.here"]) == 2
    assert "no config key matches 'nothing.here'" in capsys.readouterr().err
    assert main(["config", "optim.lr=fast"]) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_train_help_points_to_it() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    helptext = sub.choices["train"].format_help()  # type: ignore[attr-defined]
    assert "`gateshift config`" in helptext and "default and meaning" in helptext


def test_bad_files_are_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.md"
    text.write_text("# Notes\n\nkey: value: more\n")
    assert main(["train", str(text)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "notes.md is not valid YAML: line 3" in err
    # an output folder that is an existing file
    assert main(["data", "synthetic", str(text), "--videos-per-class", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "notes.md" in err
