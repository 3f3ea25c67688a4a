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
import tempfile
from pathlib import Path

import plotly
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs_version

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
        # a temporary file of this process's own, renamed into place: a browser never loads half a file, and two
        # servers starting at once never write into one another's copy
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".partial", delete=False) as partial:
            temporary = Path(partial.name)
        try:
            shutil.copyfile(source, temporary)
            temporary.replace(target)
        finally:
            temporary.unlink(missing_ok=True)
        return True
    except OSError:
        return False


def plotly_js_url(base_url_path: str = "") -> str:
    """Where the browser finds plotly.js: Streamlit's static route under the server's base URL path (the
    `server.baseUrlPath` option), with the version as a query so that an upgrade is not served from a stale cache."""
    base = "/" + base_url_path.strip("/") if base_url_path.strip("/") else ""
    return f"{base}{STATIC_URL}{PLOTLY_JS_NAME}?v={get_plotlyjs_version()}"


def scene_payload(fig: go.Figure, uirevision: str, base_url_path: str = "") -> dict:
    """What the component receives: the figure as Plotly JSON (numpy arrays as typed arrays), the `uirevision`
    that keeps the camera while it stays the same (a new one resets the view), and plotly.js's URL."""
    return {"figure": fig.to_json(), "uirevision": uirevision, "src": plotly_js_url(base_url_path)}


# The component's JavaScript (an ES module, called on every rerun with the latest data). Plotly.js loads once
# per page, into a module object of its own: Streamlit's st.plotly_chart bundles another plotly.js version as
# window.Plotly, which is put back after the bundle ran. The plot div is kept between calls, so Plotly.react
# updates its traces in the same WebGL context; it is purged when the component unmounts.
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
        // plotly.min.js is a UMD bundle: given `module` it exports itself, but it also sets window.Plotly, which
        // Streamlit's own st.plotly_chart chunk owns: put back whatever was there
        const had = Object.prototype.hasOwnProperty.call(window, 'Plotly'), previous = window.Plotly;
        const module = { exports: {} };
        try {
          new Function('module', 'exports', code)(module, module.exports);
        } finally {
          if (had) window.Plotly = previous; else delete window.Plotly;
        }
        return module.exports;
      })
      .catch(error => { loading = null; throw error; });
  }
  return loading;
}
export default function (component) {
  const { data, parentElement } = component;
  let div = parentElement.querySelector('div.ce-live-scene');
  let message = parentElement.querySelector('div.ce-live-scene-error');
  if (!div) {
    message = document.createElement('div');
    message.className = 'ce-live-scene-error';
    div = document.createElement('div');
    div.className = 'ce-live-scene';
    div.style.width = '100%';
    parentElement.append(message, div);
    // a scene drawn inside a hidden tab has no width: resize it when its box changes
    new ResizeObserver(() => { if (div.ceplotly && div._fullLayout) div.ceplotly.Plots.resize(div); }).observe(div);
  }
  const figure = JSON.parse(data.figure);
  const layout = { ...figure.layout, uirevision: data.uirevision, autosize: true };
  div.style.height = (layout.height || 480) + 'px';
  const called = performance.now();
  loadPlotly(data.src)
    .then(Plotly => {
      div.ceplotly = Plotly;
      return Plotly.react(div, figure.data, layout, { responsive: true, displaylogo: false }).then(() => Plotly.version);
    })
    .then(version => {  // figures drawn by this div, the last one's milliseconds, the plotly.js used (read by tests)
      message.textContent = '';
      div.dataset.draws = String(Number(div.dataset.draws || 0) + 1);
      div.dataset.lastDrawMs = String(Math.round(performance.now() - called));
      div.dataset.plotlyVersion = version;
    })
    .catch(error => {
      message.textContent = 'The 3-D view could not be drawn: ' + error.message;
      if (div.ceplotly) div.ceplotly.purge(div);
    });
  // on unmount (another page): free the plot's WebGL context and its resize listener
  return () => { if (!div.isConnected && div.ceplotly) div.ceplotly.purge(div); };
}
"""
