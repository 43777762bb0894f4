"""Pictures of an explanation: heatmaps over frames, tile grids, an animated GIF, bar charts.

Tiles are drawn with numpy and Pillow (a grid of 16 modules x 2 planes x 8 frames would take
matplotlib seconds); matplotlib draws only the charts and lends its colour maps. Heatmaps are
blended over the frames at half opacity: gates on an absolute 0-1 scale (``|G|``, dark = closed),
Grad-CAM on its clip-normalised 0-1 scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gateshift.input_spec import InputSpec

LABEL_WIDTH = 120  # pixels of the label column in grids


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


def grid_image(rows: Sequence[tuple[str, Sequence[np.ndarray]]], size: int) -> np.ndarray:
    """Labelled rows of equally many tiles -> one RGB image (label column on the left)."""
    from PIL import Image, ImageDraw

    cols = max(len(tiles) for _, tiles in rows)
    canvas = Image.new("RGB", (LABEL_WIDTH + cols * size, len(rows) * size), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, tiles) in enumerate(rows):
        draw.text((4, r * size + size // 2 - 6), label, fill="black")
        for c, tile in enumerate(tiles):
            canvas.paste(Image.fromarray(_tile(tile, size)), (LABEL_WIDTH + c * size, r * size))
    return np.asarray(canvas)


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


def plot_routing(
    path: Path, names: Sequence[str], shares: Sequence[tuple[float, float, float]], *, title: str
) -> None:
    """Stacked horizontal bars per module: (forward, backward, kept) fractions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.array(shares, dtype=float).reshape(-1, 3)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.6))
    left = np.zeros(len(names))
    for j, (label, colour) in enumerate(
        zip(("forward", "backward", "kept"), ("tab:red", "tab:blue", "0.8"), strict=True)
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
