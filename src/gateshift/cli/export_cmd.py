"""``gateshift export RUN``: the run's model as one ONNX file, checked against PyTorch."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateshift.deploy.export import PRECISIONS


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained run to ONNX (parity-checked against PyTorch)",
        description=(
            "Write the run's model as ONNX (dynamic batch axis, fixed segments and crop size) "
            "with its label names, input spec, sampling and test views in the file's metadata, "
            "so `gateshift predict model.onnx VIDEO` needs nothing else. Before the file is kept, "
            "ONNX Runtime is compared with the PyTorch model on the run's validation clips (random "
            "clips when that data is not reachable): a max relative logit error above --tolerance "
            "(fp32: 1e-4) or a top-1 agreement below --min-agreement (fp32: every clip) is an "
            "error and leaves no file. --precision fp16 (for GPUs) and int8 (static QDQ "
            "quantisation calibrated on the training split; fast on CPUs with VNNI/AMX) are "
            "derived from the checked fp32 graph and compared with the PyTorch fp32 model "
            "(default: at least 98% top-1 agreement; fp16 also max relative error 1e-2). "
            "--stream (causal runs, fp32) writes instead the one-frame streaming step (default "
            "RUN/export/stream.onnx): inputs frame and state_*, outputs logits and next_state_*, "
            "what `gateshift stream RUN --backend onnxruntime` runs, checked frame by frame "
            "against the PyTorch streamer on --clips validation clips (default 4). Needs "
            "`pip install 'gateshift[export]'`."
        ),
    )
    p.add_argument("run", help="run folder (out_dir of `gateshift train`)")
    p.add_argument(
        "--out",
        help="ONNX file to write (default RUN/export/model.onnx; --stream: RUN/export/stream.onnx)",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="the causal run's one-frame streaming step with its state as inputs/outputs (fp32)",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="exported precision (default fp32; fp16 for GPUs; int8 calibrated)",
    )
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    p.add_argument(
        "--clips",
        type=int,
        help="validation clips for the parity check (default 8 for fp32, 100 for fp16/int8)",
    )
    p.add_argument(
        "--calibration-clips",
        type=int,
        default=32,
        help="int8: training clips whose activation ranges set the quantisation (default 32)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        help=(
            "largest max relative logit error accepted (default 1e-4 for fp32, 1e-2 for fp16, "
            "none for int8; deep nets' fp32 logits can differ more between two fp32 runtimes)"
        ),
    )
    p.add_argument(
        "--min-agreement",
        type=float,
        help="least top-1 agreement with PyTorch fp32 accepted (default 1 for fp32, 0.98 else)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gateshift.deploy.export import export_run

    if args.tolerance is not None and args.tolerance <= 0:
        raise ValueError("--tolerance must be positive")
    if args.min_agreement is not None and not 0 <= args.min_agreement <= 1:
        raise ValueError("--min-agreement must be a fraction in [0, 1]")
    if args.stream:
        return _stream(args)
    report = export_run(
        args.run,
        args.out,
        precision=args.precision,
        opset=args.opset,
        clips=args.clips,
        calibration_clips=args.calibration_clips,
        tolerance=args.tolerance,
        min_agreement=args.min_agreement,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"wrote {report.path}")
        print(
            f"  {report.precision} parity on {report.clips} {report.source} clips against "
            f"PyTorch fp32: max relative logit error "
            f"{report.max_rel_error:.2e}, top-1 agreement {100 * report.top1_agreement:.1f} %"
        )
    return 0


def _stream(args: argparse.Namespace) -> int:
    from gateshift.deploy.stream_export import export_stream_run

    if args.precision != "fp32":
        raise ValueError(f"--stream exports fp32 only, not --precision {args.precision}")
    report = export_stream_run(
        args.run,
        args.out,
        opset=args.opset,
        clips=4 if args.clips is None else args.clips,
        tolerance=1e-4 if args.tolerance is None else args.tolerance,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"wrote {report.path} ({report.states} state tensors)")
        print(
            f"  streaming parity on {report.frames} frames of {report.source} clips against the "
            f"PyTorch streamer: max relative logit error {report.max_rel_error:.2e}, top-1 "
            f"agreement {100 * report.top1_agreement:.1f} %"
        )
    return 0
