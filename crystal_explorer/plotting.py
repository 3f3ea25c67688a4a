"""Figures of densities, atoms and training runs: pure functions returning plotly figures or HTML strings.

Densities are (n, n, n) grids in Z units over the 10 Å cube; positions are (K, 3) in Å in the cube frame.
Nothing here reads files or keeps state, so the app, notebooks and tests share the same figures.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import zipfile
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import py3Dmol
import yaml
from plotly.subplots import make_subplots
from pymatgen.core import Element, Molecule
from pymatgen.io.xyz import XYZ
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

BOX_ANGSTROM = 10.0
TRUE_COLOUR = "#1f77b4"
DECODED_COLOUR = "#d62728"


@functools.cache
def jmol_colours() -> dict[str, str]:
    """Element symbol → Jmol hex colour, from pymatgen's colour table (3Dmol's own table is partial)."""
    table = yaml.safe_load((importlib.resources.files("pymatgen.core") / "ElementColorSchemes.yaml").read_text())
    return {symbol: "#{:02x}{:02x}{:02x}".format(*rgb) for symbol, rgb in table["Jmol"].items()}


def symbols(atomic_numbers: Sequence[int] | np.ndarray) -> list[str]:
    return [Element.from_Z(int(z)).symbol for z in atomic_numbers]


# --- isosurfaces ------------------------------------------------------------------------------------
def clamp_level(density: np.ndarray, level: float) -> float | None:
    """The iso-level moved strictly inside the grid's value range; None for a constant grid (no surface)."""
    low, high = float(np.min(density)), float(np.max(density))
    if not high > low:
        return None
    margin = 1e-3 * (high - low)
    return float(np.clip(level, low + margin, high - margin))


def isosurface_trace(
    density: np.ndarray, level: float, *, opacity: float = 0.6, colour: str = TRUE_COLOUR, name: str = "density",
    box_angstrom: float = BOX_ANGSTROM,
) -> go.Mesh3d:
    """Marching-cubes isosurface as a Mesh3d in Å (a 30³ grid sends ~30 KB, far less than go.Isosurface)."""
    clamped = clamp_level(density, level)
    if clamped is None:
        return go.Mesh3d(x=[], y=[], z=[], i=[], j=[], k=[], name=name, color=colour, opacity=opacity)
    spacing = (box_angstrom / density.shape[0],) * 3
    verts, faces, _, _ = marching_cubes(np.asarray(density, np.float32), clamped, spacing=spacing)
    verts += spacing[0] / 2  # voxel centres sit half a voxel inside the cube
    return go.Mesh3d(
        x=verts[:, 0], y=verts[:, 1], z=verts[:, 2], i=faces[:, 0], j=faces[:, 1], k=faces[:, 2],
        color=colour, opacity=opacity, name=name, flatshading=False, hoverinfo="name",
    )


def _cube_scene(box_angstrom: float = BOX_ANGSTROM) -> dict:
    axis = dict(range=[0, box_angstrom], title="", showbackground=False)
    return dict(xaxis={**axis, "title": "x (Å)"}, yaxis={**axis, "title": "y (Å)"}, zaxis={**axis, "title": "z (Å)"},
                aspectmode="cube")


def isosurface_figure(
    densities: Mapping[str, np.ndarray], level: float, *, opacity: float = 0.6, height: int = 420
) -> go.Figure:
    """Isosurfaces of several densities side by side at one iso-level (Z units), one 3-D scene each."""
    names = list(densities)
    fig = make_subplots(rows=1, cols=len(names), specs=[[{"type": "scene"}] * len(names)], subplot_titles=names)
    colours = [TRUE_COLOUR, DECODED_COLOUR, "#2ca02c", "#9467bd"]
    for col, name in enumerate(names, start=1):
        trace = isosurface_trace(densities[name], level, opacity=opacity, colour=colours[(col - 1) % 4], name=name)
        fig.add_trace(trace, row=1, col=col)
    for col in range(1, len(names) + 1):
        fig.update_layout({f"scene{'' if col == 1 else col}": _cube_scene()})
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0), showlegend=False)
    return fig


