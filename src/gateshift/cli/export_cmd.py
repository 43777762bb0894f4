"""``gateshift export RUN``: the run's model as one ONNX file, checked against PyTorch."""

from __future__ import annotations

import argparse
import json
from typing import Any


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
            "(1e-4) or any top-1 disagreement is an error and leaves no file. Needs `pip install "
            "'gateshift[export]'`."
        ),
    )
    p.add_argument("run", help="run folder (out_dir of `gateshift train`)")
    p.add_argument("--out", help="ONNX file to write (default RUN/export/model.onnx)")
    p.add_argument(
        "--precision", default="fp32", choices=("fp32",), help="exported precision (fp32)"
    )
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    p.add_argument("--clips", type=int, default=8, help="clips for the parity check (default 8)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help=(
            "largest max relative logit error accepted (default 1e-4; deep nets' fp32 logits can "
            "differ more between any two fp32 runtimes)"
        ),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gateshift.deploy.export import export_run

    if args.tolerance <= 0:
        raise ValueError("--tolerance must be positive")
    report = export_run(
        args.run, args.out, opset=args.opset, clips=args.clips, tolerance=args.tolerance
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"wrote {report.path}")
        print(
            f"  parity on {report.clips} {report.source} clips: max relative logit error "
            f"{report.max_rel_error:.2e}, top-1 agreement {100 * report.top1_agreement:.1f} %"
        )
    return 0
