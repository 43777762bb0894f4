"""The embedded temporal-reasoning dataset: classes that only the order of frames tells apart.

Small H.264 videos of a textured shape on a textured background, in 11 classes: moving left /
right / up / down, approaching / receding, rotating clockwise / anticlockwise, appearing /
disappearing, and still. It is the dataset on which a model with temporal modelling (GSM,
arXiv 1912.00381; TSM) must beat TSN (arXiv 1608.00859), which averages per-frame scores and so
only ever sees the unordered set of frames.

Why TSN stays blind to it, choice by choice:

* Time-reversed twins by construction. Every clip is drawn from one parameter draw that does
  not depend on the class (appearance, base geometry, motion magnitudes, in a fixed order);
  the class only picks which attribute changes and the sign of its change, linear in time and
  centred on the clip's middle. So a twin's clip from the same draw is exactly the clip played
  backwards (the tests check frame equality), and the distribution of the unordered set of
  frames, hence of any single frame taken at a random time, is identical within a twin pair.
* Nothing but order carries the class: shape, texture, colours, background, speed, size,
  position and angle are random and their ranges are the same for both twins; the base
  position's range shrinks with the travel the class needs, and does so symmetrically.
* Every frame is coded alone (intra only, constant quantiser 18): with P-frames, or rate
  control that looks back in time, the first frame would be coded differently from the last
  and compression artefacts could tell early frames from late ones, i.e. break the symmetry.
  QP 18 keeps the textures at 64 px.
* Textures move with the object (object coordinates), so rotation is visible for every shape,
  and every object carries an off-centre marker (black or white, whatever the class), which
  gives every shape and texture a 360-degree period: the turn between sampled frames (8 of 16:
  2 frames apart on average, 29-43 degrees) can never alias into the opposite turn, and the
  marker shows the rotation like a clock hand.

What a temporal model gets: an object 10-14 px in radius at 64 px on a calm background, moving
1.5-2.3 px per frame (3-5 px between sampled frames), rotating 15-21 degrees per frame, growing
or shrinking by 2-2.8x over the clip, or fading in or out; every change spans the whole clip,
so any 8 of 16 frames show it, and the object stays mostly inside the frame. Pairs stay
distinguishable without order (a fading object is not a moving one); only the direction is
hidden.

How well models do on it is measured by ``gateshift demo`` (see the README): a slim ResNet-18
trained from scratch with and without GSM, same recipe and budget.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: class name -> (attribute that changes over time, sign of the change); image y points down
MOTIONS: dict[str, tuple[str, int]] = {
    "appearing": ("alpha", 1),
    "approaching": ("scale", 1),
    "disappearing": ("alpha", -1),
    "moving_down": ("y", 1),
    "moving_left": ("x", -1),
    "moving_right": ("x", 1),
    "moving_up": ("y", -1),
    "receding": ("scale", -1),
    "rotating_anticlockwise": ("angle", -1),
    "rotating_clockwise": ("angle", 1),
    "still": ("", 0),
}
#: class names in class-index order (alphabetical, as a folder-per-class reader sorts them)
CLASSES: tuple[str, ...] = tuple(sorted(MOTIONS))
#: each class's time-reversed twin (``still`` is its own)
TWINS: dict[str, str] = {
    name: next(o for o, m in MOTIONS.items() if m == (attr, -sign))
    for name, (attr, sign) in MOTIONS.items()
}
SHAPES = ("disc", "square", "diamond", "triangle", "cross")
TEXTURES = ("stripes", "checker", "sectors", "halves")
FPS = 12
QP = 18
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Scene:
    """Class-independent geometry and motion magnitudes of one clip (lengths relative to size)."""

    radius: float  # object radius at mid-clip / size
    pos_x: float  # base position in [0, 1] of the allowed range
    pos_y: float
    angle: float  # radians at mid-clip
    travel: float  # moving: distance over the clip / size
    rotation: float  # rotating: radians over the clip
    scale_ratio: float  # approaching: last radius / first radius
    fade: float  # appearing: opacity slope over the clip (clipped to [0, 1])


@dataclass(frozen=True)
class Appearance:
    """Background image and object style (texture in object coordinates, so it moves along)."""

    background: np.ndarray  # (S, S, 3) float in [0, 1]
    shape: str
    texture: str
    frequency: float
    orientation: float
    colours: np.ndarray  # (2, 3) the object's two texture colours


@dataclass(frozen=True)
class Trajectory:
    """Per-frame state, each ``(F,)``: centre (px), radius (px), angle (rad), opacity."""

    cx: np.ndarray
    cy: np.ndarray
    radius: np.ndarray
    angle: np.ndarray
    alpha: np.ndarray


@dataclass(frozen=True)
class Clip:
    """A rendered clip with the ground truth behind it.

    ``frames``: ``(F, S, S, 3)`` uint8 RGB. ``coverage``: ``(F, S, S)`` object opacity per
    pixel (its sum is the visible object area).
    """

    frames: np.ndarray
    trajectory: Trajectory
    coverage: np.ndarray


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinear upsampling of a ``cells x cells`` random grid to ``(size, size)``."""
    grid = rng.random((cells, cells))
    knots, pixels = np.linspace(0, size - 1, cells), np.arange(size)
    rows = np.stack([np.interp(pixels, knots, row) for row in grid])  # (cells, S)
    return np.stack([np.interp(pixels, knots, col) for col in rows.T], axis=1)  # (S, S)


