"""``gateshift explain RUN VIDEO --out DIR``: gate maps, routing shares and Grad-CAM of a video."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="gate maps, routing shares and Grad-CAM of one video",
        description=(
            "Run the model on the first clip and crop of VIDEO (the run's test sampling) and "
            "write to DIR: gates.png (every GSM/GSF module's backward and forward gate over the "
            "frames), routing.png (share of features sent forward, backward and kept per "
            "module), gradcam.png (Grad-CAM of the predicted class and of --target), "
            "explain.gif and explain.mp4 (all of it frame by frame) and explain.json. The grids "
            "carry a colour bar saying what 0 and 1 mean. TSN/TSM runs have no gates: Grad-CAM "
            "only."
        ),
    )
    p.add_argument("run", help="run folder (out_dir of `gateshift train`)")
    p.add_argument("video", help="video file or frame folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the pictures and JSON")
    p.add_argument("--target", metavar="LABEL", help="also draw Grad-CAM of this class")
    p.add_argument("--top-k", type=int, default=5, help="classes listed (default 5)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gateshift.deploy.explain import explain

    report = explain(
        args.run, args.video, args.out, target=args.target, device=args.device, top_k=args.top_k
    )
    print(f"{args.video}: {report['model']}, {report['num_segments']} frames")
    for head in report["prediction"]:
        for entry in head:
            print(f"  {entry['label']:<32}{100 * entry['probability']:6.2f} %")
    if report["note"]:
        print(f"  note: {report['note']}")
    for row in report["routing"]:
        print(
            f"  {row['module']:<40} forward {row['forward']:.3f}  backward "
            f"{row['backward']:.3f}  kept {row['kept']:.3f}"
        )
    print(f"  written to {args.out}: {', '.join(report['files'].values())}, explain.json")
    return 0
