"""`gateshift timeline`: windows, bounded memory, segments, files, truth scores, bad input."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from gateshift.cli.main import main
from gateshift.data.records import BadVideoError
from gateshift.data.sampling import SegmentSampler
from gateshift.data.stream import VideoStream
from gateshift.data.synthetic import write_mp4
from gateshift.deploy import timeline as timeline_module
from gateshift.deploy.annotate import Annotator
from gateshift.deploy.predict import predict
from gateshift.deploy.segments import Segment, SegmentBuilder, WindowResult, merge_windows
from gateshift.deploy.timeline import split_threads, timeline
from gateshift.deploy.timeline_io import Timeline, output_format, render, srt_time
from gateshift.deploy.timeline_truth import match_segments, read_truth, score_timeline
from gateshift.deploy.windows import WindowAssembler, WindowPlan

from ..inference.helpers import make_run

SAMPLER = SegmentSampler(8, "test", 2)


def _val_clips(root: Path, names: list[str]) -> np.ndarray:
    """The frames of val videos of ``names`` one after another: (F, 32, 32, 3) uint8."""
    frames = []
    for name in names:
        path = next((root / "val" / name).glob("*.mp4"))
        with av.open(str(path)) as container:
            frames += [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames)


@pytest.fixture(scope="module")
def long_video(tiny_synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six val clips of 8 frames at 12 fps, 4 s (48 frames)."""
    names = ["moving_left", "still", "appearing", "moving_up", "receding", "still"]
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    write_mp4(path, _val_clips(tiny_synthetic, names))
    return path


