"""Figures of densities, atoms and training runs: pure functions returning plotly figures or HTML strings.

Densities are (n, n, n) grids in Z units over the 10 Å cube; positions are (K, 3) in Å in the cube frame.
Nothing here reads files or keeps state, so the app, notebooks and tests share the same figures.

One colour convention on every figure: the input is blue, the decoding orange, and a difference purple
where the density grows and green where it falls; atoms take the Jmol colours (VESTA's defaults).
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import io
import zipfile
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
import py3Dmol
import yaml
from plotly.subplots import make_subplots
from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
from pymatgen.core import Element
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from crystal_explorer.export import xyz_text
from crystal_explorer.grid import GridSpec

BOX_ANGSTROM = GridSpec().box_size_angstrom
INPUT_COLOUR = "#1f77b4"  # blue
DECODED_COLOUR = "#e8850c"  # orange
MORE_COLOUR = "#8e44ad"  # purple: the density grows
LESS_COLOUR = "#1e8449"  # green: the density falls
FLAG_COLOUR = "#ff00ff"  # magenta rings: wrong species, missing atoms, atoms too close
DIFFERENCE_SCALE = [[0.0, LESS_COLOUR], [0.5, "#f7f7f7"], [1.0, MORE_COLOUR]]
TRUE_COLOUR = INPUT_COLOUR  # the names older callers use
ATOM_RADIUS_SCALE = 0.4  # spheres of 0.4 × the covalent radius sit inside the density's surfaces and leave bonds visible
BOND_FACTOR = 1.15  # a bond joins atoms closer than 1.15 × the sum of their covalent radii (Cordero 2008)
MIN_BOND_ANGSTROM = 0.4
PANEL_GAP_ANGSTROM = 3.0
DENSITY_UNITS = "Z units"


@functools.cache
def jmol_colours() -> dict[str, str]:
    """Element symbol → Jmol hex colour, from pymatgen's colour table (3Dmol's own table is partial)."""
    table = yaml.safe_load((importlib.resources.files("pymatgen.core") / "ElementColorSchemes.yaml").read_text())
    return {symbol: "#{:02x}{:02x}{:02x}".format(*rgb) for symbol, rgb in table["Jmol"].items()}


def symbols(atomic_numbers: Sequence[int] | np.ndarray) -> list[str]:
    return [Element.from_Z(int(z)).symbol for z in atomic_numbers]


def covalent_radii(atomic_numbers: Sequence[int] | np.ndarray) -> np.ndarray:
    """Covalent radii (K,) in Å (Cordero et al. 2008, via pymatgen); 1.5 Å for elements the table lacks."""
    return np.array([CovalentRadius.radius.get(s, 1.5) for s in symbols(atomic_numbers)], float).reshape(-1)


def bonds(positions: np.ndarray, atomic_numbers: np.ndarray, factor: float = BOND_FACTOR) -> np.ndarray:
    """Pairs (B, 2) of atoms closer than `factor` × the sum of their covalent radii (and ≥ 0.4 Å).

    When the atoms hold both metals and non-metals, metal–metal pairs are not bonds (as VESTA draws an
    ionic crystal: La–O and Fe–O in LaFeO3, not La–La); a metal or an intermetallic keeps its metal bonds.
    """
    positions = np.asarray(positions, float).reshape(-1, 3)
    numbers = np.asarray(atomic_numbers).reshape(-1)
    if len(positions) < 2:
        return np.zeros((0, 2), int)
    radii = covalent_radii(numbers)
    pairs = cKDTree(positions).query_pairs(factor * 2 * radii.max(), output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros((0, 2), int)
    d = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1)
    keep = (d <= factor * (radii[pairs[:, 0]] + radii[pairs[:, 1]])) & (d >= MIN_BOND_ANGSTROM)
    metal = np.array([Element.from_Z(int(z)).is_metal for z in numbers])
    if metal.any() and not metal.all():
        keep &= ~(metal[pairs[:, 0]] & metal[pairs[:, 1]])
    return pairs[keep]


# --- isosurfaces ------------------------------------------------------------------------------------
def clamp_level(density: np.ndarray, level: float) -> float | None:
    """The iso-level moved strictly inside the grid's value range; None for a constant grid (no surface)."""
    low, high = float(np.min(density)), float(np.max(density))
    if not high > low:
        return None
    margin = 1e-3 * (high - low)
    return float(np.clip(level, low + margin, high - margin))


