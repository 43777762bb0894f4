"""`gateshift models` as a user runs it."""

from __future__ import annotations

import pytest

from gateshift.cli.main import main


def test_models_lists_matching_names_with_modules_and_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "resnet18_*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [ln.split()[0] for ln in lines[1:]]
    assert names == ["resnet18_gsf", "resnet18_gsm", "resnet18_tsm", "resnet18_tsn"]
    assert "RGB 0-1 224" in lines[1]


def test_models_params_are_the_published_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--params", "*inception*_gsm"]) == 0
    out = capsys.readouterr().out
    assert "10,499,650" in out and "22,207,586" in out  # the papers' counts, 174 classes


def test_models_with_no_match_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "zzz*"]) == 2
    assert "no model matches 'zzz*'" in capsys.readouterr().err
