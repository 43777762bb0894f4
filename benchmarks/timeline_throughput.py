"""Timeline throughput: seconds of video per second of ``gateshift timeline``, and how much of it
is decoding.

    python benchmarks/timeline_throughput.py --run demo/gsm [--minutes 10] [--model resnet50_gsm]

Writes (once, cached under ``--out``) an H.264 file of ``--minutes`` minutes at 1920x1080, 30
fps (FFmpeg's moving ``testsrc2`` pattern, libx264 veryfast CRF 23 with its default B-frames),
then times on it, in this order:

* ``timeline``: the whole :func:`gateshift.deploy.timeline.timeline` call (model loading,
  decoding, preprocessing, the network, merging);
* ``decode``: exactly the decoding work of a timeline, alone: the one pass of
  :class:`~gateshift.data.stream.VideoStream` (with the timeline's decoder threads) over the
  frames the windows sample, each converted to RGB and resized to the network's short side. The
  timeline runs it in a thread of its own, next to the network, so the two overlap.

``--run``: a trained run (its window defaults apply). ``--model NAME``: instead, a random-weight
bundle of that model at 224 px, 8 segments, with 4 s training clips (Something-Something V2's
typical length), to see a full-size network's share. ``--precision bf16`` runs the network in
bf16 autocast. Numbers depend on the machine and how busy it is: run on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av

from gateshift.config import load_config, to_yaml
from gateshift.data.sampling import SamplingSpec, build_sampler
from gateshift.data.stream import VideoStream
from gateshift.data.transforms import resize_short_side
from gateshift.deploy.timeline import split_threads, timeline
from gateshift.deploy.windows import WindowPlan
from gateshift.inference.bundle import BUNDLE_DIR, load_bundle, save_bundle
from gateshift.inference.settings import Views
from gateshift.models import create_model


def write_video(path: Path, minutes: float, width: int, height: int, fps: int) -> Path:
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    source = f"testsrc2=size={width}x{height}:rate={fps}:duration={minutes * 60:g}"
    tmp = path.with_suffix(".partial.mp4")
    with av.open(source, format="lavfi") as src, av.open(str(tmp), "w") as dst:
        stream = dst.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for frame in src.decode(video=0):
            frame.pts = None
            dst.mux(stream.encode(frame))
        dst.mux(stream.encode(None))
    tmp.rename(path)
    return path


def random_run(folder: Path, name: str) -> Path:
    """A bundle of ``name`` with random weights: 174 classes, 8 segments, 224 px, 4 s clips."""
    if (folder / BUNDLE_DIR / "bundle.json").is_file():
        return folder
    cfg = load_config(None, [f"model.name={name}", "data.root=none", f"out_dir={folder}"])
    model = create_model(name, num_classes=174, num_segments=8).eval()
    spec = SamplingSpec(num_segments=8)
    save_bundle(
        folder / BUNDLE_DIR,
        model,
        model_kwargs={},
        classes=[[f"class_{i}" for i in range(174)]],
        sampling=asdict(spec),
        views=Views(),
        config_yaml=to_yaml(cfg),
        extra={"clips": {"num_frames": 48, "duration_s": 4.0, "fps": 12.0, "probed": 1}},
    )
    return folder


def time_decode(run: Path, video: Path, window_s: float, stride_s: float) -> tuple[float, int]:
    """Seconds of the timeline's decoding work alone, and the frames handed over."""
    bundle = load_bundle(run)
    stream = VideoStream(video, threads=split_threads()[0])  # as the timeline decodes
    sampler = build_sampler(SamplingSpec(**bundle.sampling), "test")
    plan = WindowPlan(
        stream.meta.num_frames, stream.fps, window_s=window_s, stride_s=stride_s, sampler=sampler
    )
    size = bundle.input_spec.resize_size
    start = time.perf_counter()
    count = 0
    for _, frame in stream.frames(plan.wanted()):
        resize_short_side(stream.rgb(frame)[None], size)
        count += 1
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--run", type=Path, help="a trained run folder")
    group.add_argument("--model", help="a random-weight bundle of this model at 224 px")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--out", type=Path, default=Path("/tmp/gs_timeline_bench"))
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    video = args.out / f"testsrc2_{args.size}_{args.fps}fps_{args.minutes:g}min.mp4"
    start = time.perf_counter()
    write_video(video, args.minutes, width, height, args.fps)
    print(f"video: {video} (written in {time.perf_counter() - start:.0f} s)")
    run = args.run or random_run(args.out / f"run_{args.model}", args.model)
    start = time.perf_counter()
    result = timeline(run, video, overrides=[f"eval.precision={args.precision}"])
    total_s = time.perf_counter() - start
    decode_s, frames = time_decode(run, video, result.window_s, result.stride_s)
    duration = result.duration_s
    print(f"{len(result.windows)} windows of {result.window_s:.3f} s every {result.stride_s:.3f} s")
    print("| stage | seconds | s of video per s |")
    print("|---|---|---|")
    print(
        f"| decode ({frames} frames: RGB + resize) | {decode_s:.1f} | {duration / decode_s:.1f} |"
    )
    print(f"| timeline ({args.precision}) | {total_s:.1f} | {duration / total_s:.1f} |")
    print(f"decoding alone: {100 * decode_s / total_s:.0f}% of the timeline's wall time")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
