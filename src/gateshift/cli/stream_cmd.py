"""``gateshift stream RUN --source SRC``: a causal run on a file, a camera or a network stream."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from gateshift.cli._options import chosen_backend

DESCRIPTION = (
    "Classify a live source one frame at a time with a causal run (trained with "
    "model.causal=true; an offline GSM/GSF/TSM reads the next frame and is refused): each fed "
    "frame costs one backbone pass, the temporal modules keep what they need of earlier frames. "
    "FRAME STRIDE: the source is subsampled to the spacing the model was trained at, derived "
    "from the bundle: with segment sampling, the median training video's duration (recorded "
    "by training in bundle.json as clips) divided by num_segments, so fed frames are as far "
    "apart as the frames of a training clip (the demo: 1.33 s / 8 = 0.167 s); with dense "
    "sampling, frame_interval frames at the training videos' frame rate. --stride overrides "
    "it. OUTPUT: every --every fed frames one line, the mean of the last --smooth per-frame "
    "logits (default num_segments, the clip consensus the model was trained with), top-k "
    "classes. RESETS: the model was trained on clips of num_segments frames starting from "
    "zeros, so by default the stream starts afresh every num_segments fed frames (--reset): "
    "the last output of each block is that clip's score (--every num_segments prints only "
    "those); --reset 0 keeps the whole history. --jsonl prints JSON lines ({time, frame, "
    "top}), --jsonl FILE writes them. A file "
    "ends at its end; a network source that drops or stalls reconnects with exponential "
    "back-off (--retries attempts without a frame, then an error); at the end the frames per "
    "second sustained are reported."
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "stream",
        help="classify a file, camera or network stream frame by frame (causal runs)",
        description=DESCRIPTION,
    )
    p.add_argument("run", help="run folder (or its bundle folder), trained with model.causal=true")
    p.add_argument(
        "--source",
        required=True,
        metavar="SRC",
        help="video file, /dev/videoN, rtsp://..., http(s)://..., rtmp://, udp://, srt://",
    )
    p.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="N",
        help="one output every N fed frames (default 1)",
    )
    p.add_argument(
        "--smooth",
        type=int,
        metavar="K",
        help="mean of the last K per-frame logits (default num_segments; 1: none)",
    )
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="classes per output (3)")
    p.add_argument(
        "--jsonl", nargs="?", const="-", metavar="FILE", help="JSON lines on stdout, or into FILE"
    )
    p.add_argument(
        "--stride",
        type=float,
        metavar="S",
        help="seconds between fed frames (default: from the bundle, above)",
    )
    p.add_argument(
        "--reset",
        type=int,
        metavar="N",
        help="start afresh every N fed frames (default num_segments: each block's last output "
        "is the clip score the model was trained on; 0: never)",
    )
    p.add_argument(
        "--retries", type=int, default=5, help="network reconnection attempts in a row (default 5)"
    )
    p.add_argument("--max-outputs", type=int, metavar="N", help="stop after N outputs")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    p.add_argument(
        "--backend",
        choices=["torch", "onnxruntime"],
        help="torch (default; onnxruntime when --onnx is given), or onnxruntime on the run's "
        "streaming export (write it with "
        "`gateshift export RUN --stream`; faster per frame on CPUs: README, streaming speed)",
    )
    p.add_argument(
        "--onnx",
        metavar="FILE",
        help="the streaming export onnxruntime runs (default RUN/export/stream.onnx)",
    )
    p.set_defaults(handler=run)


def _printer(out: TextIO, as_json: bool) -> Any:
    def emit(output: Any) -> None:
        if as_json:
            out.write(json.dumps(output.to_dict()) + "\n")
        else:
            head = output.top[0]
            best = "  ".join(f"{name} {100 * p:.0f}%" for name, _, p in head)
            out.write(f"{output.time:9.2f} s  frame {output.frame:6d}  {best}\n")
        out.flush()  # a line on disk is a whole line, whenever the stream stops

    return emit


def run(args: argparse.Namespace) -> int:
    from gateshift.deploy.stream_run import check_stream_flags, stream

    backend = chosen_backend(args)
    check_stream_flags(  # before --jsonl FILE is opened
        every=args.every,
        smooth=args.smooth,
        reset=args.reset,
        top_k=args.top_k,
        retries=args.retries,
        max_outputs=args.max_outputs,
        stride_s=args.stride,
    )
    out: TextIO = sys.stdout
    if args.jsonl not in (None, "-"):
        out = open(args.jsonl, "a", encoding="utf-8")  # noqa: SIM115  closed below
    try:
        stats = stream(
            args.run,
            args.source,
            _printer(out, args.jsonl is not None),
            every=args.every,
            smooth=args.smooth,
            top_k=args.top_k,
            stride_s=args.stride,
            reset=args.reset,
            retries=args.retries,
            device=args.device,
            max_outputs=args.max_outputs,
            backend=backend,
            onnx=args.onnx,
        )
    finally:
        if out is not sys.stdout:
            out.close()
    print(
        f"{stats.frames_read} frames read, {stats.frames_fed} fed (one every "
        f"{stats.stride_s:.3f} s: {stats.stride_origin}), {stats.outputs} outputs; sustained "
        f"{stats.fed_per_second:.1f} fed frames/s ({stats.model_frames_per_second:.1f} frames/s "
        f"in the model), {stats.reconnects} reconnections",
        file=sys.stderr,
    )
    return 0
