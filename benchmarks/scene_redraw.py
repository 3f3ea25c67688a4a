"""Slider move → redrawn latent scene in Chromium: the live scene (Plotly.react on a mounted plot) against
st.plotly_chart (a new element, so Plotly.newPlot and a new WebGL context on every move), in the same run.

Starts the app twice (CRYSTAL_EXPLORER_LIVE_SCENE=1, then 0), opens the latent page, and makes the same slider
moves on each; a move is timed from the key press to the updated scene (the live scene's draw counter; for
st.plotly_chart, its new data in the page, as newPlot starts) and to the app's idle state (`settled`); the arrival
of the figure's websocket message is the server's share. Needs Playwright and /usr/bin/chromium (software WebGL, as in tests/test_browser.py).

    python -m benchmarks.scene_redraw [--moves 8]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
SCENE_SIGNATURE = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
    el => (el.data || []).map(t => !t.x ? '' : (t.x.bdata !== undefined ? t.x.bdata.length + t.x.bdata.slice(0, 48)
                                                  : String(t.x.length))).join(',')).join('|')"""
LIVE_DRAWS = "() => Number((document.querySelector('div.ce-live-scene') || {dataset: {}}).dataset.draws || 0)"
KEYS = ("End", "PageDown", "Home", "PageUp")  # each changes the value: PageDown/PageUp move a tenth of the range


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_moves(chromium, live: bool, moves: int) -> list[tuple[float, float]]:
    port = free_port()
    env = {**os.environ, "CRYSTAL_EXPLORER_LIVE_SCENE": "1" if live else "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        page = chromium.new_page(viewport={"width": 1400, "height": 1900})
        frames: list[tuple[float, str, int]] = []  # websocket traffic: (time, direction, bytes)

        def watch(ws) -> None:
            ws.on("framesent", lambda f: frames.append((time.perf_counter(), "sent", len(f))))
            ws.on("framereceived", lambda f: frames.append((time.perf_counter(), "received", len(f))))

        page.on("websocket", watch)
        page.goto(f"{url}/latent")
        page.get_by_role("heading", name="Latent explorer").wait_for(timeout=300_000)
        page.wait_for_selector(IDLE, timeout=300_000)
        page.wait_for_timeout(int(os.environ.get("SCENE_WAIT_MS", 4000)))  # plotly.js loaded and the first scene drawn
        direction_sliders = page.get_by_role("slider", name=re.compile(r"^(PC \d+ \(|Direction \d+ \(σ\))")).all()
        times = []
        for m in range(moves):
            thumb = direction_sliders[m // len(KEYS) % len(direction_sliders)]
            before = page.evaluate(SCENE_SIGNATURE)
            draws = page.evaluate(LIVE_DRAWS)
            thumb.focus()
            frames.clear()
            start = time.perf_counter()
            thumb.press(KEYS[m % len(KEYS)])
            # polled inside the page (on animation frames), which does not hold up the drawing it waits for
            if live:  # the live scene counts its finished draws
                page.wait_for_function(f"({LIVE_DRAWS})() > {draws}", timeout=120_000)
            else:  # a remounted chart: its new data is in the page as newPlot starts
                page.wait_for_function(f"before => ({SCENE_SIGNATURE})() !== before", arg=before, timeout=120_000)
            updated = time.perf_counter() - start
            page.wait_for_selector(IDLE, timeout=120_000)
            settled = time.perf_counter() - start
            # the first large message after the key press carries the new figure (a cached one is sent as a reference)
            figure = next((t - start for t, kind, size in frames if kind == "received" and size > 20_000), float("nan"))
            times.append((updated, settled, figure))
            page.wait_for_timeout(1000)
        page.close()
        return times
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=8)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--enable-unsafe-swiftshader", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        rows = {"st.plotly_chart (reference: remount, newPlot)": time_moves(chromium, False, args.moves),
                "live scene (Plotly.react, camera kept)": time_moves(chromium, True, args.moves)}
        chromium.close()
    print(f"| latent scene, {args.moves} slider moves | figure received, median (s) | scene updated, median (s) | max (s) | settled, median (s) |")
    print("| --- | --- | --- | --- | --- |")
    for name, times in rows.items():
        updated, settled, figure = ([t[i] for t in times] for i in range(3))
        received = [f for f in figure if f == f] or [float("nan")]  # moves back to a decoding seen before: no large message
        print(f"| {name} | {statistics.median(received):.2f} | {statistics.median(updated):.2f} | {max(updated):.2f} | "
              f"{statistics.median(settled):.2f} |")
    print("figure received: the figure's websocket message arrived (the server's share). scene updated: the live scene "
          "finished drawing (its counter); for st.plotly_chart, the new chart's data is in the page (newPlot starts).")

if __name__ == "__main__":
    main()
