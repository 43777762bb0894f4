"""``data check`` and ``data prepare`` end to end through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gateshift.cli.main import main
from gateshift.data.annotations import load_annotations
from gateshift.data.check import probe_indices
from gateshift.data.readers import FrameFolderReader, VideoFileReader, make_reader
from tests.data.media import HEIGHT, WIDTH, pattern, write_frames, write_video


@pytest.fixture
def video_folder(tmp_path: Path) -> Path:
    """folder-format dataset: 2 good videos and 3 bad items (corrupt, truncated, too short)."""
    root = tmp_path / "ds"
    for sub in ("train/walk", "train/run", "val/walk"):
        (root / sub).mkdir(parents=True)
    write_video(root / "train/walk/good1.mp4", 20)
    write_video(root / "train/run/good2.webm", 16)
    write_video(root / "val/walk/good3.mkv", 12)
    (root / "train/walk/junk.mp4").write_bytes(bytes(range(256)) * 20)
    cut = write_video(tmp_path / "full.webm", 40).read_bytes()
    (root / "train/run/cut.webm").write_bytes(cut[: len(cut) // 2])
    write_video(root / "train/run/short.mkv", 5)
    return root


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict]:
    code = main([*argv, "--json", "--no-progress"])
    return code, json.loads(capsys.readouterr().out)


def test_probe_indices_cover_centres_and_ends() -> None:
    assert probe_indices(16, 4) == [0, 2, 6, 10, 14, 15]
    assert probe_indices(8, 8) == list(range(8))


@pytest.mark.parametrize("workers", [0, 2])
def test_check_reports_bad_items(
    video_folder: Path, capsys: pytest.CaptureFixture[str], workers: int
) -> None:
    argv = ["data", "check", str(video_folder), "--split", "train", "--workers", str(workers)]
    code, report = run_json(capsys, argv)
    assert code == 0
    assert report["items"] == 5 and report["ok"] == 2
    reasons = {Path(b["path"]).name: b["reason"] for b in report["bad"]}
    assert set(reasons) == {"junk.mp4", "cut.webm", "short.mkv"}
    assert reasons["junk.mp4"].startswith("corrupt")
    assert reasons["cut.webm"].startswith("truncated")
    assert reasons["short.mkv"] == "too short: 5 frames < 8 segments"
    assert report["classes"] == {"run": 3, "walk": 2}
    assert report["frames"] == {"min": 16, "median": 18, "max": 20}
    assert report["fps"]["median"] == 25 and report["resolutions"] == {f"{WIDTH}x{HEIGHT}": 2}


def test_without_split_every_split_present_is_checked(
    video_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reported case: train/ good, three broken files in val/; all of them are found."""
    (video_folder / "val/walk/junk.mp4").write_bytes(bytes(range(256)) * 20)
    (video_folder / "val/walk/empty.mp4").write_bytes(b"")
    write_video(video_folder / "val/walk/short.mkv", 3)
    code, report = run_json(capsys, ["data", "check", str(video_folder)])
    assert code == 0
    assert sorted(report["splits"]) == ["train", "val"]
    assert report["splits"]["train"]["items"] == 5 and report["splits"]["val"]["items"] == 4
    assert report["items"] == 9 and report["ok"] == 3
    bad = {(b["split"], Path(b["path"]).name) for b in report["bad"]}
    assert bad == {
        ("train", "junk.mp4"), ("train", "cut.webm"), ("train", "short.mkv"),
        ("val", "junk.mp4"), ("val", "empty.mp4"), ("val", "short.mkv"),
    }  # fmt: skip
    assert report["not_checked"]["test"].startswith("absent")
    assert main(["data", "check", str(video_folder), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "folder train at" in out and "folder val at" in out
    assert "all splits: items 9   ok 3   bad 6" in out and "[val] " in out
    assert "test: not checked (absent" in out
    table = [line.split() for line in out.splitlines() if line.split()[:1] in (["train"], ["val"])]
    assert table == [["train", "5", "2", "3"], ["val", "4", "1", "3"]]
    code, one = run_json(capsys, ["data", "check", str(video_folder), "--split", "train"])
    assert code == 0 and one["split"] == "train" and one["items"] == 5  # val left alone
    assert all("/val/" not in b["path"] for b in one["bad"]) and len(one["bad"]) == 3


def test_a_split_reading_the_same_list_as_another_is_checked_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ucf"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 Walk\n")
    (root / "UCF-101/Walk").mkdir(parents=True)
    write_video(root / "UCF-101/Walk/a.avi", 12)
    write_video(root / "UCF-101/Walk/b.avi", 12)
    (lists / "trainlist01.txt").write_text("Walk/a.avi 1\n")
    (lists / "testlist01.txt").write_text("Walk/b.avi\n")
    code, report = run_json(capsys, ["data", "check", str(root), "--format", "ucf101"])
    assert code == 0 and sorted(report["splits"]) == ["train", "val"]  # val reads the test list
    assert report["not_checked"] == {"test": "same items as val"}
    assert report["items"] == 2 and report["ok"] == 2


def test_a_root_with_no_split_at_all_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["data", "check", str(tmp_path / "empty"), "--no-progress"]) == 2
    assert "train folder not found" in capsys.readouterr().err


