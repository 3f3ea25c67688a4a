"""The app in a real Chromium: an uploaded crystal is reconstructed, every page renders with no exception, the
density scene holds nested isosurfaces, the atoms viewer draws a unit cell, the latent map draws a tiny held-out
sample made here and two clicks on it choose an interpolation, and a screenshot of each page is saved.

Skipped with the reason when Playwright's package or Debian's /usr/bin/chromium is missing (Playwright
cannot download its own browsers here). Screenshots go to $SCREENSHOT_DIR (e.g. docs/) or a temp folder.
The seconds a user waits (upload → settled reconstruct page, slider move → redrawn scene) are printed and
written to timings.json in the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
LOCAL_3DMOL = ROOT / "static" / "3Dmol-min.js"
PAGES = {"latent": "Latent explorer", "interpolation": "Interpolate between two crystals",
         "samples": "Random draws from the prior", "model": "The model"}
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
# surfaces of a density are named "<panel>: <level> Z units" (crystal_explorer.plotting.panel_traces)
# plotly keeps numpy arrays as base64 typed arrays ({dtype, bdata}) in the figure's data
COUNT_SURFACES = """() => { const size = x => !x ? 0 : (x.bdata !== undefined ? x.bdata.length : x.length); return Math.max(0, ...Array.from(document.querySelectorAll('.js-plotly-plot')).map(
    el => (el.data || []).filter(t => t.type === 'mesh3d' && (t.name || '').endsWith('Z units') && size(t.x) > 0).length)); }"""
# cheap enough to poll every 20 ms: the length and first bytes of each trace's x
SCENE_SIGNATURE = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
    el => (el.data || []).map(t => !t.x ? '' : (t.x.bdata !== undefined ? t.x.bdata.length + t.x.bdata.slice(0, 48)
                                                  : String(t.x.length))).join(',')).join('|')"""

# figures drawn by the latent page's live scene (crystal_explorer.live_scene counts them on its div)
LIVE_DRAWS = "() => Number((document.querySelector('div.ce-live-scene') || {dataset: {}}).dataset.draws || 0)"
# points of the map's WebGL traces (customdata: the crystal's row), and the page pixel of one crystal's point
MAP_POINTS = """(() => { const el = document.querySelector('.js-plotly-plot'); return !el || !el._fullData ? 0 :
    el._fullData.filter(t => t.type === 'scattergl').reduce((n, t) => n + t.x.length, 0); })()"""
