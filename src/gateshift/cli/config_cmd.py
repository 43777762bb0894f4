"""``gateshift config [PATTERN] [--config FILE] [key=value ...]``: every key, its value and doc."""

from __future__ import annotations

import argparse
from typing import Any

from gateshift.config import load_config
from gateshift.config_keys import config_keys, format_keys, keys_json


def register(sub: Any) -> None:
    p = sub.add_parser(
        "config",
        help="list the config keys with their type, value and meaning",
        description=(
            "List every config key (dotted, as overrides write it) with its type, its value and "
            "what it means: the defaults, or the values after a config file and key=value "
            "overrides. Values are type-checked but not validated, so an incomplete recipe "
            "(no data.root yet) still shows. Example: `gateshift config 'optim.*'`."
        ),
    )
    p.add_argument(
        "terms",
        nargs="*",
        metavar="PATTERN | key=value",
        help="a shell pattern or a key or section ('optim.*', optim.lr, data), and overrides",
    )
    p.add_argument("--config", metavar="FILE", help="YAML config to show (default: the defaults)")
    p.add_argument("--json", action="store_true", help='print {"key": {type, value, doc}} JSON')
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    overrides = [t for t in args.terms if "=" in t]
    patterns = [t for t in args.terms if "=" not in t]
    if len(patterns) > 1:
        raise ValueError(f"one PATTERN at most, got {' '.join(patterns)}")
    cfg = load_config(args.config, overrides, checked=False)
    keys = config_keys(cfg, patterns[0] if patterns else "*")
    print(keys_json(keys) if args.json else format_keys(keys), end="\n" if args.json else "")
    return 0
