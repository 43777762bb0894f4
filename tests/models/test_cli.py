"""`gateshift models` and `gateshift profile` as a user runs them."""

from __future__ import annotations

import json

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


def test_profile_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["profile", "resnet18_gsm", "--frames", "2", "--size", "32", "--repeats", "1"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("params", "flops", "latency_s", "tsn_params", "tsn_flops", "tsn_latency_s"):
        assert key in out
    assert out["params"] - out["tsn_params"] == 55_696  # 29*C + 2 for each of the 8 GSMs
    assert out["flops"] > out["tsn_flops"] > 0
    assert out["latency_s"] > 0 and out["tsn_latency_s"] > 0
    assert out["frames"] == 2 and out["size"] == 32 and out["native_kernels"] in (True, False)


def test_profile_table_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["profile", "mobilenetv2_tsm", "--frames", "2", "--size", "32", "--repeats", "1"]
    assert main([*args, "--channels-last", "--bf16"]) == 0
    out = capsys.readouterr().out
    assert "bf16 channels_last" in out and "mobilenetv2_tsn" in out and "+0.00%" in out
    assert main(["profile", "nosuch_gsm"]) == 2
    assert "unknown model 'nosuch_gsm'" in capsys.readouterr().err
    assert main(["profile", "resnet18_gsm", "--frames", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