def animation_figure(
    densities: Sequence[np.ndarray], level: float, *, labels: Sequence[str] | None = None, opacity: float = 0.8,
    frame_ms: int = 400, height: int = 520,
) -> go.Figure:
    """An isosurface animation with play/pause and a frame slider (3-D traces do not tween: redraw each frame)."""
    labels = list(labels) if labels is not None else [str(i) for i in range(len(densities))]
    traces = [isosurface_trace(d, level, opacity=opacity, colour=DECODED_COLOUR, name=lab) for d, lab in zip(densities, labels, strict=True)]
    frames = [go.Frame(data=[t], name=lab) for t, lab in zip(traces, labels, strict=True)]
    play = dict(frame=dict(duration=frame_ms, redraw=True), transition=dict(duration=0), fromcurrent=True, mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    slider = dict(
        active=0, currentvalue=dict(prefix="frame "), pad=dict(t=30),
        steps=[dict(label=lab, method="animate", args=[[lab], {**pause, "frame": dict(duration=0, redraw=True)}]) for lab in labels],
    )
    fig = go.Figure(data=[traces[0]], frames=frames)
    fig.update_layout(
        scene=_cube_scene(), height=height, margin=dict(l=0, r=0, t=10, b=0), sliders=[slider],
        updatemenus=[dict(type="buttons", direction="left", x=0, y=0, xanchor="left", yanchor="top", pad=dict(t=40),
                          buttons=[dict(label="▶ play", method="animate", args=[None, play]),
                                   dict(label="⏸ pause", method="animate", args=[[None], pause])])],
    )
    return fig


# --- 2-D views ----------------------------------------------------------------------------------------
def slices_figure(densities: Mapping[str, np.ndarray], z_index: int, *, height: int = 340) -> go.Figure:
    """Heatmaps of one z-slice of each density on a shared colour scale (Hoffmann et al. 2019, Fig. 3E)."""
    names = list(densities)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.08)
    vmin = min(float(np.min(d[:, :, z_index])) for d in densities.values())
    vmax = max(float(np.max(d[:, :, z_index])) for d in densities.values())
    axis = np.linspace(0, BOX_ANGSTROM, next(iter(densities.values())).shape[0], endpoint=False) + BOX_ANGSTROM / 60
    for col, name in enumerate(names, start=1):
        # heatmap rows are y: transpose the (x, y) slice
        fig.add_trace(go.Heatmap(z=densities[name][:, :, z_index].T, x=axis, y=axis, zmin=vmin, zmax=vmax,
                                 colorscale="Viridis", showscale=col == len(names), name=name), row=1, col=col)
        fig.update_xaxes(title_text="x (Å)", row=1, col=col)
        fig.update_yaxes(title_text="y (Å)", scaleanchor=f"x{'' if col == 1 else col}", row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0))
    return fig


def difference_slices_figure(differences: Sequence[np.ndarray], labels: Sequence[str], z_index: int, *,
                             height: int = 260) -> go.Figure:
    """Central slices of traversal difference maps (decoded minus unaltered) on a symmetric diverging scale."""
    fig = make_subplots(rows=1, cols=len(differences), subplot_titles=list(labels), horizontal_spacing=0.03)
    bound = max(max(float(np.abs(d[:, :, z_index]).max()) for d in differences), 1e-6)
    for col, d in enumerate(differences, start=1):
        fig.add_trace(go.Heatmap(z=d[:, :, z_index].T, zmin=-bound, zmax=bound, colorscale="RdBu_r",
                                 showscale=col == len(differences)), row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
        fig.update_yaxes(showticklabels=False, scaleanchor=f"x{'' if col == 1 else col}", row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0))
    return fig


def parity_figure(target: np.ndarray, predicted: np.ndarray, *, max_points: int = 6000, seed: int = 0,
                  height: int = 380) -> go.Figure:
    """Predicted against target voxel densities (Z units), a random subset of voxels, with the y = x line."""
    target, predicted = np.ravel(target), np.ravel(predicted)
    if len(target) > max_points:
        keep = np.random.default_rng(seed).choice(len(target), max_points, replace=False)
        target, predicted = target[keep], predicted[keep]
    low = float(min(target.min(), predicted.min()))
    high = float(max(target.max(), predicted.max()))
    fig = go.Figure([
        go.Scattergl(x=target, y=predicted, mode="markers", marker=dict(size=3, opacity=0.35, color=DECODED_COLOUR), name="voxels"),
        go.Scatter(x=[low, high], y=[low, high], mode="lines", line=dict(color="black", dash="dash"), name="y = x"),
    ])
    fig.update_layout(xaxis_title="target density (Z units)", yaxis_title="decoded density (Z units)", height=height,
                      margin=dict(l=0, r=0, t=10, b=0), showlegend=False)
    return fig


# --- atoms ----------------------------------------------------------------------------------------------
def xyz_text(positions: np.ndarray, atomic_numbers: np.ndarray, comment: str = "") -> str:
    """An XYZ file of atoms (Å); an empty atom list gives a valid zero-atom file."""
    positions = np.asarray(positions, float).reshape(-1, 3)
    if len(positions) == 0:
        return f"0\n{comment}\n"
    text = str(XYZ(Molecule(symbols(atomic_numbers), positions)))
    lines = text.splitlines()
    lines[1] = comment
    return "\n".join(lines) + "\n"


