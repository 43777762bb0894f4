"""The synthetic dataset: deterministic, time-reversal symmetric, blind to single frames."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from gateshift.cli.main import main
from gateshift.data import synthetic as S
from gateshift.data.flip_labels import flip_label_map

PAIRS = [(a, b) for a, b in S.TWINS.items() if a < b]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _decode_tree(root: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(root.rglob("*.mp4")):
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        out[str(path.relative_to(root))] = np.stack(frames)
    return out


def test_classes_and_twins() -> None:
    assert len(S.CLASSES) == 11 and list(S.CLASSES) == sorted(S.CLASSES)
    assert len(PAIRS) == 5 and S.TWINS["still"] == "still"
    assert S.TWINS["moving_left"] == "moving_right" and S.TWINS["appearing"] == "disappearing"
    assert S.TWINS["rotating_clockwise"] == "rotating_anticlockwise"
    # a mirror image swaps left/right and the turning sense, nothing else
    index = {name: i for i, name in enumerate(S.CLASSES)}
    pairs = [("moving_left", "moving_right"), ("rotating_anticlockwise", "rotating_clockwise")]
    expected = {index[a]: index[b] for p in pairs for a, b in (p, p[::-1])}
    assert flip_label_map(S.CLASSES) == expected


@pytest.mark.parametrize(("name", "twin"), PAIRS)
def test_twin_is_the_clip_played_backwards(name: str, twin: str) -> None:
    for seed in range(3):
        a = S.render_clip(name, _rng(seed), size=32, num_frames=9)
        b = S.render_clip(twin, _rng(seed), size=32, num_frames=9)
        assert np.array_equal(a.frames[::-1], b.frames)
        assert np.array_equal(a.trajectory.cx[::-1], b.trajectory.cx)
        assert not np.array_equal(a.frames, b.frames)  # yet the order differs


def test_each_class_changes_what_its_name_says() -> None:
    size, frames = 64, 16
    for seed in range(10):
        clips = {c: S.render_clip(c, _rng(seed), size=size, num_frames=frames) for c in S.CLASSES}
        dx = np.diff(clips["moving_right"].trajectory.cx)
        assert np.all(dx > 1.2) and np.all(dx < 2.5)  # a few pixels per frame at 64 px
        assert np.all(np.diff(clips["moving_down"].trajectory.cy) > 1.2)  # y points down
        turn = np.degrees(np.diff(clips["rotating_clockwise"].trajectory.angle))
        assert np.all((turn > 14) & (turn < 22))  # 220-320 degrees over the clip
        assert np.all(np.diff(clips["approaching"].trajectory.radius) > 0)
        alpha = clips["appearing"].trajectory.alpha
        assert alpha[0] == 0 and alpha[-1] == 1 and np.all(np.diff(alpha) >= 0)
        assert np.all(clips["still"].frames == clips["still"].frames[:1])
        for name in ("moving_left", "moving_up", "receding", "rotating_anticlockwise"):
            c = clips[name]  # the object stays (mostly) in view in every frame
            nominal = np.pi * c.trajectory.radius**2
            assert np.all(c.coverage.sum(axis=(1, 2)) > 0.5 * nominal * 0.6)


def _frame_stats(clip: S.Clip, t: int) -> np.ndarray:
    """Simple single-frame statistics: mean colour, object area, centroid, orientation."""
    cover = clip.coverage[t]
    area = cover.sum() + 1e-6
    ys, xs = np.mgrid[0 : cover.shape[0], 0 : cover.shape[1]]
    angle = clip.trajectory.angle[t]  # the generator's own orientation: an oracle statistic
    colour = clip.frames[t].reshape(-1, 3).mean(axis=0) / 255
    centroid = [(cover * xs).sum() / area, (cover * ys).sum() / area]
    return np.array([*colour, area, *centroid, np.cos(angle), np.sin(angle)])


def _knn_accuracy(x: np.ndarray, y: np.ndarray, k: int = 15) -> float:
    """Leave-one-out k-nearest-neighbour accuracy on standardised features."""
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    dist = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    nearest = np.argsort(dist, axis=1)[:, :k]
    predicted = y[nearest].mean(axis=1) > 0.5
    return float((predicted == y).mean())


def test_single_frames_cannot_tell_twins_apart() -> None:
    # one frame at a random time per clip, as a frame-averaging model sees it (it never knows
    # which segment a frame came from); an ordered pair of frames separates the same classes
    n, frames = 120, 8
    pick = _rng(99)
    for name, twin in PAIRS:
        single, ordered, labels = [], [], []
        for label, cls in enumerate((name, twin)):
            for i in range(n):
                clip = S.render_clip(cls, _rng(1000 * label + i), size=32, num_frames=frames)
                t = int(pick.integers(frames))
                single.append(_frame_stats(clip, t))
                first, last = _frame_stats(clip, 1), _frame_stats(clip, frames - 2)
                a, b = _frame_stats(clip, frames // 2 - 1), _frame_stats(clip, frames // 2)
                turn = a[6] * b[7] - a[7] * b[6]  # sin of the angle turned between neighbours
                ordered.append(np.append(last - first, turn))
                labels.append(label)
        y = np.array(labels)
        blind = _knn_accuracy(np.array(single), y)
        seeing = _knn_accuracy(np.array(ordered), y)
        assert blind < 0.62, f"{name}/{twin}: single frames separate the twins ({blind:.2f})"
        assert seeing > 0.95, f"{name}/{twin}: order should separate them ({seeing:.2f})"
        stats = np.array(single)
        a, b = stats[y == 0], stats[y == 1]
        se = np.sqrt(a.var(axis=0) / n + b.var(axis=0) / n) + 1e-9
        assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) < 4 * se)  # distributions overlap


def test_trajectories_of_twins_mirror_in_distribution() -> None:
    n, frames = 200, 8
    left = np.stack([S.render_clip("moving_left", _rng(i), size=32, num_frames=frames)
                     .trajectory.cx for i in range(n)])  # fmt: skip
    right = np.stack([S.render_clip("moving_right", _rng(10_000 + i), size=32,
                      num_frames=frames).trajectory.cx for i in range(n)])  # fmt: skip
    # independent draws: the mean path of one is the other's, reversed in time
    assert np.allclose(left.mean(axis=0), right.mean(axis=0)[::-1], atol=0.6)
    disp_left, disp_right = left[:, -1] - left[:, 0], right[:, -1] - right[:, 0]
    assert np.all(disp_left < 0) and np.all(disp_right > 0)
    q = np.linspace(0.05, 0.95, 10)
    assert np.allclose(np.quantile(-disp_left, q), np.quantile(disp_right, q), atol=1.0)
    # and the set of positions visited has the same distribution
    assert np.allclose(np.quantile(left, q), np.quantile(right, q), atol=0.8)


def test_generation_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    kw = {"videos_per_class": 1, "size": 32, "num_frames": 8}
    S.generate(tmp_path / "a", seed=3, **kw)
    S.generate(tmp_path / "b", seed=3, workers=2, **kw)  # two processes, the same videos
    S.generate(tmp_path / "c", seed=4, **kw)
    a, b, c = (_decode_tree(tmp_path / d) for d in "abc")
    assert a.keys() == b.keys() == c.keys() and len(a) == 22
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not any(np.array_equal(a[k], c[k]) for k in a)


def test_cli_writes_the_expected_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synthetic"
    argv = ["data", "synthetic", str(out), "--videos-per-class", "4", "--size", "32",
            "--frames", "8", "--seed", "1"]  # fmt: skip
    assert main(argv) == 0
    assert "44 train, 11 val videos of 11 classes" in capsys.readouterr().out
    assert (out / "classes.txt").read_text().split() == list(S.CLASSES)
    for split, per_class in (("train", 4), ("val", 1)):
        assert sorted(p.name for p in (out / split).iterdir()) == list(S.CLASSES)
        for name in S.CLASSES:
            assert len(list((out / split / name).glob("*.mp4"))) == per_class
    with av.open(str(out / "train" / "moving_left" / "moving_left_0000.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (32, 32, 3)
    settings = json.loads((out / "synthetic.json").read_text())
    assert settings["seed"] == 1 and settings["videos"] == {"train": 44, "val": 11}
    assert main(argv) == 2  # refuses to overwrite ...
    assert main([*argv, "--force"]) == 0  # ... unless told to


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        S.render_clip("still", _rng(0), size=33)
    with pytest.raises(ValueError, match="unknown synthetic class"):
        S.render_clip("jumping", _rng(0))
    with pytest.raises(ValueError, match="videos_per_class"):
        S.generate("/nonexistent/never-written", videos_per_class=0)
    with pytest.raises(ValueError, match="workers"):
        S.generate("/nonexistent/never-written", workers=0)
