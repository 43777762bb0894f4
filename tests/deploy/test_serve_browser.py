"""`gateshift serve` in a real browser: headless Debian chromium driven by Playwright picks a
video in the page, which shows the same top-1 as the API, the timeline and the pictures, and a
clear message for a dropped file that is not a video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gateshift.deploy.serve import build_app, running_server

from .serve_helpers import long_video, served_run

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1000, "height": 700}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)",
)


def upload_in_page(page: Any, url: str, video: Path) -> dict[str, Any]:
    """Open the page, pick ``video`` in its file input, wait for the answer; what it shows."""
    page.goto(url)
    page.wait_for_function("document.getElementById('model').textContent.includes('frames')")
    page.set_input_files("#file", str(video))
    page.wait_for_selector("#top .row", timeout=120_000)
    page.wait_for_selector("#explain-box:not(.hidden)")
    return {
        "top1": page.inner_text("#top .row:first-child .label"),
        "rows": page.locator("#top .row").count(),
        "segments": page.locator("#timeline div").count(),
        "pictures": page.eval_on_selector_all(
            "#pictures img", "imgs => imgs.map(i => [i.id, i.naturalWidth])"
        ),
        "playing": page.eval_on_selector("#player", "v => v.src.startsWith('blob:')"),
    }


def drop_file(page: Any, name: str, text: str) -> None:
    """Drop a file holding ``text`` on the page's drop zone, as a person dragging it would."""
    transfer = page.evaluate_handle(
        "([name, text]) => { const t = new DataTransfer(); "
        "t.items.add(new File([text], name, { type: 'video/mp4' })); return t; }",
        [name, text],
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def test_the_page_shows_the_apis_top1(
    tiny_synthetic: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    run = served_run(tmp_path_factory.mktemp("browser"), tiny_synthetic)
    video = long_video(tiny_synthetic, tmp_path / "long.mp4")
    app = build_app(run, max_seconds=60)
    with running_server(app) as url, sync_api.sync_playwright() as playwright:
        files = {"video": (video.name, video.read_bytes())}
        api = httpx.post(f"{url}/api/predict", files=files, timeout=120).json()
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            shown = upload_in_page(page, url, video)
            drop_file(page, "notes.mp4", "not a video")  # dropped, not picked this time
            page.wait_for_selector("#error", state="visible")
            error = page.inner_text("#error")
        finally:
            browser.close()
    assert shown["top1"] == api[0]["top"][0][0][0]
    assert shown["rows"] == 5 and shown["playing"]
    assert shown["segments"] >= 1  # a 4 s video with 1 s windows has a timeline
    assert {name for name, _ in shown["pictures"]} == {"img-gradcam", "img-gates", "img-routing"}
    assert all(width > 0 for _, width in shown["pictures"])  # the PNGs decoded
    assert error.startswith("notes.mp4: not a video")
