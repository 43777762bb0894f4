"""Training input pipeline throughput on one core: frame folders vs video files of the same content.

    python benchmarks/data_pipeline.py [--clips 300] [--items 4] [--out /tmp/gs_data_bench]

Pins itself to one CPU core (one decoder thread, ``workers=0``) and times
:func:`gateshift.data.bench.bench_pipeline`: 8 TSN segments, the training transform
(multi-scale crop, flip, normalisation) to 224 crops, exactly what ``gateshift bench data``
runs. The media are generated first (a panning texture with a moving object, so encoders
cannot cheat with static frames):

* frame folders of 250 JPEG frames at 602x256 (quality 90), the setting of the released
  code's reference number (its loader with PIL transforms: ~84 clips/s on one core);
* the same 250 frames as H.264 mp4 (25 fps, 10 s);
* Something-Something-V2-like short videos: VP9 webm and H.264 mp4, 427x240 at 12 fps, for
  2, 4 and 8 s (SS-V2 ships VP9 webm at 240 px height, 12 fps, 2-6 s).

Then it profiles one 4 s webm read stage by stage (open, demux, decode, RGB conversion) to say
what limits the video path. Numbers depend on the machine: run on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from gateshift.data.annotations import load_annotations
from gateshift.data.bench import bench_pipeline
from gateshift.data.readers import FrameFolderReader, VideoFileReader
from gateshift.data.sampling import SamplingSpec, build_sampler
from gateshift.data.transforms import draw_multi_scale_crop
from gateshift.input_spec import IMAGENET_RGB_224

RELEASED_CLIPS_PER_S = 84.0  # the authors' frame loader + PIL transforms, one core, 602x256x250


def frames(count: int, width: int, height: int, seed: int) -> Iterator[np.ndarray]:
    """A smooth random texture panning under a moving disc: ``(H, W, 3)`` uint8 frames."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (height // 8 + 40, width // 8 + 40, 3), dtype=np.uint8)
    big = (cells.shape[1] * 8, cells.shape[0] * 8)
    texture = np.asarray(Image.fromarray(cells).resize(big, Image.Resampling.BICUBIC))
    texture = np.clip(texture + rng.integers(-8, 8, texture.shape), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(count):
        dx, dy = (2 * i) % 300, i % 300
        frame = texture[dy : dy + height, dx : dx + width].copy()
        cx = int(width * (0.2 + 0.6 * i / count))
        frame[(xx - cx) ** 2 + (yy - height // 2) ** 2 < (height // 6) ** 2] = (200, 60, 40)
        yield frame


def write_video(path: Path, codec: str, clip: list[np.ndarray], fps: int) -> None:
    options = {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "4"}
    if codec == "libx264":
        options = {"crf": "23", "preset": "medium"}
    height, width = clip[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = options
        for array in clip:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


def make_sets(out: Path, items: int) -> dict[str, Path]:
    """Write every media set once (folder-per-class layout, one class); returns name -> root."""
    sets: dict[str, Path] = {}

    def item_dir(name: str) -> Path:
        root = out / name
        sets[name] = root
        (root / "train" / "clip").mkdir(parents=True, exist_ok=True)
        return root / "train" / "clip"

    folder, long_mp4 = item_dir("frames_602x256_250"), item_dir("mp4_602x256_250f_10s")
    for seed in range(items):
        clip = list(frames(250, 602, 256, seed))
        target = folder / f"v{seed}"
        if not target.exists():
            target.mkdir()
            for n, array in enumerate(clip, start=1):
                Image.fromarray(array).save(target / f"{n:05d}.jpg", quality=90)
        if not (long_mp4 / f"v{seed}.mp4").exists():
            write_video(long_mp4 / f"v{seed}.mp4", "libx264", clip, 25)
    for seconds in (2, 4, 8):
        for codec, ext in (("libvpx-vp9", "webm"), ("libx264", "mp4")):
            home = item_dir(f"{ext}_427x240_12fps_{seconds}s")
            for seed in range(items):
                if not (home / f"v{seed}.{ext}").exists():
                    width = 427 if ext == "webm" else 426  # H.264 4:2:0 needs even sizes
                    clip = list(frames(12 * seconds, width, 240, 100 + seed))
                    write_video(home / f"v{seed}.{ext}", codec, clip, 12)
    return sets


def released_style_clips_per_s(folder: Path, clips: int, seed: int) -> float:
    """The released code's way, rewritten here from its description, timed on the same folders:
    PIL opens each of the 8 JPEGs, crops and resizes each frame (bilinear) with the same
    multi-scale crop, flips, stacks BGR arrays in NumPy, converts to float and subtracts the
    mean channel by channel. A same-run reference, since absolute speeds drift on this host."""
    items = sorted(p for p in (folder / "train" / "clip").iterdir() if p.is_dir())
    generator = torch.Generator().manual_seed(seed)
    sampler = build_sampler(SamplingSpec(mode="segments", num_segments=8), "train")
    mean = (104.0, 117.0, 128.0)
    start = time.perf_counter()
    for i in range(clips):
        item = items[i % len(items)]
        positions = sampler(250, generator).flatten().tolist()
        images = [Image.open(item / f"{n + 1:05d}.jpg").convert("RGB") for n in positions]
        top, left, h, w = draw_multi_scale_crop(256, 602, 224, generator)
        images = [
            im.crop((left, top, left + w, top + h)).resize((224, 224), Image.Resampling.BILINEAR)
            for im in images
        ]
        if bool(torch.rand((), generator=generator) < 0.5):
            images = [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in images]
        stacked = np.concatenate([np.asarray(im)[:, :, ::-1] for im in images], axis=2)
        clip = torch.from_numpy(stacked).permute(2, 0, 1).contiguous().float()
        for c in range(clip.shape[0]):
            clip[c].sub_(mean[c % 3])
    return clips / (time.perf_counter() - start)


def best_ms(fn: Callable[[], object], repeats: int = 5, number: int = 40) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number * 1000)
    return min(runs)


def profile_video(path: Path) -> list[tuple[str, float]]:
    """Cumulative stage times of reading 8 frames of one video, in ms (best of 5 runs)."""
    from av.video.reformatter import VideoReformatter

    from gateshift.data._pyav import OPEN_OPTIONS

    with av.open(str(path)) as c:
        count = c.streams.video[0].frames or sum(1 for _ in c.decode(video=0))
    wanted = [int((k + 0.5) * count / 8) for k in range(8)]

    def open_only() -> None:
        with av.open(str(path), options=OPEN_OPTIONS) as c:
            c.streams.video[0]

    def demux() -> None:
        with av.open(str(path), options=OPEN_OPTIONS) as c:
            for _ in c.demux(c.streams.video[0]):
                pass

    def decode() -> list[av.VideoFrame]:
        kept = []
        with av.open(str(path), options=OPEN_OPTIONS) as c:
            stream = c.streams.video[0]
            stream.codec_context.thread_count = 1
            for n, frame in enumerate(c.decode(stream)):
                if n in wanted:
                    kept.append(frame)
                if n >= wanted[-1]:
                    break
        return kept

    decoded = decode()
    reformatter = VideoReformatter()

    def convert() -> None:
        for frame in decoded:
            reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()

    reader = VideoFileReader(threads=1)
    from gateshift.data.records import VideoRecord

    record = VideoRecord(path, (0,))
    return [
        ("open container", best_ms(open_only)),
        ("open + demux all packets", best_ms(demux)),
        ("open + demux + decode to the last frame needed", best_ms(decode, number=20)),
        ("RGB conversion of 8 frames", best_ms(convert)),
        ("VideoFileReader.read (all of it)", best_ms(lambda: reader.read(record, wanted), 5, 20)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300, help="clips timed per set")
    parser.add_argument("--items", type=int, default=4, help="videos / folders per set")
    parser.add_argument("--out", type=Path, default=Path("/tmp/gs_data_bench"))
    parser.add_argument("--repeats", type=int, default=3, help="runs per set (median)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    torch.set_num_threads(1)
    sets = make_sets(args.out, args.items)
    print(f"one core, workers=0, 8 segments, 224 crops, {args.clips} clips x {args.repeats} runs")
    frames_root = sets["frames_602x256_250"]
    baseline = statistics.median(
        released_style_clips_per_s(frames_root, args.clips, r) for r in range(args.repeats)
    )
    print(f"released-style loader (PIL), same frame folders, this run: {baseline:.1f} clips/s")
    header = (
        f"| {'media':<34} | clips/s | read ms | transform ms "
        f"| vs released-style (this run) | vs 84/s |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, root in sets.items():
        dataset = load_annotations("folder", root, "train")
        reader = (
            FrameFolderReader("{:05d}.jpg", start=1)
            if name.startswith("frames")
            else VideoFileReader(threads=1)
        )
        runs = [
            bench_pipeline(
                dataset, IMAGENET_RGB_224, clips=args.clips, reader=reader, progress=False, seed=r
            )
            for r in range(args.repeats)
        ]
        mid = sorted(runs, key=lambda r: r.clips_per_s)[len(runs) // 2]
        cps = statistics.median(r.clips_per_s for r in runs)
        print(
            f"| {name:<34} | {cps:7.1f} | {mid.read_ms or 0:7.2f} | {mid.transform_ms or 0:12.2f} "
            f"| {cps / baseline:27.2f}x | {cps / RELEASED_CLIPS_PER_S:6.2f}x |"
        )
    webm = next((sets["webm_427x240_12fps_4s"] / "train" / "clip").glob("*.webm"))
    print(f"\nprofile of one read of 8 frames from {webm.name} (4 s VP9 427x240), best of 5:")
    for stage, ms in profile_video(webm):
        print(f"  {stage:<50} {ms:6.2f} ms")


if __name__ == "__main__":
    main()
