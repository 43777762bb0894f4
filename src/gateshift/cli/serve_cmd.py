"""``gateshift serve RUN``: a web page and JSON API that classify and explain uploaded videos."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="web page and JSON API: drop a video, see top-5, timeline, gate maps, Grad-CAM",
        description=(
            "Load RUN once and serve a page (drop or pick a video: it plays, with the top-5 "
            "classes, a timeline for long videos, gate maps and Grad-CAM) and a JSON API: "
            "POST /api/predict (multipart field `video`: the JSON of `gateshift predict --json` "
            "for it), POST /api/analyze (what the page shows), GET /api/health, GET /api/model. "
            "Uploads are streamed to a temporary folder per request, checked (size, decodable "
            "video, duration) and deleted after use. Needs the serve extra: "
            "pip install 'gateshift[serve]'."
        ),
    )
    p.add_argument("run", help="run folder (or its bundle folder)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--max-mb", type=float, default=200.0, metavar="MB", help="upload size limit (200)"
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        metavar="S",
        help="video duration limit in seconds (600)",
    )
    p.add_argument(
        "--workers", type=int, default=2, metavar="N", help="videos processed at once (2)"
    )
    p.add_argument(
        "--queue",
        type=int,
        default=32,
        metavar="N",
        help="videos waiting beyond that (32; more: 503)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        from gateshift.deploy.serve import build_app, serve
    except ModuleNotFoundError as err:
        raise ValueError(
            f"gateshift serve needs the serve extra ({err.name} is missing): "
            "pip install 'gateshift[serve]'"
        ) from err
    app = build_app(
        args.run,
        max_mb=args.max_mb,
        max_seconds=args.max_seconds,
        workers=args.workers,
        queue=args.queue,
        device=args.device,
    )
    print(f"gateshift serve: {args.run} on http://{args.host}:{args.port}/ (Ctrl-C stops)")
    serve(app, host=args.host, port=args.port)
    return 0
