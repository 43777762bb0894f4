"""`gateshift diagnose`: frame orders, and a model that ignores time scores the same in any."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from gateshift.cli import diagnose_cmd
from gateshift.deploy import diagnose as diagnose_module
from gateshift.deploy.diagnose import ORDERS, Diagnosis, frame_orders, permute_time
from gateshift.deploy.gates import gated_modules
from gateshift.engine.evaluate import evaluate_run
from gateshift.models import create_model

from ..inference.helpers import make_run

T = 4


def test_frame_orders() -> None:
    orders = frame_orders(T, 50, torch.Generator().manual_seed(0))
    assert orders["in_order"].tolist() == [[0, 1, 2, 3]] * 50
    assert orders["reversed"].tolist() == [[3, 2, 1, 0]] * 50
    assert orders["single_frame"].tolist() == [[2, 2, 2, 2]] * 50
    shuffled = orders["shuffled"]
    assert torch.equal(shuffled.sort(1).values, orders["in_order"])  # permutations
    assert not (shuffled == orders["in_order"]).all(1).any()  # none is the identity
    assert len({tuple(p) for p in shuffled.tolist()}) > 5  # and they differ between videos
    again = frame_orders(T, 50, torch.Generator().manual_seed(0))["shuffled"]
    assert torch.equal(again, shuffled)  # fixed by the seed


def test_permute_time_moves_every_view_of_a_video() -> None:
    clips = torch.arange(2 * 3 * T, dtype=torch.float32).view(2, 3, T, 1, 1, 1)  # N, K, T
    order = torch.tensor([[3, 2, 1, 0], [1, 1, 1, 1]])
    moved = permute_time(clips, order)
    assert torch.equal(moved[0], clips[0].flip(1))
    assert torch.equal(moved[1], clips[1][:, [1, 1, 1, 1]])


def test_open_gates_make_gsm_order_sensitive_and_tsn_is_not() -> None:
    clips = torch.randn(2, 1, T, 3, 32, 32)
    order = frame_orders(T, 2, torch.Generator())["reversed"]
    tsn = create_model("resnet18_tsn", num_classes=5, num_segments=T, width=8).eval()
    gsm = create_model("resnet18_gsm", num_classes=5, num_segments=T, width=8).eval()
    with torch.no_grad():
        for _, module in gated_modules(gsm):
            module.conv3D.bias.fill_(2.0)  # gates open: features move through time
        for model in (tsn, gsm):
            model.head.fc.weight.normal_(0, 1.0)
        outs = {
            name: (model(clips[:, 0]), model(permute_time(clips, order)[:, 0]))
            for name, model in (("tsn", tsn), ("gsm", gsm))
        }
    assert torch.allclose(*outs["tsn"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(*outs["gsm"], rtol=1e-3, atol=1e-3)


def _diagnose(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    diagnose_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["diagnose", *argv])
    return int(args.handler(args))


def test_tsn_scores_the_same_in_order_and_reversed(
    tiny_synthetic: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic, ["model.name=resnet18_tsn"])
    seen: list[Diagnosis] = []
    original = diagnose_module.diagnose_run

    def spy(*args: object, **kwargs: object) -> Diagnosis:
        seen.append(original(*args, **kwargs))  # type: ignore[arg-type]
        return seen[-1]

    monkeypatch.setattr(diagnose_module, "diagnose_run", spy)
    out, summary = tmp_path / "diag", tmp_path / "diag.json"
    argv = [str(run), "eval.batch_size=3", "--device", "cpu", "--out", str(out), "--json"]
    assert _diagnose([*argv, str(summary)]) == 0
    result = json.loads(summary.read_text())
    assert set(ORDERS) <= set(result) and result["videos"] == 11
    assert result["in_order"] == result["reversed"] == result["shuffled"]
    scores = seen[0].scores
    assert torch.allclose(scores["in_order"], scores["reversed"], rtol=1e-5, atol=1e-6)
    assert torch.allclose(scores["in_order"], scores["shuffled"], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(scores["in_order"], scores["single_frame"], rtol=1e-3, atol=1e-5)
    assert json.loads((out / "diagnose.json").read_text()) == result
    assert (out / "order_accuracy.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "reversed" in printed and f"{100 * result['in_order']:9.2f}" in printed
    # in order is evaluate's top-1: the same pipeline and views
    report = evaluate_run(run, ["eval.batch_size=3"], device="cpu")
    assert result["in_order"] == pytest.approx(report.metrics["top1"])
