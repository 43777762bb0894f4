"""Clip-consistent RandAugment on uint8 ``(T, 3, H, W)`` tensors.

RandAugment (Cubuk et al., arXiv 1909.13719) in timm's variant, the one GSF trains with
(``rand-m9-mstd0.5``): ``num_ops`` operations drawn with replacement from 15, each applied with
probability ``prob`` at magnitude ``m`` plus Gaussian noise (std ``mstd``) clipped to [0, 10].
Magnitude-to-argument maps follow timm: rotate 30 deg, shear 0.3, translate 0.45 of the side
(signed at random), enhance factor ``0.1 + 1.8 m / 10``, posterize to ``int(4 m / 10)`` bits,
solarize threshold ``256 m / 10``, solarize-add ``110 m / 10``.

Video needs one draw per clip: every frame gets the same operations, magnitudes and signs, and
the operations that look at image statistics (auto-contrast, equalize, contrast) compute them
over the whole clip, so every frame goes through the same pixel mapping and motion is not
turned into flicker. Affine operations are one ``affine_grid`` / ``grid_sample`` pass (bilinear,
grey fill); colour operations are arithmetic on the tensor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_LEVEL = 10.0
FILL = 128.0  # grey for pixels an affine op moves in from outside the frame

Op = Callable[[Tensor, float], Tensor]  # (uint8 clip, signed argument) -> uint8 clip


def _to_uint8(x: Tensor) -> Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's "L" conversion


def _grey(x: Tensor) -> Tensor:
    """Luma of float ``(T, 3, H, W)`` as ``(T, 1, H, W)``."""
    return (LUMA[0] * x[:, 0:1] + LUMA[1] * x[:, 1:2] + LUMA[2] * x[:, 2:3]).floor_()


def _blend(degenerate: Tensor | float, x: Tensor, factor: float) -> Tensor:
    """PIL ``ImageEnhance``: ``degenerate + factor * (x - degenerate)``, back to uint8.

    Works in place on ``x`` (a fresh float copy), which keeps each op to a few cheap passes.
    """
    return _to_uint8(x.sub_(degenerate).mul_(factor).add_(degenerate))


def _affine(
    clip: Tensor, matrix: tuple[float, float, float, float], shift: tuple[float, float]
) -> Tensor:
    """Sample ``input(A @ p + b)`` for pixel offsets ``p`` from the frame centre."""
    _, _, h, w = clip.shape
    a, b, c, d = matrix
    # pixel -> normalised coordinates: x_n = x_p / (w / 2), y_n = y_p / (h / 2)
    theta = torch.tensor(
        [[a, b * h / w, 2 * shift[0] / w], [c * w / h, d, 2 * shift[1] / h]], dtype=torch.float32
    )
    x = clip.float().sub_(FILL)  # zero padding of grid_sample then becomes the grey fill
    # one grid shared by all frames (building one per frame costs more than the sampling)
    grid = F.affine_grid(theta[None], [1, 3, h, w], align_corners=False)
    grid = grid.expand(x.shape[0], -1, -1, -1)  # (T, H, W, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _to_uint8(out.add_(FILL))


def rotate(clip: Tensor, degrees: float) -> Tensor:
    r = math.radians(degrees)
    return _affine(clip, (math.cos(r), -math.sin(r), math.sin(r), math.cos(r)), (0.0, 0.0))


def shear_x(clip: Tensor, factor: float) -> Tensor:
    return _affine(clip, (1.0, factor, 0.0, 1.0), (0.0, 0.0))


def shear_y(clip: Tensor, factor: float) -> Tensor:
    return _affine(clip, (1.0, 0.0, factor, 1.0), (0.0, 0.0))


def translate_x(clip: Tensor, fraction: float) -> Tensor:
    return _affine(clip, (1.0, 0.0, 0.0, 1.0), (fraction * clip.shape[-1], 0.0))


def translate_y(clip: Tensor, fraction: float) -> Tensor:
    return _affine(clip, (1.0, 0.0, 0.0, 1.0), (0.0, fraction * clip.shape[-2]))


def auto_contrast(clip: Tensor, _: float) -> Tensor:
    """Stretch each channel's clip-wide [min, max] to [0, 255] (flat channels stay)."""
    lo, hi = torch.zeros(3, 1, 1), torch.ones(3, 1, 1)
    for ch in range(3):
        low, high = torch.aminmax(clip[:, ch])
        if high > low:
            lo[ch], hi[ch] = float(low), 255.0 / float(high - low)
    return _to_uint8(clip.float().sub_(lo).mul_(hi))


