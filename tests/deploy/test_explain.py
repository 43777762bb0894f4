"""`gateshift explain`: gate maps come out as the gates are, routing shares partition the
features, Grad-CAM points at what decides the class, and the command writes what it promises."""

from __future__ import annotations

import argparse
import json
import math
from functools import partial
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from gateshift.cli import explain_cmd
from gateshift.deploy.explain_plots import LEGEND_HEIGHT
from gateshift.deploy.gates import BACKWARD, FORWARD, capture_gates, gated_modules
from gateshift.deploy.gradcam import feature_layer, grad_cams
from gateshift.inference.bundle import load_bundle, save_bundle
from gateshift.inference.preprocess import VideoViews
from gateshift.inference.settings import Views
from gateshift.models import create_model
from gateshift.models.temporal.gsm import GateShift, gated_shift

from ..inference.helpers import make_run

T = 4


def _force_gate(module: nn.Module, bias: tuple[float, float]) -> None:
    """Gate weights 0 and bias b: G = tanh(b) everywhere, per plane."""
    with torch.no_grad():
        module.conv3D.weight.zero_()
        module.conv3D.bias.copy_(torch.tensor(bias))


@pytest.mark.parametrize(
    "bias", [(0.0, 0.0), (30.0, 30.0), (-0.5, 1.0)], ids=["zero", "one", "planes"]
)
def test_forced_gates_come_out_as_set(bias: tuple[float, float]) -> None:
    gsm = GateShift(8, T).eval()
    _force_gate(gsm, bias)
    model = nn.Sequential(nn.Identity(), gsm)
    x = torch.randn(2 * T, 8, 5, 6)
    plain = model(x)
    with capture_gates(model) as gates:
        hooked = model(x)
    assert len(gates) == 1 and gates[0].gate.shape == (2, T, 2, 5, 6)
    g = gates[0].gate
    assert torch.allclose(g[:, :, BACKWARD], torch.full_like(g[:, :, 0], math.tanh(bias[0])))
    assert torch.allclose(g[:, :, FORWARD], torch.full_like(g[:, :, 1], math.tanh(bias[1])))
    assert torch.allclose(plain, hooked)  # capturing does not change the output
    assert not gsm._forward_pre_hooks  # and the hook is gone


@pytest.mark.parametrize("causal", [False, True], ids=["offline", "causal"])
def test_plane_offsets_say_where_the_gated_half_goes(causal: bool) -> None:
    gsm = GateShift(8, T, interleave=False, causal=causal).eval()
    x = torch.randn(T, 8, 5, 6)
    for plane in (BACKWARD, FORWARD):  # open one plane fully (tanh(30) == 1), close the other
        _force_gate(gsm, (30.0, -30.0) if plane == BACKWARD else (-30.0, 30.0))
        model = nn.Sequential(nn.Identity(), gsm)
        with capture_gates(model) as gates:
            z = model(x)
        offset = gates[0].offsets()[plane]
        assert gates[0].causal == causal and offset == ((2, 1) if causal else (-1, 1))[plane]
        half = slice(0, 4) if plane == BACKWARD else slice(4, 8)
        for t in range(T):  # the half's features at frame t arrive at frame t + offset
            if 0 <= t + offset < T:
                torch.testing.assert_close(z[t + offset, half], x[t, half])


def test_gate_pattern_follows_the_input() -> None:
    """An identity gate BN and a conv that reads one channel per plane: G = tanh(relu(x_c))."""
    gsm = GateShift(8, T).eval()
    with torch.no_grad():
        gsm.bn.eps = 0.0
        gsm.conv3D.weight.zero_()
        gsm.conv3D.bias.zero_()
        gsm.conv3D.weight[3 * 0 + 1, 0, 1, 1] = 1.0  # plane 1, centre tap, channel 0 of half 1
        gsm.conv3D.weight[3 * 1 + 1, 0, 1, 1] = 1.0  # plane 2, centre tap, channel 0 of half 2
    x = torch.randn(T, 8, 6, 6)
    pattern = torch.linspace(-1, 2, T * 36).view(T, 6, 6)  # differs at every frame and place
    x[:, 0], x[:, 4] = pattern, pattern.flip(0)
    with capture_gates(gsm) as gates:
        out = gsm(x)
    assert torch.allclose(out, gated_shift(x, gates[0].gate, T, interleave=True), atol=1e-6)
    g = gates[0].gate[0]  # (T, 2, H, W): the gate the module used
    assert torch.allclose(g[:, BACKWARD], torch.tanh(pattern.relu()), atol=1e-6)
    assert torch.allclose(g[:, FORWARD], torch.tanh(pattern.flip(0).relu()), atol=1e-6)


