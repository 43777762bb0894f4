"""``gateshift models [PATTERN] [--params]``: list the registered models."""

from __future__ import annotations

import argparse
from typing import Any

from gateshift.models import create_model, list_models


def register(sub: Any) -> None:
    p = sub.add_parser(
        "models",
        help="list registered models",
        description="List the registered models ({backbone}_{tsn|tsm|gsm|gsf}) and their input.",
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'resnet50_*'")
    p.add_argument("--params", action="store_true", help="build each model and count parameters")
    p.add_argument("--classes", type=int, default=174, help="classes for --params (default 174)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}")
    header = f"{'model':<20} {'temporal':<8} {'modules':>7} {'input':<26}"
    print(header + ("  parameters" if args.params else ""))
    for name in names:
        model = create_model(name, num_classes=args.classes)
        spec = model.input_spec
        scale = "0-255" if spec.value_range == 255 else "0-1"
        inp = f"{spec.colour} {scale} {spec.crop_size} (resize {spec.resize_size})"
        line = f"{name:<20} {model.temporal:<8} {len(model.backbone.sites):>7} {inp:<26}"
        if args.params:
            line += f"  {sum(p.numel() for p in model.parameters()):>12,}"
        print(line)
    return 0