def equalize(clip: Tensor, _: float) -> Tensor:
    """PIL-style histogram equalisation with one look-up table per channel for the whole clip."""
    out = torch.empty_like(clip)
    for ch in range(3):
        values = clip[:, ch].reshape(-1).long()
        hist = torch.bincount(values, minlength=256)
        last = hist[hist.nonzero()[-1]].item()
        step = (values.numel() - last) // 255
        if step == 0:
            out[:, ch] = clip[:, ch]
            continue
        before = torch.cumsum(hist, 0) - hist  # pixels below each value
        lut = ((before + step // 2) // step).clamp_(0, 255).to(torch.uint8)
        out[:, ch] = lut[clip[:, ch].long()]
    return out


def invert(clip: Tensor, _: float) -> Tensor:
    return 255 - clip


def posterize(clip: Tensor, bits: float) -> Tensor:
    keep = int(bits)
    if keep >= 8:
        return clip
    mask = (0xFF << (8 - keep)) & 0xFF
    return clip & mask


def solarize(clip: Tensor, threshold: float) -> Tensor:
    # 255 - x == x ^ 255 on uint8; masks beat torch.where, which is slow on uint8
    return clip ^ (clip >= threshold).to(torch.uint8).mul_(255)


def solarize_add(clip: Tensor, add: float) -> Tensor:
    # only pixels below 128 move, by at most 127: no uint8 overflow
    return clip + (clip < 128).to(torch.uint8).mul_(min(int(add), 127))


def colour(clip: Tensor, factor: float) -> Tensor:
    x = clip.float()
    return _blend(_grey(x), x, factor)


def contrast(clip: Tensor, factor: float) -> Tensor:
    x = clip.float()
    channel_means = x.mean(dim=(0, 2, 3)).tolist()
    grey = round(sum(w * m for w, m in zip(LUMA, channel_means, strict=True)))
    return _blend(float(grey), x, factor)  # one mean grey for the whole clip


def brightness(clip: Tensor, factor: float) -> Tensor:
    return _to_uint8(clip.float().mul_(factor))


def sharpness(clip: Tensor, factor: float) -> Tensor:
    """Blend with PIL's 3x3 smoothing filter (centre 5, others 1, /13); border pixels kept."""
    x = clip.float()
    # separable 3x3 box sum from shifted slices: ~20x faster than a depthwise conv2d on CPU
    rows = x[..., :, :-2] + x[..., :, 1:-1] + x[..., :, 2:]  # (T, 3, H, W - 2)
    box = rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]  # (T, 3, H - 2, W - 2)
    smooth = x.clone()
    smooth[..., 1:-1, 1:-1] = box.add_(x[..., 1:-1, 1:-1], alpha=4.0).div_(13.0).round_()
    return _blend(smooth, x, factor)


def _enhance(m: float) -> float:
    return 0.1 + 1.8 * m / MAX_LEVEL


# name -> (op, magnitude -> argument, signed at random)
OPS: dict[str, tuple[Op, Callable[[float], float], bool]] = {
    "AutoContrast": (auto_contrast, lambda m: 0.0, False),
    "Equalize": (equalize, lambda m: 0.0, False),
    "Invert": (invert, lambda m: 0.0, False),
    "Rotate": (rotate, lambda m: 30.0 * m / MAX_LEVEL, True),
    "Posterize": (posterize, lambda m: float(int(4 * m / MAX_LEVEL)), False),
    "Solarize": (solarize, lambda m: float(int(256 * m / MAX_LEVEL)), False),
    "SolarizeAdd": (solarize_add, lambda m: float(int(110 * m / MAX_LEVEL)), False),
    "Color": (colour, _enhance, False),
    "Contrast": (contrast, _enhance, False),
    "Brightness": (brightness, _enhance, False),
    "Sharpness": (sharpness, _enhance, False),
    "ShearX": (shear_x, lambda m: 0.3 * m / MAX_LEVEL, True),
    "ShearY": (shear_y, lambda m: 0.3 * m / MAX_LEVEL, True),
    "TranslateXRel": (translate_x, lambda m: 0.45 * m / MAX_LEVEL, True),
    "TranslateYRel": (translate_y, lambda m: 0.45 * m / MAX_LEVEL, True),
}


@dataclass(frozen=True)
class ClipRandAugment:
    """RandAugment with one draw per clip (see the module docstring)."""

    num_ops: int = 2
    magnitude: float = 9.0
    magnitude_std: float = 0.5
    prob: float = 0.5
    ops: tuple[str, ...] = tuple(OPS)

    def __post_init__(self) -> None:
        unknown = [o for o in self.ops if o not in OPS]
        if unknown or not self.ops:
            raise ValueError(f"unknown RandAugment ops {unknown}; known: {sorted(OPS)}")
        if self.num_ops < 0 or not 0 <= self.prob <= 1 or self.magnitude_std < 0:
            raise ValueError("RandAugment needs num_ops >= 0, 0 <= prob <= 1, magnitude_std >= 0")

    def draw(self, generator: torch.Generator) -> list[tuple[str, float]]:
        """The (op name, signed argument) pairs applied to one clip."""
        applied = []
        for _ in range(self.num_ops):
            name = self.ops[int(torch.randint(len(self.ops), (), generator=generator))]
            # always draw all three, so the stream position does not depend on the ops chosen
            apply, sign = torch.rand(2, generator=generator).tolist()
            gauss = float(torch.randn((), generator=generator))
            if apply >= self.prob:
                continue
            m = min(max(self.magnitude + self.magnitude_std * gauss, 0.0), MAX_LEVEL)
            _, to_arg, signed = OPS[name]
            arg = to_arg(m)
            applied.append((name, -arg if signed and sign < 0.5 else arg))
        return applied

    def __call__(self, clip: Tensor, generator: torch.Generator) -> Tensor:
        for name, arg in self.draw(generator):
            clip = OPS[name][0](clip, arg)
        return clip


def parse_randaugment(config: str) -> ClipRandAugment:
    """Parse a timm-style config, e.g. ``rand-m9-mstd0.5`` (``m``, ``n``, ``mstd``, ``p`` keys)."""
    parts = config.split("-")
    if parts[0] != "rand":
        raise ValueError(f"RandAugment config must start with 'rand', got {config!r}")
    values: dict[str, float] = {}
    for part in parts[1:]:
        match = re.fullmatch(r"(mstd|m|n|p)(\d+(?:\.\d+)?)", part)
        if match is None:
            raise ValueError(f"unknown RandAugment setting {part!r} in {config!r}")
        values[match.group(1)] = float(match.group(2))
    return ClipRandAugment(
        num_ops=int(values.get("n", 2)),
        magnitude=values.get("m", 9.0),
        magnitude_std=values.get("mstd", 0.5),
        prob=values.get("p", 0.5),
    )
