"""``gateshift data {synthetic,check,prepare}``: dataset tools."""

from __future__ import annotations

from typing import Any

from gateshift.cli import data_check_cmd, data_prepare_cmd, data_synthetic_cmd


def register(sub: Any) -> None:
    p = sub.add_parser("data", help="dataset tools: synthetic, check, prepare")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    for module in (data_synthetic_cmd, data_check_cmd, data_prepare_cmd):
        module.register(data_sub)
