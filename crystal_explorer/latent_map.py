"""A map of the latent space: held-out crystals' posterior means laid out in 2-D, cached on disk per model.

Two layouts: t-SNE (the default) and PCA. Measured on the shipped single-cell model's 3,000-crystal map
(`python -m benchmarks.latent_map_layouts`): t-SNE keeps a crystal's latent neighbours as its map
neighbours far better (trustworthiness at 10 neighbours 0.82 v 0.64; the source of a crystal from its 10
nearest map neighbours 72 v 66 % right; log atom count from them R² 0.74 v 0.57), so it reads better; it
takes about 30 s for 3,000 crystals on one core, once per model (cached), and draws from the cache in 0.2 s. PCA keeps
linear axes with a share of variance, and projects any latent exactly. A t-SNE has no projection of new
points: a new latent (the user's crystal, an interpolation path) is placed at the inverse-distance-weighted
mean of its 10 nearest map crystals in latent space (`NeighbourLayout`).

Only rows whose `split_of(material_id)` is val or test are encoded, so the map shows where crystals the
model never trained on land. The encodings are derived row by row from the data: they are cached in an
ignored folder (`data_cache/latent_map/` by default), never committed, and keyed by a hash of the model's
weights so that new weights are encoded afresh.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from crystal_explorer.checkpoint import WEIGHTS_FILE, atomic_write
from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.report import source_name
from crystal_explorer.rows import material_ids, read_table, row_structure
from crystal_explorer.structures import crystal_arrays, split_of

MAP_SIZE = 3000
HELD_OUT = ("val", "test")
PLACEMENT_SEED = 0
BATCH_SIZE = 32
_CACHE_VERSION = 2
# CSV columns that describe a row rather than the crystal's properties
_NOT_PROPERTIES = {"material_id", "cif", "n_sites", "Unnamed: 0"}
PROPERTY_UNITS = {"heat_ref": "eV/atom", "heat_all": "eV/atom", "dir_gap": "eV", "ind_gap": "eV",
                  "energy_per_atom": "eV/atom"}
BUILT_IN_COLOURS = ("source", "element count", "atom count")
LAYOUTS = ("t-SNE", "PCA")
TSNE_PERPLEXITY = 30
NEIGHBOURS = 10

# Streamlit's theme gives four sources two near-identical reds and two blues; these avoid the app's input
# (blue), decoded (orange), more/less density (purple/green) and flag (magenta) colours, and the gold star
SOURCE_PALETTE = ("#555555", "#17becf", "#bcbd22", "#d62728", "#8c564b")

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)


class Projection(NamedTuple):
    """PCA of latents: centre (L,), principal directions (K, L) as rows, share of total variance (K,)."""

    centre: np.ndarray
    components: np.ndarray
    variance_ratio: np.ndarray

    @classmethod
    def fit(cls, latents: np.ndarray, k: int = 2) -> Projection:
        """The k directions of most variance of latents (N, L), by SVD of the centred matrix."""
        latents = np.asarray(latents, np.float64)
        if len(latents) < 2:
            raise CrystalExplorerError(f"the latent map needs at least 2 crystals of the val and test splits that this "
                                       f"model can encode; these files gave {len(latents)}")
        centre = latents.mean(0)
        _, singular, vt = np.linalg.svd(latents - centre, full_matrices=False)
        variance = singular**2
        return cls(centre, vt[:k], variance[:k] / max(float(variance.sum()), 1e-300))

    def project(self, latents: np.ndarray) -> np.ndarray:
        """Coordinates (N, K) of latents (N, L) or (L,) along the principal directions."""
        return (np.atleast_2d(np.asarray(latents, np.float64)) - self.centre) @ self.components.T


def tsne_layout(latents: np.ndarray, perplexity: float = TSNE_PERPLEXITY, seed: int = 0) -> np.ndarray:
    """t-SNE coordinates (N, 2) of latents (N, L) (scikit-learn, PCA start, fixed seed: the same map each time)."""
    from sklearn.manifold import TSNE

    latents = np.asarray(latents, np.float64)
    if len(latents) < 3:
        raise CrystalExplorerError(f"a t-SNE map needs at least 3 crystals; there are {len(latents)}")
    perplexity = min(perplexity, (len(latents) - 1) / 3)  # scikit-learn needs perplexity < N
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(latents)


class NeighbourLayout(NamedTuple):
    """A fixed layout of the map's crystals, latents (N, L) at xy (N, 2); a new latent goes to the
    inverse-distance-weighted mean of its k nearest map crystals' places (a crystal of the map to its own)."""

    latents: np.ndarray
    xy: np.ndarray
    k: int = NEIGHBOURS

    def project(self, latents: np.ndarray) -> np.ndarray:
        """Map coordinates (M, 2) of latents (M, L) or (L,)."""
        latents = np.atleast_2d(np.asarray(latents, np.float64))
        distance = np.sqrt(np.maximum(
            (latents**2).sum(1)[:, None] - 2 * latents @ self.latents.T + (self.latents**2).sum(1)[None], 0.0))
        k = min(self.k, len(self.latents))
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
        d = np.take_along_axis(distance, nearest, 1)
        weight = 1.0 / np.maximum(d, 1e-9) ** 2
        return (weight[..., None] * self.xy[nearest]).sum(1) / weight.sum(1, keepdims=True)


