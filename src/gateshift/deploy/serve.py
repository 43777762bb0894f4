"""``gateshift serve``: the web app of :mod:`.serve_app` over a run, on uvicorn.

The model is loaded once (:class:`~gateshift.deploy.serve_model.ServedModel`), then uvicorn
serves the app on ``host:port``, 127.0.0.1 by default: only this machine can reach it unless
told otherwise (``--host 0.0.0.0``). :func:`running_server` runs an app in a background thread
on a free port (tests, the screenshot script, notebooks).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from gateshift.deploy.serve_app import create_app
from gateshift.deploy.serve_limits import Limits
from gateshift.deploy.serve_model import ServedModel

DEFAULT_MAX_MB = 200.0
DEFAULT_MAX_SECONDS = 600.0


def build_app(
    run: str | Path,
    *,
    max_mb: float = DEFAULT_MAX_MB,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    workers: int = 2,
    queue: int = 32,
    device: str = "cpu",
    tmp_dir: str | Path | None = None,
) -> FastAPI:
    """The app over ``run`` (a run or bundle folder) with these limits (checked first)."""
    limits = Limits.from_options(max_mb, max_seconds)
    if workers < 1 or queue < 0:
        raise ValueError(f"--workers must be >= 1 and --queue >= 0, got {workers} and {queue}")
    model = ServedModel(run, device=device)
    return create_app(model, limits=limits, workers=workers, queue=queue, tmp_dir=tmp_dir)


def serve(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``app`` until interrupted."""
    uvicorn.run(app, host=host, port=port, log_level="info")


@contextmanager
def running_server(app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """``app`` served by uvicorn in a background thread on ``port`` (0: a free one); yields
    the base URL (``http://127.0.0.1:PORT``) and stops the server on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