def separating_level(density: np.ndarray, lowest: float = 0.2, highest: float = 0.95, steps: int = 40) -> float:
    """The iso-level (Z units) at which the density splits into the most separate surfaces.

    Levels from `lowest` to `highest` of the peak are tried; the lowest one reaching the largest number of
    connected regions above it wins, so each surface is as large as it can be while atoms that the
    density resolves stay apart. The floor of 20 % of the peak keeps the decoder's faint ripples (a few
    per cent of the peak) from counting as atoms. Measured on 32 held-out crystals (the first 12 test-split rows
    of Perov-5, Carbon-24 and Materials Project ground states that fit the cube; 265 atoms), counting separate
    surfaces at the level: input densities 112 with this rule, 57 with the old default (the 97th percentile),
    44 at 40 % of the peak; the inputs have 121 maxima, the most any level can show, because atoms closer than
    2σ = 2 Å (most bonds) merge into one maximum. Decodings: 85 with this rule, 60 with the 97th percentile.
    """
    density = np.asarray(density, float)
    peak = float(density.max())
    if not peak > 0:
        return 0.0
    levels = np.linspace(lowest, highest, steps) * peak
    counts = np.array([ndimage.label(density > level)[1] for level in levels])
    return float(levels[int(np.argmax(counts))])


NESTED_FRACTIONS = (0.3, 0.6, 1.0)


def nested_levels(level: float, fractions: Sequence[float] = NESTED_FRACTIONS) -> list[float]:
    """Iso-levels of nested surfaces, outermost first: 30 %, 60 % and 100 % of `level` by default (at 30 % of a
    level that separates heavy atoms, oxygen's peak of 8 Z units still shows)."""
    return [level * f for f in fractions]


def _mesh(density: np.ndarray, level: float, offset: np.ndarray, box_angstrom: float) -> tuple[np.ndarray, np.ndarray] | None:
    clamped = clamp_level(density, level)
    if clamped is None:
        return None
    spacing = (box_angstrom / density.shape[0],) * 3
    verts, faces, _, _ = marching_cubes(np.asarray(density, np.float32), clamped, spacing=spacing)
    # float32 and int32 halve what the browser receives (plotly sends numpy arrays as typed arrays)
    return (verts + spacing[0] / 2 + offset).astype(np.float32), faces.astype(np.int32)  # voxel centres sit half a voxel in


def empty_mesh(name: str, **style) -> go.Mesh3d:
    """A Mesh3d with no triangles (nothing to draw), keeping its trace's place and `style` (colour, opacity…)."""
    return go.Mesh3d(x=[], y=[], z=[], i=[], j=[], k=[], name=name, **style)


def isosurface_trace(
    density: np.ndarray, level: float, *, opacity: float = 0.6, colour: str = INPUT_COLOUR, name: str = "density",
    box_angstrom: float = BOX_ANGSTROM, offset: Sequence[float] = (0.0, 0.0, 0.0),
) -> go.Mesh3d:
    """Marching-cubes isosurface as a Mesh3d in Å (a 30³ grid sends ~30 KB, far less than go.Isosurface)."""
    mesh = _mesh(density, level, np.asarray(offset, float), box_angstrom)
    if mesh is None:
        return empty_mesh(name, color=colour, opacity=opacity)
    verts, faces = mesh
    return go.Mesh3d(
        x=verts[:, 0], y=verts[:, 1], z=verts[:, 2], i=faces[:, 0], j=faces[:, 1], k=faces[:, 2],
        color=colour, opacity=opacity, name=name, flatshading=False, hoverinfo="name",
        lighting=dict(ambient=0.55, diffuse=0.6, specular=0.1, roughness=0.9),
    )