class LatentMap(NamedTuple):
    """Held-out crystals on the map: `table` (one row each: x, y, source, formula, ...), `latents` (N, L),
    `projection` (maps any latent to x, y: a `Projection` for PCA, a `NeighbourLayout` for t-SNE)."""

    table: pd.DataFrame
    latents: np.ndarray
    projection: Projection | NeighbourLayout
    skipped: dict[str, int]
    layout: str = "PCA"

    @property
    def colour_options(self) -> list[str]:
        """What the points can be coloured by: source, element and atom counts, then each CSV property."""
        return [*BUILT_IN_COLOURS, *property_columns(self.table)]

    def axis_title(self, k: int) -> str:
        if isinstance(self.projection, Projection):
            return f"PC{k + 1} ({100 * self.projection.variance_ratio[k]:.1f} % of variance)"
        return f"{self.layout} {k + 1} (no units: nearness is what it keeps)"


def property_columns(table: pd.DataFrame) -> list[str]:
    """The numeric CSV columns carried into the map's table (Perov-5 heat_ref, Carbon-24 energy_per_atom, ...)."""
    return [c for c in table.columns if c.startswith("property:")]


def held_out_rows(frame: pd.DataFrame) -> np.ndarray:
    """Row numbers of a table whose material id falls in the val or test split, in a fixed pseudo-random order
    (a hash of the id, unrelated to the split's), so that the first k rows are a deterministic sample."""
    ids = material_ids(frame)
    rows = [i for i, m in enumerate(ids) if split_of(m) in HELD_OUT]
    return np.array(sorted(rows, key=lambda i: hashlib.sha256(f"map|{ids[i]}".encode()).hexdigest()), dtype=np.int64)


