"""``gateshift profile NAME``: parameters, FLOPs and CPU latency next to the TSN model."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from gateshift.inference.profile import Cost, measure
from gateshift.models import create_model
from gateshift.models.temporal import native_kernels_available


def register(sub: Any) -> None:
    p = sub.add_parser(
        "profile",
        help="parameters, FLOPs and latency of a model next to its TSN baseline",
        description=(
            "Measure parameters, FLOPs per clip (torch.utils.flop_counter; 2 per multiply-add) "
            "and median inference latency of NAME and of the TSN model of the same backbone."
        ),
    )
    p.add_argument("name", help="model name, e.g. bninception_gsm (see `gateshift models`)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    p.add_argument("--size", type=int, help="crop size (default: the backbone's, 224 or 229)")
    p.add_argument("--batch", type=int, default=1, help="clips per forward pass (default 1)")
    p.add_argument("--classes", type=int, default=174, help="classifier size (default 174)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")
    p.add_argument("--repeats", type=int, default=10, help="timed runs, median reported")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def _cost(name: str, args: argparse.Namespace, size: int) -> Cost:
    model = create_model(name, num_classes=args.classes, num_segments=args.frames)
    return measure(
        model,
        frames=args.frames,
        size=size,
        batch=args.batch,
        bf16=args.bf16,
        channels_last=args.channels_last,
        device=args.device,
        repeats=args.repeats,
    )


def _pct(a: float, b: float) -> str:
    return f"{100.0 * (a - b) / b:+.2f}%" if b else "n/a"


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.batch < 1 or args.repeats < 1:
        raise ValueError("--frames, --batch and --repeats must be positive")
    if args.size is not None and args.size < 1:
        raise ValueError(f"--size must be positive, got {args.size}")
    if args.threads:
        torch.set_num_threads(args.threads)
    backbone = args.name.rsplit("_", 1)[0]
    tsn_name = f"{backbone}_tsn"
    size = (
        args.size
        if args.size is not None
        else create_model(args.name, num_classes=1).input_spec.crop_size
    )
    cost = _cost(args.name, args, size)
    tsn = cost if tsn_name == args.name else _cost(tsn_name, args, size)
    # GSM/GSF inference on CPU uses compiled kernels where they build (GATESHIFT_NATIVE=0: off)
    uses_kernels = args.device == "cpu" and args.name.endswith(("_gsm", "_gsf"))
    native = native_kernels_available() if uses_kernels else None
    if args.json:
        out = {
            "model": args.name,
            "frames": args.frames,
            "size": size,
            "batch": args.batch,
            "bf16": args.bf16,
            "channels_last": args.channels_last,
            "device": args.device,
            "threads": torch.get_num_threads(),
            "native_kernels": native,
            "params": cost.params,
            "flops": cost.flops,
            "latency_s": cost.latency_s,
            "tsn_params": tsn.params,
            "tsn_flops": tsn.flops,
            "tsn_latency_s": tsn.latency_s,
        }
        print(json.dumps(out))
        return 0
    fmt = ("bf16" if args.bf16 else "fp32") + (" channels_last" if args.channels_last else "")
    if native is not None:
        fmt += ", native CPU kernels " + ("on" if native else "off")
    print(
        f"{args.frames} frames x {size}px, batch {args.batch}, {args.device} {fmt}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(f"{'':<18}{args.name:>18}{tsn_name:>18}{'overhead':>11}")
    rows = (
        ("parameters", f"{cost.params:,}", f"{tsn.params:,}", _pct(cost.params, tsn.params)),
        (
            "GFLOPs / clip",
            f"{cost.flops / 1e9:.3f}",
            f"{tsn.flops / 1e9:.3f}",
            _pct(cost.flops, tsn.flops),
        ),
        (
            "latency (s)",
            f"{cost.latency_s:.4f}",
            f"{tsn.latency_s:.4f}",
            _pct(cost.latency_s, tsn.latency_s),
        ),
    )
    for label, a, b, pct in rows:
        print(f"{label:<18}{a:>18}{b:>18}{pct:>11}")
    return 0