@functools.cache
def _unit_sphere(n_lat: int = 7, n_lon: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and triangles (F, 3) of a UV sphere of radius 1."""
    theta = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    ring = np.stack([np.sin(theta)[:, None] * np.cos(phi), np.sin(theta)[:, None] * np.sin(phi),
                     np.cos(theta)[:, None] * np.ones_like(phi)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]])
    faces = []
    last = len(verts) - 1
    for j in range(n_lon):
        faces.append((0, 1 + j, 1 + (j + 1) % n_lon))
        faces.append((last, 1 + (n_lat - 2) * n_lon + (j + 1) % n_lon, 1 + (n_lat - 2) * n_lon + j))
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b = 1 + i * n_lon + j, 1 + i * n_lon + (j + 1) % n_lon
            c, d = a + n_lon, b + n_lon
            faces += [(a, c, b), (b, c, d)]
    return verts, np.array(faces)


def atom_spheres_trace(positions: np.ndarray, atomic_numbers: np.ndarray, *, name: str = "atoms",
                       radius_scale: float = ATOM_RADIUS_SCALE, offset: Sequence[float] = (0.0, 0.0, 0.0)) -> go.Mesh3d:
    """Atoms as spheres in one Mesh3d: Jmol colours, radius `radius_scale` × covalent radius, hover = species and position."""
    positions = np.asarray(positions, float).reshape(-1, 3)
    numbers = np.asarray(atomic_numbers).reshape(-1)
    if len(positions) == 0:
        return empty_mesh(name)
    unit, faces = _unit_sphere()
    radii = covalent_radii(numbers) * radius_scale
    verts = ((positions[:, None, :] + radii[:, None, None] * unit[None]).reshape(-1, 3) + np.asarray(offset, float)).astype(np.float32)
    tri = (faces[None] + len(unit) * np.arange(len(positions))[:, None, None]).reshape(-1, 3).astype(np.int32)
    colours, syms = jmol_colours(), symbols(numbers)
    text = [f"{s} at ({p[0]:.2f}, {p[1]:.2f}, {p[2]:.2f}) Å" for s, p in zip(syms, positions, strict=True)]
    return go.Mesh3d(
        x=verts[:, 0], y=verts[:, 1], z=verts[:, 2], i=tri[:, 0], j=tri[:, 1], k=tri[:, 2],
        vertexcolor=np.repeat([colours.get(s, "#ff1493") for s in syms], len(unit)),
        hovertext=np.repeat(text, len(unit)), hoverinfo="text", name=name, flatshading=False,
        lighting=dict(ambient=0.5, diffuse=0.8, specular=0.3, roughness=0.5),
    )


def _segments(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, z of line segments separated by gaps (None), for one Scatter3d."""
    points = np.full((len(starts), 3, 3), np.nan)
    points[:, 0], points[:, 1] = starts, ends
    points = points.reshape(-1, 3)
    return tuple(np.where(np.isnan(points[:, a]), None, points[:, a]) for a in range(3))


def bonds_trace(positions: np.ndarray, atomic_numbers: np.ndarray, *, offset: Sequence[float] = (0.0, 0.0, 0.0),
                name: str = "bonds") -> go.Scatter3d:
    """Bonds (see `bonds`) as grey lines."""
    positions = np.asarray(positions, float).reshape(-1, 3) + np.asarray(offset, float)
    pairs = bonds(positions, atomic_numbers)
    x, y, z = _segments(positions[pairs[:, 0]], positions[pairs[:, 1]]) if len(pairs) else ([], [], [])
    return go.Scatter3d(x=x, y=y, z=z, mode="lines", line=dict(color="#555555", width=4), hoverinfo="skip",
                        name=name, showlegend=False)


def box_trace(offsets: Sequence[Sequence[float]], box_angstrom: float = BOX_ANGSTROM, name: str = "10 Å cube") -> go.Scatter3d:
    """The edges of the cube at each offset, as thin grey lines."""
    corners = np.array([[c & 1, c >> 1 & 1, c >> 2 & 1] for c in range(8)], float) * box_angstrom
    edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
    starts = np.concatenate([corners[[a for a, _ in edges]] + np.asarray(o, float) for o in offsets])
    ends = np.concatenate([corners[[b for _, b in edges]] + np.asarray(o, float) for o in offsets])
    x, y, z = _segments(starts, ends)
    return go.Scatter3d(x=x, y=y, z=z, mode="lines", line=dict(color="#9a9a9a", width=2), hoverinfo="skip",
                        name=name, showlegend=False)


class Panel(NamedTuple):
    """One crystal drawn in a scene: its density (n, n, n) in Z units (None: atoms only), atoms in Å in
    the cube frame, the colour of its surfaces, and atoms to ring with why (e.g. "wrong species")."""

    name: str
    density: np.ndarray | None
    positions: np.ndarray
    atomic_numbers: np.ndarray
    colour: str = INPUT_COLOUR
    flagged: np.ndarray | None = None  # (K,) bool
    flag_label: str = "flagged"
    flag_texts: Sequence[str] | None = None  # (K,) a short note per atom, shown beside flagged ones


def flag_trace(positions: np.ndarray, label: str, offset: Sequence[float] = (0.0, 0.0, 0.0)) -> go.Scatter3d:
    """Magenta open rings around atoms (K, 3) that need a look, named in the legend."""
    p = np.asarray(positions, float).reshape(-1, 3) + np.asarray(offset, float)
    return go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=label,
                        marker=dict(symbol="circle-open", size=16, color=FLAG_COLOUR, line=dict(width=4)),
                        hovertext=[label] * len(p), hoverinfo="text", showlegend=True)