def encode_held_out(model, paths: list[str | Path], n: int = MAP_SIZE,
                    progress: Progress | None = None) -> tuple[np.ndarray, pd.DataFrame, dict[str, int]]:
    """Posterior means (N, L) of up to n held-out crystals shared evenly over the CSV files, their table, and
    how many rows were skipped for each reason (unparsable, or not representable by this model).

    The table has, per crystal: file, row (0-based, as `rows.read_table` numbers it), material_id, split,
    source (e.g. "Perov-5"), formula (reduced, e.g. LaFeO3), atom count, element count, and each numeric CSV
    column as "property:<name>" (NaN for rows of files without it).
    """
    progress = progress or (lambda fraction, text: None)
    frames = {Path(p).name: read_table(p) for p in paths}
    if not frames:
        raise CrystalExplorerError("no dataset files to draw the latent map from")
    ordered = {name: held_out_rows(frame) for name, frame in frames.items()}
    target = min(n, sum(len(rows) for rows in ordered.values()))
    records, placements = [], []
    skipped: Counter = Counter()
    # smallest source first, each taking an even share of what is left: rows a source cannot give (too few, or
    # unrepresentable by this model) go to the larger sources after it
    names = sorted(frames, key=lambda name: len(ordered[name]))
    for k, name in enumerate(names):
        frame = frames[name]
        quota = (target - len(records)) // (len(names) - k)
        properties = [c for c in frame.columns if c not in _NOT_PROPERTIES and pd.api.types.is_numeric_dtype(frame[c])]
        kept = 0
        for row in ordered[name]:
            if kept >= quota:
                break
            try:
                material_id, structure, _ = row_structure(frame, int(row), name)
                placements.append(model.place(crystal_arrays(structure, material_id), PLACEMENT_SEED))
            except CrystalExplorerError as exc:
                skipped[str(exc).split(":")[0]] += 1
                continue
            kept += 1
            records.append({"file": name, "row": int(row), "material_id": material_id, "split": split_of(material_id),
                            "source": source_name(name), "formula": structure.composition.reduced_formula,
                            "atom count": len(structure), "element count": len(structure.composition.elements),
                            **{f"property:{c}": float(frame[c].iloc[row]) for c in properties}})
            if len(records) % 50 == 0:
                progress(0.3 * len(records) / max(target, 1), f"Reading held-out crystals: {len(records)} of {target}")
    means = []
    for start in range(0, len(placements), BATCH_SIZE):
        means += [e.mean for e in model.encode_placements(placements[start : start + BATCH_SIZE])]
        done = min(start + BATCH_SIZE, len(placements))
        progress(0.3 + 0.7 * done / len(placements), f"Encoding held-out crystals: {done} of {len(placements)}")
    latents = np.stack(means).astype(np.float32) if means else np.zeros((0, model.latent_size), np.float32)
    return latents, pd.DataFrame.from_records(records), dict(skipped)


