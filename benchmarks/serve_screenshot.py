"""Screenshot of the `gateshift serve` page (docs/serve.png) by the browser test's own flow.

Starts the app for RUN on a free port, opens the page in headless Debian chromium (Playwright,
``executable_path=/usr/bin/chromium``), picks VIDEO with the file input exactly as
``tests/deploy/test_serve_browser.py`` does, checks the top-1 shown against ``/api/predict`` and
saves the 1000x700 viewport as a PNG. Run from the repository root:

    python benchmarks/serve_screenshot.py RUN VIDEO --out docs/serve.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package

from gateshift.deploy.serve import build_app, running_server
from tests.deploy.test_serve_browser import CHROMIUM, VIEWPORT, upload_in_page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="run folder")
    parser.add_argument("video", type=Path, help="video to upload")
    parser.add_argument("--out", type=Path, default=Path("docs/serve.png"))
    args = parser.parse_args()
    app = build_app(args.run)
    with running_server(app) as url, sync_playwright() as playwright:
        files = {"video": (args.video.name, args.video.read_bytes())}
        api = httpx.post(f"{url}/api/predict", files=files, timeout=600).json()
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            shown = upload_in_page(page, url, args.video)
            page.wait_for_timeout(1500)  # let the video play a little
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
        finally:
            browser.close()
    with Image.open(args.out) as shot:  # 256 colours: a fraction of the size, same look
        shot.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(
            args.out, optimize=True
        )
    top1 = api[0]["top"][0][0][0]
    print(
        f"page top-1 {shown['top1']!r}, API top-1 {top1!r}; {shown['segments']} timeline "
        f"segments; wrote {args.out}"
    )
    return 0 if shown["top1"] == top1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