def panel_traces(panel: Panel, levels: Sequence[float], offset: np.ndarray, *, opacity: float = 0.6,
                 box_angstrom: float = BOX_ANGSTROM) -> list[go.BaseTraceType]:
    """Nested translucent isosurfaces (outermost faintest), atom spheres, bonds and flag rings of one panel."""
    traces: list[go.BaseTraceType] = []
    if panel.density is not None:
        for i, level in enumerate(levels):
            # inner surfaces more opaque: the outermost at a quarter of `opacity`, the innermost at `opacity`
            alpha = opacity * (0.25 + 0.75 * i / max(len(levels) - 1, 1))
            traces.append(isosurface_trace(panel.density, level, opacity=alpha, colour=panel.colour, offset=offset,
                                           name=f"{panel.name}: {level:.1f} {DENSITY_UNITS}", box_angstrom=box_angstrom))
    traces.append(atom_spheres_trace(panel.positions, panel.atomic_numbers, name=f"{panel.name} atoms", offset=offset))
    traces.append(bonds_trace(panel.positions, panel.atomic_numbers, offset=offset))
    flagged = np.zeros(len(panel.atomic_numbers), bool) if panel.flagged is None else np.asarray(panel.flagged, bool)
    traces.append(flag_trace(np.asarray(panel.positions, float).reshape(-1, 3)[flagged], f"{panel.name}: {panel.flag_label}", offset))
    traces[-1].showlegend = bool(flagged.any())
    return traces


MAX_NOTES = 12


def panel_notes(panel: Panel, offset: np.ndarray) -> list[dict]:
    """Scene annotations beside the first `MAX_NOTES` flagged atoms (magenta, with an arrow): drawn over the
    scene, so a note shows even when translucent surfaces hide the ring around its atom."""
    if panel.flagged is None or panel.flag_texts is None:
        return []
    positions = np.asarray(panel.positions, float).reshape(-1, 3) + offset
    return [dict(x=positions[k, 0], y=positions[k, 1], z=positions[k, 2], text=panel.flag_texts[k], showarrow=True,
                 arrowcolor=FLAG_COLOUR, arrowhead=2, ax=30, ay=-30, font=dict(color=FLAG_COLOUR, size=12),
                 bgcolor="rgba(255,255,255,0.8)")
            for k in np.flatnonzero(np.asarray(panel.flagged, bool))[:MAX_NOTES]]


def _offsets(n: int, box_angstrom: float = BOX_ANGSTROM) -> list[np.ndarray]:
    return [np.array([i * (box_angstrom + PANEL_GAP_ANGSTROM), 0.0, 0.0]) for i in range(n)]


def _scene_layout(titles: Sequence[str], box_angstrom: float = BOX_ANGSTROM) -> dict:
    """One 3-D scene holding the panels side by side along x (so they share one camera), axes hidden, each
    panel titled above its cube; the cube's edge is the scale (10 Å)."""
    offsets = _offsets(len(titles), box_angstrom)
    hidden = dict(visible=False, showbackground=False)
    width = offsets[-1][0] + box_angstrom
    annotations = [dict(x=o[0] + box_angstrom / 2, y=box_angstrom / 2, z=box_angstrom * 1.12, text=f"<b>{t}</b>",
                        showarrow=False, font=dict(size=15, color="#222222")) for t, o in zip(titles, offsets, strict=True)]
    return dict(
        xaxis={**hidden, "range": [-0.5, width + 0.5]}, yaxis={**hidden, "range": [-0.5, box_angstrom + 0.5]},
        zaxis={**hidden, "range": [-0.5, box_angstrom * 1.2]},
        aspectmode="manual", aspectratio=dict(x=(width + 1) / (box_angstrom + 1), y=1, z=1.2 * box_angstrom / (box_angstrom + 1)),
        camera=dict(eye=dict(x=0.1 * len(titles), y=-max(1.9, 1.9 + 0.7 * (len(titles) - 2)), z=0.75),
                    up=dict(x=0, y=0, z=1)),
        annotations=annotations,
    )


def _add_notes(fig: go.Figure, panels: Sequence[Panel], offsets: Sequence[np.ndarray]) -> None:
    notes = [note for panel, offset in zip(panels, offsets, strict=False) for note in panel_notes(panel, offset)]
    if notes:
        fig.update_layout(scene_annotations=[*fig.layout.scene.annotations, *notes])


def crystal_scene_figure(panels: Sequence[Panel], levels: Sequence[float], *, opacity: float = 0.6,
                         height: int = 460, box_angstrom: float = BOX_ANGSTROM) -> go.Figure:
    """Density surfaces and atoms of several crystals side by side in one scene: rotating one rotates all.

    `levels` are the iso-levels in Z units (outermost first, see `nested_levels`), the same for every
    panel so that surfaces compare; each panel sits in its own 10 Å cube.
    """
    offsets = _offsets(len(panels), box_angstrom)
    fig = go.Figure()
    for panel, offset in zip(panels, offsets, strict=True):
        fig.add_traces(panel_traces(panel, levels, offset, opacity=opacity, box_angstrom=box_angstrom))
    fig.add_trace(box_trace(offsets, box_angstrom))
    fig.update_layout(scene=_scene_layout([p.name for p in panels], box_angstrom), height=height,
                      margin=dict(l=0, r=0, t=0, b=0),
                      legend=dict(x=0, y=1, yanchor="top", bgcolor="rgba(255,255,255,0.6)"),
                      modebar=dict(orientation="v"))
    _add_notes(fig, panels, offsets)
    return fig


