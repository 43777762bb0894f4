"""Options shared by the dataset commands (data check, data prepare, bench data)."""

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
