"""Synthetic media for the data tests: lossless videos and frame folders with known pixels.

Exact comparison needs RGB to survive encoding: libx264rgb at qp 0 (lossless H.264 in RGB, with
B-frames so reordering is exercised), FFV1 in Matroska and lossless VP9 in RGB (gbrp) all decode
to the very RGB values written. A YUV 4:2:0 codec could not: the RGB -> YUV -> RGB round trip
itself rounds.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

HEIGHT, WIDTH = 24, 32


def pattern(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Frame ``index``: (H, W, 3) uint8, different for every index below 256 * 5."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = [(x * 4 + index) % 256, (y * 5 + index // 256 * 50) % 256, (x + y + index * 3) % 256]
    return np.stack(rgb, axis=-1).astype(np.uint8)


LOSSLESS = {
    "mp4": ("libx264rgb", "rgb24", {"qp": "0", "bf": "2"}),
    "mkv": ("ffv1", "bgr0", {}),
    "webm": ("libvpx-vp9", "gbrp", {"lossless": "1", "cpu-used": "8", "deadline": "realtime"}),
    "avi": ("mpeg4", "yuv420p", {"qscale": "2"}),  # lossy: compared approximately
}


def write_video(
    path: Path, num_frames: int, *, fps: int = 25, gop: int = 12, pts: list[int] | None = None
) -> Path:
    """Write frames ``pattern(0..num_frames-1)`` in the codec LOSSLESS gives for the suffix.

    ``pts``: explicit timestamps in milliseconds (a variable frame rate), else a constant rate.
    """
    codec, pix_fmt, options = LOSSLESS[path.suffix[1:]]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        stream.options = {**options, "g": str(gop)}
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(pattern(i), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_frames(
    folder: Path, num_frames: int, *, template: str = "img_{:05d}.png", start: int = 1
) -> Path:
    """A frame folder of ``pattern(i)`` images (png keeps them exact)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num_frames):
        Image.fromarray(pattern(i)).save(folder / template.format(start + i))
    return folder
