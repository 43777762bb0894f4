"""`gateshift predict RUN DIR_OR_LIST --out FILE`: discovery, rows, errors, resuming."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch import Tensor

from gateshift.cli.main import main
from gateshift.data.datasets import BadItem
from gateshift.data.discover import find_videos
from gateshift.deploy import predict_folder as folder_module
from gateshift.deploy.predict import predict
from gateshift.deploy.predict_folder import predict_folder
from gateshift.deploy.prediction_rows import RowWriter, read_done
from gateshift.inference.preprocess import VideoViews

from ..inference.helpers import make_run


def _frames(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True)
    for i in range(1, count + 1):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(folder / f"img_{i:05d}.jpg")
    return folder


def _val_videos(root: Path) -> list[Path]:
    return sorted((root / "val").rglob("*.mp4"))


def _rows(path: Path) -> list[dict[str, str]]:
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    return [json.loads(line) for line in path.read_text().splitlines()]


def _top1(row: dict) -> str:
    return row["label"] if "label" in row else row["top"][0][0][0]


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Videos decoded (with workers=0 the decoding runs in this process)."""
    seen: list[str] = []
    real = VideoViews.__call__

    def spy(self: VideoViews, path: str | Path) -> Tensor | BadItem:
        seen.append(Path(path).name)
        return real(self, path)

    monkeypatch.setattr(VideoViews, "__call__", spy)
    return seen


def test_folders_are_searched_recursively(tiny_synthetic: Path, tmp_path: Path) -> None:
    clip = _val_videos(tiny_synthetic)[0]
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    shutil.copy(clip, tree / "a" / "b" / "x.MP4")
    shutil.copy(clip, tree / "top.webm")
    (tree / ".cache").mkdir()
    shutil.copy(clip, tree / ".cache" / "hidden.mp4")  # hidden: skipped, as datasets skip it
    (tree / "a" / "notes.txt").write_text("not a video")
    frames = _frames(tree / "a" / "frames")
    _frames(frames / "inner")  # inside a frame folder: part of that video, not searched
    found = find_videos([tree])
    assert found == sorted([tree / "a" / "b" / "x.MP4", frames, tree / "top.webm"])
    assert find_videos([frames]) == [frames]  # a frame folder named directly is one video
    assert find_videos([tree, tree / "top.webm"]) == found  # each video once
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        find_videos([tmp_path / "nowhere"])


def test_list_file_paths_are_relative_to_the_list(tiny_synthetic: Path, tmp_path: Path) -> None:
    clip = _val_videos(tiny_synthetic)[0]
    (tmp_path / "lists" / "v").mkdir(parents=True)
    shutil.copy(clip, tmp_path / "lists" / "v" / "one.mp4")
    listing = tmp_path / "lists" / "videos.txt"
    listing.write_text(f"# my videos\nv/one.mp4\n\n  {clip}  \nv/gone.mp4\n")
    got = find_videos([listing])
    assert got == [
        tmp_path / "lists" / "v" / "one.mp4",
        clip,
        tmp_path / "lists" / "v" / "gone.mp4",
    ]
    binary = tmp_path / "clip.bin"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match=r"clip\.bin: neither a video"):
        find_videos([binary])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_rows_have_the_top1_of_predict(
    tiny_synthetic: Path, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    out = tmp_path / f"preds{suffix}"
    argv = ["predict", str(run), str(tiny_synthetic / "val"), "--out", str(out), "--top-k", "2"]
    assert main([*argv, "--workers", "1", "--batch-size", "4", "--no-progress"]) == 0
    assert "videos/s" in capsys.readouterr().out
    videos = _val_videos(tiny_synthetic)
    rows = _rows(out)
    assert [r["video"] for r in rows] == [str(v) for v in videos]
    single = predict(run, videos, top_k=2)
    assert [_top1(r) for r in rows] == [p.top[0][0][0] for p in single]
    first = json.loads(rows[0]["top"]) if suffix == ".csv" else rows[0]["top"]
    assert len(first[0]) == 2 and first[0][0][2] == pytest.approx(single[0].top[0][0][2], 1e-5)


def test_unreadable_videos_are_rows_with_the_reason(tiny_synthetic: Path, tmp_path: Path) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(_val_videos(tiny_synthetic)[0], folder / "good.mp4")
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'good.mp4'}\n{folder / 'corrupt.mp4'}\nmissing.mp4\n")
    out = tmp_path / "preds.csv"
    done = predict_folder(run, [listing], out, workers=0, progress=False)
    assert (done.found, done.written, done.errors) == (3, 3, 2)
    rows = {Path(r["video"]).name: r for r in _rows(out)}
    assert rows["good.mp4"]["error"] == "" and rows["good.mp4"]["label"]
    assert rows["corrupt.mp4"]["error"] and not rows["corrupt.mp4"]["label"]
    assert "missing" in rows["missing.mp4"]["error"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_an_interrupted_run_resumes(
    tiny_synthetic: Path, tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    out = tmp_path / f"preds{suffix}"
    videos = _val_videos(tiny_synthetic)
    real_write = RowWriter.write

    def stop_after_three(self: RowWriter, row: folder_module.Prediction) -> None:
        if sum(1 for _ in self.path.open()) >= 3 + (suffix == ".csv"):
            raise KeyboardInterrupt
        real_write(self, row)

    monkeypatch.setattr(RowWriter, "write", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        predict_folder(run, [tiny_synthetic / "val"], out, workers=0, batch_size=2, progress=False)
    monkeypatch.setattr(RowWriter, "write", real_write)
    assert read_done(out) == {str(v) for v in videos[:3]}  # a valid file of the finished rows
    decoded = _count_decodes(monkeypatch)
    done = predict_folder(run, [tiny_synthetic / "val"], out, workers=0, progress=False)
    assert decoded == [v.name for v in videos[3:]]
    assert (done.skipped, done.written) == (3, len(videos) - 3)
    assert [r["video"] for r in _rows(out)] == [str(v) for v in videos]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_truncated_last_line_is_redone(
    tiny_synthetic: Path, tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    videos = _val_videos(tiny_synthetic)[:3]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(map(str, videos)))
    out = tmp_path / f"preds{suffix}"
    predict_folder(run, [listing], out, workers=0, progress=False)
    text = out.read_text()
    out.write_text(text[: text.rstrip("\n").rfind("\n") + 12])  # the last row cut mid-line
    decoded = _count_decodes(monkeypatch)
    done = predict_folder(run, [listing], out, workers=0, progress=False)
    assert decoded == [videos[-1].name] and done.skipped == 2
    assert [r["video"] for r in _rows(out)] == [str(v) for v in videos]
    assert out.read_text() == text  # the same rows, whole again


def test_bad_options_are_one_line(
    tiny_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    val = str(tiny_synthetic / "val")
    assert main(["predict", str(run), val, "--out", str(tmp_path / "p.txt")]) == 2
    assert "must end in .csv or .jsonl" in capsys.readouterr().err
    assert main(["predict", str(run), val, "--out", str(tmp_path / "p.csv"), "--json"]) == 2
    assert "--json" in capsys.readouterr().err
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text('{"video": "a"}\nnot json\n{"video": "b"}\n')
    assert main(["predict", str(run), val, "--out", str(damaged)]) == 2
    assert "damaged.jsonl:2: not a prediction row" in capsys.readouterr().err
