"""Entry point of the ``gateshift`` command: builds the parser from the subcommand modules."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from gateshift._version import __version__
from gateshift.cli import (
    bench_cmd,
    config_cmd,
    data_cmd,
    demo_cmd,
    diagnose_cmd,
    ensemble_cmd,
    evaluate_cmd,
    explain_cmd,
    export_cmd,
    models_cmd,
    predict_cmd,
    profile_cmd,
    serve_cmd,
    stream_cmd,
    timeline_cmd,
    train_cmd,
)

SUBCOMMANDS = (
    demo_cmd,
    models_cmd,
    profile_cmd,
    data_cmd,
    config_cmd,
    train_cmd,
    evaluate_cmd,
    ensemble_cmd,
    predict_cmd,
    timeline_cmd,
    stream_cmd,
    explain_cmd,
    diagnose_cmd,
    serve_cmd,
    export_cmd,
    bench_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateshift",
        description="Video action recognition with GSM, GSF, TSM and TSN.",
    )
    parser.add_argument("--version", action="version", version=f"gateshift {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging and full tracebacks"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.handler(args) or 0)
    except (
        ValueError,
        FileNotFoundError,
        FileExistsError,  # e.g. an output folder that is a file
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
    ) as err:
        if args.verbose or os.environ.get("GATESHIFT_TRACEBACK"):
            raise
        print(f"gateshift {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
