"""The app in a real Chromium: every page renders with no exception, and a screenshot of each is saved.

Skipped with the reason when Playwright's package or Debian's /usr/bin/chromium is missing (Playwright
cannot download its own browsers here). Screenshots go to $SCREENSHOT_DIR (e.g. docs/) or a temp folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
LOCAL_3DMOL = ROOT / "static" / "3Dmol-min.js"
PAGES = {"": "Reconstruct a crystal", "latent": "Latent explorer", "interpolation": "Interpolate between two crystals",
         "samples": "Random draws from the prior", "model": "The model"}

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not CHROMIUM.is_file():
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the Streamlit server did not become healthy in 60 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_every_page_renders(app_url: str, tmp_path: Path) -> None:
    out = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--enable-unsafe-swiftshader", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        for path, title in PAGES.items():
            page.goto(f"{app_url}/{path}")
            page.get_by_role("heading", name=title).wait_for(timeout=180_000)
            page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=180_000)
            page.wait_for_timeout(5000)  # let plotly (software WebGL) and the 3Dmol iframe draw
            assert page.locator("[data-testid='stException']").count() == 0
            assert page.locator("[data-testid='stAlertContentError']").count() == 0
            if path == "interpolation" and LOCAL_3DMOL.is_file():
                # with the offline copy of 3Dmol.js (installed by .ci/run) the atoms viewer draws on a canvas
                viewers = [f for f in page.frames if f != page.main_frame and f.locator("canvas").count() > 0]
                assert viewers, "the 3Dmol atoms viewer drew nothing"
            page.screenshot(path=str(out / f"screenshot_{path or 'reconstruct'}.png"))
        browser.close()
