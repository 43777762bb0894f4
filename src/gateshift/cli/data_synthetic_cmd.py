"""``gateshift data synthetic OUT``: write the embedded temporal-reasoning dataset."""

from __future__ import annotations

import argparse
from typing import Any

from gateshift.data.synthetic import CLASSES, generate
from gateshift.data.synthetic_long import generate_long


def register(sub: Any) -> None:
    p = sub.add_parser(
        "synthetic",
        help="write the embedded temporal-reasoning dataset (11 classes, order-only cues)",
        description=(
            "Write small H.264 videos of textured shapes whose class (moving left/right/up/down, "
            "approaching/receding, rotating clockwise/anticlockwise, appearing/disappearing, "
            "still) only the order of frames reveals, as OUT/{train,val}/<class>/<id>.mp4 plus "
            "OUT/classes.txt. A frame-averaging model (TSN) cannot tell the time-reversed twins "
            "apart; a temporal model (GSM, TSM) can."
        ),
    )
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--videos-per-class",
        type=int,
        default=48,
        help="train videos per class (default 48); val gets a quarter of it",
    )
    p.add_argument("--val-per-class", type=int, help="val videos per class (default: a quarter)")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels, even (default 64)")
    p.add_argument("--frames", type=int, default=16, help="frames per video (default 16)")
    p.add_argument(
        "--long",
        type=int,
        default=0,
        metavar="N",
        help="also write N long videos of several actions in turn under OUT/long/, each with "
        "its true timeline (<name>.timeline.json, seconds) for `gateshift timeline --truth`",
    )
    p.add_argument("--force", action="store_true", help="replace an existing dataset in OUT")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes rendering and encoding in parallel (default 1; same files for any N)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    summary = generate(
        args.out,
        seed=args.seed,
        videos_per_class=args.videos_per_class,
        val_per_class=args.val_per_class,
        size=args.size,
        num_frames=args.frames,
        force=args.force,
        workers=args.workers,
    )
    counts = ", ".join(f"{n} {split}" for split, n in summary.counts.items())
    print(
        f"wrote {counts} videos of {len(CLASSES)} classes ({args.size}x{args.size}, "
        f"{args.frames} frames) to {summary.root} in {summary.seconds:.1f} s"
    )
    if args.long:
        videos = generate_long(
            args.out,
            args.long,
            seed=args.seed,
            size=args.size,
            num_frames=args.frames,
            force=args.force,
        )
        print(f"wrote {len(videos)} long videos with their timelines to {videos[0].parent}")
    return 0
