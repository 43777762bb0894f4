"""Streaming cost: ``Streamer.step`` per frame against re-running a sliding clip per output.

    python benchmarks/streaming.py [--models mobilenetv2_gsm resnet50_gsm] [--steps 32]

For each model (random weights, 224 px, 8 segments) and precision (fp32, bf16 autocast), on
``--threads`` torch threads (default 2):

* ``stream``: the causal model (``causal=True``) under :class:`gateshift.Streamer`, one
  ``step(frame)`` per output: per-frame latency (median, 90th percentile) and the sustained rate
  (``--steps`` steps over their total time), after a warm-up of ``num_segments`` steps;
* ``sliding``: what a live demo without streaming does (MMAction2's webcam demo): the offline
  model (the published GSM, its fastest inference path) re-run on the last 8 frames for every
  output, ``--clips`` timed runs after one warm-up;
* ``ratio``: stream latency / sliding latency per output (the issue's target: <= 1/6), and
  whether MobileNetV2 GSM streams at >= 30 frames/s.

``--backends onnxruntime`` (in the default ``torch onnxruntime``) adds fp32 rows on ONNX Runtime:
the causal model's streaming export (:mod:`gateshift.deploy.stream_export`, what ``gateshift
stream --backend onnxruntime`` runs) under :class:`~gateshift.deploy.stream_export.OnnxStreamer`
against the offline model's ``gateshift export`` file re-run on 8 frames, both on ``--threads``
ONNX Runtime threads (ONNX Runtime folds the batch norms itself).

Both models have their batch norms folded into the convolutions that feed them
(:mod:`gateshift.inference.fold`), as ``gateshift predict``, ``timeline`` and ``stream`` run
them; ``--batchnorm both`` (the default) also times them kept, in the same rounds. Stream and
sliding alternate for ``--rounds`` rounds and each
reports its fastest round (the machine's speed drifts between minutes).

Preprocessing and decoding are not timed (the frames are random tensors already normalised):
this measures the network. Numbers depend on the machine and how busy it is; the load average
is printed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from _machine import cpu_name  # benchmarks/_machine.py (scripts run from benchmarks/)

import gateshift
from gateshift.deploy.export import default_metadata, export_checked
from gateshift.deploy.stream_export import OnnxStreamer, export_stream_checked
from gateshift.inference import fold_batchnorm, place_model
from gateshift.inference.onnx_runtime import runtime_network


def _autocast(precision: str) -> Any:
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def _model(
    name: str, causal: bool, size: int, fold: bool
) -> gateshift.models.recognizer.Recognizer:
    torch.manual_seed(0)
    model = gateshift.create_model(name, num_classes=174, num_segments=8, causal=causal)
    model = place_model(model.eval(), device="cpu", channels_last=True)
    if fold:  # as gateshift predict, timeline and stream run it
        fold_batchnorm(model, clip=torch.randn(1, 8, 3, size, size))
    return model


def time_stream(
    streamer: gateshift.Streamer | OnnxStreamer, precision: str, size: int, steps: int
) -> dict[str, float]:
    streamer.reset()
    frames = torch.randn(steps + 8, 3, size, size)
    latencies = []
    with torch.inference_mode(), _autocast(precision):
        for frame in frames[:8]:  # warm-up: the state fills, oneDNN picks its kernels
            streamer.step(frame)
        begin = time.perf_counter()
        for frame in frames[8:]:
            start = time.perf_counter()
            streamer.step(frame)
            latencies.append(time.perf_counter() - start)
        total = time.perf_counter() - begin
    latencies.sort()
    return {
        "median_ms": 1000 * statistics.median(latencies),
        "p90_ms": 1000 * latencies[int(0.9 * (len(latencies) - 1))],
        "fps": steps / total,
    }


def time_sliding(
    model: Callable[[torch.Tensor], object], precision: str, size: int, clips: int
) -> float:
    """Median seconds per output of the offline model on an 8-frame clip."""
    clip = torch.randn(1, 8, 3, size, size).contiguous()
    times = []
    with torch.inference_mode(), _autocast(precision):
        model(clip)  # warm-up
        for _ in range(clips):
            start = time.perf_counter()
            model(clip)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenetv2_gsm", "resnet50_gsm"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=32, help="timed stream steps per round")
    parser.add_argument("--clips", type=int, default=4, help="timed sliding-clip runs per round")
    parser.add_argument("--rounds", type=int, default=3, help="stream and sliding alternate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=["torch", "onnxruntime"],
        default=["torch", "onnxruntime"],
        help="torch rows (every --precisions), ONNX Runtime rows (fp32)",
    )
    parser.add_argument(
        "--batchnorm",
        choices=["folded", "kept", "both"],
        default="both",
        help="fold the batch norms into the convolutions (both sides, as predict and stream "
        "run), keep them, or time both in the same rounds (default)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = ["folded", "kept"] if args.batchnorm == "both" else [args.batchnorm]
    print(f"torch {torch.__version__}, {args.threads} threads, {cpu_name()}, "
          f"{args.size} px, 8 segments, random weights, fastest of {args.rounds} "
          "rounds")  # fmt: skip
    print("| model | precision | batch norms | stream ms/frame (median, p90) | stream frames/s | "
          "sliding 8-frame ms/output | stream / sliding |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        if "torch" in args.backends:
            torch_rows(name, args, variants)
        if "onnxruntime" in args.backends:
            onnx_rows(name, args)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


def torch_rows(name: str, args: argparse.Namespace, variants: list[str]) -> None:
    pairs = {
        v: (
            gateshift.Streamer(_model(name, True, args.size, v == "folded")),
            _model(name, False, args.size, v == "folded"),
        )
        for v in variants
    }
    for precision in args.precisions:
        streams: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        slidings: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v, (streamer, offline) in pairs.items():
                streams[v].append(time_stream(streamer, precision, args.size, args.steps))
                slidings[v].append(time_sliding(offline, precision, args.size, args.clips))
        for v in variants:
            row(f"{name} causal | {precision} | {v}", streams[v], slidings[v])


def onnx_rows(name: str, args: argparse.Namespace) -> None:
    """The causal model's streaming export against the offline model's export, on ORT."""
    with tempfile.TemporaryDirectory() as tmp:
        check = torch.randn(1, 8, 3, args.size, args.size)
        stream_file, clip_file = f"{tmp}/stream.onnx", f"{tmp}/clip.onnx"
        causal, offline = (_model(name, c, args.size, False) for c in (True, False))
        export_stream_checked(causal, stream_file, clips=check, metadata=_meta(causal, args.size))
        export_checked(offline, clip_file, clips=check, metadata=_meta(offline, args.size))
        streamer = OnnxStreamer(stream_file, threads=args.threads)
        sliding = runtime_network(clip_file, threads=args.threads)
        streams, slidings = [], []
        for _ in range(args.rounds):
            streams.append(time_stream(streamer, "fp32", args.size, args.steps))
            slidings.append(time_sliding(sliding, "fp32", args.size, args.clips))
    row(f"{name} causal | fp32 | ONNX Runtime", streams, slidings)


def _meta(model: gateshift.models.recognizer.Recognizer, size: int) -> dict[str, Any]:
    meta = default_metadata(model)
    return {**meta, "input_spec": {**meta["input_spec"], "crop_size": size, "resize_size": size}}


def row(label: str, streams: list[dict[str, float]], slidings: list[float]) -> None:
    """One table row from the rounds: the fastest round of each side."""
    s = min(streams, key=lambda r: r["median_ms"])
    sliding = min(slidings)
    ratio = s["median_ms"] / (1000 * sliding)
    fps = max(r["fps"] for r in streams)
    print(
        f"| {label} | {s['median_ms']:.1f}, {s['p90_ms']:.1f} | {fps:.1f} | "
        f"{1000 * sliding:.1f} | 1/{1 / ratio:.1f} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
