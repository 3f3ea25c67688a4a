"""A 3-D Plotly scene that stays mounted in the browser while the figure changes (the latent sliders).

`st.plotly_chart` gives a changed figure a new element, so each slider move remounts the chart: Plotly.newPlot
makes a new WebGL context and compiles its shaders again (888 ms for the latent scene in Chromium with software
WebGL, against 235 ms for Plotly.react on the mounted plot; `benchmarks/scene_redraw.py`) and the user's camera
resets. The app mounts this instead: a Streamlit component (v2, in the page's DOM) that keeps one plot div and
calls Plotly.react with each new figure, with a fixed `uirevision` so that a rotated or zoomed camera survives.

Plotly.js is the copy inside the plotly Python package (the version the figures are built for), served from the
app's `static/` folder: nothing is fetched from a network. This module holds no Streamlit code (the app mounts it).
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import plotly
import plotly.graph_objects as go

PLOTLY_JS_NAME = "plotly.min.js"
STATIC_URL = "/app/static/"  # where Streamlit serves static/ (server.enableStaticServing)


def bundled_plotly_js() -> Path:
    """plotly.min.js inside the installed plotly package."""
    return Path(plotly.__file__).parent / "package_data" / PLOTLY_JS_NAME


def ensure_plotly_js(static_dir: str | Path) -> bool:
    """Copy the plotly package's plotly.min.js into `static_dir` unless an identical copy is there; False (and
    nothing raised) when it cannot be written, e.g. on a read-only install: the app then draws with st.plotly_chart."""
    source, target = bundled_plotly_js(), Path(static_dir) / PLOTLY_JS_NAME
    try:
        if target.is_file() and filecmp.cmp(source, target, shallow=False):
            return True
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copyfile(source, partial)
        partial.replace(target)  # atomic: a browser never loads half a file
        return True
    except OSError:
        return False


def scene_payload(fig: go.Figure, uirevision: str) -> dict:
    """What the component receives: the figure as Plotly JSON (numpy arrays as typed arrays) and the
    `uirevision` that keeps the camera while it stays the same (a new one resets the view)."""
    return {"figure": fig.to_json(), "uirevision": uirevision, "src": STATIC_URL + PLOTLY_JS_NAME}


# The component's JavaScript (an ES module, called on every rerun with the latest data). Plotly.js loads once
# per page, into a module object of its own: Streamlit's st.plotly_chart bundles another plotly.js version and
# sets window.Plotly, which is left alone. The plot div is kept between calls, so Plotly.react updates its
# traces in the same WebGL context.
LIVE_SCENE_JS = """
let loading = null;
function loadPlotly(src) {
  if (!loading) {
    loading = fetch(src)
      .then(response => {
        if (!response.ok) throw new Error('plotly.js did not load from ' + src + ' (HTTP ' + response.status + ')');
        return response.text();
      })
      .then(code => {
        const module = { exports: {} };  // plotly.min.js is a UMD bundle: with `module` it exports, no global
        new Function('module', 'exports', code)(module, module.exports);
        return module.exports;
      })
      .catch(error => { loading = null; throw error; });
  }
  return loading;
}
export default function (component) {
  const { data, parentElement } = component;
  let div = parentElement.querySelector('div.ce-live-scene');
  if (!div) {
    div = document.createElement('div');
    div.className = 'ce-live-scene';
    div.style.width = '100%';
    parentElement.appendChild(div);
  }
  const figure = JSON.parse(data.figure);
  const layout = { ...figure.layout, uirevision: data.uirevision, autosize: true };
  div.style.height = (layout.height || 480) + 'px';
  const called = performance.now();
  loadPlotly(data.src)
    .then(Plotly => Plotly.react(div, figure.data, layout, { responsive: true, displaylogo: false }).then(() => Plotly.version))
    .then(version => {  // figures drawn by this div, the last one's milliseconds, the plotly.js used (read by tests)
      div.dataset.draws = String(Number(div.dataset.draws || 0) + 1);
      div.dataset.lastDrawMs = String(Math.round(performance.now() - called));
      div.dataset.plotlyVersion = version;
    })
    .catch(error => { div.textContent = 'The 3-D view could not be drawn: ' + error.message; });
}
"""