def _keep_input(inputs: dict[str, Tensor], path: str, module: nn.Module, args: tuple) -> None:
    inputs.setdefault(path, args[0])


def _reference_shares(x: Tensor, gate: Tensor, gated: int) -> tuple[float, float]:
    """(forward, backward) from the definition, one channel at a time."""
    frames = x.view(-1, T, *x.shape[1:]).abs()  # (N, T, C, H, W)
    total = float(frames.sum())
    backward = sum(float((gate[:, :, 0] * frames[:, :, c]).abs().sum()) for c in range(gated // 2))
    forward = sum(
        float((gate[:, :, 1] * frames[:, :, c]).abs().sum()) for c in range(gated // 2, gated)
    )
    return forward / total, backward / total


@pytest.mark.parametrize("name", ["resnet18_gsm", "resnet18_gsf"])
def test_routing_shares_add_up_to_one(name: str) -> None:
    model = create_model(name, num_classes=3, num_segments=T, width=16, gsf_ratio=50).eval()
    inputs: dict[str, Tensor] = {}
    for path, module in gated_modules(model):
        with torch.no_grad():  # open the gates unevenly: a random gate conv
            module.conv3D.weight.normal_(0, 0.3)
            module.conv3D.bias.uniform_(-1, 1)
        module.register_forward_pre_hook(partial(_keep_input, inputs, path))
    with torch.no_grad(), capture_gates(model) as gates:
        model(torch.randn(2, T, 3, 32, 32))
    assert len(gates) == 8  # one per residual block of ResNet-18
    for g in gates:
        s = g.shares()
        assert s.forward + s.backward + s.kept == pytest.approx(1.0, abs=1e-9)
        assert min(s.forward, s.backward) > 0.01 and s.kept > 0
        forward, backward = _reference_shares(inputs[g.name], g.gate, g.gated_channels)
        assert s.forward == pytest.approx(forward, rel=1e-4)
        assert s.backward == pytest.approx(backward, rel=1e-4)
        assert g.gated_channels == (g.channels // 2 if name.endswith("gsf") else g.channels)


class _Toy(nn.Module):
    """Per-frame features: red -> channel 0, green -> channel 1; class k = mean of channel k."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.backbone.conv.weight.copy_(torch.eye(3)[:2, :, None, None])

    def forward(self, clips: Tensor) -> Tensor:
        n, t = clips.shape[:2]
        features = torch.relu(self.backbone.conv(clips.flatten(0, 1)))  # (N*T, 2, H, W)
        return features.mean((2, 3)).view(n, t, 2).mean(1)


def test_grad_cam_points_at_the_region_that_decides_the_class() -> None:
    """A red square (class 0) moving right along the top, a green one (class 1) fixed at the
    bottom: each class's map sits on its own square, frame by frame."""
    clips = torch.zeros(1, T, 3, 32, 32)
    for t in range(T):
        clips[0, t, 0, 2:10, 4 * t : 4 * t + 8] = 1.0  # red
    clips[0, :, 1, 22:30, 20:28] = 1.0  # green
    model = _Toy()
    logits, cams = grad_cams(model, clips, [0, 1], layer=model.backbone.conv)
    assert logits.shape == (1, 2)
    for t in range(T):
        red, green = cams[0][t], cams[1][t]
        assert red[2:10, 4 * t : 4 * t + 8].sum() > 0.9 * red.sum()
        assert green[22:30, 20:28].sum() > 0.9 * green.sum()
        peak = divmod(int(red.argmax()), 32)
        assert 2 <= peak[0] < 10 and 4 * t <= peak[1] < 4 * t + 8
    assert float(cams[0].max()) == pytest.approx(1.0)


def test_feature_layers_of_the_backbones() -> None:
    resnet = create_model("resnet18_tsn", num_classes=2, num_segments=T, width=8).backbone
    assert feature_layer(resnet) is resnet.layer4
    mobilenet = create_model("mobilenetv2_tsn", num_classes=2, num_segments=T).backbone
    assert feature_layer(mobilenet) is mobilenet.features


def _explain(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    explain_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["explain", *argv])
    return int(args.handler(args))


def _video(root: Path) -> Path:
    return next((root / "val" / "moving_left").glob("*.mp4"))


def test_cli_writes_gates_routing_grad_cam_and_json(
    tiny_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, model = make_run(tmp_path, tiny_synthetic)  # resnet18_gsm, 4 frames, 32 px
    for _, module in gated_modules(model):
        _force_gate(module, (-0.5, 1.0))
    bundle = load_bundle(run)
    save_bundle(  # the run again, with those gates
        bundle.folder,
        model,
        model_kwargs=bundle.meta["model_kwargs"],
        classes=bundle.classes,
        sampling=bundle.sampling,
        views=bundle.views,
        config_yaml=(bundle.folder / "config.yaml").read_text(),
        extra={"input_spec": bundle.meta["input_spec"]},
    )
    out = tmp_path / "explained"
    video = _video(tiny_synthetic)
    assert _explain([str(run), str(video), "--out", str(out), "--target", "moving_right"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "explain.json").read_text())
    for name in ("gates.png", "routing.png", "gradcam.png", "explain.gif", "explain.mp4"):
        assert (out / name).stat().st_size > 0
    clip = VideoViews(bundle, Views())(video)
    assert isinstance(clip, Tensor)
    with torch.no_grad():
        expected = int(model(clip[:1]).argmax())
    assert report["prediction"][0][0]["index"] == expected
    assert report["prediction"][0][0]["label"] in printed
    assert [t["role"] for t in report["grad_cam"]] == ["predicted", "target"]
    assert report["grad_cam"][1]["label"] == "moving_right" and report["has_gates"]
    assert len(report["routing"]) == 8
    for row in report["routing"]:
        assert row["forward"] + row["backward"] + row["kept"] == pytest.approx(1.0)
        assert row["mean_gate_backward"] == pytest.approx(math.tanh(0.5), abs=1e-6)
        assert row["mean_gate_forward"] == pytest.approx(math.tanh(1.0), abs=1e-6)
        assert row["forward"] + row["backward"] > 0.5  # gates 0.46 and 0.76 on equal halves
    with Image.open(out / "gates.png") as grid:  # frames row + 2 planes x 8 modules, 4 frames
        assert grid.size == (120 + 4 * 64, (1 + 16) * 64 + LEGEND_HEIGHT)
        _assert_legend(np.asarray(grid.convert("RGB")), (1 + 16) * 64, "inferno")
    with Image.open(out / "gradcam.png") as grid:  # frames row, predicted, target
        _assert_legend(np.asarray(grid.convert("RGB")), 3 * 64, "jet")
    with Image.open(out / "explain.gif") as gif:
        assert gif.n_frames == T
        first = np.asarray(gif.convert("RGB"))
    with av.open(str(out / "explain.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "mpeg4")
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == T == report["num_segments"]  # one MP4 frame per clip frame
    assert decoded[0].shape == first.shape  # the GIF's first frame, same size
    assert np.abs(decoded[0].astype(int) - first).mean() < 12  # and the same picture (lossy)


def _assert_legend(grid: np.ndarray, top: int, cmap: str) -> None:
    """Below the tiles, a bar running through ``cmap`` from 0 (left) to 1 (right)."""
    from matplotlib import colormaps

    row = grid[top + 12, 120:-8].astype(float)  # the bar's middle row
    want = colormaps[cmap](np.linspace(0, 1, row.shape[0]))[:, :3] * 255
    assert np.abs(row - want).max() <= 1.0


def test_cli_on_tsn_draws_grad_cam_and_says_there_are_no_gates(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic, ["model.name=resnet18_tsn"])
    out = tmp_path / "explained"
    assert _explain([str(run), str(_video(tiny_synthetic)), "--out", str(out)]) == 0
    report = json.loads((out / "explain.json").read_text())
    assert not report["has_gates"] and report["routing"] == []
    assert "no GSM/GSF gates" in report["note"]
    assert (out / "gradcam.png").is_file() and (out / "explain.gif").is_file()
    assert (out / "explain.mp4").is_file() and report["files"]["video"] == "explain.mp4"
    assert not (out / "gates.png").exists()
    with pytest.raises(ValueError, match="unknown label"):
        _explain([str(run), str(_video(tiny_synthetic)), "--out", str(out), "--target", "nope"])


def test_gateshift_command_has_explain_and_diagnose() -> None:
    from gateshift.cli import diagnose_cmd
    from gateshift.cli.main import build_parser

    args = build_parser().parse_args(["explain", "r", "v", "--out", "d", "--target", "x"])
    assert args.handler is explain_cmd.run and args.target == "x"
    args = build_parser().parse_args(["diagnose", "r", "eval.split=val", "--json", "f"])
    assert args.handler is diagnose_cmd.run and args.overrides == ["eval.split=val"]
