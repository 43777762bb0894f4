"""``gateshift timeline RUN VIDEO``: what happens when in a long video."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from gateshift.cli._options import add_view_options, view_overrides


def register(sub: Any) -> None:
    p = sub.add_parser(
        "timeline",
        help="label a long video over time (sliding windows merged into segments)",
        description=(
            "Slide a window over VIDEO, classify each window as `gateshift predict` classifies a "
            "clip (the run's test sampling, views and precision); each stretch between window "
            "edges takes the class of the most confident window covering it, and stretches of "
            "one class form a segment. The video is decoded once, front to back; memory "
            "follows the window, not the video. The window defaults to the run's typical "
            "training clip (the median duration of its training videos; with dense sampling, "
            "the span of a training clip), the stride to a quarter of the window. Prints the "
            "segments; --out writes JSON (windows with their top-k, segments), CSV or SRT "
            "(segments), by the file's extension."
        ),
    )
    p.add_argument("run", help="run folder (or its bundle folder)")
    p.add_argument("video", metavar="VIDEO", help="video file")
    p.add_argument("--window", type=float, metavar="S", help="window length in seconds")
    p.add_argument("--stride", type=float, metavar="S", help="seconds between window starts")
    p.add_argument("--out", metavar="FILE", help="write the timeline: .json, .csv or .srt")
    p.add_argument(
        "--annotate", metavar="OUT.mp4", help="write a copy of the video with the label burnt in"
    )
    p.add_argument("--top-k", type=int, default=5, help="classes kept per window (default 5)")
    p.add_argument(
        "--truth",
        metavar="FILE",
        help='a true timeline ({"segments": [{"start", "end", "label"}]}) to score against: '
        "frame accuracy, segment precision / recall (IoU >= 0.5, same label)",
    )
    add_view_options(p)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    p.add_argument("--json", action="store_true", help="print the timeline as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gateshift.deploy.timeline import timeline

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="frame", disable=args.no_progress, file=sys.stderr)
        bar.update(done - bar.n)

    start = time.perf_counter()
    try:
        result = timeline(
            args.run,
            args.video,
            window_s=args.window,
            stride_s=args.stride,
            top_k=args.top_k,
            out=args.out,
            annotate=args.annotate,
            truth=args.truth,
            overrides=view_overrides(args),
            device=args.device,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    for s in result.segments:
        print(f"{s.start:9.2f} {s.end:9.2f}  {s.label}  ({100 * s.score:.0f} %)")
    print(
        f"{_count(len(result.segments), 'segment')}, {_count(len(result.windows), 'window')} of "
        f"{result.window_s:.3f} s every {result.stride_s:.3f} s; {result.duration_s:.1f} s of "
        f"video in {seconds:.1f} s ({result.duration_s / seconds:.1f} s of video per second)"
    )
    if result.truth is not None:
        t = result.truth
        print(
            f"truth: frame accuracy {t['frame_accuracy']:.3f}, segment precision "
            f"{t['segment_precision']:.3f}, recall {t['segment_recall']:.3f} "
            f"(IoU >= 0.5, same label; {t['matched']} of {t['true']} true segments matched)"
        )
    for path in (args.out, args.annotate):
        if path:
            print(f"wrote {path}")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
