"""Command-line options that are checked before anything loads: a clear error, nothing written,
no option silently ignored."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateshift.cli._options import chosen_backend
from gateshift.cli.main import main


def test_onnx_file_chooses_onnxruntime_and_is_never_ignored() -> None:
    def args(backend: str | None, onnx: str | None) -> argparse.Namespace:
        return argparse.Namespace(backend=backend, onnx=onnx)

    assert chosen_backend(args(None, None)) == "torch"
    assert chosen_backend(args(None, "m.onnx")) == "onnxruntime"  # the file is what runs
    assert chosen_backend(args("openvino", "m.onnx")) == "openvino"
    with pytest.raises(ValueError, match=r"--onnx m\.onnx is run by --backend onnxruntime"):
        chosen_backend(args("torch", "m.onnx"))


def test_predict_with_onnx_and_torch_backend_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["predict", str(tmp_path), "v.mp4", "--onnx", "m.onnx", "--backend", "torch"]
    assert main(argv) == 2
    assert "is run by --backend onnxruntime or openvino, not torch" in capsys.readouterr().err


def test_predict_of_a_video_folder_without_out_says_to_give_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"")
    assert main(["predict", str(tmp_path / "run"), str(videos)]) == 2
    err = capsys.readouterr().err
    assert f"{videos} is a folder but not a frame folder" in err and "--out FILE" in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--stride", "-1", "--stride must be positive, got -1 s"),
        ("--every", "0", "--every must be >= 1, got 0"),
        ("--top-k", "0", "--top-k must be >= 1, got 0"),
        ("--max-outputs", "0", "--max-outputs must be >= 1, got 0"),
    ],
)
def test_stream_options_are_checked_before_the_output_file_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    out = tmp_path / "out.jsonl"
    argv = ["stream", str(tmp_path / "run"), "--source", "v.mp4", "--jsonl", str(out)]
    assert main([*argv, flag, value]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