def isosurface_figure(
    densities: Mapping[str, np.ndarray], level: float, *, opacity: float = 0.6, height: int = 420,
    atoms: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> go.Figure:
    """Nested isosurfaces of several densities side by side in one scene (`crystal_scene_figure`), the
    innermost at `level` (Z units), with the atoms of `atoms` (same keys: positions, Z) inside.
    Colours follow the convention: "input" blue, anything else orange."""
    atoms = atoms or {}
    panels = [Panel(name, d, *atoms.get(name, (np.zeros((0, 3)), np.zeros(0, int))),
                    colour=INPUT_COLOUR if name == "input" else DECODED_COLOUR) for name, d in densities.items()]
    return crystal_scene_figure(panels, nested_levels(level), opacity=opacity, height=height)


def difference_traces(difference: np.ndarray, level: float, offset: Sequence[float], *, opacity: float = 0.6,
                      box_angstrom: float = BOX_ANGSTROM) -> list[go.Mesh3d]:
    """Surfaces of a density difference at +level (purple: more) and −level (green: less), Z units. Both traces
    are always there (empty, out of the legend, where the difference stays under the level): a figure whose
    trace list keeps its shape is updated in place by Plotly.react instead of rebuilt."""
    traces = []
    for sign, colour, word in ((1, MORE_COLOUR, "more"), (-1, LESS_COLOUR, "less")):
        d = sign * np.asarray(difference, float)
        name = f"{word} density (±{level:.1f} {DENSITY_UNITS})"
        if d.max() > level:
            traces.append(isosurface_trace(d, level, opacity=opacity, colour=colour, offset=offset, name=name,
                                           box_angstrom=box_angstrom))
            traces[-1].showlegend = True
        else:
            traces.append(empty_mesh(name, color=colour, opacity=opacity, showlegend=False))
    return traces


def comparison_figure(panels: Sequence[Panel], levels: Sequence[float], difference: np.ndarray | None = None,
                      difference_level: float = 1.0, *, opacity: float = 0.6, height: int = 460) -> go.Figure:
    """`crystal_scene_figure` of the panels plus, in a cube to their right, the difference of the last two
    densities as purple (more) and green (less) surfaces at ± `difference_level` Z units."""
    fig = crystal_scene_figure(panels, levels, opacity=opacity, height=height)
    if difference is None:
        return fig
    offsets = _offsets(len(panels) + 1)
    fig.add_traces(difference_traces(difference, difference_level, offsets[-1], opacity=opacity))
    fig.update_layout(scene=_scene_layout([*(p.name for p in panels), "difference"]))
    _add_notes(fig, panels, offsets)
    fig.add_trace(box_trace(offsets[-1:]))
    return fig


def animation_figure(
    densities: Sequence[np.ndarray], level: float, *, labels: Sequence[str] | None = None, opacity: float = 0.6,
    frame_ms: int = 500, height: int = 520, atoms: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    ends: tuple[Panel, Panel] | None = None,
) -> go.Figure:
    """The decoded frames as one animated panel (nested surfaces and, with `atoms`, the frame's atoms), with
    play/pause and a frame slider; `ends` (the true start and end crystals) stand still on either side in the
    same scene. 3-D traces do not tween, so each frame is redrawn."""
    labels = list(labels) if labels is not None else [str(i) for i in range(len(densities))]
    levels = nested_levels(level)
    empty = (np.zeros((0, 3)), np.zeros(0, int))
    frame_atoms = list(atoms) if atoms is not None else [empty] * len(densities)
    panels = [Panel(f"frame {lab}", d, *a, colour=DECODED_COLOUR) for d, a, lab in zip(densities, frame_atoms, labels, strict=True)]
    titles = [panels[0].name] if ends is None else [ends[0].name, "decoded frame", ends[1].name]
    offsets = _offsets(len(titles))
    middle = offsets[0] if ends is None else offsets[1]
    frame_traces = [panel_traces(p, levels, middle, opacity=opacity) for p in panels]
    fig = go.Figure()
    if ends is not None:
        fig.add_traces(panel_traces(ends[0], levels, offsets[0], opacity=opacity))
    first = len(fig.data)
    fig.add_traces(frame_traces[0])
    animated = list(range(first, first + len(frame_traces[0])))
    if ends is not None:
        fig.add_traces(panel_traces(ends[1], levels, offsets[2], opacity=opacity))
    fig.add_trace(box_trace(offsets))
    fig.frames = [go.Frame(data=t, traces=animated, name=lab) for t, lab in zip(frame_traces, labels, strict=True)]
    play = dict(frame=dict(duration=frame_ms, redraw=True), transition=dict(duration=0), fromcurrent=True, mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    # the buttons sit left of the slider on its row, the slider's "frame n" label above it: nothing overlaps
    slider = dict(
        active=0, currentvalue=dict(prefix="decoded frame ", xanchor="left"), x=0.2, len=0.8, y=0, yanchor="top",
        pad=dict(t=10, b=10),
        steps=[dict(label=lab, method="animate", args=[[lab], {**pause, "frame": dict(duration=0, redraw=True)}]) for lab in labels],
    )
    fig.update_layout(
        scene=_scene_layout(titles), height=height, margin=dict(l=0, r=0, t=0, b=10), sliders=[slider],
        legend=dict(x=0, y=1, yanchor="top", bgcolor="rgba(255,255,255,0.6)"), modebar=dict(orientation="v"),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=0, xanchor="left", yanchor="top", pad=dict(t=45, r=10),
                          showactive=False,
                          buttons=[dict(label="▶ play", method="animate", args=[None, play]),
                                   dict(label="|| pause", method="animate", args=[[None], pause])])],
    )
    return fig


