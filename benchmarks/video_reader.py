"""Video reader throughput on one core: full decode vs sequential skipping vs selective decoding,
side by side with a JPEG-folder loader on the same frames extracted.

    python benchmarks/video_reader.py [--rounds 3] [--out /tmp/gs_reader_bench]

Reads 8-frame TSN training samples (random frame per segment) with ``VideoFileReader.read``, one
decoder thread, ``torch.set_num_threads(1)``, pinned to one core. The decode modes:

* ``full``: every frame up to the last one asked for (``decode="sequential"``, nothing skipped);
* ``sequential``: the same, unwanted non-reference frames skipped: the reader before selective
  decoding (``decode="sequential"``);
* ``selective``: only the GOPs wanted frames need (the default, ``data/_gop.py``);
* ``jpeg``: ``FrameFolderReader`` on the video's frames extracted as JPEG (quality 90).

Modes are interleaved clip by clip and timed in process CPU time (one thread does all the work),
so other load on a shared host is not counted; the table gives the median over rounds of clips
per CPU second and the frames the decoder output per frame returned.

The media are generated first (a panning texture with a moving disc): 5 s 25 fps 602x256 H.264
with B-frames and without, at x264's default GOP (250 frames: one key frame in the clip) and at a
1 s GOP and a 6-frame GOP (a dataset re-encoded for training), VP9 webm at libvpx's default GOP
and at 1 s, and a 60 s H.264 video at the default GOP and at 2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import torch

sys.path.insert(0, str(Path(__file__).parent))
from data_pipeline import frames

from gateshift.data.readers import FrameFolderReader, VideoFileReader
from gateshift.data.records import ClipReader, VideoRecord
from gateshift.data.sampling import SamplingSpec, build_sampler

X264 = {"crf": "23", "preset": "medium"}
VP9 = {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "4"}
MEDIA = {  # name: (codec, seconds, encoder options)
    "H.264 5 s, B-frames, GOP 250": ("libx264", 5, X264),
    "H.264 5 s, no B-frames, GOP 250": ("libx264", 5, {**X264, "bf": "0"}),
    "H.264 5 s, B-frames, GOP 25": ("libx264", 5, {**X264, "g": "25"}),
    "H.264 5 s, no B-frames, GOP 25": ("libx264", 5, {**X264, "bf": "0", "g": "25"}),
    "H.264 5 s, B-frames, GOP 6": ("libx264", 5, {**X264, "g": "6"}),
    "VP9 webm 5 s (libvpx GOP)": ("libvpx-vp9", 5, VP9),
    "VP9 webm 5 s, GOP 25": ("libvpx-vp9", 5, {**VP9, "g": "25"}),
    "H.264 60 s, B-frames, GOP 250": ("libx264", 60, X264),
    "H.264 60 s, B-frames, GOP 50": ("libx264", 60, {**X264, "g": "50"}),
}


def write_media(path: Path, codec: str, seconds: int, options: dict[str, str]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 602, 256, "yuv420p"
        stream.options = options
        for array in frames(25 * seconds, 602, 256, seed=seconds):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


def extract_jpegs(video: Path, folder: Path) -> None:
    """The video's decoded frames as ``00001.jpg``... (what ``ffmpeg -i v %05d.jpg`` makes)."""
    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(video)) as container:
        for n, frame in enumerate(container.decode(video=0), start=1):
            frame.to_image().save(folder / f"{n:05d}.jpg", quality=90)


def prepare(out: Path) -> dict[str, tuple[Path, Path]]:
    sets = {}
    for k, (name, (codec, seconds, options)) in enumerate(MEDIA.items()):
        video = out / f"v{k}.{'webm' if codec.startswith('libvpx') else 'mp4'}"
        if not video.exists():
            write_media(video, codec, seconds, options)
        folder = out / f"v{k}_frames"
        if not folder.exists():
            extract_jpegs(video, folder)
        sets[name] = (video, folder)
    return sets


def readers() -> dict[str, ClipReader]:
    return {
        "full": VideoFileReader(threads=1, decode="sequential", skip_unneeded=False),
        "sequential": VideoFileReader(threads=1, decode="sequential"),
        "selective": VideoFileReader(threads=1),
        "jpeg": FrameFolderReader("{:05d}.jpg", start=1),
    }


def bench(video: Path, folder: Path, rounds: int, clips: int) -> dict[str, tuple[float, float]]:
    """mode -> (median clips per CPU second, decoded frames per returned frame).

    Interleaved clip by clip (the mode order rotating), and timed in process CPU time, so load
    from other processes on a shared host neither lands on one mode nor counts as our time."""
    modes = readers()
    records = {m: VideoRecord(folder if m == "jpeg" else video, (0,)) for m in modes}
    count = modes["full"].probe(records["full"]).num_frames
    for mode, reader in modes.items():
        reader.probe(records[mode])  # metadata cached before timing, as in training
    sampler = build_sampler(SamplingSpec(num_segments=8), "train")
    speeds: dict[str, list[float]] = {m: [] for m in modes}
    returned = 0
    names = list(modes)
    for r in range(rounds):
        generator = torch.Generator().manual_seed(r)
        spent = dict.fromkeys(modes, 0.0)
        for c in range(clips):
            indices = sampler(count, generator).flatten().tolist()
            returned += len(set(indices))
            for mode in names[c % 4 :] + names[: c % 4]:
                start = time.process_time()
                modes[mode].read(records[mode], indices)
                spent[mode] += time.process_time() - start
        for mode in modes:
            speeds[mode].append(clips / spent[mode])
    result = {}
    for mode, reader in modes.items():
        decoded = getattr(reader, "frames_decoded", returned)
        result[mode] = (statistics.median(speeds[mode]), decoded / returned)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--clips", type=int, default=40, help="clips per mode per round")
    parser.add_argument("--out", type=Path, default=Path("/tmp/gs_reader_bench"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    sets = prepare(args.out)
    print(f"one core, one decoder thread, 8-segment samples, clips per CPU s, {args.rounds} rounds")
    print(
        "| media | full clips/s | sequential clips/s | selective clips/s | selective vs "
        "sequential | JPEG folder clips/s | decoded per sampled frame (full / seq / sel) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (video, folder) in sets.items():
        clips = max(4, args.clips // 8) if "60 s" in name else args.clips
        r = bench(video, folder, args.rounds, clips)
        print(
            f"| {name} | {r['full'][0]:.1f} | {r['sequential'][0]:.1f} | {r['selective'][0]:.1f} "
            f"| {r['selective'][0] / r['sequential'][0]:.2f}x | {r['jpeg'][0]:.1f} "
            f"| {r['full'][1]:.1f} / {r['sequential'][1]:.1f} / {r['selective'][1]:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
