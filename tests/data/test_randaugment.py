"""Clip RandAugment: one draw per clip, the same pixel mapping and geometry for every frame."""

from __future__ import annotations

import pytest
import torch

from gateshift.data import randaugment as RA

# ops that read clip-wide statistics: per-frame application would differ, by design
CLIP_STATS = {"AutoContrast", "Equalize", "Contrast"}
POINTWISE = {"AutoContrast", "Equalize", "Invert", "Posterize", "Solarize", "SolarizeAdd",
             "Color", "Contrast", "Brightness"}  # fmt: skip


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _clip(t: int = 4, h: int = 24, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = _gen(seed)
    return torch.randint(0, 256, (t, 3, h, w), generator=g, dtype=torch.uint8)


def _arg(name: str) -> float:
    _, to_arg, signed = RA.OPS[name]
    return -to_arg(9.0) if signed else to_arg(9.0)


@pytest.mark.parametrize("name", sorted(RA.OPS))
def test_each_op_keeps_shape_dtype_and_treats_frames_alike(name: str) -> None:
    op = RA.OPS[name][0]
    clip = _clip()
    out = op(clip, _arg(name))
    assert out.shape == clip.shape and out.dtype == torch.uint8
    same = op(clip[:1].expand(3, -1, -1, -1).contiguous(), _arg(name))
    assert torch.equal(same[0], same[1]) and torch.equal(same[0], same[2])
    if name not in CLIP_STATS:  # the op on the clip is the op on each frame
        for t in range(clip.shape[0]):
            assert torch.equal(out[t], op(clip[t : t + 1], _arg(name))[0])


@pytest.mark.parametrize("name", sorted(POINTWISE))
def test_pointwise_ops_map_pixels_the_same_way_in_every_frame(name: str) -> None:
    # frame 1 is frame 0 with its pixels shuffled: a shared per-pixel mapping commutes with that
    clip = _clip(1)
    perm = torch.randperm(24 * 32, generator=_gen(1))
    shuffled = clip.reshape(1, 3, -1)[:, :, perm].reshape(1, 3, 24, 32)
    out = RA.OPS[name][0](torch.cat([clip, shuffled]), _arg(name))
    assert torch.equal(out[0].reshape(3, -1)[:, perm], out[1].reshape(3, -1))


def test_op_semantics() -> None:
    clip = (
        torch.tensor([0, 100, 129, 200, 255], dtype=torch.uint8).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    )
    assert RA.invert(clip, 0)[0, 0, 0].tolist() == [255, 155, 126, 55, 0]
    assert RA.posterize(clip, 3)[0, 0, 0].tolist() == [0, 96, 128, 192, 224]
    assert RA.solarize(clip, 129)[0, 0, 0].tolist() == [0, 100, 126, 55, 0]
    assert RA.solarize_add(clip, 99)[0, 0, 0].tolist() == [99, 199, 129, 200, 255]
    assert RA.brightness(clip, 0.5)[0, 0, 0].tolist() == [0, 50, 64, 100, 128]  # round half even
    stretched = RA.auto_contrast(clip // 2 + 10, 0)
    assert stretched.min() == 0 and stretched.max() == 255
    # a rotation by 90 degrees of a square image moves the top-left corner to a corner
    square = torch.zeros(1, 3, 9, 9, dtype=torch.uint8)
    square[..., 0, 0] = 255
    turned = RA.rotate(square, 90.0)[0, 0]
    assert turned[0, 0] == 0 and {turned[0, -1].item(), turned[-1, 0].item()} == {0, 255}
    moved = RA.translate_x(square, 0.5)  # samples input(x + W / 2): content moves left
    assert moved[0, 0, 0, -1].item() == RA.FILL and moved[0, 0, 0, 0].item() == 0


def test_magnitudes_follow_timm() -> None:
    assert RA.OPS["Rotate"][1](9.0) == pytest.approx(27.0)
    assert RA.OPS["ShearX"][1](10.0) == pytest.approx(0.3)
    assert RA.OPS["TranslateXRel"][1](10.0) == pytest.approx(0.45)
    assert RA.OPS["Color"][1](9.0) == pytest.approx(1.72)
    assert RA.OPS["Posterize"][1](9.0) == 3.0
    assert RA.OPS["Solarize"][1](9.0) == 230.0
    assert RA.OPS["SolarizeAdd"][1](9.0) == 99.0


def test_draws_follow_the_generator_and_the_config() -> None:
    ra = RA.parse_randaugment("rand-m9-mstd0.5")
    assert (ra.num_ops, ra.magnitude, ra.magnitude_std, ra.prob) == (2, 9.0, 0.5, 0.5)
    draws = [ra.draw(_gen(s)) for s in range(300)]
    assert draws[:5] == [ra.draw(_gen(s)) for s in range(5)]
    counts = [len(d) for d in draws]
    assert set(counts) == {0, 1, 2} and 250 < sum(counts) < 350  # each op kept with p = 0.5
    rotations = [arg for d in draws for name, arg in d if name == "Rotate"]
    assert min(rotations) < 0 < max(rotations) and max(abs(r) for r in rotations) <= 30.0
    always = RA.parse_randaugment("rand-m5-n3-mstd0-p1")
    assert all(len(always.draw(_gen(s))) == 3 for s in range(10))
    clip = _clip()
    assert torch.equal(ra(clip, _gen(3)), ra(clip, _gen(3)))
    with pytest.raises(ValueError, match="unknown"):
        RA.parse_randaugment("rand-m9-inc1")
