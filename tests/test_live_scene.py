"""The live 3-D scene's Python side: plotly.js copied into static/ (or a clear False), and the payload."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from crystal_explorer import live_scene


def test_plotly_js_is_copied_once_and_kept_identical(tmp_path: Path) -> None:
    static = tmp_path / "static"
    assert live_scene.ensure_plotly_js(static)
    copy = static / live_scene.PLOTLY_JS_NAME
    assert copy.read_bytes() == live_scene.bundled_plotly_js().read_bytes()
    assert not list(static.glob("*.partial"))
    copy.write_text("truncated")  # a stale or broken copy is replaced
    assert live_scene.ensure_plotly_js(static)
    assert copy.stat().st_size == live_scene.bundled_plotly_js().stat().st_size


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_static_folder_gives_false_not_an_error(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    static.chmod(0o500)
    try:
        assert live_scene.ensure_plotly_js(static) is False
    finally:
        static.chmod(0o700)


def test_a_file_in_the_way_gives_false_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "static"
    blocker.write_text("not a folder")
    assert live_scene.ensure_plotly_js(blocker) is False


def test_payload_carries_the_figure_and_the_camera_revision() -> None:
    fig = go.Figure(go.Mesh3d(x=np.arange(3.0), y=np.zeros(3), z=np.ones(3), i=[0], j=[1], k=[2], name="surface"))
    payload = live_scene.scene_payload(fig, "crystal-A")
    assert payload["uirevision"] == "crystal-A"
    assert payload["src"].startswith("/app/static/plotly.min.js?v=")
    assert json.loads(payload["figure"])["data"][0]["name"] == "surface"
    # the page keeps its plot div and updates it in place
    assert "Plotly.react" in live_scene.LIVE_SCENE_JS and "newPlot" not in live_scene.LIVE_SCENE_JS


def test_plotly_js_url_follows_the_servers_base_path_and_names_the_version() -> None:
    from plotly.offline import get_plotlyjs_version

    version = get_plotlyjs_version()
    assert live_scene.plotly_js_url() == f"/app/static/plotly.min.js?v={version}"
    assert live_scene.plotly_js_url("/explorer/") == f"/explorer/app/static/plotly.min.js?v={version}"
    assert live_scene.plotly_js_url("a/b") == f"/a/b/app/static/plotly.min.js?v={version}"
