"""Figure builders: isosurfaces survive any level, viewers name their elements, downloads parse back."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import plotly.graph_objects as go
import pytest
from pymatgen.io.xyz import XYZ
from scipy import ndimage

from crystal_explorer import plotting
from crystal_explorer.export import xyz_text


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


def two_blobs(n: int = 30, separation: float = 7.0) -> np.ndarray:
    x = np.arange(n) - (n - 1) / 2
    y2 = x[None, :, None] ** 2 + x[None, None, :] ** 2
    return sum(30 * np.exp(-((x[:, None, None] - c) ** 2 + y2) / 9.0) for c in (-separation / 2, separation / 2))


def test_side_by_side_densities_share_one_scene_with_nested_surfaces() -> None:
    fig = plotting.isosurface_figure({"input": gaussian_blob(), "decoded": gaussian_blob(peak=3.0)}, 2.0,
                                     atoms={"input": (np.array([[5.0, 5, 5]]), np.array([8]))})
    names = [t.name for t in fig.data if t.type == "mesh3d" and t.name.endswith("Z units")]
    assert names == ["input: 0.6 Z units", "input: 1.2 Z units", "input: 2.0 Z units",
                     "decoded: 0.6 Z units", "decoded: 1.2 Z units", "decoded: 2.0 Z units"]
    assert {t.scene for t in fig.data} == {None}  # a single scene: rotating one crystal rotates the other
    assert fig.layout.scene.annotations[0].text == "<b>input</b>"
    colours = {t.name.split(":")[0]: t.color for t in fig.data if t.type == "mesh3d" and t.name.endswith("Z units")}
    assert colours == {"input": plotting.INPUT_COLOUR, "decoded": plotting.DECODED_COLOUR}


def test_decoded_panel_sits_one_cube_and_a_gap_to_the_right() -> None:
    fig = plotting.isosurface_figure({"input": gaussian_blob(n=30), "decoded": gaussian_blob(n=30)}, 4.0)
    inner = [t for t in fig.data if t.type == "mesh3d" and t.name.endswith("4.0 Z units")]
    shift = np.mean(inner[1].x) - np.mean(inner[0].x)
    assert shift == pytest.approx(plotting.BOX_ANGSTROM + plotting.PANEL_GAP_ANGSTROM, abs=1e-6)


def test_separating_level_splits_two_atoms_that_a_low_level_merges() -> None:
    density = two_blobs()
    level = plotting.separating_level(density)
    assert ndimage.label(density > level)[1] == 2
    assert ndimage.label(density > 0.3 * density.max())[1] == 1  # the outer surface holds both
    assert plotting.separating_level(np.zeros((5, 5, 5))) == 0.0


def test_atom_spheres_are_sized_by_covalent_radius_and_coloured_jmol() -> None:
    centres = np.array([[2.0, 2, 2], [7.0, 7, 7]])
    trace = plotting.atom_spheres_trace(centres, np.array([57, 8]))
    vertices = np.stack([trace.x, trace.y, trace.z], 1).reshape(2, -1, 3)
    radii = np.linalg.norm(vertices - centres[:, None], axis=-1).max(1)
    np.testing.assert_allclose(radii, plotting.ATOM_RADIUS_SCALE * np.array([2.07, 0.66]), rtol=1e-6)
    assert set(trace.vertexcolor) == {plotting.jmol_colours()["La"], plotting.jmol_colours()["O"]}


def test_bonds_follow_covalent_radii() -> None:
    positions = np.array([[0.0, 0, 0], [1.95, 0, 0], [5.0, 0, 0]])  # Ti–O bonded; O–O 3.05 Å apart not
    assert plotting.bonds(positions, np.array([22, 8, 8])).tolist() == [[0, 1]]


def test_flagged_atoms_get_rings_and_notes() -> None:
    panel = plotting.Panel("decoded", gaussian_blob(), np.array([[1.0, 1, 1], [3.0, 3, 3]]), np.array([24, 8]),
                           flagged=np.array([True, False]), flag_label="wrong", flag_texts=["Cr, true Ti", ""])
    fig = plotting.crystal_scene_figure([panel], [1.0, 2.0])
    rings = next(t for t in fig.data if t.name == "decoded: wrong")
    assert len(rings.x) == 1 and rings.showlegend
    assert [a.text for a in fig.layout.scene.annotations] == ["<b>decoded</b>", "Cr, true Ti"]


def test_difference_surfaces_are_purple_for_more_and_green_for_less() -> None:
    start = plotting.Panel("start", gaussian_blob(), np.zeros((0, 3)), np.zeros(0, int), plotting.DECODED_COLOUR)
    difference = gaussian_blob(peak=3.0) - np.roll(gaussian_blob(peak=3.0), 4, 0)
    fig = plotting.comparison_figure([start, start], [1.0, 2.0], difference, 1.0)
    colours = {t.name.split(" ")[0]: t.color for t in fig.data if "density (±" in (t.name or "")}
    assert colours == {"more": plotting.MORE_COLOUR, "less": plotting.LESS_COLOUR}
    assert fig.layout.scene.annotations[-1].text == "<b>difference</b>"


def test_difference_traces_keep_their_place_when_the_difference_is_small() -> None:
    # a difference under the level gives two empty traces, so a slider move never changes the trace list's shape
    small = plotting.difference_traces(np.zeros((30, 30, 30)), 1.0, (0, 0, 0))
    large = plotting.difference_traces(gaussian_blob(peak=3.0) - gaussian_blob(peak=1.0), 1.0, (0, 0, 0))
    assert [t.name for t in small] == [t.name for t in large]
    assert [len(t.x) for t in small] == [0, 0] and len(large[0].x) > 0
    assert not any(t.showlegend for t in small)


def test_animation_has_a_frame_per_density_and_play_pause() -> None:
    fig = plotting.animation_figure([gaussian_blob(peak=p) for p in (2.0, 4.0, 6.0)], 1.5)
    assert len(fig.frames) == 3
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ play", "|| pause"]
    assert len(fig.layout.sliders[0].steps) == 3


def test_animation_frames_carry_atoms_between_fixed_true_ends() -> None:
    end = plotting.Panel("end", gaussian_blob(), np.array([[5.0, 5, 5]]), np.array([14]))
    atoms = [(np.array([[5.0, 5, 5]]), np.array([z])) for z in (14, 17, 55)]
    fig = plotting.animation_figure([gaussian_blob(peak=p) for p in (2.0, 4.0, 6.0)], 1.5, atoms=atoms, ends=(end, end))
    animated = list(fig.frames[2].traces)
    assert [fig.data[i].name for i in animated][:3] == ["frame 0: 0.4 Z units", "frame 0: 0.9 Z units", "frame 0: 1.5 Z units"]
    frame_atoms = next(t for t in fig.frames[2].data if (t.name or "").endswith("atoms"))
    assert set(frame_atoms.vertexcolor) == {plotting.jmol_colours()["Cs"]}
    assert fig.data[0].name == "end: 0.4 Z units"  # the true start stays put, first in the scene


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
    assert "3dmolviewer" in html and "width: 100%" in html


def test_cell_view_draws_the_cell_with_face_images_and_flags() -> None:
    cell = plotting.CellView(np.eye(3) * 3.9, np.array([[0.0, 0, 0], [0.5, 0.5, 0.5]]), np.array([38, 22]),
                             flagged=np.array([False, True]))
    positions, numbers, site = plotting.cell_images(cell)
    assert (numbers == 38).sum() == 8 and (numbers == 22).sum() == 1  # Sr on all 8 corners
    html = plotting.atoms_html({"input": cell})
    assert html.count('"color": "black"') == 12  # the cell's edges
    assert plotting.FLAG_COLOUR in html and "2 sites in the cell" in html


def test_xyz_round_trips_and_zip_holds_every_frame() -> None:
    positions = np.array([[0.0, 0, 0], [1.5, 0, 0]])
    text = xyz_text(positions, np.array([14, 8]), comment="test")
    molecule = XYZ.from_str(text).molecule
    assert [s.symbol for s in molecule.species] == ["Si", "O"]
    np.testing.assert_allclose(molecule.cart_coords, positions)
    archive = plotting.frames_zip([(positions, np.array([14, 8])), (np.zeros((0, 3)), np.zeros(0, int))])
    assert zipfile.ZipFile(io.BytesIO(archive)).namelist() == ["frame_000.xyz", "frame_001.xyz"]


def test_loss_curves_skip_blank_entries() -> None:
    log = {"step": np.array([1, 2, 3]), "val/reconstruction": np.array([np.nan, 5.0, 4.0])}
    fig = plotting.loss_curves_figure(log, ["val/reconstruction"])
    assert list(fig.data[0].x) == [2.0, 3.0]


def test_ionic_crystals_get_no_metal_metal_bonds() -> None:
    positions = np.array([[0.0, 0, 0], [3.9, 0, 0], [1.95, 0, 0]])  # La–La 3.9 Å, both bonded to O between
    assert plotting.bonds(positions, np.array([57, 57, 8])).tolist() == [[0, 2], [1, 2]]
    assert plotting.bonds(positions[:2], np.array([57, 57])).tolist() == [[0, 1]]  # a metal keeps its bonds


def test_a_site_just_inside_a_face_gets_its_images() -> None:
    cell = plotting.CellView(np.eye(3) * 4.0, np.array([[0.98, 0.99, 0.01]]), np.array([55]))
    positions, _, _ = plotting.cell_images(cell)
    assert len(positions) == 8