POINT_PIXELS = """(row) => { const el = document.querySelector('.js-plotly-plot'), L = el._fullLayout;
    for (const t of el._fullData) { if (t.type !== 'scattergl') continue; const i = Array.from(t.customdata).indexOf(row);
      if (i < 0) continue; const box = el.getBoundingClientRect();
      return [box.left + L.xaxis._offset + L.xaxis.l2p(t.x[i]), box.top + L.yaxis._offset + L.yaxis.l2p(t.y[i])]; } }"""

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not CHROMIUM.is_file():
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def held_out_style_cif() -> bytes:
    """Cubic LaFeO3 as Perov-5 holds its crystals (5 atoms, a = 3.93 Å), not one of the built-in examples."""
    structure = Structure(Lattice.cubic(3.93), ["La", "Fe", "O", "O", "O"],
                          [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return str(CifWriter(structure)).encode()


SERVER_LOG: Path | None = None


def server_log_tail(lines: int = 40) -> str:
    return "" if SERVER_LOG is None else "\n".join(SERVER_LOG.read_text(errors="replace").splitlines()[-lines:])


MAP_FORMULAS = ("SrTiO3", "NaCl", "MgO", "CsCl", "LiF", "KBr", "BaTiO3", "CaO", "GaAs", "ZnS", "Si", "C")


def map_data(folder: Path) -> Path:
    """A tiny dataset CSV of held-out crystals (val/test ids) for the map page, so the test never encodes the real
    3,000: cubic rock salts, CsCl and perovskites, diamond-type and zinc blende."""
    from pandas import DataFrame

    from crystal_explorer.structures import split_of

    def crystal(formula: str) -> Structure:
        a = {"SrTiO3": 3.9, "BaTiO3": 4.0, "CsCl": 4.1}.get(formula)
        if a:  # perovskite or CsCl type
            if formula == "CsCl":
                return Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
            b = formula[:2]
            return Structure(Lattice.cubic(a), [b, "Ti", "O", "O", "O"],
                             [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
        if formula in ("Si", "C", "GaAs", "ZnS"):
            a = {"Si": 5.43, "C": 3.57, "GaAs": 5.65, "ZnS": 5.41}[formula]
            pair = {"Si": ("Si", "Si"), "C": ("C", "C"), "GaAs": ("Ga", "As"), "ZnS": ("Zn", "S")}[formula]
            return Structure.from_spacegroup("F-43m", Lattice.cubic(a), list(pair), [[0, 0, 0], [0.25, 0.25, 0.25]])
        cation, anion = re.findall(r"[A-Z][a-z]?", formula)
        a = {"NaCl": 5.64, "MgO": 4.21, "LiF": 4.03, "KBr": 6.6, "CaO": 4.81}[formula]
        return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])

    ids = [m for m in (f"map-{i}" for i in range(500)) if split_of(m) != "train"][: len(MAP_FORMULAS)]
    folder.mkdir(parents=True, exist_ok=True)
    DataFrame({"material_id": ids, "cif": [str(CifWriter(crystal(f))) for f in MAP_FORMULAS]}).to_csv(
        folder / "map_sample.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    global SERVER_LOG
    port = free_port()
    SERVER_LOG = tmp_path_factory.mktemp("server") / "streamlit.log"
    log = SERVER_LOG.open("w")
    data = map_data(tmp_path_factory.mktemp("data"))
    env = {**os.environ, "CRYSTAL_EXPLORER_DATA": str(data), "CRYSTAL_EXPLORER_CACHE": str(tmp_path_factory.mktemp("cache"))}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
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


def settle(page, timeout_ms: int = 180_000) -> None:
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def assert_no_errors(page) -> None:
    exceptions = page.locator("[data-testid='stException']").all_inner_texts()
    assert not exceptions, f"{exceptions}\nserver log:\n{server_log_tail()}"
    errors = page.locator("[data-testid='stAlertContentError']").all_inner_texts()
    assert not errors, f"{errors}\nserver log:\n{server_log_tail()}"


def frame_html(frame) -> str:
    try:
        return frame.content() or ""
    except sync_api.Error:  # detached while Streamlit redraws
        return ""


def wait_for_atoms_viewer(page, timeout_s: float = 60.0) -> list:
    """The py3Dmol iframes that hold a scene (their HTML adds cylinders), polled until one is there."""
    end = time.perf_counter() + timeout_s
    while True:
        frames = [f for f in page.frames if f != page.main_frame and "addCylinder" in frame_html(f)]
        if frames:
            return frames
        assert time.perf_counter() < end, f"no atoms viewer after {timeout_s:.0f} s"
        page.wait_for_timeout(250)


def wait_for_change(page, before: str, timeout_s: float = 60.0) -> None:
    end = time.perf_counter() + timeout_s
    while page.evaluate(SCENE_SIGNATURE) == before:
        assert time.perf_counter() < end, "the scene was not redrawn"
        page.wait_for_timeout(20)


def test_every_page_renders(app_url: str, tmp_path: Path) -> None:
    out = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    cif = tmp_path / "LaFeO3.cif"
    cif.write_bytes(held_out_style_cif())
    timings = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--enable-unsafe-swiftshader", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1900})

        # the deep link to the reconstruct page, then an upload of a crystal the app has never seen
        page.goto(f"{app_url}/reconstruct")
        page.get_by_role("heading", name="Reconstruct a crystal").wait_for(timeout=180_000)
        settle(page)
        page.get_by_text("Upload", exact=True).click()
        uploader = page.locator("[data-testid='stFileUploader'] input[type=file]")
        uploader.wait_for(state="attached", timeout=60_000)
        settle(page)
        page.wait_for_timeout(500)
        # the model is loaded and warm (the page drew its default example first)
        start = time.perf_counter()
        uploader.set_input_files(str(cif))
        page.get_by_text("LaFeO3").first.wait_for(timeout=180_000)
        settle(page)
        try:
            page.wait_for_function(f"({COUNT_SURFACES})() > 1", timeout=60_000)
        except sync_api.TimeoutError:
            page.screenshot(path=str(tmp_path / "failed_upload.png"))
            pytest.fail(f"no density scene after the upload; server log:\n{server_log_tail()}")
        timings["upload to settled reconstruct page (s)"] = round(time.perf_counter() - start, 2)
        before = page.evaluate(SCENE_SIGNATURE)
        start = time.perf_counter()
        page.get_by_role("button", name="New random orientation").click()
        wait_for_change(page, before)
        settle(page)
        timings["new orientation to redrawn reconstruct page (s)"] = round(time.perf_counter() - start, 2)
        assert_no_errors(page)
        assert page.evaluate(COUNT_SURFACES) > 1, "the density scene shows fewer than two isosurfaces"
        page.wait_for_timeout(1500)  # software WebGL
        settle(page)  # the redrawn scene can start one more run (its first draw reports back): wait it out
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "screenshot_reconstruct.png"), full_page=True)

        page.get_by_role("tab", name="Unit cell").click()
        frames = wait_for_atoms_viewer(page)
        # 12 black cell edges per viewer (the input's cell and the decoded crystal's)
        assert frames[0].content().count('"color": "black"') >= 24
        if LOCAL_3DMOL.is_file():
            # with the offline copy of 3Dmol.js (installed by .ci/run) the atoms viewer draws on a canvas
            try:
                frames[0].locator("canvas").first.wait_for(state="attached", timeout=60_000)
            except sync_api.TimeoutError:
                pytest.fail("the 3Dmol atoms viewer drew nothing in 60 s")
        page.screenshot(path=str(out / "screenshot_cell.png"), full_page=True)
        page.get_by_role("tab", name="Atom by atom").click()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "screenshot_atoms_table.png"), full_page=True)

        for path, title in PAGES.items():
            page.goto(f"{app_url}/{path}")
            page.get_by_role("heading", name=title).wait_for(timeout=180_000)
            settle(page)
            page.wait_for_timeout(3000)  # let plotly (software WebGL) and the 3Dmol iframe draw
            assert_no_errors(page)
            if path in ("latent", "interpolation", "samples"):
                try:  # a loaded machine may take longer than the pause above
                    page.wait_for_function(f"({COUNT_SURFACES})() > 1", timeout=60_000)
                except sync_api.TimeoutError:
                    pytest.fail(f"{path}: the density scene shows fewer than two isosurfaces after 60 s")
            if path == "latent":
                # the live scene: one plot div that Plotly.react redraws in place (no remount, camera kept)
                assert page.locator("div.ce-live-scene").count() == 1, "the latent scene is not the live scene"
                page.wait_for_function(f"({LIVE_DRAWS})() >= 1", timeout=60_000)
                page.evaluate("() => { document.querySelector('div.ce-live-scene').kept = true; }")
                draws = page.evaluate(LIVE_DRAWS)
                before = page.evaluate(SCENE_SIGNATURE)
                thumb = page.get_by_role("slider", name=re.compile(r"^(PC 1 \(|Direction 1 \(σ\))"))  # labelled by what it changes, when measured
                thumb.focus()
                start = time.perf_counter()
                thumb.press("End")  # the first direction to +4 σ in one move
                page.wait_for_function(f"({LIVE_DRAWS})() > {draws}", timeout=60_000)
                timings["slider move to redrawn latent scene (s)"] = round(time.perf_counter() - start, 2)
                settle(page)
                timings["slider move to settled latent page (s)"] = round(time.perf_counter() - start, 2)
                assert page.evaluate(SCENE_SIGNATURE) != before, "the slider move did not change the scene"
                assert page.evaluate("() => document.querySelector('div.ce-live-scene').kept === true"), "the scene was remounted"
                # drawn by the plotly package's own plotly.js (the version its figures are built for), not Streamlit's
                from plotly.offline import get_plotlyjs_version

                assert page.locator("div.ce-live-scene").get_attribute("data-plotly-version") == get_plotlyjs_version()
                # ... and Streamlit's own window.Plotly (its st.plotly_chart bundle) is left as it was
                assert page.evaluate("() => window.Plotly === undefined || window.Plotly.version") != get_plotlyjs_version()
                assert_no_errors(page)
                page.wait_for_timeout(1500)
            page.screenshot(path=str(out / f"screenshot_{path}.png"), full_page=True)

        # the latent map (of the test's tiny held-out sample): points drawn, two clicks choose an interpolation
        page.goto(f"{app_url}/map")
        page.get_by_role("heading", name="Latent map").wait_for(timeout=180_000)
        settle(page)
        page.wait_for_function(MAP_POINTS + " >= 3", timeout=120_000)
        assert page.evaluate(MAP_POINTS) == len(MAP_FORMULAS)
        assert_no_errors(page)
        for end, label in ((1, "A: "), (5, "B: ")):
            xy = page.evaluate(POINT_PIXELS, end)
            page.mouse.click(*xy)
            page.locator("strong", has_text=re.compile("^" + label)).first.wait_for(timeout=60_000)
            settle(page)
        assert page.get_by_role("button", name=re.compile("^Interpolate ")).count() == 1
        assert page.evaluate("() => document.querySelector('.js-plotly-plot').data.some(t => t.name === 'interpolation path')")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "screenshot_map.png"), full_page=True)
        browser.close()
    print(json.dumps(timings, indent=1))
    (tmp_path / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