def test_check_text_and_exit_codes(video_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(video_folder), "--split", "val", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ok 1" in out and "bad 0" in out and "walk" in out
    broken = video_folder / "broken"
    (broken / "train" / "x").mkdir(parents=True)
    (broken / "train" / "x" / "a.mp4").write_bytes(b"not a video")
    code, report = run_json(capsys, ["data", "check", str(broken)])
    assert code == 1 and report["ok"] == 0 and len(report["bad"]) == 1


def test_check_frame_folders_and_annotation_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_frames(tmp_path / "v1", 12)
    gap = write_frames(tmp_path / "v2", 12)
    (gap / "img_00012.png").unlink()  # the annotation says 12: the last frame is missing
    (tmp_path / "train.txt").write_text("v1 12 0\nv2 12 1\n")
    argv = ["data", "check", str(tmp_path), "--format", "tsn_list", "--segments", "4"]
    code, report = run_json(capsys, argv)
    assert code == 0 and report["ok"] == 1
    bad = [{"split": "train", "path": str(gap), "reason": "missing frame file img_00012.png"}]
    assert report["bad"] == bad
    (tmp_path / "val.txt").write_text("v1 12 0\nv2 x 1\n")
    assert main(["data", "check", str(tmp_path), "--format", "tsn_list", "--split", "val"]) == 2
    assert "val.txt:2: num_frames 'x' is not an integer" in capsys.readouterr().err


def test_prepare_extract_frames_and_resume(
    video_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "prepared"
    argv = ["data", "prepare", "folder", "--root", str(video_folder), "--out", str(out)]
    argv += ["--extract-frames", "--short-side", "12", "--workers", "2"]
    code, report = run_json(capsys, argv)
    assert code == 0 and report["splits"] == {"train": 3, "val": 1}  # corrupt and cut left out
    assert report["converted"] == 4
    assert sorted(Path(b["path"]).name for b in report["bad"]) == ["cut.webm", "junk.mp4"]
    train = load_annotations("prepared", out, "train")
    assert train.classes == [["run", "walk"]] and train.frame_template == "{:06d}.jpg"
    good1 = next(r for r in train.records if r.video_id == "good1")
    assert good1.path == out / "frames" / "train" / "walk" / "good1" and good1.labels == (1,)
    reader = make_reader(train)
    assert isinstance(reader, FrameFolderReader)
    info = reader.probe(good1)
    assert (info.num_frames, info.width, info.height) == (20, 16, 12)  # 32x24 -> short side 12
    # Resume: finished outputs are kept; a killed run's partial output is redone, never used.
    (out / "frames/train/walk/good1").rename(out / "frames/train/walk/good1.tmp-4242")
    code, report = run_json(capsys, argv)
    assert (report["converted"], report["skipped"]) == (1, 3)
    assert not (out / "frames/train/walk/good1.tmp-4242").exists()
    assert reader.count(out / "frames/train/walk/good1") == 20


def test_prepare_reencode_keeps_frames(
    video_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "small"
    argv = ["data", "prepare", "folder", "--root", str(video_folder), "--out", str(out)]
    code, report = run_json(capsys, [*argv, "--short-side", "12"])
    assert code == 0 and report["converted"] == 4
    val = load_annotations("prepared", out, "val")
    assert val.records[0].path == out / "videos" / "val" / "walk" / "good3.mp4"
    reader = VideoFileReader(threads=1)
    info = reader.probe(val.records[0])
    assert (info.num_frames, info.fps, info.width, info.height) == (12, 25.0, 16, 12)
    # Same frames in the same order: compare against the source, shrunk the same way.
    frames = reader.read(val.records[0], [0, 11]).float().mean(dim=(1, 2, 3))
    source = [float(np.mean(pattern(i))) for i in (0, 11)]
    assert torch.allclose(frames, torch.tensor(source), atol=6)


def test_prepare_annotations_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "ssv2"
    (root / "20bn-something-something-v2").mkdir(parents=True)
    labels = {"Pushing something": "0"}
    (root / "something-something-v2-labels.json").write_text(json.dumps(labels))
    items = [{"id": "3", "template": "Pushing [something]", "placeholders": ["x"]}]
    (root / "something-something-v2-train.json").write_text(json.dumps(items))
    out = tmp_path / "out"
    code, report = run_json(
        capsys, ["data", "prepare", "sthv2", "--root", str(root), "--out", str(out)]
    )
    assert code == 0 and report["splits"] == {"train": 1}
    info = json.loads((out / "dataset.json").read_text())
    assert info["media_root"] == str(root) and info["source_format"] == "sthv2"
    assert (
        (out / "train.csv")
        .read_text()
        .splitlines()[1]
        .startswith("20bn-something-something-v2/3.webm,0,")
    )
    again = load_annotations("prepared", out, "train")
    assert again.records == load_annotations("sthv2", root, "train").records
