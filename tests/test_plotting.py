"""Figure builders: isosurfaces survive any level, viewers name their elements, downloads parse back."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import plotly.graph_objects as go
from pymatgen.io.xyz import XYZ

from crystal_explorer import plotting


def gaussian_blob(n: int = 20, peak: float = 8.0) -> np.ndarray:
    x = np.arange(n) - (n - 1) / 2
    r2 = x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2
    return peak * np.exp(-r2 / 18.0)


def test_isosurface_on_a_constant_grid_is_empty_not_an_error() -> None:
    trace = plotting.isosurface_trace(np.zeros((30, 30, 30)), 1.0)
    assert len(trace.x) == 0


def test_isosurface_level_outside_the_data_is_clamped() -> None:
    blob = gaussian_blob()
    for level in (-5.0, 100.0):
        trace = plotting.isosurface_trace(blob, level)
        assert len(trace.x) > 0 and len(trace.i) > 0


def test_isosurface_vertices_are_in_the_cube_and_centred_on_the_blob() -> None:
    trace = plotting.isosurface_trace(gaussian_blob(n=30), 4.0)
    vertices = np.stack([trace.x, trace.y, trace.z], 1)
    assert vertices.min() >= 0 and vertices.max() <= plotting.BOX_ANGSTROM
    np.testing.assert_allclose(vertices.mean(0), 5.0, atol=0.1)


def test_side_by_side_isosurfaces_get_one_scene_each() -> None:
    fig = plotting.isosurface_figure({"input": gaussian_blob(), "decoded": gaussian_blob(peak=3.0)}, 2.0)
    assert [t.type for t in fig.data] == ["mesh3d", "mesh3d"]
    assert fig.data[1].scene == "scene2"


def test_animation_has_a_frame_per_density_and_play_pause() -> None:
    fig = plotting.animation_figure([gaussian_blob(peak=p) for p in (2.0, 4.0, 6.0)], 1.5)
    assert len(fig.frames) == 3
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ play", "⏸ pause"]
    assert len(fig.layout.sliders[0].steps) == 3


def test_slices_and_parity_are_plotly_figures() -> None:
    a, b = gaussian_blob(), gaussian_blob(peak=5.0)
    assert isinstance(plotting.slices_figure({"a": a, "b": b}, 10), go.Figure)
    parity = plotting.parity_figure(a, b, max_points=100)
    assert len(parity.data[0].x) == 100


def test_atoms_html_names_its_elements_with_jmol_colours() -> None:
    positions = np.array([[1.0, 1, 1], [3.0, 3, 3], [5.0, 5, 5]])
    html = plotting.atoms_html({"true": (positions, np.array([38, 22, 8])), "decoded": (np.zeros((0, 3)), np.zeros(0, int))})
    for symbol in ("Sr", "Ti", "O"):
        assert symbol in html
    assert plotting.jmol_colours()["O"] in html  # the legend
    assert "3dmolviewer" in html


def test_xyz_round_trips_and_zip_holds_every_frame() -> None:
    positions = np.array([[0.0, 0, 0], [1.5, 0, 0]])
    text = plotting.xyz_text(positions, np.array([14, 8]), comment="test")
    molecule = XYZ.from_str(text).molecule
    assert [s.symbol for s in molecule.species] == ["Si", "O"]
    np.testing.assert_allclose(molecule.cart_coords, positions)
    archive = plotting.frames_zip([(positions, np.array([14, 8])), (np.zeros((0, 3)), np.zeros(0, int))])
    assert zipfile.ZipFile(io.BytesIO(archive)).namelist() == ["frame_000.xyz", "frame_001.xyz"]


def test_nearest_neighbour_distances() -> None:
    d = plotting.nearest_neighbour_distances(np.array([[0.0, 0, 0], [1.0, 0, 0], [4.0, 0, 0]]))
    np.testing.assert_allclose(d, [1.0, 1.0, 3.0])
    assert len(plotting.nearest_neighbour_distances(np.zeros((1, 3)))) == 0


def test_loss_curves_skip_blank_entries() -> None:
    log = {"step": np.array([1, 2, 3]), "val/reconstruction": np.array([np.nan, 5.0, 4.0])}
    fig = plotting.loss_curves_figure(log, ["val/reconstruction"])
    assert list(fig.data[0].x) == [2.0, 3.0]
