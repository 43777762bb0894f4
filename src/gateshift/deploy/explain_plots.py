"""Pictures of an explanation: heatmaps over frames, tile grids, an animated GIF, bar charts.

Tiles are drawn with numpy and Pillow (a grid of 16 modules x 2 planes x 8 frames would take
matplotlib seconds); matplotlib draws only the charts and lends its colour maps. Grids carry a
colour bar saying what 0 and 1 mean; the animation is written as a GIF (Pillow) and as an MP4
(PyAV: H.264 where the FFmpeg build has libx264, else MPEG-4 Part 2). Heatmaps are
blended over the frames at half opacity: gates on an absolute 0-1 scale (``|G|``, dark = closed),
Grad-CAM on its clip-normalised 0-1 scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gateshift.input_spec import InputSpec

LABEL_WIDTH = 120  # pixels of the label column in grids
LEGEND_HEIGHT = 50  # pixels of the colour bar and its captions under a grid


def display_frames(clip: Tensor, spec: InputSpec) -> np.ndarray:
    """Normalised network input ``(T, 3, H, W)`` -> ``(T, H, W, 3)`` uint8 RGB for display."""
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    pixels = (clip.detach().float().cpu() * std + mean) * (255.0 / spec.value_range)
    if spec.colour == "BGR":
        pixels = pixels.flip(1)
    return pixels.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def overlay(frame: np.ndarray, heat: Tensor, *, cmap: str = "inferno") -> np.ndarray:
    """``heat`` ``(h, w)`` in [0, 1], resized to the frame, coloured and blended over it."""
    from matplotlib import colormaps

    h, w = frame.shape[:2]
    up = F.interpolate(heat[None, None].float(), size=(h, w), mode="bilinear")[0, 0]
    colour = colormaps[cmap](up.clamp(0, 1).numpy())[..., :3] * 255.0
    return (0.5 * frame + 0.5 * colour).round().astype(np.uint8)


def _tile(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def tile_size(frame_size: int) -> int:
    """Tiles between 64 and 112 pixels: small inputs readable, large grids not huge."""
    return int(min(max(frame_size, 64), 112))


@dataclass(frozen=True)
class Legend:
    """A colour bar under a grid: what the colour map's two ends mean."""

    title: str  # in the label column, e.g. "|G| (gate)"
    cmap: str
    low: str  # what 0 means
    high: str  # what 1 means


GATE_LEGEND = Legend("|G| gate", "inferno", "0 = closed: kept in place", "1 = open: shifted")
CAM_LEGEND = Legend("Grad-CAM", "jet", "0 = no evidence", "1 = clip's strongest")


def grid_image(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]], size: int, legend: Legend | None = None
) -> np.ndarray:
    """Labelled rows of equally many tiles -> one RGB image (label column on the left), with
    ``legend``'s colour bar below (:data:`LEGEND_HEIGHT` pixels)."""
    from PIL import Image, ImageDraw

    cols = max(len(tiles) for _, tiles in rows)
    extra = LEGEND_HEIGHT if legend is not None else 0
    canvas = Image.new("RGB", (LABEL_WIDTH + cols * size, len(rows) * size + extra), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, tiles) in enumerate(rows):
        draw.text((4, r * size + size // 2 - 6), label, fill="black")
        for c, tile in enumerate(tiles):
            canvas.paste(Image.fromarray(_tile(tile, size)), (LABEL_WIDTH + c * size, r * size))
    if legend is not None:
        _draw_legend(canvas, legend, top=len(rows) * size)
    return np.asarray(canvas)


def _draw_legend(canvas: Any, legend: Legend, *, top: int) -> None:
    """The colour map from 0 (left) to 1 (right) across the tile columns, ends explained."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    width = canvas.width - LABEL_WIDTH - 8
    ramp = colormaps[legend.cmap](np.linspace(0, 1, width))[:, :3] * 255.0  # (width, 3)
    bar = np.broadcast_to(ramp.round().astype(np.uint8), (12, width, 3))
    canvas.paste(Image.fromarray(np.ascontiguousarray(bar)), (LABEL_WIDTH, top + 6))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, top + 6), legend.title, fill="black")
    draw.text((LABEL_WIDTH, top + 20), legend.low, fill="black")
    right = draw.textlength(legend.high)
    draw.text((canvas.width - 8 - right, top + 34), legend.high, fill="black")


def mosaic(
    groups: Sequence[Sequence[tuple[str, np.ndarray]]], size: int, columns: int
) -> np.ndarray:
    """Captioned tiles, each group starting a new row and wrapping at ``columns`` (a GIF frame)."""
    from PIL import Image, ImageDraw

    places = []
    row = 0
    for group in groups:
        places += [(row + i // columns, i % columns, tile) for i, tile in enumerate(group)]
        row += -(-len(group) // columns)
    canvas = Image.new("RGB", (columns * size, row * size), "white")
    draw = ImageDraw.Draw(canvas)
    for r, c, (caption, tile) in places:
        x, y = c * size, r * size
        canvas.paste(Image.fromarray(_tile(tile, size)), (x, y))
        draw.rectangle((x, y, x + 6 * len(caption) + 4, y + 12), fill="black")
        draw.text((x + 2, y), caption, fill="white")
    return np.asarray(canvas)


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)


def save_gif(path: Path, frames: Sequence[np.ndarray], *, fps: float = 2.0) -> None:
    """An endlessly looping GIF (Pillow)."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    duration = int(1000 / fps)
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)


def save_mp4(path: Path, frames: Sequence[np.ndarray], *, fps: float = 2.0) -> str:
    """An MP4 of equally sized RGB frames (PyAV): H.264 (libx264) where this FFmpeg build has
    it, else MPEG-4 Part 2; yuv420p, sides padded to even. Returns the codec used."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    height, width = frames[0].shape[:2]
    even = (height + height % 2, width + width % 2)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = even
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"} if codec == "libx264" else {"qscale": "3"}
        for image in frames:
            padded = np.pad(image, ((0, even[0] - height), (0, even[1] - width), (0, 0)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")))
        container.mux(stream.encode(None))
    return codec


def plot_routing(
    path: Path,
    names: Sequence[str],
    shares: Sequence[tuple[float, float, float]],
    *,
    title: str,
    labels: tuple[str, str] = ("forward", "backward"),
) -> None:
    """Stacked horizontal bars per module: (forward, backward, kept) fractions; ``labels``
    name the first two (a causal module sends both to later frames)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.array(shares, dtype=float).reshape(-1, 3)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.6))
    left = np.zeros(len(names))
    for j, (label, colour) in enumerate(
        zip((*labels, "kept"), ("tab:red", "tab:blue", "0.8"), strict=True)
    ):
        ax.barh(range(len(names)), values[:, j], left=left, color=colour, label=label)
        left += values[:, j]
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()  # first module on top
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the module's feature magnitude")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_bars(path: Path, values: dict[str, float], *, title: str, ylabel: str) -> None:
    """One bar per entry, value written on top (fractions shown as percent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(list(values), [100 * v for v in values.values()], color="tab:blue")
    ax.bar_label(bars, fmt="%.1f")
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
