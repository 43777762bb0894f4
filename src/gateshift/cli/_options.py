"""Options shared by several commands: the dataset commands' output options (data check, data
prepare, bench data) and the inference commands' views and precision (evaluate, predict).

``--clips``, ``--crops`` and ``--precision`` have no defaults of their own: each is the config
key ``eval.num_clips``, ``eval.num_crops`` or ``eval.precision``, and :func:`view_overrides`
turns the given ones into those overrides, which both commands apply to the run's saved config.
"""

from __future__ import annotations

import argparse

from gateshift.inference.precision import PRECISIONS
from gateshift.inference.settings import eval_overrides


def add_output_options(p: argparse.ArgumentParser, *, set_example: str) -> None:
    """``--set KEY=VALUE`` (format options), ``--json`` and ``--no-progress``."""
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"format option, e.g. --set {set_example} (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings -> dict, with an error naming a malformed one."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    return options


def add_view_options(p: argparse.ArgumentParser) -> None:
    """``--clips N``, ``--crops 1|3|10`` and ``--precision auto|fp32|bf16|fp16``."""
    p.add_argument(
        "--clips", type=int, help="clips per video (sets eval.num_clips; default: the run's)"
    )
    p.add_argument(
        "--crops",
        type=int,
        choices=(1, 3, 10),
        help="crops per clip (sets eval.num_crops; default: the run's)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help=(
            "autocast dtype (sets eval.precision; default: the run's train.precision, auto: fp32 "
            "on CPU; bf16 is faster on CPUs that have it)"
        ),
    )


def view_overrides(args: argparse.Namespace) -> list[str]:
    """The ``eval.*`` overrides that the given ``--clips/--crops/--precision`` stand for."""
    return eval_overrides(num_clips=args.clips, num_crops=args.crops, precision=args.precision)


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """``--backend torch|onnxruntime|openvino``, ``--onnx FILE`` and ``--compile`` (evaluate,
    predict)."""
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "openvino"),
        help=(
            "what runs the network (default torch, onnxruntime when --onnx is given; "
            "onnxruntime, openvino: the exported file; openvino runs it in fp32, or bf16 with "
            "--precision bf16)"
        ),
    )
    p.add_argument(
        "--onnx",
        help="the exported file onnxruntime/openvino run (default RUN/export/model.onnx)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help=(
            "torch backend: run the model through torch.compile (inductor, or the backend "
            "$GATESHIFT_COMPILE_BACKEND names); the first batch waits for compilation"
        ),
    )


def chosen_backend(args: argparse.Namespace) -> str:
    """``--backend``, defaulting to onnxruntime when ``--onnx FILE`` names a file to run and to
    torch otherwise; ``--onnx`` with ``--backend torch`` is an error, not ignored."""
    if args.backend is None:
        return "onnxruntime" if args.onnx else "torch"
    if args.onnx and args.backend == "torch":
        raise ValueError(
            f"--onnx {args.onnx} is run by --backend onnxruntime or openvino, not torch"
        )
    return str(args.backend)