def _draw_background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.integers(3)
    y, x = np.mgrid[0:size, 0:size] / size
    if kind == 0:
        pattern = _smooth_noise(rng, size, int(rng.integers(4, 8)))
    else:
        freq, theta = rng.uniform(2, 6), rng.uniform(0, np.pi)
        along = np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)))
        across = np.sin(2 * np.pi * freq * (-x * np.sin(theta) + y * np.cos(theta)))
        pattern = 0.5 + 0.5 * (along if kind == 1 else np.tanh(3 * along * across))
    low = rng.uniform(0.1, 0.9, 3)
    high = np.clip(low + rng.normal(0, 0.12, 3), 0, 1)  # calm: the object stands out
    grain = rng.normal(0, 0.02, (size, size, 1))  # static fine texture
    return np.clip(low + (high - low) * pattern[..., None] + grain, 0, 1)


def _draw_colours(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """Two object colours that differ from each other and from the background's mean."""
    mean = background.mean(axis=(0, 1))
    while True:
        colours = rng.random((2, 3))
        inner = np.linalg.norm(colours[0] - colours[1])
        outer = np.linalg.norm(colours.mean(axis=0) - mean)
        if inner > 0.4 and outer > 0.45:
            return colours


def draw_scene(rng: np.random.Generator, size: int) -> tuple[Scene, Appearance]:
    """All random draws of a clip, in a fixed order that does not depend on its class."""
    background = _draw_background(rng, size)
    appearance = Appearance(
        background=background,
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
        frequency=float(rng.uniform(1.5, 3.0)),
        orientation=float(rng.uniform(0, np.pi)),
        colours=_draw_colours(rng, background),
    )
    return draw_geometry(rng), appearance


def draw_geometry(rng: np.random.Generator) -> Scene:
    """The class-independent geometry and motion magnitudes of one clip."""
    values = rng.uniform(
        [0.15, 0, 0, 0, 0.35, np.radians(220), 2.0, 1.2],
        [0.22, 1, 1, 2 * np.pi, 0.55, np.radians(320), 2.8, 1.6],
    )
    return Scene(*(float(v) for v in values))


def trajectory(class_name: str, scene: Scene, size: int, num_frames: int) -> Trajectory:
    """Per-frame object state of a class for one scene draw."""
    if class_name not in MOTIONS:
        raise ValueError(f"unknown synthetic class {class_name!r}; classes: {', '.join(CLASSES)}")
    attr, sign = MOTIONS[class_name]
    # tau runs over [-1/2, 1/2] and is odd under time reversal, so the twin (-sign) is this
    # clip played backwards, exactly
    tau = (np.arange(num_frames) - (num_frames - 1) / 2) / (num_frames - 1)
    change, ones = sign * tau, np.ones(num_frames)
    grow = scene.scale_ratio if attr == "scale" else 1.0
    radius_max = scene.radius * size * grow**0.5
    centre = []
    for axis, pos in (("x", scene.pos_x), ("y", scene.pos_y)):
        travel = scene.travel * size if attr == axis else 0.0
        lo = 0.8 * radius_max + travel / 2  # at most ~20% of the object ever leaves the frame
        centre.append(lo + pos * (size - 2 * lo) + travel * change)
    r0 = scene.radius * size
    return Trajectory(
        cx=centre[0],
        cy=centre[1],
        radius=r0 * grow**change if attr == "scale" else r0 * ones,
        angle=scene.angle + scene.rotation * change if attr == "angle" else scene.angle * ones,
        alpha=np.clip(0.5 + scene.fade * change, 0, 1) if attr == "alpha" else ones,
    )


def _signed_distance(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (approximately, in object radii) to the outline; negative inside."""
    au, av = np.abs(u), np.abs(v)
    if shape == "disc":
        return np.hypot(u, v) - 1.0
    if shape == "square":
        return np.maximum(au, av) - 0.8
    if shape == "diamond":
        return (au + av - 1.1) / np.sqrt(2)
    if shape == "triangle":  # three half-planes with outward normals 120 degrees apart
        normals = [(np.cos(a), np.sin(a)) for a in np.radians([-90, 30, 150])]
        return np.max([nu * u + nv * v for nu, nv in normals], axis=0) - 0.6
    bar_h, bar_v = np.maximum(au - 1.0, av - 0.38), np.maximum(au - 0.38, av - 1.0)
    return np.minimum(bar_h, bar_v)  # cross


def _texture(app: Appearance, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Object texture in [0, 1] in object coordinates; none is rotation invariant."""
    c, s = np.cos(app.orientation), np.sin(app.orientation)
    along, across = c * u + s * v, -s * u + c * v
    f = np.pi * app.frequency
    if app.texture == "stripes":  # period 180 degrees
        return 0.5 + 0.5 * np.sin(f * along)
    if app.texture == "checker":  # period 90 degrees
        return 0.5 + 0.5 * np.tanh(4 * np.sin(f * along) * np.sin(f * across))
    if app.texture == "sectors":  # 1 to 3 sectors pairs: period 360, 180 or 120 degrees
        return 0.5 + 0.5 * np.sin(round(app.frequency) * np.arctan2(across, along))
    return 0.5 + 0.5 * np.tanh(4 * along)  # halves: period 360 degrees


MARKER = (0.55, 0.27)  # marker centre on the object's u axis and its radius, in object radii


def _marker_colour(colours: np.ndarray) -> np.ndarray:
    """Black on light objects, white on dark ones."""
    return np.zeros(3) if colours.mean() > 0.5 else np.ones(3)


def render(app: Appearance, traj: Trajectory) -> Clip:
    """Draw the object over the background at every frame's state (vectorised over frames)."""
    size = app.background.shape[0]
    pixels = np.arange(size) + 0.5  # pixel centres
    dx = pixels[None, None, :] - traj.cx[:, None, None]  # (F, 1, S)
    dy = pixels[None, :, None] - traj.cy[:, None, None]  # (F, S, 1)
    cos, sin = np.cos(traj.angle)[:, None, None], np.sin(traj.angle)[:, None, None]
    r = traj.radius[:, None, None]
    # object coordinates: undo the rotation (clockwise on screen for a growing angle, y down)
    u, v = (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r  # (F, S, S)
    coverage = np.clip(0.5 - _signed_distance(app.shape, u, v) * r, 0, 1)  # antialiased edge
    coverage = coverage * traj.alpha[:, None, None]
    p = _texture(app, u, v)[..., None]
    obj = app.colours[0] * (1 - p) + app.colours[1] * p  # (F, S, S, 3)
    # an off-centre marker on every object (whatever its class) gives every shape a 360-degree
    # period, so a turn never looks like the opposite turn, and shows rotation like a clock hand
    marker = np.clip(0.5 - (np.hypot(u - MARKER[0], v) - MARKER[1]) * r, 0, 1)[..., None]
    obj = obj * (1 - marker) + _marker_colour(app.colours) * marker
    a = coverage[..., None]
    frames = app.background[None] * (1 - a) + obj * a
    return Clip(np.round(frames * 255).astype(np.uint8), traj, coverage)


def _check_geometry(size: int, num_frames: int) -> None:
    if size < 16 or size % 2:
        raise ValueError(f"size must be even and >= 16 (H.264 4:2:0), got {size}")
    if num_frames < 4:
        raise ValueError(f"num_frames must be >= 4, got {num_frames}")


def render_clip(
    class_name: str, rng: np.random.Generator, *, size: int = 64, num_frames: int = 16
) -> Clip:
    """One clip of ``class_name``: frames ``(F, size, size, 3)`` uint8 RGB plus its trajectory.

    The draws from ``rng`` do not depend on the class, so the same ``rng`` state gives a clip
    and, for its twin, the same clip reversed in time.
    """
    _check_geometry(size, num_frames)
    scene, appearance = draw_scene(rng, size)
    return render(appearance, trajectory(class_name, scene, size, num_frames))


def write_mp4(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    """H.264 intra-only (every frame a key frame) at constant QP, yuv420p, single-threaded."""
    import av  # lazy: the rest of the data package does not need FFmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qp": str(QP)}
        stream.codec_context.gop_size = 1  # intra only: see the module docstring
        stream.codec_context.thread_count = 1
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`generate` wrote."""

    root: Path
    counts: dict[str, int]  # videos per split
    classes: tuple[str, ...]
    seconds: float


def _seed_for(seed: int, split: int, label: int, index: int) -> np.random.Generator:
    # every video has its own stream: independent of generation order, reproducible one by one
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split, label, index)))


def _prepare_root(out: Path, force: bool) -> None:
    existing = [out / s for s in SPLITS if (out / s).exists()]
    if existing and not force:
        raise ValueError(
            f"{out} already holds a dataset ({existing[0].name}/); force=True (--force) replaces it"
        )
    for path in existing:
        shutil.rmtree(path)
    out.mkdir(parents=True, exist_ok=True)


def _write_class(job: tuple[Path, int, int, str, int, str, int, int, int]) -> None:
    """Render and write one class's videos of one split (a unit of work for the workers)."""
    root, seed, split_index, split, label, name, count, size, num_frames = job
    for i in range(count):
        clip = render_clip(
            name, _seed_for(seed, split_index, label, i), size=size, num_frames=num_frames
        )
        write_mp4(root / split / name / f"{name}_{i:04d}.mp4", clip.frames)


def generate(
    out: Path | str,
    *,
    seed: int = 0,
    videos_per_class: int = 48,
    val_per_class: int | None = None,
    size: int = 64,
    num_frames: int = 16,
    force: bool = False,
    workers: int = 1,
) -> SyntheticSummary:
    """Write ``out/{train,val}/<class>/<class>_<i>.mp4``, ``out/classes.txt`` and settings.

    ``videos_per_class`` is the train count; val defaults to a quarter of it (at least 1).
    The same arguments give byte-identical decoded frames, whatever ``workers`` (processes that
    render and encode classes in parallel).
    """
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be >= 1, got {videos_per_class}")
    val = max(1, round(videos_per_class / 4)) if val_per_class is None else val_per_class
    if val < 1:
        raise ValueError(f"val_per_class must be >= 1, got {val}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    _check_geometry(size, num_frames)  # before anything on disk is replaced
    root = Path(out)
    _prepare_root(root, force)
    start = time.perf_counter()
    per_split = {"train": videos_per_class, "val": val}
    jobs = [
        (root, seed, split_index, split, label, name, per_class, size, num_frames)
        for split_index, (split, per_class) in enumerate(per_split.items())
        for label, name in enumerate(CLASSES)
    ]
    if workers > 1:  # every video has its own seed: the same files whatever the worker count
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            list(pool.map(_write_class, jobs))
    else:
        for job in jobs:
            _write_class(job)
    counts = {split: per_class * len(CLASSES) for split, per_class in per_split.items()}
    for split, count in counts.items():
        logger.info("wrote %d %s videos to %s", count, split, root / split)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    settings = {"seed": seed, "size": size, "num_frames": num_frames, "fps": FPS, "qp": QP,
                "videos": counts, "twins": TWINS}  # fmt: skip
    (root / "synthetic.json").write_text(json.dumps(settings, indent=2) + "\n")
    return SyntheticSummary(root, counts, CLASSES, time.perf_counter() - start)
