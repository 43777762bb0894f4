"""Clip transforms: one draw per clip, label swap exactly with the flip, exact normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gateshift.data import transforms as T
from gateshift.data.flip_labels import flip_label_map, resolve_flip_map
from gateshift.input_spec import CAFFE_BGR_224, IMAGENET_RGB_224, InputSpec

# identity normalisation: output = pixel value, so geometry can be read off the output
RAW = InputSpec("RGB", 255.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 32, 40)
SS_V1 = (Path(__file__).parent / "ss_v1_classes.txt").read_text().splitlines()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _clip(t: int, h: int, w: int, seed: int = 0, high: int = 100) -> torch.Tensor:
    """Random uint8 frames, channels-last like a decoder's output."""
    g = _gen(seed)
    return torch.randint(0, high, (t, h, w, 3), generator=g, dtype=torch.uint8).permute(0, 3, 1, 2)


def test_crop_sizes_follow_the_tsn_rule() -> None:
    # short side 256, target 224: sides 256, 224, 192, 168; |i - j| <= 1
    sizes = T.crop_sizes(256, 602, 224, T.MULTI_SCALES, 1)
    s = [256, 224, 192, 168]
    expected = [(s[i], s[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1]
    assert sizes == expected and len(sizes) == 10
    # short side 254: 0.875 * 254 = 222 is within 3 px of 224 and snaps; 0.75 * 254 = 190 does not
    assert sorted({h for h, _ in T.crop_sizes(254, 300, 224, T.MULTI_SCALES, 1)}) == [
        167,
        190,
        224,
        254,
    ]
    assert T.crop_sizes(256, 602, 224, T.MULTI_SCALES, 0) == [(v, v) for v in s]


def test_fixed_offsets_are_the_13_tsn_positions() -> None:
    offsets = T.fixed_offsets(256, 602, 224, 256)  # steps: 32 // 4 = 8, 346 // 4 = 86
    assert len(offsets) == 13
    assert set(offsets) == {(8 * r, 86 * c) for r, c in [
        (0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2),
        (1, 1), (1, 3), (3, 1), (3, 3)]}  # fmt: skip


def test_multi_scale_crops_come_from_the_allowed_sets() -> None:
    sizes = T.crop_sizes(256, 602, 224, T.MULTI_SCALES, 1)
    seen_sizes, seen_offsets = set(), set()
    for seed in range(600):
        top, left, h, w = T.draw_multi_scale_crop(256, 602, 224, _gen(seed))
        assert (h, w) in sizes
        assert (top, left) in T.fixed_offsets(256, 602, h, w)
        assert top + h <= 256 and left + w <= 602
        seen_sizes.add((h, w))
        seen_offsets.add(T.fixed_offsets(256, 602, h, w).index((top, left)))
    assert seen_sizes == set(sizes) and seen_offsets == set(range(13))


def test_train_transform_equals_the_manual_pipeline() -> None:
    frames = _clip(4, 48, 80, high=256)
    tf = T.build_train_transform(IMAGENET_RGB_224, label_map={})
    for seed in range(6):
        out, _ = tf(frames, (0,), _gen(seed))
        g = _gen(seed)  # replay the draws: crop size and offset, then the flip
        box = T.draw_multi_scale_crop(48, 80, 224, g)
        flipped = bool(torch.rand((), generator=g) < 0.5)
        x = T.resize(T.crop(frames, box), 224, 224).float()
        x = x.flip(-1) if flipped else x
        mean = torch.tensor(IMAGENET_RGB_224.mean).view(3, 1, 1)
        std = torch.tensor(IMAGENET_RGB_224.std).view(3, 1, 1)
        assert out.shape == (1, 4, 3, 224, 224) and out.dtype == torch.float32
        assert out.is_contiguous()
        torch.testing.assert_close(out[0], (x / 255 - mean) / std, atol=1e-5, rtol=0)


def test_all_frames_get_the_same_crop_and_flip() -> None:
    # frames that differ by a constant stay so only if every frame gets the same crop and flip
    base = _clip(1, 60, 90, high=120)
    frames = torch.cat([base + 15 * t for t in range(6)])  # (6, 3, 60, 90)
    spec = InputSpec("RGB", 255.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 32, 36)
    tf = T.build_train_transform(spec, label_map={})
    offsets = (15.0 * torch.arange(6)).view(6, 1, 1, 1)
    for seed in range(20):
        out, _ = tf(frames, (0,), _gen(seed))
        diff = out[0] - out[0, :1]  # (6, 3, 32, 32) minus frame 0
        assert (diff - offsets).abs().max() <= 1.0  # the uint8 resize rounds once per frame


def test_randaugment_leaves_crop_and_flip_draws_unchanged() -> None:
    plain = T.build_train_transform(RAW, label_map={0: 1, 1: 0})
    augmented = T.build_train_transform(RAW, label_map={0: 1, 1: 0}, randaugment="rand-m9-n2")
    frames = _clip(3, 40, 50, high=256)
    for seed in range(30):
        a, labels_a = plain(frames, (0,), _gen(seed))
        b, labels_b = augmented(frames, (0,), _gen(seed))
        assert labels_a == labels_b and a.shape == b.shape


def _asymmetric_clip() -> torch.Tensor:
    ramp = torch.linspace(0, 255, 64).round().to(torch.uint8)
    return ramp.view(1, 1, 1, 64).expand(3, 3, 48, 64).contiguous()  # brightness grows rightwards


def test_label_swap_happens_exactly_with_the_flip() -> None:
    tf = T.build_train_transform(RAW, label_map={0: 1, 1: 0})
    flips = 0
    for seed in range(200):
        out, labels = tf(_asymmetric_clip(), (0, 7), _gen(seed))
        flipped = bool(out[0, :, :, :, 0].mean() > out[0, :, :, :, -1].mean())
        flips += flipped
        assert labels == ((1, 7) if flipped else (0, 7))  # only the first label set swaps
        _, kept = tf(_asymmetric_clip(), (5,), _gen(seed))
        assert kept == (5,)  # a label outside the map never changes
    assert 70 < flips < 130


def test_no_flip_means_no_swap() -> None:
    tf = T.build_train_transform(RAW, flip=False)
    for seed in range(20):
        out, labels = tf(_asymmetric_clip(), (0,), _gen(seed))
        assert labels == (0,) and out[0, :, :, :, 0].mean() < out[0, :, :, :, -1].mean()


def test_normalisation_rgb_unit_range() -> None:
    values = torch.arange(0, 256, 5, dtype=torch.uint8)  # 52 values
    frames = torch.stack([values, values.flip(0), values // 2]).view(1, 3, 4, 13)
    out = T.Normalize(IMAGENET_RGB_224)(frames)
    mean = torch.tensor(IMAGENET_RGB_224.mean, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(IMAGENET_RGB_224.std, dtype=torch.float64).view(3, 1, 1)
    expected = (frames.double() * 1.0 / 255.0 - mean) / std
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, atol=2e-6, rtol=0)


def test_normalisation_bgr_caffe_range_is_exact() -> None:
    frames = torch.tensor([10, 200, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = T.Normalize(CAFFE_BGR_224)(frames)
    # BGR order, 0-255, minus (104, 117, 128): B = 255 - 104, G = 200 - 117, R = 10 - 128
    assert torch.equal(out[:, :, 0, 0], torch.tensor([[151.0, 83.0, -118.0]] * 2))
    flipped = T.Normalize(CAFFE_BGR_224)(frames, flip=True)
    assert torch.equal(flipped, out)  # a uniform image is its own mirror image


def test_eval_transform_normalises_the_centre_crop() -> None:
    spec = InputSpec("BGR", 255.0, (104.0, 117.0, 128.0), (1.0, 1.0, 1.0), 4, 6)
    frames = _clip(3, 6, 10, high=256)  # short side already 6: no resize
    out, labels = T.build_eval_transform(spec)(frames, (3,), _gen(0))
    expected = frames[:, [2, 1, 0], 1:5, 3:7].float() - torch.tensor([104.0, 117, 128]).view(
        3, 1, 1
    )
    assert labels == (3,) and out.shape == (1, 3, 3, 4, 4)
    assert torch.equal(out[0], expected)


def _position_clip(h: int, w: int) -> torch.Tensor:
    """Channel 0 holds the column, channel 1 the row: crops can be located exactly."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([xs, ys, torch.zeros_like(xs)]).to(torch.uint8).unsqueeze(0)


def test_ten_crops_geometry() -> None:
    spec = InputSpec("RGB", 255.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 4, 8)
    tf = T.build_eval_transform(spec, num_crops=10, label_map={})
    out, _ = tf(_position_clip(8, 12), (0,), _gen(0))
    assert out.shape == (10, 1, 3, 4, 4)
    corners = [(0, 0), (0, 8), (4, 0), (4, 8), (2, 4)]  # (top, left): 4 corners, then centre
    for v, (top, left) in enumerate(corners):
        cols, rows = out[v, 0, 0], out[v, 0, 1]
        assert torch.equal(cols[0], torch.arange(left, left + 4.0))
        assert torch.equal(rows[:, 0], torch.arange(top, top + 4.0))
        assert torch.equal(out[v + 5], out[v].flip(-1))  # views 5-9 mirror views 0-4


@pytest.mark.parametrize(("h", "w", "starts"), [(8, 12, [(2, 0), (2, 4), (2, 8)]),
                                                 (12, 8, [(0, 2), (4, 2), (8, 2)])])  # fmt: skip
def test_three_crops_span_the_long_side(h: int, w: int, starts: list[tuple[int, int]]) -> None:
    spec = InputSpec("RGB", 255.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 4, 8)
    out, _ = T.build_eval_transform(spec, num_crops=3)(_position_clip(h, w), (0,), _gen(0))
    assert out.shape == (3, 1, 3, 4, 4)
    for v, (top, left) in enumerate(starts):
        assert out[v, 0, 0, 0, 0].item() == left and out[v, 0, 1, 0, 0].item() == top


def test_short_side_resize() -> None:
    assert T.resize_short_side(_clip(2, 256, 602), 128).shape == (2, 3, 128, 301)
    assert T.resize_short_side(_clip(2, 300, 200), 100).shape == (2, 3, 150, 100)
    frames = _clip(2, 64, 80)
    assert T.resize_short_side(frames, 64) is frames  # no-op skipped


def test_flip_map_for_something_something_v1() -> None:
    assert len(SS_V1) == 174
    assert flip_label_map(SS_V1) == {86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166}
    assert SS_V1[86] == "Pulling something from left to right"


def test_flip_map_rules() -> None:
    assert flip_label_map(["jumping", "running", "swimming"]) == {}
    names = ["Moving_Left", "moving right", "rotating clockwise", "rotating counter-clockwise"]
    assert flip_label_map(names) == {0: 1, 1: 0, 2: 3, 3: 2}
    assert flip_label_map(["pushing something right out of the box", "waving"]) == {}  # idiom
    assert flip_label_map(["turning left", "turning around"]) is None  # twin missing


def test_flip_refused_without_a_consistent_map() -> None:
    names = ["Pushing something from left to right", "Pushing something away"]
    with pytest.raises(ValueError, match="mirrored twin"):
        T.build_train_transform(IMAGENET_RGB_224, class_names=names)
    with pytest.raises(ValueError, match="class names"):
        T.build_train_transform(IMAGENET_RGB_224)  # unknown dataset
    with pytest.raises(ValueError, match="swap pairs"):
        T.build_train_transform(IMAGENET_RGB_224, label_map={0: 1})
    with pytest.raises(ValueError, match="ten crops"):
        T.build_eval_transform(IMAGENET_RGB_224, num_crops=10, class_names=SS_V1)
    # an explicit map makes it possible; flip=False needs nothing
    tf = T.build_train_transform(IMAGENET_RGB_224, class_names=names, label_map={0: 1, 1: 0})
    assert tf.label_map == {0: 1, 1: 0}
    assert T.build_train_transform(IMAGENET_RGB_224, flip=False).label_map is None
    assert resolve_flip_map(SS_V1, None)[166] == 167


def test_bad_input_is_refused() -> None:
    tf = T.build_train_transform(IMAGENET_RGB_224, label_map={})
    with pytest.raises(ValueError, match="uint8"):
        tf(torch.zeros(2, 3, 32, 32), (0,), _gen(0))
    with pytest.raises(ValueError, match="num_crops"):
        T.build_eval_transform(IMAGENET_RGB_224, num_crops=5)
    with pytest.raises(ValueError, match="scales"):
        T.build_train_transform(IMAGENET_RGB_224, label_map={}, scales=(1.2,))
