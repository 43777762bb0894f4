"""Long videos of the embedded dataset: several actions one after another, with the true timeline.

``gateshift data synthetic OUT --long N`` writes ``OUT/long/long_<i>.mp4`` and, next to each,
``long_<i>.timeline.json``: ``{"segments": [{"start": s, "end": s, "label": name}]}`` in seconds,
the shape a person would write by hand and what ``gateshift timeline --truth`` scores against.

What a long video is. One scene (background, object shape, texture and colours: one
:func:`~gateshift.data.synthetic.draw_scene` draw) in which the object performs ``actions``
actions of the embedded classes in turn, each class different from the one before. An action
is its motion done 2 to 4 times in a row, each time exactly a clip of the training
distribution (:func:`~gateshift.data.synthetic.trajectory` over ``num_frames`` frames, new
geometry and motion magnitudes each time): every change of the training clips spans their
whole length and cannot go on for longer (an object moving on would leave the frame, a growing
one would fill it, a fade is over), so a longer action repeats. A stretch of the video as long
as a training clip looks exactly like a training clip of its class only where it starts on a
repetition; one that straddles the join of two repetitions sees the motion start again (a fade
from invisible, a new object geometry), which no training clip shows. Measured with the demo
recipe's GSM (``configs/demo.yaml``, 90.9 % validation top-1) on ``--long 6``: windows starting
on a repetition were right 91 % of the time, straddling ones 49 % (fades: 10 of 69), frame
accuracy 0.84. A real video's long action is one continuous motion, so this data is harder on
a timeline than the action lengths alone suggest. The seed of video ``i`` depends on (seed, i)
only and differs from every train and val clip's.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateshift.data.synthetic import (
    CLASSES,
    FPS,
    _check_geometry,
    draw_geometry,
    draw_scene,
    render,
    trajectory,
    write_mp4,
)

log = logging.getLogger(__name__)

LONG_DIR = "long"
REPEATS = (2, 4)  # an action repeats its motion this many times (inclusive range)
_SPLIT_KEY = 2  # seed stream after train (0) and val (1)


@dataclass(frozen=True)
class TrueSegment:
    start_frame: int
    end_frame: int
    label: str


def render_long(
    rng: np.random.Generator, *, actions: int, size: int, num_frames: int
) -> tuple[np.ndarray, list[TrueSegment]]:
    """Frames ``(F, size, size, 3)`` uint8 of one long video and its true segments."""
    scene, appearance = draw_scene(rng, size)
    chunks: list[np.ndarray] = []
    segments: list[TrueSegment] = []
    previous = None
    for _ in range(actions):
        label = str(rng.choice([c for c in CLASSES if c != previous]))
        start = sum(len(c) for c in chunks)
        for _ in range(int(rng.integers(REPEATS[0], REPEATS[1] + 1))):
            chunks.append(render(appearance, trajectory(label, scene, size, num_frames)).frames)
            scene = draw_geometry(rng)
        segments.append(TrueSegment(start, sum(len(c) for c in chunks), label))
        previous = label
    return np.concatenate(chunks), segments


def timeline_dict(segments: list[TrueSegment], fps: float = FPS) -> dict[str, object]:
    return {
        "segments": [
            {
                "start": round(s.start_frame / fps, 6),
                "end": round(s.end_frame / fps, 6),
                "label": s.label,
            }
            for s in segments
        ]
    }


def generate_long(
    out: Path | str,
    count: int,
    *,
    seed: int = 0,
    actions: int = 6,
    size: int = 64,
    num_frames: int = 16,
    force: bool = False,
) -> list[Path]:
    """Write ``count`` long videos and their timelines under ``out/long/``; returns the videos."""
    if count < 1:
        raise ValueError(f"--long must be >= 1, got {count}")
    if actions < 2:
        raise ValueError(f"actions must be >= 2, got {actions}")
    _check_geometry(size, num_frames)
    folder = Path(out) / LONG_DIR
    if folder.exists():
        if not force:
            raise ValueError(f"{folder} already exists; force=True (--force) replaces it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    videos = []
    for i in range(count):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLIT_KEY, i)))
        frames, segments = render_long(rng, actions=actions, size=size, num_frames=num_frames)
        video = folder / f"long_{i:04d}.mp4"
        write_mp4(video, frames)
        text = json.dumps(timeline_dict(segments), indent=2) + "\n"
        (folder / f"long_{i:04d}.timeline.json").write_text(text)
        videos.append(video)
    log.info("wrote %d long videos to %s", count, folder)
    return videos
