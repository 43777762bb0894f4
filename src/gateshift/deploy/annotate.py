"""``--annotate``: a copy of the video with the current label and its probability burnt in.

Every frame of the source is re-encoded (H.264, yuv420p, the source's size rounded down to even
sides and its frame rate) with, in the top-left corner, a dark band holding the label of the
timeline cell the frame lies in (see :mod:`.segments`) and a bar as long as that label's
probability. Cells become final one window after the frame was decoded, so frames wait in a
queue until their cell is known: at most a window and a stride of source frames (the decoder's
own frames, not RGB copies). On an error or an interruption the container is closed properly,
so the frames written so far form a valid, playable file.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gateshift.deploy.segments import Cell

BAR_COLOUR = (255, 200, 0)


class Annotator:
    """Queue source frames with :meth:`push`, release them as cells become final with
    :meth:`decide`, end with :meth:`close` (which releases the rest with the last cell)."""

    def __init__(self, path: str | Path, *, width: int, height: int, fps: float) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self._container = av.open(str(self.path), mode="w")
        rate = Fraction(fps).limit_denominator(100_000)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = (
            max(2, width - width % 2),
            max(2, height - height % 2),
        )
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": "20", "preset": "veryfast"}
        self._queue: deque[tuple[int, Any]] = deque()
        self._cells: deque[Cell] = deque()
        self._font_size = max(8, height // 18)
        self._fonts: dict[str, Any] = {}  # label -> font that fits it in the frame's width
        self.frames_written = 0
        self.max_queued = 0

    def push(self, number: int, frame: Any) -> None:
        self._queue.append((number, frame))
        self.max_queued = max(self.max_queued, len(self._queue))
        self._release()

    def decide(self, cells: list[Cell]) -> None:
        self._cells.extend(cells)
        self._release()

    def _release(self, *, flush: bool = False) -> None:
        while self._queue:
            number, frame = self._queue[0]
            t = number / self.fps
            while len(self._cells) > 1 and t >= self._cells[0].end:
                self._cells.popleft()
            if not self._cells or (t >= self._cells[0].end and not flush):
                return  # its cell is not final yet
            self._queue.popleft()
            self._write(frame, self._cells[0])

    def _write(self, frame: Any, cell: Cell) -> None:
        image = Image.fromarray(frame.to_ndarray(format="rgb24"))
        draw = ImageDraw.Draw(image, "RGBA")
        w, h = image.size
        pad = max(2, h // 60)
        text = f"{cell.label} {100 * cell.prob:.0f}%"
        font = self._font(draw, cell.label, w - 2 * pad)
        _, _, right, bottom = draw.textbbox((pad, pad), text, font=font)
        bar_h = max(2, h // 40)
        band_w = min(w, max(right + pad, w // 3))
        draw.rectangle((0, 0, band_w, bottom + 2 * pad + bar_h), fill=(0, 0, 0, 150))
        draw.text((pad, pad), text, font=font, fill=(255, 255, 255, 255))
        bar_top = bottom + pad
        bar_w = round((band_w - 2 * pad) * min(max(cell.prob, 0.0), 1.0))
        draw.rectangle((pad, bar_top, pad + bar_w, bar_top + bar_h), fill=(*BAR_COLOUR, 255))
        out = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
        for packet in self._stream.encode(out):
            self._container.mux(packet)
        self.frames_written += 1

    def _font(self, draw: ImageDraw.ImageDraw, label: str, width: int) -> Any:
        """The default font at a size that fits ``label`` and a percentage in ``width`` pixels
        (never below 8 px: on tiny videos the end of a long label is cut)."""
        if label not in self._fonts:
            size = self._font_size
            font = ImageFont.load_default(size=size)
            length = draw.textlength(f"{label} 100%", font=font)
            if length > width:
                size = max(8, int(size * width / length))
                font = ImageFont.load_default(size=size)
            self._fonts[label] = font
        return self._fonts[label]

    def close(self, last: Cell | None = None) -> None:
        """Write the queued frames (with ``last`` when no cell covers them) and finish the file."""
        try:
            if last is not None:
                self._cells.append(last)
            if self._cells:
                self._release(flush=True)
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