def atoms_html(
    atom_sets: Mapping[str, tuple[np.ndarray, np.ndarray]], *, width: int = 700, height: int = 380,
    box_angstrom: float = BOX_ANGSTROM, js_url: str | None = None,
) -> str:
    """HTML of a py3Dmol viewer grid, one linked viewer per (positions, atomic_numbers) set, Jmol colours,
    the 10 Å cube drawn as a box, and an element legend below."""
    names = list(atom_sets)
    kwargs = {"js": js_url} if js_url else {}
    view = py3Dmol.view(width=width, height=height, viewergrid=(1, len(names)), linked=True, **kwargs)
    colours = jmol_colours()
    present: set[str] = set()
    edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
    corners = [{"x": box_angstrom * (c & 1), "y": box_angstrom * (c >> 1 & 1), "z": box_angstrom * (c >> 2 & 1)} for c in range(8)]
    for col, name in enumerate(names):
        positions, numbers = atom_sets[name]
        syms = symbols(numbers)
        present.update(syms)
        viewer = (0, col)
        if len(syms):
            view.addModel(xyz_text(positions, numbers), "xyz", viewer=viewer)
            view.setStyle({}, {"sphere": {"scale": 0.3, "colorscheme": {"prop": "elem", "map": colours}}}, viewer=viewer)
        for a, b in edges:
            view.addCylinder({"start": corners[a], "end": corners[b], "radius": 0.03, "color": "grey", "fromCap": 1, "toCap": 1},
                             viewer=viewer)
        view.addLabel(f"{name}: {len(syms)} atoms", {"position": {"x": 0, "y": 0, "z": box_angstrom}, "fontSize": 12,
                                                   "backgroundOpacity": 0.5}, viewer=viewer)
        view.zoomTo(viewer=viewer)
    legend = "".join(
        f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:12px;height:12px;'
        f'border-radius:6px;background:{colours.get(s, "#ff1493")};border:1px solid #888;vertical-align:middle"></span> {s}</span>'
        for s in sorted(present, key=lambda s: Element(s).Z)
    )
    return view.write_html() + f'<div style="font-family:sans-serif;font-size:13px;margin-top:4px">{legend}</div>'


def nearest_neighbour_distances(positions: np.ndarray) -> np.ndarray:
    """Distance in Å from each atom (K, 3) to its nearest other atom; empty for fewer than two atoms."""
    positions = np.asarray(positions, float).reshape(-1, 3)
    if len(positions) < 2:
        return np.zeros(0)
    distances, _ = cKDTree(positions).query(positions, k=2)
    return distances[:, 1]


def distance_histogram_figure(distances: Mapping[str, np.ndarray], *, max_angstrom: float = 6.0,
                              height: int = 340) -> go.Figure:
    """Normalised histograms of nearest-neighbour distances (Å), overlaid."""
    fig = go.Figure()
    for name, d in distances.items():
        fig.add_trace(go.Histogram(x=np.asarray(d), name=f"{name} ({len(d)} atoms)", histnorm="probability density",
                                   xbins=dict(start=0, end=max_angstrom, size=0.2), opacity=0.6))
    fig.update_layout(barmode="overlay", xaxis_title="nearest-neighbour distance (Å)", yaxis_title="density",
                      height=height, margin=dict(l=0, r=0, t=10, b=0), legend=dict(x=0.6, y=0.95))
    return fig


def loss_curves_figure(log: Mapping[str, np.ndarray], columns: Sequence[str], *, height: int = 340) -> go.Figure:
    """Loss curves against step (log scale), from a train_log.csv read as columns; blank entries are skipped."""
    fig = go.Figure()
    step = np.asarray(log["step"], float)
    for column in columns:
        values = np.asarray(log[column], float)
        keep = np.isfinite(values)
        fig.add_trace(go.Scatter(x=step[keep], y=values[keep], mode="lines+markers" if keep.sum() < 60 else "lines",
                                 name=column))
    fig.update_layout(xaxis_title="step", yaxis_type="log", height=height, margin=dict(l=0, r=0, t=10, b=0))
    return fig


def frames_zip(frames: Sequence[tuple[np.ndarray, np.ndarray]], *, extra: Mapping[str, str] | None = None) -> bytes:
    """A ZIP of one XYZ file per frame of (positions, atomic_numbers), plus any extra named text files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, (positions, numbers) in enumerate(frames):
            archive.writestr(f"frame_{i:03d}.xyz", xyz_text(positions, numbers, comment=f"frame {i}"))
        for name, text in (extra or {}).items():
            archive.writestr(name, text)
    return buffer.getvalue()