@pytest.fixture(scope="module")
def run(tiny_synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle as training writes it, recording 1 s training clips."""
    folder, _ = make_run(tmp_path_factory.mktemp("runs"), tiny_synthetic)
    index = json.loads((folder / "bundle" / "bundle.json").read_text())
    index["clips"] = {"num_frames": 12, "duration_s": 1.0, "fps": 12.0, "probed": 22}
    (folder / "bundle" / "bundle.json").write_text(json.dumps(index))
    return folder


# ---------------------------------------------------------------- windows and memory


def test_plan_windows_cover_the_video_with_the_test_sampling() -> None:
    plan = WindowPlan(100, 10.0, window_s=2.0, stride_s=0.5, sampler=SAMPLER)
    assert plan.length == 20 and plan.starts == [*range(0, 81, 5)]
    windows = list(plan)
    assert windows[-1].end_frame == 100 and windows[3].start == 1.5
    # the frames a 20-frame clip gives predict, shifted to each window
    expected = SAMPLER(20, torch.Generator())
    assert torch.equal(windows[3].positions, expected + 15)
    # a stride that does not divide: one more window ends at the last frame
    plan = WindowPlan(100, 10.0, window_s=3.0, stride_s=2.5, sampler=SAMPLER)
    assert plan.starts == [0, 25, 50, 70]
    # the wanted frames: the sorted union, each once
    union = sorted({n for w in plan for n in w.positions.flatten().tolist()})
    assert list(plan.wanted()) == union


def test_frames_held_stay_bounded_by_the_window_for_an_hour_of_video() -> None:
    def max_held(seconds: int) -> tuple[int, int]:
        plan = WindowPlan(25 * seconds, 25.0, window_s=4.0, stride_s=1.0, sampler=SAMPLER)
        assembler = WindowAssembler(plan)
        frame = torch.zeros(1)
        finished = 0
        for number in plan.wanted():  # what the one-pass decoder hands over
            finished += len(assembler.push(number, frame))
        assert finished == len(plan) and assembler.done
        return assembler.max_held, len(plan)

    minute, hour = max_held(60), max_held(3600)
    assert hour[1] == 3597  # every window of the hour was finished...
    assert hour[0] == minute[0] <= (4 + 1) * 16  # ...holding no more frames than for a minute


def test_assembler_hands_out_each_window_with_its_own_frames() -> None:
    plan = WindowPlan(60, 12.0, window_s=1.0, stride_s=0.25, sampler=SAMPLER)
    assembler = WindowAssembler(plan, keep=lambda f: f * 10)
    got = {}
    for n in range(60):  # every frame offered, as with --annotate
        for window, frames in assembler.push(n, torch.tensor([n])):
            got[window.index] = frames.flatten().tolist()
    assert sorted(got) == list(range(len(plan)))
    for window in plan:
        assert got[window.index] == [10 * n for n in window.positions.flatten().tolist()]
    with pytest.raises(ValueError, match="increasing order"):
        assembler.push(3, torch.zeros(1))


def test_video_is_decoded_once_and_holds_only_window_frames(
    run: Path, tiny_synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = _val_clips(tiny_synthetic, ["moving_left"] * 12)  # 96 frames, 8 s
    write_mp4(tmp_path / "v.mp4", frames)
    seen: list[WindowAssembler] = []
    streams: list[VideoStream] = []
    real_assembler, real_stream = timeline_module.WindowAssembler, timeline_module.VideoStream

    def spy_assembler(*args: object, **kw: object) -> WindowAssembler:
        seen.append(real_assembler(*args, **kw))  # type: ignore[arg-type]
        return seen[-1]

    def spy_stream(*args: object, **kw: object) -> VideoStream:
        streams.append(real_stream(*args, **kw))  # type: ignore[arg-type]
        return streams[-1]

    annotators: list[Annotator] = []
    real_annotator = timeline_module.Annotator

    def spy_annotator(*args: object, **kw: object) -> Annotator:
        annotators.append(real_annotator(*args, **kw))  # type: ignore[arg-type]
        return annotators[-1]

    monkeypatch.setattr(timeline_module, "Annotator", spy_annotator)
    monkeypatch.setattr(timeline_module, "WindowAssembler", spy_assembler)
    monkeypatch.setattr(timeline_module, "VideoStream", spy_stream)
    result = timeline(run, tmp_path / "v.mp4", annotate=tmp_path / "a.mp4")
    assert len(result.windows) == 29 and result.complete  # every 3 frames, the last at the end
    assert streams[0].frames_decoded == 96  # one pass over the file
    # 1 s windows every 0.25 s sample 4 frames each: at most 5 windows' frames at a time
    assert 0 < seen[0].max_held <= 5 * 4
    # source frames wait for their label: a window, plus a batch of 4 windows and 2 strides
    assert annotators[0].frames_written == 96 and annotators[0].max_queued <= 12 + 6 * 3


# ---------------------------------------------------------------- classification and defaults


def test_decoding_and_the_network_get_their_own_cores(run: Path, long_video: Path) -> None:
    assert split_threads(1) == (1, 1) and split_threads(2) == (1, 2)
    assert split_threads(4) == (1, 3) and split_threads(16) == (4, 12)
    before = torch.get_num_threads()
    timeline(run, long_video, threads=1)
    assert torch.get_num_threads() == before  # restored


def test_defaults_come_from_the_bundle_and_a_whole_video_window_is_predict(
    run: Path, tiny_synthetic: Path
) -> None:
    video = next((tiny_synthetic / "val" / "rotating_clockwise").glob("*.mp4"))
    result = timeline(run, video, window_s=8 / 12, top_k=3)  # the whole 8-frame video
    assert len(result.windows) == 1 and result.segments[0].end == pytest.approx(8 / 12)
    (expected,) = predict(run, [video], top_k=3)
    assert [n for n, _ in result.windows[0].top] == [n for n, _, _ in expected.top[0]]
    for (_, p), (_, _, q) in zip(result.windows[0].top, expected.top[0], strict=True):
        assert p == pytest.approx(q, rel=1e-5, abs=1e-7)


def test_window_defaults_follow_the_training_clips(
    run: Path, long_video: Path, tiny_synthetic: Path, tmp_path: Path
) -> None:
    result = timeline(run, long_video)
    assert (result.window_s, result.stride_s) == (1.0, 0.25)  # bundle: 1 s clips; a quarter
    assert len(result.windows) == 13 and result.duration_s == 4.0
    # a bundle without the record: the training split is probed (8-frame videos at 12 fps)
    older, _ = make_run(tmp_path, tiny_synthetic)
    result = timeline(older, long_video, stride_s=0.5)
    assert result.window_s == pytest.approx(8 / 12) and result.stride_s == 0.5


def test_dense_runs_default_to_a_training_clip_span_and_unknown_scales_ask_for_window(
    tiny_synthetic: Path, long_video: Path, tmp_path: Path
) -> None:
    dense, _ = make_run(tmp_path, tiny_synthetic, ["data.sampling=dense", "data.frame_interval=2"])
    result = timeline(dense, long_video)
    assert result.window_s == pytest.approx(7 / 12)  # (4 - 1) * 2 + 1 frames at 12 fps
    older, _ = make_run(tmp_path, tiny_synthetic, name="older")
    with pytest.raises(ValueError, match=r"cannot be read: pass --window SECONDS"):
        timeline(older, long_video, overrides=["data.root=/nonexistent"])
    assert timeline(older, long_video, window_s=2.0, overrides=["data.root=/x"]).window_s == 2.0


# ---------------------------------------------------------------- segments


def _w(start: float, label: str, prob: float = 0.8, length: float = 1.0) -> WindowResult:
    return WindowResult(start, start + length, [(label, prob), ("other", 1 - prob)])


def test_windows_merge_into_segments_that_tile_the_video() -> None:
    windows = [_w(0, "a", 0.9), _w(0.5, "a", 0.7), _w(1, "b"), _w(1.5, "a"), _w(2, "a", 0.6)]
    # cells every 0.5 s, each labelled by its most confident covering window ([1.5, 2): a tie
    # of b and a at 0.8, the earlier window wins); scores weighted by cell length
    assert merge_windows(windows, 3.0) == [
        Segment(0.0, 1.0, "a", pytest.approx(0.9)),
        Segment(1.0, 2.0, "b", pytest.approx(0.8)),
        Segment(2.0, 3.0, "a", pytest.approx(0.7)),
    ]
    builder = SegmentBuilder()
    for w in windows[:3]:
        builder.add(w)
    assert [c.end for c in builder.take_cells()] == [0.5, 1.0]  # final: no later window covers
    assert builder.partial() == [Segment(0.0, 1.0, "a", pytest.approx(0.9))]
    with pytest.raises(ValueError, match="time order"):
        builder.add(_w(0.2, "a"))


def test_an_unsure_window_across_a_change_does_not_make_a_segment() -> None:
    windows = [_w(0, "a", 0.9), _w(0.5, "b", 0.4), _w(1, "c", 0.9)]
    segments = merge_windows(windows, 2.0)
    assert [(s.start, s.end, s.label) for s in segments] == [(0, 1, "a"), (1, 2, "c")]
    # windows further apart than their length: each half of the gap goes to its neighbour
    segments = merge_windows([_w(0, "a"), _w(2.5, "b")], 3.5)
    assert [(s.start, s.end, s.label) for s in segments] == [(0, 1.75, "a"), (1.75, 3.5, "b")]


# ---------------------------------------------------------------- truth


def test_truth_scores_on_hand_made_timelines(tmp_path: Path) -> None:
    truth = [Segment(0, 4, "a", 1), Segment(4, 6, "b", 1), Segment(8, 10, "c", 1)]
    predicted = [Segment(0, 3, "a", 1), Segment(3, 6, "b", 1), Segment(6, 10, "c", 1)]
    scores = score_timeline(predicted, truth, num_frames=100, fps=10.0)
    # frames 0..99 at t = n / 10; 6..8 s are in no true segment: 80 frames scored, the 10
    # frames of 3..4 s wrong
    assert (scores.frames, scores.frame_accuracy) == (80, 70 / 80)
    # IoU: a 3/4 = 0.75, b 2/3, c 2/4 = 0.5 (just enough): all three match
    assert (scores.matched, scores.segment_precision, scores.segment_recall) == (3, 1.0, 1.0)
    # b' overlaps b by 2 s of a 4 s union (IoU 0.5: a match); the last one has the wrong label
    shifted = [Segment(0, 3, "a", 1), Segment(3, 7, "b", 1), Segment(7, 10, "a", 1)]
    assert match_segments(shifted, truth) == [(0, 0), (1, 1)]
    scores = score_timeline(shifted, truth, num_frames=100, fps=10.0)
    assert (scores.segment_precision, scores.segment_recall) == (2 / 3, 2 / 3)
    shifted[1] = Segment(3, 7.5, "b", 1)  # IoU 2 / 4.5 < 0.5: no longer a match
    assert match_segments(shifted, truth) == [(0, 0)]


def test_truth_matching_is_one_to_one_and_needs_the_label() -> None:
    truth = [Segment(0, 4, "a", 1)]
    halves = [Segment(0, 2, "a", 1), Segment(2, 4, "a", 1)]  # each has IoU exactly 0.5
    assert match_segments(halves, truth) == [(0, 0)]  # the true segment counts once
    scores = score_timeline(halves, truth, num_frames=40, fps=10.0)
    assert (scores.segment_precision, scores.segment_recall) == (0.5, 1.0)
    wrong = [Segment(0, 4, "b", 1)]
    assert match_segments(wrong, truth) == []
    assert score_timeline(wrong, truth, num_frames=40, fps=10.0).frame_accuracy == 0.0


def test_truth_files_are_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "t.timeline.json"
    good.write_text(
        json.dumps(
            {
                "segments": [
                    {"start": 2, "end": 3, "label": "b"},
                    {"start": 0, "end": 2, "label": "a"},
                ]
            }
        )
    )
    assert [s.label for s in read_truth(good)] == ["a", "b"]  # sorted by start
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"segments": [{"start": 2, "end": 1, "label": "b"}]}))
    with pytest.raises(ValueError, match=r"bad\.json: segment 0 ends at 1\.0 before"):
        read_truth(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"--truth .*bad\.json: not a timeline"):
        read_truth(bad)
    with pytest.raises(FileNotFoundError, match=r"--truth .*nope\.json: no such file"):
        read_truth(tmp_path / "nope.json")


# ---------------------------------------------------------------- output files


def _timeline() -> Timeline:
    windows = [_w(0, "moving_left", 0.9), _w(0.5, "still, or not", 0.6)]
    return Timeline("v.mp4", 1.5, 1.0, 0.5, windows, merge_windows(windows, 1.5), complete=True)


def test_json_csv_and_srt_by_extension(tmp_path: Path) -> None:
    timeline_ = _timeline()
    data = json.loads(render(timeline_, output_format(tmp_path / "t.JSON")))
    assert set(data) >= {"video", "duration_s", "windows", "segments", "complete"}
    assert data["windows"][1] == {
        "start": 0.5,
        "end": 1.5,
        "top": [["still, or not", 0.6], ["other", 0.4]],
    }
    assert data["segments"][0] == {"start": 0.0, "end": 1.0, "label": "moving_left", "score": 0.9}
    rows = list(csv.reader(io.StringIO(render(timeline_, output_format("t.csv")))))
    assert rows == [
        ["start", "end", "label", "score"],
        ["0.000", "1.000", "moving_left", "0.9000"],
        ["1.000", "1.500", "still, or not", "0.6000"],
    ]
    srt = render(timeline_, output_format("t.srt"))
    assert srt.splitlines()[:4] == ["1", "00:00:00,000 --> 00:00:01,000", "moving_left (90 %)", ""]
    assert srt_time(3723.4567) == "01:02:03,457"
    with pytest.raises(ValueError, match=r"--out t\.txt: unknown timeline format"):
        output_format("t.txt")


def test_cli_writes_the_file_and_scores_against_the_truth(
    run: Path, long_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = tmp_path / "truth.json"
    truth.write_text(
        json.dumps(
            {
                "segments": [
                    {"start": 0, "end": 2, "label": "moving_left"},
                    {"start": 2, "end": 4, "label": "still"},
                ]
            }
        )
    )
    out = tmp_path / "deep" / "t.json"
    args = ["timeline", str(run), str(long_video), "--out", str(out), "--truth", str(truth)]
    assert main([*args, "--top-k", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["complete"] and len(data["windows"]) == 13
    assert all(len(w["top"]) == 2 for w in data["windows"])
    assert set(data["truth"]) >= {"frame_accuracy", "segment_precision", "segment_recall"}
    assert data["truth"]["frames"] == 48  # every frame lies in a true segment
    assert f"frame accuracy {data['truth']['frame_accuracy']:.3f}" in printed
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    srt = tmp_path / "t.srt"
    assert main(["timeline", str(run), str(long_video), "--out", str(srt), "--no-progress"]) == 0
    assert srt.read_text().startswith("1\n00:00:00,000 --> ")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--window", "9"], r"--window 9 s is longer than .*long\.mp4 \(4\.000 s"),
        (["--stride", "0"], r"--stride must be positive, got 0 s"),
        (["--window", "0"], r"--window must be positive, got 0 s"),  # not its default stride
        (["--stride", "-1"], r"--stride must be positive, got -1 s"),
        (["--out", "t.txt"], r"--out t\.txt: unknown timeline format"),
    ],
)
def test_bad_options_are_one_line_naming_them(
    run: Path, long_video: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["timeline", str(run), str(long_video), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gateshift timeline: error: ")
    assert re.search(message, err)


def test_unreadable_video_leaves_an_earlier_file_as_it_was(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.json"
    out.write_text('{"earlier": true}')
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 500)
    for video, reason in ((junk, "corrupt"), (tmp_path / "nope.mp4", "missing")):
        assert main(["timeline", str(run), str(video), "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{video.name}: {reason}" in err
    assert json.loads(out.read_text()) == {"earlier": True}


def test_damage_half_way_keeps_the_windows_before_it_on_disk(
    run: Path, long_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = VideoStream.frames

    def damaged(self: VideoStream, wanted: object = None) -> object:
        for number, frame in real(self, wanted):  # type: ignore[arg-type]
            if number >= 30:
                raise BadVideoError(self.path, "corrupt: damaged packet after frame 29")
            yield number, frame

    monkeypatch.setattr(VideoStream, "frames", damaged)
    out = tmp_path / "t.json"
    with pytest.raises(BadVideoError, match="damaged packet after frame 29"):
        timeline(run, long_video, out=out, annotate=tmp_path / "a.mp4")
    data = json.loads(out.read_text())  # a whole file
    assert not data["complete"] and "damaged packet" in data["error"]
    # windows of 12 frames every 3 whose frames all came before frame 30
    assert len(data["windows"]) == 7 and data["windows"][-1]["end"] == 30 / 12
    assert data["segments"] and data["segments"][-1]["end"] <= 30 / 12
    with av.open(str(tmp_path / "a.mp4")) as container:  # closed properly: playable
        assert sum(1 for _ in container.decode(video=0)) > 0


# ---------------------------------------------------------------- annotate


def test_annotate_writes_every_frame_with_the_label_burnt_in(
    run: Path, tiny_synthetic: Path, tmp_path: Path
) -> None:
    frames = np.repeat(np.repeat(_val_clips(tiny_synthetic, ["still"] * 4), 4, 1), 4, 2)
    write_mp4(tmp_path / "v.mp4", frames)  # 32 frames at 128 px
    result = timeline(run, tmp_path / "v.mp4", annotate=tmp_path / "a.mp4")
    with av.open(str(tmp_path / "a.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, float(stream.average_rate)) == (128, 128, 12.0)
        out = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert out.shape == frames.shape
    # the corner band differs from the source, the rest is the source (H.264 round trip)
    corner = np.abs(out[:, :12, :40].astype(int) - frames[:, :12, :40]).mean()
    rest = np.abs(out[:, 64:, :].astype(int) - frames[:, 64:, :]).mean()
    assert corner > 20 > 4 > rest
    assert result.complete
