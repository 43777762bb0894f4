"""Clip transforms on uint8 ``(T, C, H, W)`` tensors: one random draw per clip, never per frame.

The training recipe is TSN's (Wang et al., arXiv 1608.00859) as used by GSM (arXiv 1912.00381):
multi-scale crop (crop sides from the short side times {1, .875, .75, .66}, width and height
drawn independently at most one scale step apart, sides within 3 px of the target snapped to it,
offset from 13 fixed positions), resized to the crop size, random horizontal flip. Evaluation
resizes the short side and takes one centre crop, three crops along the long side, or TSN's ten
crops (4 corners + centre, and their mirror images). RandAugment (arXiv 1909.13719, as GSF uses
it) is an option, see :mod:`gateshift.data.randaugment`.

Speed (one core, 8 frames of 602x256 -> 224: about 1.5 ms per clip): the crop is a view, copied
once into channels-last memory (``F.interpolate``'s uint8 bilinear antialiased CPU kernel is
1.5-3x faster on it; a decoder's ``(T, H, W, C)`` array permuted to ``(T, C, H, W)`` already has
that layout) and only the crop is resized, still as uint8. Conversion to float, RGB->BGR, the
flip and normalisation happen once, at the end: one uint8 reorder + ``flip``, one cast, one
in-place multiply-add. All randomness comes from the ``torch.Generator`` passed in.

Horizontal flips change the meaning of direction classes ("Pushing something from left to
right"); :mod:`gateshift.data.flip_labels` derives the label swap from class names and refuses
flips it cannot make safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gateshift.data.flip_labels import resolve_flip_map
from gateshift.data.randaugment import ClipRandAugment, parse_randaugment
from gateshift.input_spec import InputSpec

#: TSN/GSM multi-scale crop scales (fractions of the short side).
MULTI_SCALES: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
#: Crop sides this close (strictly less, in pixels) to the target are snapped to it.
SNAP_PX = 3

Box = tuple[int, int, int, int]  # (top, left, height, width)


def _check_clip(frames: Tensor) -> None:
    if frames.dim() != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(
            f"expected uint8 frames (T, 3, H, W), got {frames.dtype} {tuple(frames.shape)}"
        )


def crop_sizes(
    height: int, width: int, target: int, scales: Sequence[float], max_distort: int
) -> list[tuple[int, int]]:
    """Allowed (crop_h, crop_w) pairs of the multi-scale crop, in draw order.

    Sides are ``int(short_side * scale)``, snapped to ``target`` when ``|side - target| < 3``,
    and clipped to the frame; height scale index ``i`` and width index ``j`` obey
    ``|i - j| <= max_distort``.
    """
    base = min(height, width)
    sides = [int(base * s) for s in scales]
    sides = [target if abs(s - target) < SNAP_PX else s for s in sides]
    return [
        (min(h, height), min(w, width))
        for i, h in enumerate(sides)
        for j, w in enumerate(sides)
        if abs(i - j) <= max_distort
    ]


def fixed_offsets(height: int, width: int, crop_h: int, crop_w: int) -> list[tuple[int, int]]:
    """TSN's 13 (top, left) crop positions on a 5x5 grid of quarter steps.

    Corners, centre, the four edge midpoints and the four quarter points; steps are
    ``(side - crop) // 4`` as in the released code.
    """
    hs, ws = (height - crop_h) // 4, (width - crop_w) // 4
    grid = (
        (0, 0), (0, 4), (4, 0), (4, 4), (2, 2),  # corners (row, column in steps), centre
        (2, 0), (2, 4), (4, 2), (0, 2),  # edge midpoints: left, right, bottom, top
        (1, 1), (1, 3), (3, 1), (3, 3),  # quarter points
    )  # fmt: skip
    return [(r * hs, c * ws) for r, c in grid]


def draw_multi_scale_crop(
    height: int,
    width: int,
    target: int,
    generator: torch.Generator,
    *,
    scales: Sequence[float] = MULTI_SCALES,
    max_distort: int = 1,
) -> Box:
    """One multi-scale crop box: a size pair, then one of the 13 fixed offsets, uniformly."""
    sizes = crop_sizes(height, width, target, scales, max_distort)
    crop_h, crop_w = sizes[int(torch.randint(len(sizes), (), generator=generator))]
    offsets = fixed_offsets(height, width, crop_h, crop_w)
    top, left = offsets[int(torch.randint(len(offsets), (), generator=generator))]
    return top, left, crop_h, crop_w


def crop(frames: Tensor, box: Box) -> Tensor:
    """A view of ``frames[..., top:top + h, left:left + w]`` (no copy)."""
    top, left, h, w = box
    return frames[..., top : top + h, left : left + w]


def resize(frames: Tensor, height: int, width: int) -> Tensor:
    """Bilinear, antialiased resize of uint8 ``(T, 3, H, W)``; keeps dtype, skips no-ops."""
    if frames.shape[-2:] == (height, width):
        return frames
    # the uint8 antialiased kernel is 1.5-3x faster on channels-last memory; for a decoder's
    # permuted (T, H, W, C) array this is no copy, and for NCHW input the copy still pays off
    frames = frames.contiguous(memory_format=torch.channels_last)
    return F.interpolate(
        frames, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )


def resize_short_side(frames: Tensor, size: int) -> Tensor:
    """Resize so the short side is ``size``; the long side is ``int(long * size / short)``."""
    h, w = frames.shape[-2:]
    if h <= w:
        return resize(frames, size, int(w * size / h))
    return resize(frames, int(h * size / w), size)


def eval_boxes(height: int, width: int, size: int, num_crops: int) -> list[Box]:
    """Boxes of the 1 (centre), 3 (ends and centre of the long side) or 5 (corners + centre)."""
    h, w = min(size, height), min(size, width)
    top, left = (height - h) // 2, (width - w) // 2
    if num_crops == 1:
        return [(top, left, h, w)]
    if num_crops == 3:
        if width >= height:  # landscape: left, centre, right
            return [(top, 0, h, w), (top, left, h, w), (top, width - w, h, w)]
        return [(0, left, h, w), (top, left, h, w), (height - h, left, h, w)]
    if num_crops == 5:
        bottom, right = height - h, width - w
        return [(0, 0, h, w), (0, right, h, w), (bottom, 0, h, w), (bottom, right, h, w),
                (top, left, h, w)]  # fmt: skip
    raise ValueError(f"num_crops must be 1, 3 or 10, got {num_crops}")


class Normalize:
    """uint8 RGB ``(..., 3, H, W)`` -> float32 network input following an :class:`InputSpec`.

    ``x = (pixel * value_range / 255 - mean) / std`` in the spec's colour order, computed as one
    multiply-add per channel after a single cast; an optional horizontal flip rides along.
    """

    def __init__(self, spec: InputSpec) -> None:
        std = torch.tensor(spec.std, dtype=torch.float64)
        mean = torch.tensor(spec.mean, dtype=torch.float64)
        self.scale = (spec.value_range / 255.0 / std).float().view(3, 1, 1)
        self.shift = (-mean / std).float().view(3, 1, 1)
        self.bgr = spec.colour == "BGR"

    def __call__(self, frames: Tensor, *, flip: bool = False, out: Tensor | None = None) -> Tensor:
        """Normalised float32 copy of ``frames``, written into ``out`` when given."""
        dims = ([-3] if self.bgr else []) + ([-1] if flip else [])
        # reorder to contiguous on uint8 (4x fewer bytes than on float); RGB->BGR and the mirror
        # are one cheap flip; then one cast and an in-place multiply-add
        x = frames.contiguous()
        if dims:
            x = x.flip(dims)
        x = x.float() if out is None else out.copy_(x)
        return x.mul_(self.scale).add_(self.shift)


def swap_labels(labels: tuple[int, ...], label_map: Mapping[int, int]) -> tuple[int, ...]:
    """Mirror the first label set through ``label_map``; later sets (e.g. nouns) never swap."""
    if not labels:
        return labels
    return (label_map.get(labels[0], labels[0]), *labels[1:])


@dataclass
class TrainTransform:
    """Multi-scale crop -> resize -> [RandAugment] -> [flip + label swap] -> normalise.

    Returns ``(1, T, 3, size, size)``. Draw order: crop size, crop offset, flip, RandAugment,
    so enabling RandAugment leaves the crop and flip of a given generator unchanged.
    """

    normalize: Normalize
    size: int
    scales: tuple[float, ...] = MULTI_SCALES
    max_distort: int = 1
    flip: bool = True
    label_map: Mapping[int, int] | None = None
    randaugment: ClipRandAugment | None = None

    def __call__(
        self, frames: Tensor, labels: tuple[int, ...], generator: torch.Generator
    ) -> tuple[Tensor, tuple[int, ...]]:
        _check_clip(frames)
        height, width = frames.shape[-2:]
        box = draw_multi_scale_crop(
            height, width, self.size, generator, scales=self.scales, max_distort=self.max_distort
        )
        x = resize(crop(frames, box), self.size, self.size)
        flipped = self.flip and bool(torch.rand((), generator=generator) < 0.5)
        if self.randaugment is not None:
            x = self.randaugment(x, generator)
        if flipped and self.label_map:
            labels = swap_labels(labels, self.label_map)
        return self.normalize(x, flip=flipped).unsqueeze(0), labels  # (1, T, 3, S, S)


@dataclass
class EvalTransform:
    """Short-side resize, then 1 / 3 / 10 crops; returns ``(V, T, 3, size, size)``, no randomness.

    Ten crops are the five of :func:`eval_boxes` followed by their mirror images (TSN's
    over-sampling); labels are returned unchanged, so ten crops are refused at build time for
    datasets with direction classes.
    """

    normalize: Normalize
    size: int
    resize_size: int
    num_crops: int = 1

    def __call__(
        self, frames: Tensor, labels: tuple[int, ...], generator: torch.Generator
    ) -> tuple[Tensor, tuple[int, ...]]:
        _check_clip(frames)
        x = resize_short_side(frames, self.resize_size)
        height, width = x.shape[-2:]
        boxes = eval_boxes(height, width, self.size, 5 if self.num_crops == 10 else self.num_crops)
        views = [resize(crop(x, b), self.size, self.size) for b in boxes]  # no-op unless clipped
        out = torch.empty(self.num_crops, x.shape[0], 3, self.size, self.size)
        for v, view in enumerate(views):
            self.normalize(view, out=out[v])
            if self.num_crops == 10:
                self.normalize(view, flip=True, out=out[v + 5])
        return out, labels  # (V, T, 3, size, size)


def build_train_transform(
    spec: InputSpec,
    *,
    scales: Sequence[float] = MULTI_SCALES,
    max_distort: int = 1,
    flip: bool = True,
    class_names: Sequence[str] | None = None,
    label_map: Mapping[int, int] | None = None,
    randaugment: str | ClipRandAugment | None = None,
) -> TrainTransform:
    """The GSM/TSN training transform for a backbone's input spec.

    ``flip=True`` needs ``class_names`` (the left/right label swap is derived from them, and
    flipping is refused when a direction class has no mirrored twin) or an explicit
    ``label_map`` (``{}``: flipping changes no label). ``randaugment``: a timm-style string such
    as ``"rand-m9-mstd0.5"`` or a :class:`ClipRandAugment`.
    """
    if not scales or any(not 0 < s <= 1 for s in scales):
        raise ValueError(f"scales must be in (0, 1], got {tuple(scales)}")
    if max_distort < 0:
        raise ValueError(f"max_distort must be >= 0, got {max_distort}")
    resolved = resolve_flip_map(class_names, label_map) if flip else None
    if isinstance(randaugment, str):
        randaugment = parse_randaugment(randaugment)
    return TrainTransform(
        Normalize(spec), spec.crop_size, tuple(scales), max_distort, flip, resolved, randaugment
    )


def build_eval_transform(
    spec: InputSpec,
    *,
    num_crops: int = 1,
    resize_size: int | None = None,
    class_names: Sequence[str] | None = None,
    label_map: Mapping[int, int] | None = None,
) -> EvalTransform:
    """Evaluation / prediction transform: short side to ``resize_size`` (default the spec's).

    Ten crops include mirrored views, so they follow the flip rule of
    :func:`build_train_transform`, and are refused when any label would swap.
    """
    if num_crops not in (1, 3, 10):
        raise ValueError(f"num_crops must be 1, 3 or 10, got {num_crops}")
    if num_crops == 10 and resolve_flip_map(class_names, label_map):
        raise ValueError(
            "ten crops average mirrored views, which changes the meaning of this dataset's "
            "direction classes; use num_crops=1 or 3"
        )
    size = resize_size if resize_size is not None else spec.resize_size
    if size < 1:
        raise ValueError(f"resize_size must be positive, got {size}")
    return EvalTransform(Normalize(spec), spec.crop_size, size, num_crops)