# --- 2-D views ----------------------------------------------------------------------------------------
def slice_height_angstrom(z_index: int, n_voxels: int = 30, box_angstrom: float = BOX_ANGSTROM) -> float:
    """Height in Å of the centre of voxel layer `z_index`."""
    return (z_index + 0.5) * box_angstrom / n_voxels


def slices_figure(densities: Mapping[str, np.ndarray], z_index: int, *, height: int = 340) -> go.Figure:
    """Heatmaps of one z-slice of each density on a shared colour scale (Hoffmann et al. 2019, Fig. 3E)."""
    names = list(densities)
    n = next(iter(densities.values())).shape[0]
    z = slice_height_angstrom(z_index, n)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[f"{name}, z = {z:.2f} Å" for name in names],
                        horizontal_spacing=0.08)
    vmin = min(float(np.min(d[:, :, z_index])) for d in densities.values())
    vmax = max(float(np.max(d[:, :, z_index])) for d in densities.values())
    axis = (np.arange(n) + 0.5) * BOX_ANGSTROM / n
    for col, name in enumerate(names, start=1):
        # heatmap rows are y: transpose the (x, y) slice
        fig.add_trace(go.Heatmap(z=densities[name][:, :, z_index].T, x=axis, y=axis, zmin=vmin, zmax=vmax,
                                 colorscale="Viridis", showscale=col == len(names), name=name,
                                 colorbar=dict(title=dict(text=f"density<br>({DENSITY_UNITS})")),
                                 hovertemplate="x %{x:.2f} Å, y %{y:.2f} Å: %{z:.2f} " + DENSITY_UNITS + "<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(title_text="x (Å)", row=1, col=col)
        fig.update_yaxes(title_text="y (Å)", scaleanchor=f"x{'' if col == 1 else col}", row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0))
    return fig


def difference_slices_figure(differences: Sequence[np.ndarray], labels: Sequence[str], z_index: int, *,
                             height: int = 280) -> go.Figure:
    """Slices of traversal difference maps (decoded minus unaltered) on a symmetric purple (more) / green (less) scale."""
    fig = make_subplots(rows=1, cols=len(differences), subplot_titles=list(labels), horizontal_spacing=0.03)
    bound = max(max(float(np.abs(d[:, :, z_index]).max()) for d in differences), 1e-6)
    n = differences[0].shape[0]
    axis = (np.arange(n) + 0.5) * BOX_ANGSTROM / n
    for col, d in enumerate(differences, start=1):
        fig.add_trace(go.Heatmap(z=d[:, :, z_index].T, x=axis, y=axis, zmin=-bound, zmax=bound, colorscale=DIFFERENCE_SCALE,
                                 showscale=col == len(differences),
                                 colorbar=dict(title=dict(text=f"Δ density<br>({DENSITY_UNITS})")),
                                 hovertemplate="x %{x:.2f} Å, y %{y:.2f} Å: %{z:+.2f} " + DENSITY_UNITS + "<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(title_text="x (Å)", row=1, col=col)
        fig.update_yaxes(title_text="y (Å)" if col == 1 else None, showticklabels=col == 1,
                         scaleanchor=f"x{'' if col == 1 else col}", row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0))
    return fig


def parity_figure(target: np.ndarray, predicted: np.ndarray, *, max_points: int = 2500, seed: int = 0,
                  height: int = 380) -> go.Figure:
    """Decoded against input voxel densities (Z units), a random subset of voxels, with the y = x line."""
    target, predicted = np.ravel(target), np.ravel(predicted)
    if len(target) > max_points:
        keep = np.random.default_rng(seed).choice(len(target), max_points, replace=False)
        target, predicted = target[keep], predicted[keep]
    low = float(min(target.min(), predicted.min()))
    high = float(max(target.max(), predicted.max()))
    fig = go.Figure([
        # SVG, not WebGL: a page has few WebGL contexts, and the 3-D scene needs one
        go.Scatter(x=target, y=predicted, mode="markers", marker=dict(size=3, opacity=0.35, color=DECODED_COLOUR), name="voxels"),
        go.Scatter(x=[low, high], y=[low, high], mode="lines", line=dict(color="black", dash="dash"), name="y = x"),
    ])
    fig.update_layout(xaxis_title=f"input density ({DENSITY_UNITS})", yaxis_title=f"decoded density ({DENSITY_UNITS})",
                      height=height, margin=dict(l=0, r=0, t=10, b=0), showlegend=False)
    return fig


# --- atoms ----------------------------------------------------------------------------------------------
class CellView(NamedTuple):
    """A periodic crystal to draw: lattice rows (3, 3) in Å, fractional coordinates (N, 3), Z (N,), and
    sites (N,) bool to highlight (e.g. a decoded site whose species differs from the input's)."""

    lattice: np.ndarray
    frac_coords: np.ndarray
    atomic_numbers: np.ndarray
    flagged: np.ndarray | None = None


def cell_images(cell: CellView, tolerance: float = 0.03) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cartesian positions (M, 3) Å, Z (M,) and source site (M,) of every site in the cell plus its images
    on the cell's faces, edges and corners (VESTA's view of one cell; 3Dmol.js draws no images). A site
    within `tolerance` (fractional) of a face counts as on it, so a decoded atom at 0.98 shows at 0 too."""
    frac = np.asarray(cell.frac_coords, float).reshape(-1, 3) % 1.0
    frac = np.where(frac > 1 - tolerance, frac - 1, frac)  # now in [−tolerance, 1 − tolerance)
    shifts = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    moved = frac[:, None, :] + shifts[None]  # (N, 8, 3)
    keep = ((shifts[None] == 0) | (frac[:, None, :] < tolerance)).all(-1)
    site = np.broadcast_to(np.arange(len(frac))[:, None], keep.shape)[keep]
    positions = moved[keep] @ np.asarray(cell.lattice, float)
    return positions, np.asarray(cell.atomic_numbers).reshape(-1)[site], site


def _cell_edges(lattice: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    corners = np.array([[c & 1, c >> 1 & 1, c >> 2 & 1] for c in range(8)], float) @ np.asarray(lattice, float)
    return [(corners[a], corners[b]) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def _xyz(p: np.ndarray) -> dict:
    return {"x": float(p[0]), "y": float(p[1]), "z": float(p[2])}


def atoms_html(
    atom_sets: Mapping[str, tuple[np.ndarray, np.ndarray] | CellView], *, width: int | str = "100%", height: int = 380,
    box_angstrom: float = BOX_ANGSTROM, js_url: str | None = None,
) -> str:
    """HTML of a py3Dmol viewer grid, one linked viewer per set, with an element legend below.

    A set is either atoms in the cube, (positions (K, 3) Å, Z (K,)), drawn with the 10 Å cube as a grey
    box, or a `CellView`, drawn as one unit cell with its face images and its edges in black. Atoms are
    Jmol-coloured spheres of 0.4 × the covalent radius, bonds join atoms closer than 1.15 × the sum of their
    covalent radii (`bonds`), and flagged sites are wrapped in a translucent magenta shell.
    """
    names = list(atom_sets)
    kwargs = {"js": js_url} if js_url else {}
    view = py3Dmol.view(width=width, height=height, viewergrid=(1, len(names)), linked=True, **kwargs)
    colours = jmol_colours()
    present: set[str] = set()
    titles: list[str] = []
    cube_corners = np.array([[c & 1, c >> 1 & 1, c >> 2 & 1] for c in range(8)], float) * box_angstrom
    cube_edges = [(cube_corners[a], cube_corners[b]) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
    for col, name in enumerate(names):
        item = atom_sets[name]
        viewer = (0, col)
        if isinstance(item, CellView):
            positions, numbers, site = cell_images(item)
            flagged = np.zeros(len(numbers), bool) if item.flagged is None else np.asarray(item.flagged, bool)[site]
            edges, edge_colour, n_sites = _cell_edges(item.lattice), "black", len(item.atomic_numbers)
            label = f"{name}: {n_sites} sites in the cell"
        else:
            positions, numbers = np.asarray(item[0], float).reshape(-1, 3), np.asarray(item[1]).reshape(-1)
            flagged, edges, edge_colour = np.zeros(len(numbers), bool), cube_edges, "grey"
            label = f"{name}: {len(numbers)} atoms"
        syms = symbols(numbers)
        present.update(syms)
        radii = covalent_radii(numbers) * ATOM_RADIUS_SCALE
        if len(syms):
            # a model (not bare spheres) so that zoomTo frames the atoms; 3Dmol's own bonds are not drawn
            view.addModel(xyz_text(positions, numbers), "xyz", viewer=viewer)
            for s, r in dict(zip(syms, radii, strict=True)).items():
                view.setStyle({"elem": s}, {"sphere": {"radius": float(r), "color": colours.get(s, "#ff1493")}}, viewer=viewer)
        for p, r in zip(positions[flagged], radii[flagged], strict=True):
            view.addSphere({"center": _xyz(p), "radius": float(r) + 0.35, "color": FLAG_COLOUR, "opacity": 0.45}, viewer=viewer)
        for a, b in bonds(positions, numbers):
            middle = (positions[a] + positions[b]) / 2  # each half in its atom's colour, as VESTA draws bonds
            for end, s in ((positions[a], syms[a]), (positions[b], syms[b])):
                view.addCylinder({"start": _xyz(end), "end": _xyz(middle), "radius": 0.12, "color": colours.get(s, "#ff1493"),
                                  "fromCap": 1}, viewer=viewer)
        for a, b in edges:
            view.addCylinder({"start": _xyz(a), "end": _xyz(b), "radius": 0.035, "color": edge_colour, "fromCap": 1, "toCap": 1},
                             viewer=viewer)
        titles.append(label)
        view.zoomTo(viewer=viewer)
        # a little off the axes, so that a cubic cell does not look like a square
        view.rotate(-18, "x", viewer=viewer)
        view.rotate(24, "y", viewer=viewer)
    legend = "".join(
        f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:12px;height:12px;'
        f'border-radius:6px;background:{colours.get(s, "#ff1493")};border:1px solid #888;vertical-align:middle"></span> {s}</span>'
        for s in sorted(present, key=lambda s: Element(s).Z)
    )
    header = "".join(f'<div style="flex:1;text-align:center;font-weight:600">{html.escape(t)}</div>' for t in titles)
    return (f'<div style="display:flex;font-family:sans-serif;font-size:14px;margin-bottom:4px">{header}</div>'
            + view.write_html() + f'<div style="font-family:sans-serif;font-size:13px;margin-top:4px">{legend}</div>')


def distance_histogram_figure(distances: Mapping[str, np.ndarray], *, max_angstrom: float = 6.0,
                              height: int = 340) -> go.Figure:
    """Normalised histograms of nearest-neighbour distances (Å), overlaid: the first orange (decoded), the second blue (real)."""
    fig = go.Figure()
    colours = [DECODED_COLOUR, INPUT_COLOUR, "#7f7f7f"]
    for k, (name, d) in enumerate(distances.items()):
        fig.add_trace(go.Histogram(x=np.asarray(d), name=f"{name} ({len(d)} atoms)", histnorm="probability density",
                                   xbins=dict(start=0, end=max_angstrom, size=0.2), opacity=0.6,
                                   marker_color=colours[k % len(colours)]))
    fig.update_layout(barmode="overlay", xaxis_title="nearest-neighbour distance (Å)", yaxis_title="probability density (1/Å)",
                      height=height, margin=dict(l=0, r=0, t=10, b=0), legend=dict(x=0.6, y=0.95))
    return fig


def loss_curves_figure(log: Mapping[str, np.ndarray], columns: Sequence[str], *, height: int = 340,
                       y_title: str = "loss per crystal (summed over voxels)") -> go.Figure:
    """Loss curves against step (log scale), from a train_log.csv read as columns; blank entries are skipped."""
    fig = go.Figure()
    step = np.asarray(log["step"], float)
    for column in columns:
        values = np.asarray(log[column], float)
        keep = np.isfinite(values)
        fig.add_trace(go.Scatter(x=step[keep], y=values[keep], mode="lines+markers" if keep.sum() < 60 else "lines",
                                 name=column))
    fig.update_layout(xaxis_title="training step", yaxis_title=y_title, yaxis_type="log", height=height,
                      margin=dict(l=0, r=0, t=10, b=0))
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
