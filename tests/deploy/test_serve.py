"""`gateshift serve`: the API answers as `predict` does, refuses what it must with 4xx JSON,
leaves no upload behind, and answers a burst of uploads correctly."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from gateshift.cli.main import build_parser
from gateshift.deploy.predict import predict
from gateshift.deploy.serve import running_server
from gateshift.deploy.serve_app import create_app
from gateshift.deploy.serve_limits import Limits, UploadError, receive_upload
from gateshift.deploy.serve_model import ServedModel

from .serve_helpers import long_video, served_run


@pytest.fixture(scope="module")
def run(tiny_synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return served_run(tmp_path_factory.mktemp("serve"), tiny_synthetic)


@pytest.fixture(scope="module")
def model(run: Path) -> ServedModel:
    return ServedModel(run)


@pytest.fixture(scope="module")
def videos(tiny_synthetic: Path) -> list[Path]:
    """One val video per class (8 frames at 12 fps)."""
    return sorted(tiny_synthetic.glob("val/*/*.mp4"))


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture
def served(model: ServedModel, uploads: Path) -> Iterator[str]:
    """The default app (200 MB, 600 s, 2 workers) on a real uvicorn; uploads under ``uploads``."""
    app = create_app(model, limits=Limits.from_options(200, 600), tmp_dir=uploads)
    with running_server(app) as url:
        yield url


def _post(url: str, path: Path | None, data: bytes | None = None, **kw: Any) -> httpx.Response:
    content = path.read_bytes() if path is not None else data
    name = path.name if path is not None else "upload.bin"
    files = {"video": (name, content, "application/octet-stream")}
    return httpx.post(f"{url}/api/predict", files=files, timeout=120, **kw)


def test_health_model_and_page(served: str, model: ServedModel) -> None:
    health = httpx.get(f"{served}/api/health").json()
    assert health["status"] == "ok" and health["model"] == "resnet18_gsm"
    assert health["workers"] == 2 and health["requests"] == 0
    info = httpx.get(f"{served}/api/model").json()
    assert info["name"] == "resnet18_gsm" and info["num_segments"] == 4
    assert info["classes"] == model.bundle.classes and len(info["classes"][0]) == 11
    assert info["input_spec"] == json.loads(json.dumps(model.bundle.input_spec.to_dict()))
    assert info["input_spec"]["crop_size"] == 32 and info["has_gates"]
    assert info["limits"] == {"max_mb": 200.0, "max_seconds": 600.0}
    page = httpx.get(served)
    assert page.headers["content-type"].startswith("text/html")
    assert "<video" in page.text and "/api/analyze" in page.text
    # the framework's own refusals come in the same {"error": ...} shape as the API's
    missing = httpx.get(f"{served}/api/nothing")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    bad = httpx.post(f"{served}/api/predict?top_k=abc", files={"video": ("a.mp4", b"x")})
    assert bad.status_code == 422 and "top_k" in bad.json()["error"]


def test_predict_is_predicts_json(served: str, run: Path, videos: list[Path]) -> None:
    for video in videos[:3]:
        got = _post(served, video)
        assert got.status_code == 200, got.text
        want = json.loads(json.dumps([asdict(p) for p in predict(run, [video])]))
        want[0]["video"] = video.name  # named by the upload, not by a server path
        assert got.json() == want


def test_too_large_is_413_before_reading_the_video(model: ServedModel, videos: list[Path]) -> None:
    app = create_app(model, limits=Limits.from_options(0.001, None))  # 1000 bytes
    with running_server(app) as url:
        got = _post(url, videos[0])  # ~6 kB
    assert got.status_code == 413
    assert got.json() == {"error": "the video is larger than the limit of 0.001 MB"}


def test_the_size_limit_holds_while_streaming(tmp_path: Path) -> None:
    """No Content-Length: the part is cut at the first chunk past the limit, and no byte past
    the limit reaches the disk."""
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="a/../x.mp4"'
        "\r\nContent-Type: video/mp4\r\n\r\n"
    ).encode()
    sent = []

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(1000):  # 64 MB offered in 64 kB chunks
            sent.append(65536)
            yield b"\0" * 65536

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    limits = Limits.from_options(0.2, None)
    with pytest.raises(UploadError) as refused:
        asyncio.run(receive_upload(headers, body(), tmp_path, limits))
    assert refused.value.status == 413
    assert sum(sent) <= limits.max_bytes + 65536  # stopped at the chunk that crossed it
    assert (tmp_path / "upload").stat().st_size <= limits.max_bytes


def test_not_a_video_is_415_by_content(served: str, videos: list[Path]) -> None:
    text = _post(served, None, b"this is not a video, whatever its name says\n" * 10)
    assert text.status_code == 415 and text.json()["error"].startswith("not a video")
    png = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(png, format="PNG")
    image = _post(served, None, png.getvalue())
    assert image.status_code == 415 and "still image" in image.json()["error"]
    cut = _post(served, None, videos[0].read_bytes()[:300])  # a video's first bytes only
    assert cut.status_code == 415
    empty = _post(served, None, b"")
    assert empty.status_code == 415 and "empty" in empty.json()["error"]
    named = httpx.post(f"{served}/api/predict", files={"clip": ("a.mp4", b"x")})
    assert named.status_code == 422 and '"video"' in named.json()["error"]


def test_too_long_is_422(model: ServedModel, videos: list[Path]) -> None:
    app = create_app(model, limits=Limits.from_options(200, 0.5))
    with running_server(app) as url:
        got = _post(url, videos[0])  # 8 frames at 12 fps: 0.67 s
    assert got.status_code == 422
    assert got.json() == {"error": "the video is 0.7 s long, over the limit of 0.5 s"}


def test_uploads_are_deleted_after_success_and_after_errors(
    served: str, uploads: Path, videos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []
    original = ServedModel.predict

    def spy(self: ServedModel, path: Path, name: str, *, top_k: int = 5) -> dict[str, Any]:
        assert path.is_file() and path.parent.parent == uploads  # its own folder, in uploads
        seen.append(path)
        return original(self, path, name, top_k=top_k)

    monkeypatch.setattr(ServedModel, "predict", spy)
    assert _post(served, videos[0]).status_code == 200
    assert len(seen) == 1 and not seen[0].parent.exists()
    assert list(uploads.iterdir()) == []
    assert _post(served, None, b"not a video").status_code == 415
    assert list(uploads.iterdir()) == []

    def fail(self: ServedModel, path: Path, name: str, *, top_k: int = 5) -> dict[str, Any]:
        seen.append(path)
        raise RuntimeError("boom")

    monkeypatch.setattr(ServedModel, "predict", fail)
    failed = _post(served, videos[0])
    assert failed.status_code == 500 and failed.json() == {"error": "internal error: boom"}
    assert not seen[-1].parent.exists() and list(uploads.iterdir()) == []


def test_a_full_server_answers_503(model: ServedModel, videos: list[Path]) -> None:
    app = create_app(model, limits=Limits.from_options(200, None), workers=1, queue=0)
    with running_server(app) as url:
        assert app.state.admission.try_enter()  # one request inside: the server is full
        busy = _post(url, videos[0])
        app.state.admission.leave()
        assert _post(url, videos[0]).status_code == 200
    assert busy.status_code == 503 and "busy" in busy.json()["error"]


def test_twenty_uploads_at_once_are_all_answered_correctly(
    served: str, run: Path, videos: list[Path]
) -> None:
    files = [videos[i % len(videos)] for i in range(20)]
    want = {p: r.top[0][0][0] for p, r in zip(videos, predict(run, videos), strict=True)}
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda p: _post(served, p), files))
    assert [a.status_code for a in answers] == [200] * 20
    got = [a.json()[0] for a in answers]
    assert [g["top"][0][0][0] for g in got] == [want[p] for p in files]
    assert [g["video"] for g in got] == [p.name for p in files]
    assert len(set(want.values())) > 1  # the files do not all get the same answer


def _png(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_analyze_explains_and_gives_long_videos_a_timeline(
    served: str, tiny_synthetic: Path, tmp_path: Path, videos: list[Path]
) -> None:
    long = long_video(tiny_synthetic, tmp_path / "long.mp4")  # 48 frames at 12 fps: 4 s
    files = {"video": ("long.mp4", long.read_bytes())}
    got = httpx.post(f"{served}/api/analyze", files=files, timeout=120).json()
    assert got["prediction"] == _post(served, long).json()
    assert got["video"]["num_frames"] == 48 and got["video"]["duration_s"] == pytest.approx(4)
    line = got["timeline"]
    assert line["window_s"] == pytest.approx(1.0) and line["video"] == "long.mp4"
    assert line["segments"][0]["start"] == 0 and line["segments"][-1]["end"] == pytest.approx(4)
    report = got["explain"]
    assert report["has_gates"] and len(report["routing"]) == 8
    assert set(report["images"]) == {"gates", "gradcam", "routing"}
    assert _png(report["images"]["gates"]).width == 120 + 4 * 64  # 4 frames
    short = httpx.post(
        f"{served}/api/analyze?target=still",
        files={"video": (videos[0].name, videos[0].read_bytes())},
    ).json()
    assert short["timeline"] is None and "shorter than" in short["timeline_note"]
    assert [t["role"] for t in short["explain"]["grad_cam"]] == ["predicted", "target"]


def test_serve_command_defaults() -> None:
    from gateshift.cli import serve_cmd

    args = build_parser().parse_args(["serve", "r"])
    assert args.handler is serve_cmd.run and args.host == "127.0.0.1" and args.port == 8000
    assert (args.max_mb, args.max_seconds, args.workers) == (200.0, 600.0, 2)
    with pytest.raises(ValueError, match="--max-mb"):
        Limits.from_options(0, None)
