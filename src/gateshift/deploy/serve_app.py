"""The web app of ``gateshift serve``: a small page and a JSON API over one loaded run.

FastAPI (on Starlette, served by uvicorn) was chosen over Gradio: the page is one plain
HTML + JavaScript file with no build step, the API is a few typed JSON endpoints that other
programs call directly (``curl -F video=@clip.mp4 .../api/predict``), multipart uploads are
parsed by python-multipart (streamed, see :mod:`.serve_limits`), and tests drive the app over
HTTP on a real uvicorn in a thread (:func:`~gateshift.deploy.serve.running_server`; Starlette's
``TestClient`` would buffer request bodies, hiding the streaming). Gradio would pull in a large
dependency tree and hide the API behind its own queue protocol.

Endpoints:

- ``GET /``: the page (:file:`static/index.html`);
- ``GET /api/health``: ``{"status": "ok", ...}`` and how busy the server is;
- ``GET /api/model``: the model's name, classes, input spec, views, whether it has gates, and
  the upload limits;
- ``POST /api/predict`` (multipart field ``video``, ``?top_k=5``): the JSON of
  ``gateshift predict --json`` for that one video (a list of one entry, named by the upload's
  file name);
- ``POST /api/analyze`` (the same form): what the page shows: the prediction, the video's
  facts, gate maps / Grad-CAM / routing as PNG data URLs with explain.json's content, and a
  timeline for long videos.

**Limits and files.** Each request gets its own :class:`tempfile.TemporaryDirectory`; the upload
is streamed into it under ``--max-mb``, proven a video of at most ``--max-seconds`` by decoding,
processed, and the folder is deleted when the request ends, also on errors. Refusals are 4xx
``{"error": ...}``.

**Bounded work.** At most ``workers`` requests decode and run the model at once (an anyio
capacity limiter over worker threads); at most ``queue`` more wait, their uploads on disk, not in
memory. A request beyond that is answered 503 at once, before its upload is read.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gateshift.data.records import BadVideoError
from gateshift.deploy.serve_limits import Limits, UploadError, VideoFacts, probe_video
from gateshift.deploy.serve_limits import receive_upload as receive
from gateshift.deploy.serve_model import ServedModel

log = logging.getLogger(__name__)

Job = Callable[[Path, str, VideoFacts, Path], dict[str, Any] | list[dict[str, Any]]]


class Admission:
    """At most ``capacity`` requests inside (working or waiting); the rest are turned away."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.inside = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self.inside >= self.capacity:
                return False
            self.inside += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.inside -= 1


def page() -> str:
    return resources.files("gateshift.deploy").joinpath("static/index.html").read_text("utf-8")


class Service:
    """The request pipeline of every upload endpoint: admit, receive, check, work, clean up."""

    def __init__(
        self, limits: Limits, *, workers: int, queue: int, tmp_dir: str | Path | None
    ) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"--workers must be >= 1 and --queue >= 0, got {workers} and {queue}")
        self.limits, self.workers, self.queue, self.tmp_dir = limits, workers, queue, tmp_dir
        self.admission = Admission(workers + queue)
        self.limiter = anyio.CapacityLimiter(workers)

    async def handle(self, request: Request, job: Job) -> JSONResponse:
        """``job(path, name, facts, folder)`` on the request's checked upload, in a worker
        thread; its result as JSON, or ``{"error": ...}`` with a 4xx/5xx status."""
        if not self.admission.try_enter():
            busy = (
                f"the server is busy ({self.workers} videos are being processed and "
                f"{self.queue} are waiting); try again in a moment"
            )
            return JSONResponse({"error": busy}, status_code=503, headers={"Retry-After": "5"})
        try:
            return JSONResponse(await self._run(request, job))
        except UploadError as err:
            log.info("refused an upload (%d): %s", err.status, err.message)
            return JSONResponse({"error": err.message}, status_code=err.status)
        except ClientDisconnect:
            log.info("the client went away during its upload")
            return JSONResponse({"error": "upload interrupted"}, status_code=400)
        except BadVideoError as err:  # damage found past the first frames
            return JSONResponse({"error": f"cannot read the video: {err.reason}"}, status_code=415)
        except ValueError as err:  # a bad request parameter (an unknown target label)
            return JSONResponse({"error": str(err)}, status_code=400)
        except Exception as err:
            log.exception("request failed")
            return JSONResponse({"error": f"internal error: {err}"}, status_code=500)
        finally:
            self.admission.leave()

    async def _run(self, request: Request, job: Job) -> Any:
        # the folder goes when the block ends, whatever happened inside
        with tempfile.TemporaryDirectory(prefix="gateshift-serve-", dir=self.tmp_dir) as name:
            folder = Path(name)
            upload = await receive(dict(request.headers), request.stream(), folder, self.limits)

            def work() -> Any:
                facts = probe_video(upload.path, self.limits)
                return job(upload.path, upload.filename, facts, folder)

            return await anyio.to_thread.run_sync(work, limiter=self.limiter)


def create_app(
    model: ServedModel,
    *,
    limits: Limits,
    workers: int = 2,
    queue: int = 32,
    tmp_dir: str | Path | None = None,
) -> FastAPI:
    """The app over ``model``; uploads go to folders made under ``tmp_dir`` (None: the
    system's temporary folder)."""
    service = Service(limits, workers=workers, queue=queue, tmp_dir=tmp_dir)
    app = FastAPI(title="gateshift", summary=f"{model.bundle.model.name}: video classification")
    app.state.admission = service.admission
    html = page()

    # FastAPI's own refusals (a bad query value, an unknown path) in the API's one error shape
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
            for e in err.errors()
        ]
        return JSONResponse({"error": "; ".join(problems)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return html

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": model.bundle.model.name,
            "requests": service.admission.inside,
            "workers": workers,
            "queue": queue,
        }

    @app.get("/api/model")
    def describe() -> dict[str, Any]:
        return model.describe() | {
            "limits": {"max_mb": limits.max_bytes / 1e6, "max_seconds": limits.max_seconds}
        }

    @app.post("/api/predict")
    async def predict(request: Request, top_k: int = 5) -> JSONResponse:
        def job(path: Path, name: str, facts: VideoFacts, folder: Path) -> list[dict[str, Any]]:
            return [_predicted(model, path, name, top_k)]

        return await service.handle(request, job)

    @app.post("/api/analyze")
    async def analyze(request: Request, target: str | None = None) -> JSONResponse:
        def job(path: Path, name: str, facts: VideoFacts, folder: Path) -> dict[str, Any]:
            entry = _predicted(model, path, name, 5)
            out = folder / "explain"
            report = model.analyze(
                path, name, out, duration_s=facts.duration_s, fps=facts.fps, target=target
            )
            return {"prediction": [entry], "video": facts.to_dict() | {"name": name}, **report}

        return await service.handle(request, job)

    return app


def _predicted(model: ServedModel, path: Path, name: str, top_k: int) -> dict[str, Any]:
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    entry = model.predict(path, name, top_k=top_k)
    if entry["error"]:
        raise UploadError(415, f"cannot read the video: {entry['error']}")
    return entry
