"""The streaming export: a causal model's one-frame step as ONNX with its state as inputs and
outputs. ONNX Runtime, fed its own next states, gives the PyTorch streamer's per-frame logits
(and so the offline causal model's) for every family, at any batch of streams; files that are
not what a command expects are one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import gateshift
from gateshift.cli.main import main
from gateshift.deploy.export import default_metadata, export_checked
from gateshift.deploy.stream_export import OnnxStreamer, export_stream_checked, state_shapes
from gateshift.deploy.streaming import NotCausalError
from gateshift.inference.onnx_runtime import load_onnx, read_metadata

from .test_stream import causal_run, video  # noqa: F401  (module-scoped fixtures)
from .test_streaming import LENGTH, causal_model, offline_frame_logits

pytest.importorskip("onnxruntime")

SLOW = pytest.mark.slow
FAMILIES = [
    "resnet18_gsm",
    "resnet18_gsf",
    "resnet18_tsm",
    pytest.param("mobilenetv2_gsm", marks=SLOW),
    "resnet18_tsn",
    pytest.param("mobilenetv2_gsf", marks=SLOW),
    pytest.param("mobilenetv2_tsm", marks=SLOW),
    pytest.param("bninception_gsm", marks=SLOW),
    pytest.param("bninception_gsf", marks=SLOW),
    pytest.param("bninception_tsm", marks=SLOW),
]


def _meta(model: gateshift.models.recognizer.Recognizer, size: int = 32) -> dict[str, object]:
    meta = default_metadata(model)
    return {**meta, "input_spec": {**meta["input_spec"], "crop_size": size, "resize_size": size}}


def _export(name: str, path: Path) -> gateshift.models.recognizer.Recognizer:
    model = causal_model(name)
    export_stream_checked(
        model, path, clips=torch.randn(2, LENGTH, 3, 32, 32), metadata=_meta(model)
    )
    return model


@pytest.mark.parametrize("name", FAMILIES)
def test_onnx_stream_equals_the_offline_causal_clip(name: str, tmp_path: Path) -> None:
    model = _export(name, tmp_path / "stream.onnx")
    clips = torch.randn(3, LENGTH, 3, 32, 32)  # three streams: not the traced batch of 2
    expected = offline_frame_logits(model, clips)
    streamer = OnnxStreamer(tmp_path / "stream.onnx")
    streamed = torch.stack([streamer.step(clips[:, t]) for t in range(LENGTH)], dim=1)
    scale = expected.abs().max()
    assert (streamed - expected).abs().max() <= 1e-4 * scale
    meta = read_metadata(tmp_path / "stream.onnx")
    assert meta["stream"]["states"] == [list(s) for s in state_shapes(model, 32)]
    if name.endswith("_tsn"):
        assert meta["stream"]["states"] == []  # frames are independent: nothing to carry
    else:  # the state carries time: a fresh stream's last frame differs
        alone = OnnxStreamer(tmp_path / "stream.onnx").step(clips[:, -1])
        assert (alone - expected[:, -1]).abs().max() > 1e-3 * scale


def test_single_frames_reset_smoothing_and_batch_changes(tmp_path: Path) -> None:
    model = _export("resnet18_gsm", tmp_path / "s.onnx")
    frames = torch.randn(LENGTH, 3, 32, 32)
    ort, ref = OnnxStreamer(tmp_path / "s.onnx"), gateshift.Streamer(model)
    for frame in frames:
        got, want = ort.step(frame), ref.step(frame)
        assert got.shape == (5,)
        assert torch.allclose(got, want, rtol=0, atol=1e-4 * want.abs().max())
    assert torch.allclose(ort.smoothed(2), ref.smoothed(2), atol=1e-4 * ref.smoothed(2).abs().max())
    ort.reset()
    assert ort.frames == 0
    first = ort.step(frames[0])
    assert torch.allclose(first, gateshift.Streamer(model).step(frames[0]), atol=1e-4)
    with pytest.raises(ValueError, match="reset"):
        ort.step(torch.randn(2, 3, 32, 32))  # a stream batch of 1 became 2
    with pytest.raises(TypeError, match="float"):
        ort.step(torch.zeros(3, 32, 32, dtype=torch.uint8))


def test_offline_models_failed_parity_and_wrong_files_are_clear_errors(tmp_path: Path) -> None:
    offline = gateshift.create_model("resnet18_gsm", num_classes=5, num_segments=4, width=16)
    with pytest.raises(NotCausalError, match="causal"):
        export_stream_checked(offline.eval(), tmp_path / "x.onnx", metadata=_meta(offline))
    assert not (tmp_path / "x.onnx").exists()
    model = causal_model("resnet18_gsm")
    clips = torch.randn(1, LENGTH, 3, 32, 32)
    with pytest.raises(ValueError, match="nothing was written"):  # no runtime matches exactly
        export_stream_checked(model, tmp_path / "y.onnx", clips=clips, metadata=_meta(model),
                              tolerance=1e-12)  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    export_stream_checked(model, tmp_path / "s.onnx", clips=clips, metadata=_meta(model))
    with pytest.raises(ValueError, match="streaming export"):
        load_onnx(tmp_path / "s.onnx")  # predict's loader: a clip model is expected
    clip_model = causal_model("resnet18_gsm")
    export_checked(clip_model, tmp_path / "c.onnx", clips=clips, metadata=_meta(clip_model))
    with pytest.raises(ValueError, match="export RUN --stream"):
        OnnxStreamer(tmp_path / "c.onnx")


def test_cli_exports_the_stream_and_streams_it_as_torch_does(
    causal_run: Path,  # noqa: F811
    video: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["stream", str(causal_run), "--source", str(video), "--smooth", "1", "--top-k", "5"]
    assert main([*argv, "--backend", "onnxruntime"]) == 2  # not exported yet
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "export" in err and "--stream" in err
    assert main(["export", str(causal_run), "--stream", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(causal_run / "export" / "stream.onnx")
    assert report["max_rel_error"] <= 1e-4 and report["top1_agreement"] == 1.0
    assert report["states"] > 0
    torch_out, onnx_out = tmp_path / "torch.jsonl", tmp_path / "onnx.jsonl"
    assert main([*argv, "--jsonl", str(torch_out)]) == 0
    assert main([*argv, "--jsonl", str(onnx_out), "--backend", "onnxruntime"]) == 0
    want = [json.loads(line) for line in torch_out.read_text().splitlines()]
    got = [json.loads(line) for line in onnx_out.read_text().splitlines()]
    assert len(got) == len(want) == 12
    for g, w in zip(got, want, strict=True):
        assert (g["time"], g["frame"]) == (w["time"], w["frame"])
        assert dict(g["top"]) == pytest.approx(dict(w["top"]), abs=1e-3)
    assert main(["export", str(causal_run), "--stream", "--precision", "int8"]) == 2
    assert "fp32 only" in capsys.readouterr().err
    assert main([*argv, "--backend", "onnxruntime", "--onnx", str(tmp_path / "no.onnx")]) == 2
    assert "no.onnx" in capsys.readouterr().err