def weights_digest(folder: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a checkpoint's weights file: what a cached map is keyed by. Hashed once
    per file version (path, modification time, size), not on every call: the app asks on each rerun."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise CrystalExplorerError(f"no checkpoint weights at {path}")
    stat = path.stat()
    return _file_digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cache_file(cache_dir: str | Path, folder: str | Path, paths: list[str | Path], n: int) -> Path:
    """`<cache_dir>/<model folder>-<weights digest>-<inputs digest>.npz`; the inputs are the files' names and
    sizes, n, the placement seed and the cache format."""
    inputs = json.dumps([sorted((Path(p).name, Path(p).stat().st_size) for p in paths), n, PLACEMENT_SEED, _CACHE_VERSION])
    key = hashlib.sha256(inputs.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{Path(folder).name}-{weights_digest(folder)}-{key}.npz"


def _save(path: Path, latents: np.ndarray, table: pd.DataFrame, skipped: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {f"column:{c}": (table[c].to_numpy(np.float64) if pd.api.types.is_numeric_dtype(table[c])
                               else table[c].astype(str).to_numpy(str)) for c in table.columns}
    buffer = io.BytesIO()
    np.savez(buffer, latents=latents, columns=np.array(list(table.columns), str), skipped=json.dumps(skipped), **columns)
    atomic_write(path, buffer.getvalue())


def _load(path: Path) -> tuple[np.ndarray, pd.DataFrame, dict[str, int]]:
    with np.load(path, allow_pickle=False) as stored:
        table = pd.DataFrame({c: stored[f"column:{c}"] for c in stored["columns"]})
        for c in ("row", "atom count", "element count"):
            if c in table.columns:
                table[c] = table[c].astype(np.int64)
        return stored["latents"], table, json.loads(str(stored["skipped"]))


def layout_file(cache: Path, layout: str) -> Path:
    """Where the 2-D layout of a cached map is kept, beside its encodings (PCA is not stored: it is recomputed)."""
    return cache.with_name(f"{cache.stem}.{layout.lower().replace('-', '')}.npy")


def load_or_encode(model, folder: str | Path, paths: list[str | Path], cache_dir: str | Path, n: int = MAP_SIZE,
                   progress: Progress | None = None, layout: str = "t-SNE") -> LatentMap:
    """The latent map of `model` (loaded from checkpoint `folder`) over the CSVs `paths` in `layout` (one of
    `LAYOUTS`): read from the cache when this model's weights and these inputs were encoded (and laid out)
    before, else encoded (with `progress`) and stored; caches of the same model folder with other weights are
    deleted."""
    if layout not in LAYOUTS:
        raise ValueError(f"Invalid {layout=}, valid options are {LAYOUTS}")
    path = cache_file(cache_dir, folder, paths, n)
    try:
        latents, table, skipped = _load(path)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # absent, or unreadable: encode afresh
        path.unlink(missing_ok=True)
        latents, table, skipped = encode_held_out(model, paths, n, progress)
        _save(path, latents, table, skipped)
        digest = path.name.split("-")[-2]
        for stale in path.parent.glob(f"{Path(folder).name}-*"):
            if stale.name.split("-")[-2] != digest:
                stale.unlink(missing_ok=True)
        for layout_cache in path.parent.glob(f"{path.stem}.*.npy"):  # the layouts of the replaced encodings
            layout_cache.unlink(missing_ok=True)
    xy = None
    if layout != "PCA":
        stored = layout_file(path, layout)
        try:
            xy = np.load(stored, allow_pickle=False)
            if xy.shape != (len(latents), 2):
                raise ValueError("stale layout")
        except (OSError, ValueError, EOFError):
            if progress:
                progress(1.0, f"Laying out {len(latents):,} crystals by {layout} (about 10 ms a crystal, once per model)")
            xy = tsne_layout(latents)
            buffer = io.BytesIO()
            np.save(buffer, xy)
            atomic_write(stored, buffer.getvalue())
    return build_map(latents, table, skipped, layout, xy)


def build_map(latents: np.ndarray, table: pd.DataFrame, skipped: dict[str, int] | None = None, layout: str = "PCA",
              xy: np.ndarray | None = None) -> LatentMap:
    """The map of encoded crystals and the table with their x and y: the first two principal coordinates
    (PCA), or the given layout's coordinates xy (N, 2) (t-SNE; computed here when not given)."""
    if layout == "PCA":
        projection = Projection.fit(latents, 2)
        xy = projection.project(latents)
    else:
        xy = tsne_layout(latents) if xy is None else np.asarray(xy, np.float64)
        projection = NeighbourLayout(np.asarray(latents, np.float64), xy)
    table = table.assign(x=xy[:, 0], y=xy[:, 1])
    return LatentMap(table, latents, projection, dict(skipped or {}), layout)


def updated_ends(ends: list[int], selected: list[int]) -> list[int]:
    """The (at most two) chosen crystals after a click: a newly clicked point becomes the latest end, the older
    of two ends drops out; a selection of two or more points (box, lasso, shift-click) sets both ends."""
    if len(selected) >= 2:
        return list(selected[:2])
    if len(selected) == 1 and (not ends or ends[-1] != selected[0]):
        return [*[e for e in ends if e != selected[0]][-1:], selected[0]]
    return list(ends)


def path_points(a: np.ndarray, b: np.ndarray, steps: int, projection: Projection | NeighbourLayout) -> np.ndarray:
    """Map coordinates (steps, 2) of the straight latent path from a to b (L,), as the interpolation page decodes it
    (a straight line on a PCA map, a curve through the crystals it passes near on a t-SNE map)."""
    t = np.linspace(0, 1, steps)[:, None]
    return projection.project((1 - t) * np.asarray(a, np.float64) + t * np.asarray(b, np.float64))


def colour_title(option: str) -> str:
    """A colour option as a colour-bar title with its unit ("property:heat_ref" → "heat_ref (eV/atom)")."""
    name = option.removeprefix("property:")
    unit = PROPERTY_UNITS.get(name, "")
    return f"{name} ({unit})" if unit else name


def map_figure(lmap: LatentMap, colour_by: str = "source", current: tuple[str, np.ndarray] | None = None,
               ends: list[int] = (), path: np.ndarray | None = None, height: int = 640):
    """The map as a Plotly figure: one WebGL point per crystal (customdata: its row in `lmap.table`), coloured by
    `colour_by` (one of `lmap.colour_options`); `current` (name, latent (L,)) a starred point, `ends` the chosen
    crystals' rows marked A and B, `path` (steps, 2) map coordinates of the interpolation between them."""
    import plotly.graph_objects as go

    if colour_by not in lmap.colour_options:
        raise ValueError(f"Invalid {colour_by=}, valid options are {lmap.colour_options}")
    table = lmap.table
    text = (table["formula"] + "<br>" + table["source"] + " · " + table["material_id"] + " (" + table["split"] + ")").to_numpy()
    index = np.arange(len(table))
    fig = go.Figure()

    def points(mask: np.ndarray, name: str, **marker) -> None:
        fig.add_trace(go.Scattergl(x=table["x"].to_numpy()[mask], y=table["y"].to_numpy()[mask], mode="markers", name=name,
                                   customdata=index[mask], text=text[mask], marker={"size": 5, **marker},
                                   hovertemplate="%{text}" + ("<br>" + marker["colorbar"]["title"]["text"] + " = %{marker.color:.3g}"
                                                              if "colorbar" in marker else "") + "<extra></extra>"))

    if colour_by == "source":
        for k, source in enumerate(sorted(table["source"].unique())):
            points((table["source"] == source).to_numpy(), source, color=SOURCE_PALETTE[k % len(SOURCE_PALETTE)], opacity=0.7)
    else:
        values = table[colour_by].to_numpy(np.float64)
        known = np.isfinite(values)
        if (~known).any():
            points(~known, f"no {colour_title(colour_by)}", color="lightgrey", opacity=0.5)
        points(known, colour_title(colour_by), color=values[known], colorscale="Viridis", opacity=0.8, showscale=True,
               colorbar={"title": {"text": colour_title(colour_by)}})
    if path is not None:
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", name="interpolation path",
                                 line={"color": "black", "width": 2}, marker={"size": 6, "color": "black"},
                                 hovertemplate="step %{pointNumber}<extra></extra>"))
    if len(ends):
        chosen = table.iloc[list(ends)]
        fig.add_trace(go.Scatter(x=chosen["x"], y=chosen["y"], mode="markers+text", name="chosen",
                                 text=["A", "B"][: len(chosen)], textposition="top center", textfont={"size": 16},
                                 marker={"size": 14, "symbol": "diamond", "color": "rgba(0,0,0,0)",
                                         "line": {"color": "black", "width": 2}},
                                 hovertext=chosen["formula"], hovertemplate="%{text}: %{hovertext}<extra></extra>"))
    if current is not None:
        xy = lmap.projection.project(current[1])[0]
        fig.add_trace(go.Scatter(x=[xy[0]], y=[xy[1]], mode="markers", name=f"your crystal: {current[0]}",
                                 marker={"size": 20, "symbol": "star", "color": "gold", "line": {"color": "black", "width": 1.5}},
                                 hovertemplate=f"your crystal: {current[0]}<extra></extra>"))
    fig.update_layout(height=height, xaxis_title=lmap.axis_title(0), yaxis_title=lmap.axis_title(1),
                      legend={"orientation": "h", "y": -0.12}, margin={"l": 60, "r": 20, "t": 30, "b": 60},
                      clickmode="event+select")
    return fig
