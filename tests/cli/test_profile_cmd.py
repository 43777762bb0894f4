"""`gateshift profile` as a user runs it."""

from __future__ import annotations

import json

import pytest

from gateshift.cli.main import main


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
    assert main(["profile", "mobilenetv2_tsm", "--size", "0"]) == 2  # not the default 224
    assert "--size must be positive, got 0" in capsys.readouterr().err
