"""Options shared by several commands: the dataset commands' output options (data check, data
prepare, bench data) and the inference commands' precision (evaluate, predict)."""

from __future__ import annotations

import argparse


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


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def add_precision_option(p: argparse.ArgumentParser, *, default: str | None, meaning: str) -> None:
    """``--precision auto|fp32|bf16|fp16``; ``meaning`` says what the default does."""
    p.add_argument(
        "--precision",
        default=default,
        choices=PRECISIONS,
        help=f"autocast dtype (default: {meaning}; bf16 is faster on CPUs that have it)",
    )
