"""Segment and dense sampling: exact indices for every mode, short videos, generator use."""

from __future__ import annotations

import pytest
import torch

from gateshift.data.sampling import (
    DenseSampler,
    SamplingSpec,
    SegmentSampler,
    build_sampler,
    clip_fraction,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _indices(spec: SamplingSpec, split: str, n: int, seed: int = 0) -> list[list[int]]:
    out = build_sampler(spec, split)(n, _gen(seed))  # type: ignore[arg-type]
    assert out.dtype == torch.int64 and out.dim() == 2
    return out.tolist()


SEG8 = SamplingSpec("segments", num_segments=8, num_clips=2)
SEG4 = SamplingSpec("segments", num_segments=4, num_clips=4)


@pytest.mark.parametrize(
    ("spec", "split", "n", "expected"),
    [
        (SEG8, "val", 16, [[1, 3, 5, 7, 9, 11, 13, 15]]),
        (SEG8, "test", 16, [[1, 3, 5, 7, 9, 11, 13, 15], [0, 2, 4, 6, 8, 10, 12, 14]]),
        # 10 frames in 4 segments of 2.5 frames: centres, starts, then 1/4 and 3/4 positions
        (SEG4, "val", 10, [[1, 3, 6, 8]]),
        (SEG4, "test", 10, [[1, 3, 6, 8], [0, 2, 5, 7], [0, 3, 5, 8], [1, 4, 6, 9]]),
        (SEG8, "val", 13, [[0, 2, 4, 5, 7, 8, 10, 12]]),
        # short videos repeat frames in order, every frame used, the same for every clip
        (SEG8, "val", 3, [[0, 0, 0, 1, 1, 2, 2, 2]]),
        (SEG8, "test", 3, [[0, 0, 0, 1, 1, 2, 2, 2]] * 2),
        (SEG8, "train", 3, [[0, 0, 0, 1, 1, 2, 2, 2]]),
        (SEG8, "train", 1, [[0] * 8]),
        (SEG8, "train", 8, [list(range(8))]),  # one frame per segment: no choice left
        (SEG8, "train", 5, [[0, 0, 1, 2, 2, 3, 4, 4]]),  # ((2k + 1) * 5) // 16
    ],
)
def test_segment_indices_exact(
    spec: SamplingSpec, split: str, n: int, expected: list[list[int]]
) -> None:
    for seed in range(3):
        assert _indices(spec, split, n, seed) == expected


def test_clip_fractions_follow_van_der_corput_order() -> None:
    fractions = [p / q for p, q in (clip_fraction(c) for c in range(8))]
    assert fractions == [0.5, 0.0, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]


@pytest.mark.parametrize(("n", "t"), [(10, 4), (16, 8), (37, 8), (9, 8), (250, 16)])
def test_segment_train_draws_stay_in_segments_and_cover_them(n: int, t: int) -> None:
    sampler = SegmentSampler(t, "train")
    draws = torch.cat([sampler(n, _gen(s)) for s in range(400)])  # (400, T)
    for k in range(t):
        lo, hi = (k * n) // t, ((k + 1) * n - 1) // t  # frames overlapping [kN/T, (k+1)N/T)
        column = draws[:, k]
        assert column.min().item() >= lo and column.max().item() <= hi
        if hi - lo < 6:  # small segments: every overlapping frame gets drawn
            assert set(column.tolist()) == set(range(lo, hi + 1))
    assert (draws[:, 1:] >= draws[:, :-1]).all()  # order kept


def test_segment_train_probabilities_follow_overlap() -> None:
    # 10 frames, 4 segments: segment 0 is [0, 2.5): frames 0, 1, 2 with weights 1, 1, 0.5
    draws = torch.cat([SegmentSampler(4, "train")(10, _gen(s)) for s in range(4000)])[:, 0]
    freq = torch.bincount(draws, minlength=3).float() / len(draws)
    assert torch.allclose(freq, torch.tensor([0.4, 0.4, 0.2]), atol=0.03)


def test_train_follows_the_generator() -> None:
    sampler = build_sampler(SamplingSpec("segments", num_segments=8), "train")
    a = sampler(100, _gen(7))
    assert torch.equal(a, sampler(100, _gen(7)))
    others = [sampler(100, _gen(s)) for s in range(8, 14)]
    assert any(not torch.equal(a, o) for o in others)
    # the global RNG plays no part
    torch.manual_seed(0)
    x = sampler(100, _gen(3))
    torch.manual_seed(1)
    assert torch.equal(x, sampler(100, _gen(3)))


DENSE = SamplingSpec("dense", clip_len=4, frame_interval=2, num_clips=3)


@pytest.mark.parametrize(
    ("split", "n", "expected"),
    [
        ("val", 20, [[2, 4, 6, 8], [7, 9, 11, 13], [11, 13, 15, 17]]),
        ("test", 20, [[2, 4, 6, 8], [7, 9, 11, 13], [11, 13, 15, 17]]),
        ("val", 7, [[0, 2, 4, 6]] * 3),  # exactly the span: one possible start
        ("train", 7, [[0, 2, 4, 6]]),
        ("val", 5, [[0, 1, 3, 4]] * 3),  # shorter than the span: spread deterministically
        ("train", 5, [[0, 1, 3, 4]]),
        ("train", 2, [[0, 0, 1, 1]]),
    ],
)
def test_dense_indices_exact(split: str, n: int, expected: list[list[int]]) -> None:
    assert _indices(DENSE, split, n) == expected


def test_dense_single_clip_is_centred() -> None:
    spec = SamplingSpec("dense", clip_len=8, frame_interval=4)  # span 29
    assert _indices(spec, "val", 41) == [[6, 10, 14, 18, 22, 26, 30, 34]]


def test_dense_train_start_is_uniform_and_seeded() -> None:
    sampler = DenseSampler(4, 2, "train")
    starts = [sampler(20, _gen(s))[0, 0].item() for s in range(600)]
    assert set(starts) == set(range(14))  # every start in {0, ..., N - span}
    clip = sampler(20, _gen(5))
    assert torch.equal(clip, sampler(20, _gen(5)))
    assert torch.equal(clip[0] - clip[0, 0], torch.tensor([0, 2, 4, 6]))


def test_dense_clip_len_defaults_to_num_segments() -> None:
    spec = SamplingSpec("dense", num_segments=6, frame_interval=1)
    assert spec.frames_per_clip == 6
    assert _indices(spec, "val", 100) == [[47, 48, 49, 50, 51, 52]]


@pytest.mark.parametrize("spec", [SEG8, DENSE])
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_zero_frames_is_an_error(spec: SamplingSpec, split: str) -> None:
    with pytest.raises(ValueError, match="0 frames"):
        build_sampler(spec, split)(0, _gen())  # type: ignore[arg-type]


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="num_segments"):
        SamplingSpec("segments", num_segments=0)
    with pytest.raises(ValueError, match="mode"):
        SamplingSpec("uniform")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="split"):
        build_sampler(SEG8, "predict")  # type: ignore[arg-type]
