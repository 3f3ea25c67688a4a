"""Crystal Explorer: encode a crystal into the VAE's latent space, decode it, and explore that space.

UI only: every number comes from `crystal_explorer` (models, metrics, `report`) and every figure from
`crystal_explorer.plotting`. Run with `streamlit run app.py`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from crystal_explorer import latent_map, live_scene, plotting, report
from crystal_explorer.arrays import CrystalArrays
from crystal_explorer.directions import DirectionEffects, Directions, effects_file
from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.export import to_cif, xyz_text
from crystal_explorer.latent import CrystalModel, Decoded, Encoded, Reconstruction
from crystal_explorer.lattice import placed_lattice
from crystal_explorer.metrics import nearest_neighbour_distances, summarise
from crystal_explorer.plotting import CellView, Panel
from crystal_explorer.rows import read_table, row_structure
from crystal_explorer.structures import (
    MAX_UPLOAD_BYTES,
    crystal_arrays,
    example_structures,
    guess_format,
    structure_from_text,
)
from crystal_explorer.voxel import visible_atoms

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = {
    "Single unit cell": "checkpoints/single_cell",
    "Repeating lattice": "checkpoints/lattice",
    "Lattice, conditioned on max Z": "checkpoints/lattice_conditional",
}
DATA_DIR = Path(os.environ.get("CRYSTAL_EXPLORER_DATA", ROOT.parent / "shared" / "data"))  # the dataset CSVs
DEFAULT_DATASET = str(DATA_DIR / "perov_5_val.csv.gz")
# derived row by row from the data: an ignored folder, never committed
MAP_CACHE = Path(os.environ.get("CRYSTAL_EXPLORER_CACHE", ROOT / "data_cache")) / "latent_map"
LOCAL_3DMOL = ROOT / "static" / "3Dmol-min.js"  # optional offline copy, served at /app/static/
N_DIRECTIONS = 8
LATENT_LEVEL_TOP = 60.0  # Z units
COLOUR_KEY = (f"<span style='color:{plotting.INPUT_COLOUR}'>■</span> input · "
              f"<span style='color:{plotting.DECODED_COLOUR}'>■</span> decoded · "
              f"<span style='color:{plotting.MORE_COLOUR}'>■</span> more / "
              f"<span style='color:{plotting.LESS_COLOUR}'>■</span> less density · "
              f"<span style='color:{plotting.FLAG_COLOUR}'>○</span> needs a look")
log = logging.getLogger("crystal_explorer.app")
PAGES: dict[str, st.Page] = {}  # url path → page, filled by main() so that pages can switch to one another


# --- cached library calls -----------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model…")
def load_model(folder: str) -> CrystalModel:
    return CrystalModel.from_checkpoint(ROOT / folder)


@st.cache_resource(show_spinner=False)
def live_scene_component():
    """The mounted-once 3-D scene (`crystal_explorer.live_scene`), or None when plotly.js cannot be put in static/
    (or CRYSTAL_EXPLORER_LIVE_SCENE=0, the reference of `benchmarks/scene_redraw.py`)."""
    if os.environ.get("CRYSTAL_EXPLORER_LIVE_SCENE", "1") == "0" or not st.get_option("server.enableStaticServing"):
        return None
    if not live_scene.ensure_plotly_js(ROOT / "static"):
        log.warning("could not copy plotly.min.js into %s: the latent scene is drawn by st.plotly_chart", ROOT / "static")
        return None
    return st.components.v2.component("crystal_explorer_live_scene", js=live_scene.LIVE_SCENE_JS, isolate_styles=False)


def scene_chart(fig, key: str, uirevision: str) -> None:
    """A 3-D figure that is redrawn in place (Plotly.react) when it changes; the user's camera is kept while
    `uirevision` stays the same (the pages pass their name and the model: a new model resets the view)."""
    component = live_scene_component()
    if component is None:
        st.plotly_chart(fig, key=key)
    else:
        component(key=key, data=live_scene.scene_payload(fig, uirevision, st.get_option("server.baseUrlPath") or ""))


@st.cache_data(show_spinner=False)
def examples() -> dict[str, CrystalArrays]:
    return {name: crystal_arrays(s, name) for name, s in example_structures().items()}


@st.cache_data(show_spinner=False, max_entries=32)
def parse_upload(data: bytes, fmt: str, name: str) -> tuple[CrystalArrays, list[str]]:
    structure, warnings = structure_from_text(data, fmt)
    return crystal_arrays(structure, name), warnings


@st.cache_data(show_spinner=False, max_entries=4)
def dataset_table(path: str) -> pd.DataFrame:
    return read_table(path)


@st.cache_data(show_spinner=False, max_entries=64)
def dataset_row(path: str, row: int) -> tuple[str, CrystalArrays, list[str]]:
    material_id, structure, warnings = row_structure(dataset_table(path), row, Path(path).name)
    return material_id, crystal_arrays(structure, material_id), warnings


def arrays_key(arrays: CrystalArrays) -> str:
    digest = hashlib.sha256()
    for a in (arrays.lattice, arrays.frac_coords, arrays.atomic_numbers):
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()[:16]


@st.cache_data(show_spinner="Encoding, refining the encoding on the input and decoding (about 0.6 s per orientation)…", max_entries=64)
def reconstruct(folder: str, key: str, _arrays: CrystalArrays, seed: int, refine: bool = True,
                orientations: int = 1) -> Reconstruction:
    return load_model(folder).reconstruct(_arrays, seed, refine=refine, orientations=orientations)


@st.cache_data(show_spinner=False, max_entries=64)
def decoded_crystal(folder: str, key: str, _decoded: Decoded, _cell: np.ndarray | None, predict: bool = False):
    return report.decoded_crystal(_decoded, load_model(folder), _cell, predict)


@st.cache_data(show_spinner=False)
def example_encodings(folder: str) -> list[Encoded]:
    """Encodings of the built-in examples that this model can represent (seed 0)."""
    model = load_model(folder)
    placements = []
    for arrays in examples().values():
        try:
            placements.append(model.place(arrays, 0))
        except CrystalExplorerError:
            continue
    return model.encode_placements(placements)


@st.cache_data(show_spinner=False)
def samples_json(folder: str) -> dict:
    """The model folder's samples.json, read once per session (`report.read_samples`)."""
    return report.read_samples(ROOT / folder)


@st.cache_data(show_spinner=False)
def real_realism(folder: str) -> tuple[np.ndarray, str]:
    """Realism scores of real decodings and what they are: the held-out crystals' scores in samples.json when
    `python -m train.sample_analysis` stored them, else the built-in examples in a few orientations, scored
    here with a progress bar (6 orientations for the single cell, 1 for the slower lattice models)."""
    scores = samples_json(folder).get("realism", {}).get("real", {}).get("scores")
    if scores:
        return np.array(scores, float), f"{len(scores)} held-out crystals, encoded and decoded (samples.json)"
    model = load_model(folder)
    orientations = 6 if model.representation == "single" else 1
    placements = []
    for arrays in examples().values():
        for seed in range(orientations):
            try:
                placements.append(model.place(arrays, seed))
            except CrystalExplorerError:
                break
    bar = st.progress(0.0, text="Scoring real decodings for comparison…")
    scores = []
    for start in range(0, len(placements), 4):
        encoded = model.encode_placements(placements[start : start + 4])
        # one batch unless the conditional model needs each crystal's own condition
        decoded = ([model.decode_encoded(e) for e in encoded] if model.conditional
                   else model.decode(np.stack([e.mean for e in encoded])))
        scores += list(model.realism(decoded))
        done = min(start + 4, len(placements))
        bar.progress(done / len(placements), text=f"Scoring real decodings for comparison: {done} of {len(placements)}")
    bar.empty()
    return np.array(scores), f"{len(scores)} decodings of the built-in example crystals ({orientations} orientation{'s' if orientations > 1 else ''} each)"


@st.cache_data(show_spinner=False)
def directions(folder: str) -> Directions:
    model = load_model(folder)
    if model.prior is not None:
        return Directions.of_prior(model.prior, N_DIRECTIONS)
    encodings = example_encodings(folder)
    dims = [int(d) for d in model.rank_dimensions(encodings)[:N_DIRECTIONS]]
    return Directions.of_axes(*model.axes(), dims)


@st.cache_data(show_spinner=False, max_entries=8)
def direction_effects(path: str, modified: float) -> DirectionEffects | None:
    """A checkpoint's directions.json (`python -m crystal_explorer.directions`), None when unreadable; keyed by
    the file itself and its mtime, so a rewritten file is a new cache entry."""
    return DirectionEffects.read(path)


def direction_labels(folder: str, model: CrystalModel, axes: Directions) -> list[str]:
    """Slider labels: "PC 1 (12 % of variance): mean Z ↑, atom count ↓" when the checkpoint's measured effects
    match these directions, else "Direction 1 (σ)"."""
    plain = [f"Direction {k + 1} (σ)" for k in range(len(axes.spread))]
    path = effects_file(ROOT / folder)
    if model.prior is None or not path.is_file():
        return plain
    effects = direction_effects(str(path), path.stat().st_mtime)
    if effects is None or not effects.matches(axes):
        return plain
    share = axes.variance_share(model.prior)
    return [f"PC {k + 1} ({100 * s:.0f} % of variance): {effects.labels[k]}" for k, s in enumerate(share)]


@st.cache_data(show_spinner="Decoding the interpolation…", max_entries=16)
def interpolate(folder: str, key: str, _a: np.ndarray, _b: np.ndarray, steps: int, spherical: bool,
                max_z: float | None) -> list[Decoded]:
    return load_model(folder).interpolate(_a, _b, steps, spherical=spherical, max_z=max_z)


@st.cache_data(show_spinner="Decoding samples…", max_entries=16)
def sample(folder: str, n: int, seed: int, max_z: float | None, prior: str | None = None
           ) -> tuple[list[Decoded], np.ndarray]:
    model = load_model(folder)
    decoded = model.sample(n, seed, max_z=max_z, prior=prior)
    return decoded, model.realism(decoded)


@st.cache_data(show_spinner="Decoding…", max_entries=64)
def decode(folder: str, key: str, _z: np.ndarray, max_z: float | None) -> list[Decoded]:
    return load_model(folder).decode(_z, max_z=max_z)


@st.cache_data(show_spinner=False, max_entries=32)
def atoms_html(key: str, _atom_sets: dict, height: int = 420) -> str:
    # cached per structure: py3Dmol stamps ids with the time, so fresh HTML reloads the viewer
    js = "/app/static/3Dmol-min.js" if LOCAL_3DMOL.is_file() else None
    return plotting.atoms_html(_atom_sets, height=height, js_url=js)


@st.cache_data(show_spinner=False, max_entries=64)
def default_level(key: str, _density: np.ndarray) -> float:
    return plotting.separating_level(_density)


# --- widgets ---------------------------------------------------------------------------------------------
def guarded(page):
    """Run a page, turning our errors into their message and anything else into a generic one (no traceback)."""

    @functools.wraps(page)
    def run() -> None:
        try:
            page()
        except CrystalExplorerError as exc:
            st.error(str(exc), icon=":material/error:")
        except Exception:  # noqa: BLE001 - the user sees a message, the log keeps the traceback
            log.exception("page %s failed", page.__name__)
            st.error("Something went wrong while computing this page. Try another crystal, model or setting; "
                     "the details are in the server log.")

    return run


def model_ui() -> tuple[str, CrystalModel, float | None]:
    """Sidebar: model choice (and max Z for the conditional one); returns its folder, the model and max Z."""
    label = st.sidebar.selectbox("Model", list(CHECKPOINTS), key="model")
    folder = CHECKPOINTS[label]
    model = load_model(folder)
    max_z = None
    if model.conditional:
        max_z = float(st.sidebar.number_input("Target max Z (conditional model)", 1, 94, 30, key="max_z"))
    st.sidebar.caption(f"{model.representation} representation · latent size {model.latent_size} · "
                       f"running on {model.device.type}")
    st.sidebar.markdown(f"<small>{COLOUR_KEY}</small>", unsafe_allow_html=True)
    return folder, model, max_z


def crystal_input_ui(key: str, default: str = "SrTiO3") -> tuple[str, CrystalArrays] | None:
    """Example, upload or dataset row; returns (name, arrays), or None while nothing is chosen."""
    source = st.radio("Crystal from", ["Example", "Upload", "Dataset row"], horizontal=True, key=f"{key}_source")
    if source == "Example":
        names = list(examples())
        name = st.selectbox("Example crystal", names, index=names.index(default) if default in names else 0,
                            key=f"{key}_example")
        return name, examples()[name]
    if source == "Upload":
        file = st.file_uploader(f"CIF or POSCAR (at most {MAX_UPLOAD_BYTES / 1e6:.0f} MB)", key=f"{key}_upload")
        if file is None:
            st.info("Upload a CIF or POSCAR file to continue.")
            return None
        arrays, warnings = parse_upload(file.getvalue(), guess_format(file.name), file.name)
        for message in warnings[:5]:
            st.caption(f"pymatgen: {message}")
        return file.name, arrays
    left, right = st.columns([3, 1])
    # defaults through session state, so that another page (the latent map) can set a row without a warning
    st.session_state.setdefault(f"{key}_path", DEFAULT_DATASET)
    path = left.text_input("Dataset CSV(.gz) with a 'cif' column", key=f"{key}_path")
    with st.spinner(f"Reading {Path(path).name}…"):
        table = dataset_table(path)
    last = max(len(table) - 1, 0)
    if st.session_state.setdefault(f"{key}_row", 0) > last:  # a row set for a longer table
        st.session_state[f"{key}_row"] = last
    # the widget's bounds answer a row past the end at once, without parsing a single CIF
    row = int(right.number_input(f"Row (0 to {len(table) - 1})", 0, last, key=f"{key}_row"))
    material_id, arrays, warnings = dataset_row(path, row)
    for message in warnings[:5]:
        st.caption(f"pymatgen: {message}")
    return material_id, arrays


def new_seed(key: str) -> None:
    st.session_state[key] = int(np.random.default_rng().integers(0, 1_000_000))


def refine_ui(model: CrystalModel) -> bool:
    """Sidebar switch: refine each encoding on its input density (`crystal_explorer.refine`) or decode the
    posterior mean as it is (the paper's reconstruction)."""
    steps = model.refinement.steps
    if steps == 0:
        return False
    return st.sidebar.toggle(
        f"Refine encodings ({steps} steps)", value=True, key="refine",
        help="Takes a few gradient steps on the latent so that its decoding fits the input density better "
             "(about 1 s on a 2-core CPU with bfloat16, 3 s without). Off: the encoder's posterior mean, as in the paper.")


def orientations_ui(model: CrystalModel) -> int:
    """Sidebar control: in how many orientations a single cell is decoded before its atoms are merged
    (`crystal_explorer.consensus`); lattice models decode one."""
    if model.representation != "single":
        return 1
    return int(st.sidebar.slider(
        "Orientations to agree on", 1, 15, model.consensus.orientations, step=2, key="orientations",
        help="Decodes the crystal in this many random orientations and keeps the atoms most of them agree on, with "
             "their votes and peak heights pooled: species and counts come out right more often (README, \"Consensus "
             "of orientations\"). Each orientation costs one more decoding; 1 is the paper's single decoding."))


def encoding_tag(refine: bool) -> str:
    """The part of a cache key that says which encoding was decoded (`refine_ui`)."""
    return "refined" if refine else "mean"


def seed_ui(key: str) -> int:
    st.session_state.setdefault(key, 0)
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    seed = int(left.number_input("Orientation seed", 0, 1_000_000, key=key))
    right.button("New random orientation", icon=":material/casino:", on_click=new_seed, args=(key,), key=f"{key}_button")
    return seed


def level_ui(key: str, densities: list[np.ndarray], default: float, fixed_range: tuple[float, float] | None = None,
             nested: bool = True) -> tuple[float, float]:
    """Iso-level (Z units; with `nested`, the innermost, the outer surfaces at 60 % and 30 % of it) and opacity sliders."""
    low = min(float(np.min(d)) for d in densities)
    high = max(float(np.max(d)) for d in densities)
    low, high = fixed_range or (np.floor(low * 10) / 10, np.ceil(high * 10) / 10)
    high = max(high, low + 0.2)
    left, right = st.columns(2)
    # with a key the slider's identity is its range, so this default only applies when it first appears
    rule = "The default is the level at which the density splits into the most separate surfaces."
    level = left.slider("Innermost iso-level (Z units)" if nested else "Iso-level (Z units)", float(low), float(high),
                        float(np.clip(round(default, 1), low, high)), 0.1, key=f"{key}_level",
                        help=("Three nested surfaces are drawn, at this level, 60 % and 30 % of it. " if nested else "") + rule)
    opacity = right.slider("Opacity", 0.1, 1.0, 0.6, 0.05, key=f"{key}_opacity")
    return level, opacity


def z_slice_ui(key: str, n: int = 30) -> int:
    """A z-slice chooser in Å (voxel layer centres); returns the layer index."""
    return int(st.select_slider("Slice height z", options=list(range(n)), value=n // 2, key=key,
                                format_func=lambda i: f"{plotting.slice_height_angstrom(i, n):.2f} Å"))


def cell_view(structure, lattice: np.ndarray | None = None, flagged: np.ndarray | None = None) -> CellView:
    """A pymatgen Structure as a CellView, in `lattice` (same cell, another orientation) when given."""
    lattice = structure.lattice.matrix if lattice is None else lattice
    return CellView(np.asarray(lattice), structure.frac_coords, np.array([s.specie.Z for s in structure]), flagged)


def crystal_summary(structure) -> str:
    a, b, c = structure.lattice.abc
    alpha, beta, gamma = structure.lattice.angles
    return (f"**{structure.composition.reduced_formula}**, {len(structure)} sites: a, b, c = {a:.2f}, {b:.2f}, {c:.2f} Å; "
            f"α, β, γ = {alpha:.1f}°, {beta:.1f}°, {gamma:.1f}°; {structure.volume:.1f} Å³")


def predicted_cell_ui(decoded: Decoded, model: CrystalModel, folder: str, key: str, stem: str, ask: bool = True) -> None:
    """A toggle (unless `ask` is False) that predicts a periodic cell for a single-cell decoding with no input
    cell: the crystal in its cell, its CIF download."""
    if model.representation != "single" or model.cell_head is None or len(decoded.atoms) == 0:
        return
    if ask and not st.toggle("Predict a periodic cell for this decoding", key=f"{key}_cell",
                     help="The cell head (an MLP on the latent) gives a, b, c, α, β, γ; the search for its orientation on "
                          "the atoms takes 0.1–14 s, growing with the square of the atom count."):
        return
    with st.spinner("Predicting the cell and orienting it on the atoms (up to 15 s for many atoms)…"):
        crystal, _ = decoded_crystal(folder, f"{key}|{hashlib.sha256(decoded.latent.tobytes()).hexdigest()[:16]}",
                                     decoded, None, predict=True)
    if crystal is None:
        st.warning("No cell could be predicted for this decoding.")
        return
    st.markdown(crystal_summary(crystal))
    st.iframe(atoms_html(f"{key}|cell|{hashlib.sha256(decoded.latent.tobytes()).hexdigest()[:16]}",
                         {"decoded, in the predicted cell": cell_view(crystal)}), height=470)
    st.download_button("Decoding as a crystal (CIF)", icon=":material/download:", data=to_cif(crystal), file_name=f"{stem}.cif",
                       mime="chemical/x-cif", key=f"{key}_cif")
    st.caption("The cell's orientation is the one whose Wigner–Seitz cell holds every decoded atom without overlapping "
               "images. Held-out match rates are on the model page: check the structure before using it.")


def visible(model: CrystalModel, placement) -> tuple[np.ndarray, np.ndarray]:
    """The placed atoms a perfect segmentation would recover (those owning a voxel of S)."""
    seen = visible_atoms(placement.positions, placement.atomic_numbers, model.grid)
    return placement.positions[seen], placement.atomic_numbers[seen]


# --- pages -----------------------------------------------------------------------------------------------
def reconstruct_page() -> None:
    st.title("Reconstruct a crystal")
    folder, model, _ = model_ui()
    chosen = crystal_input_ui("rec")
    if chosen is None:
        return
    name, arrays = chosen
    seed = seed_ui("rec_seed")
    refine = refine_ui(model)
    orientations = orientations_ui(model)
    key = f"{folder}|{arrays_key(arrays)}|{seed}|{encoding_tag(refine)}|{orientations}"
    enc, dec, cmp = reconstruct(folder, arrays_key(arrays), arrays, seed, refine, orientations)
    metrics = summarise([cmp])
    p = enc.placement
    true_pos, true_z = visible(model, p)
    atoms = report.compare_atoms(true_pos, true_z, dec.atoms.positions, dec.atoms.atomic_numbers,
                                 reference_positions=p.positions, reference_numbers=p.atomic_numbers)
    cell = placed_lattice(arrays.lattice, p.rotation)
    crystal, source = decoded_crystal(folder, key, dec, cell)
    truth = arrays.to_structure()
    input_formula = truth.composition.reduced_formula
    st.session_state["current_crystal"] = {"folder": folder, "name": input_formula, "latent": enc.mean}  # for the latent map
    decoded_formula = crystal.composition.reduced_formula if crystal is not None and len(crystal) else report.formula(dec.atoms.atomic_numbers)

    cols = st.columns(5)
    cols[0].metric("Input", input_formula)
    cols[1].metric("Decoded", decoded_formula)
    cols[2].metric("Atoms (true → decoded)", f"{cmp.n_true} → {cmp.n_pred}")
    cols[3].metric("True atoms within 0.5 Å", _percent(metrics["atoms_within_0.5A"]))
    n_pairs = len(cmp.species_pairs)
    n_right = int((cmp.species_pairs[:, 0] == cmp.species_pairs[:, 1]).sum()) if n_pairs else 0
    cols[4].metric("Right element", f"{n_right} of {n_pairs}" if n_pairs else "—",
                   help="Decoded atoms within 0.5 Å of a true atom that have its element")
    problems = atoms.problems()
    if decoded_formula != input_formula:
        st.warning(f"The decoding is **{decoded_formula}**, not **{input_formula}**: " + "; ".join(problems or ["see the table"]) +
                   ". Each is marked in magenta in the views and shaded in the atom-by-atom table.", icon=":material/warning:")
    elif problems:
        st.info("Same formula, but " + "; ".join(problems) + ".", icon=":material/info:")

    density_tab, cell_tab, table_tab, slice_tab, parity_tab, metrics_tab = st.tabs(
        ["Density and atoms", "Unit cell", "Atom by atom", "Z-slices", "Parity", "All metrics"])
    with density_tab:
        level, opacity = level_ui("rec", [enc.density, dec.density], default_level(f"{key}|in", enc.density))
        panels = [Panel("input", enc.density, true_pos, true_z, plotting.INPUT_COLOUR, atoms.true_missing, "missing in the decoding",
                        [f"{s} missing" for s in plotting.symbols(true_z)]),
                  Panel("decoded", dec.density, dec.atoms.positions, dec.atoms.atomic_numbers, plotting.DECODED_COLOUR,
                        atoms.decoded_wrong | atoms.decoded_extra, "wrong element or extra", atoms.decoded_notes)]
        scene_chart(plotting.crystal_scene_figure(panels, plotting.nested_levels(level), opacity=opacity, height=520),
                    "rec_iso", f"rec|{folder}")
        st.caption("Both crystals in one scene, so they turn together; each cube is the 10 Å box the model sees. Surfaces at "
                   f"{', '.join(f'{v:.1f}' for v in plotting.nested_levels(level))} Z units (a lone atom peaks at its Z); atoms "
                   "are spheres of 0.4 × their covalent radius in Jmol colours, bonds join atoms closer than 1.15 × the sum of "
                   "their covalent radii. Atoms closer than 2 Å (most bonds) merge into one surface at any level: the density "
                   "is Gaussians of σ = 1 Å." + (
                       f" The decoded density is this orientation's; the decoded atoms are those at least a majority of "
                       f"{orientations} orientations agree on (sidebar)." if orientations > 1 else ""))
    with cell_tab:
        sets = {f"input {input_formula}": cell_view(truth)}
        if crystal is not None and len(crystal):
            if source == "input":
                # the decoded sites moved back into the input's own cell and origin, compared site by site
                shift = report.cell_frame_shift(arrays.lattice, arrays.frac_coords, p, model.representation, model.grid)
                back = report.in_input_cell(crystal, arrays.lattice, shift)
                sets[f"decoded {decoded_formula}"] = cell_view(back, flagged=report.site_mismatches(truth, back))
            else:
                sets[f"decoded {decoded_formula}"] = cell_view(crystal)
        st.iframe(atoms_html(f"{key}|cells", sets, height=440), height=530)
        captions = {"input": "The decoded atoms are wrapped into the input's own cell (a single cell keeps no periodicity of "
                             "its own); sites whose element differs from the input's are in magenta shells.",
                    "recovered": "The decoded crystal's lattice was recovered from the decoded atoms alone.",
                    }
        st.caption("One unit cell each, with the atoms on its faces, edges and corners repeated as VESTA draws them. " +
                   captions.get(source, "No periodic crystal could be made of this decoding (" + source + ")."))
    with table_tab:
        st.dataframe(report.highlight_problems(atoms.table), hide_index=True, height=min(38 + 35 * len(atoms.table), 420))
        st.caption("Each true atom against its nearest decoded atom, then decoded atoms with no true atom within 0.5 Å "
                   "(for the lattice, true atoms are those inside the cube). Red: wrong element; amber: missing or extra.")
    with slice_tab:
        z_index = z_slice_ui("rec_z", enc.density.shape[2])
        st.plotly_chart(plotting.slices_figure({"input": enc.density, "decoded": dec.density}, z_index), key="rec_slices")
    with parity_tab:
        st.plotly_chart(plotting.parity_figure(enc.density, dec.density), key="rec_parity")
    with metrics_tab:
        st.dataframe(report.flat_metrics_table({**metrics, "voxel_mse": cmp.voxel_mse}), hide_index=True)
    xyz = xyz_text(dec.atoms.positions, dec.atoms.atomic_numbers, comment=f"decoded {name} ({folder}, seed {seed})")
    left, right = st.columns(2)
    left.download_button("Decoded atoms (XYZ)", icon=":material/download:", data=xyz, file_name=f"{Path(name).stem}_decoded.xyz",
                         mime="chemical/x-xyz")
    if crystal is not None:
        right.download_button("Decoded crystal (CIF)", icon=":material/download:", data=to_cif(crystal),
                              file_name=f"{Path(name).stem}_decoded.cif", mime="chemical/x-cif")
    else:
        right.caption("No CIF for this decoding; the XYZ has every atom.")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def direction_range(value: float) -> tuple[float, float]:
    """±4 σ, widened to hold a start point that lies further out."""
    return min(-4.0, float(np.floor(value))), max(4.0, float(np.ceil(value)))


def reset_sliders(start: np.ndarray) -> None:
    for k, u in enumerate(start):
        st.session_state[f"dir_{k}"] = round(float(u), 1)


@st.fragment
def latent_sliders_ui(folder: str, base: np.ndarray, base_id: str, max_z: float | None) -> None:
    """Sliders along the principal directions; a move reruns only this fragment and re-decodes."""
    try:
        axes = directions(folder)
        start = axes.coordinates(base)
        if st.session_state.get("latent_base_id") != base_id:
            reset_sliders(start)
            st.session_state["latent_base_id"] = base_id
        st.button("Reset to the start point", icon=":material/restart_alt:", on_click=reset_sliders, args=(start,),
                  key="latent_reset")
        cols = st.columns(2)
        labels = direction_labels(folder, load_model(folder), axes)
        values = np.array([cols[k % 2].slider(labels[k], *direction_range(start[k]), step=0.1, key=f"dir_{k}")
                           for k in range(len(start))])
        # the sliders start at the start point rounded to their 0.1 σ step: move by the difference from there
        moved_z = axes.moved(base, start + values - np.round(start, 1))
        start_dec = decode(folder, f"{base_id}|start", base, max_z)[0]
        moved = decode(folder, f"{base_id}|{values.round(2).tobytes().hex()}", moved_z, max_z)[0]
        difference = moved.density - start_dec.density
        changed = float(np.abs(difference).sum() / max(np.abs(start_dec.density).sum(), 1e-9))
        st.caption(f"Start: {len(start_dec.atoms)} atoms, {report.formula(start_dec.atoms.atomic_numbers)} · moved: "
                   f"{len(moved.atoms)} atoms, {report.formula(moved.atoms.atomic_numbers)} · moved "
                   f"{float(np.linalg.norm(values - np.round(start, 1))):.1f} σ; the density changed by {100 * changed:.0f} % "
                   "(sum of |difference| over the start's sum).")
        # a fixed range: a range that followed each decoding would reset the slider on every move
        # one surface: 60 % of the separating level, where the nested views draw their middle surface
        level, opacity = level_ui("latent", [start_dec.density], 0.6 * default_level(f"{base_id}|start", start_dec.density),
                                  fixed_range=(0.0, LATENT_LEVEL_TOP), nested=False)
        diff_level = max(0.5, 0.25 * level)
        panels = [Panel("start", start_dec.density, start_dec.atoms.positions, start_dec.atoms.atomic_numbers, plotting.DECODED_COLOUR),
                  Panel("moved", moved.density, moved.atoms.positions, moved.atoms.atomic_numbers, plotting.DECODED_COLOUR)]
        # one surface per crystal here, not three: each translucent surface adds about half a second to every redraw
        # drawn in place: a slider move updates the mounted plot and keeps the camera
        scene_chart(plotting.comparison_figure(panels, [level], difference, diff_level, opacity=opacity, height=480),
                    "latent_iso", f"latent|{folder}")
        st.caption(f"Start and moved decodings side by side at {level:.1f} Z units, and their difference: purple where the "
                   f"moved density is at least {diff_level:.1f} Z units higher, green where it is lower.")
    except CrystalExplorerError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception:  # noqa: BLE001 - a fragment reruns outside the page's guard: the same message, no traceback
        log.exception("the latent sliders failed")
        st.error("Something went wrong while decoding this point. Reset the sliders or pick another start; the details "
                 "are in the server log.")


def latent_page() -> None:
    st.title("Latent explorer")
    folder, model, max_z = model_ui()
    start = st.radio("Start from", ["Encoded crystal", "Random draw"], horizontal=True, key="latent_start")
    if start == "Encoded crystal":
        chosen = crystal_input_ui("lat")
        if chosen is None:
            return
        name, arrays = chosen
        refine = refine_ui(model)
        base = reconstruct(folder, arrays_key(arrays), arrays, 0, refine).decoded.latent
        base_id = f"{folder}|{arrays_key(arrays)}|{encoding_tag(refine)}"
        if model.consensus.orientations > 1:
            st.caption("The sliders start from this crystal's encoding in one orientation, so the start is that one "
                       "decoding; the Reconstruct page merges several orientations and can show other atoms.")
    else:
        seed = int(st.number_input("Draw seed", 0, 1_000_000, 0, key="latent_seed"))
        base = model.draw(1, seed)[0]  # from the aggregate prior when the checkpoint has one
        base_id = f"{folder}|draw{seed}"
    axes = directions(folder)
    if model.prior is not None:
        share = axes.variance_share(model.prior)
        st.caption(f"Sliders along the {len(share)} principal directions of the training crystals' encodings (the aggregate "
                   f"prior), most spread first; together they carry {100 * share.sum():.0f} % of its variance "
                   f"({', '.join(f'{100 * s:.0f}' for s in share)} %). Values count standard deviations along each: 0 is the "
                   "centre of the training crystals.")
    else:
        st.caption("Sliders for the latent coordinates with the largest KL to the prior over the built-in examples, in prior σ.")
    latent_sliders_ui(folder, base, base_id, max_z)

    st.subheader("Traversal of one direction")
    left, right = st.columns(2)
    names = direction_labels(folder, load_model(folder), axes)
    k = int(left.selectbox("Direction", range(len(axes.spread)), format_func=lambda i: names[i], key="traverse_dir"))
    with right:
        z_index = z_slice_ui("traverse_z")
    values = (-3.0, -1.5, 0.0, 1.5, 3.0)
    start_u = axes.coordinates(base)
    path = np.stack([base] + [axes.moved(base, np.where(np.arange(len(start_u)) == k, v, start_u)) for v in values])
    frames = decode(folder, f"{base_id}|traverse{k}", path, max_z)
    differences = [f.density - frames[0].density for f in frames[1:]]
    labels = [f"{v:+.1f}σ: {len(f.atoms)} atoms" for v, f in zip(values, frames[1:], strict=True)]
    st.plotly_chart(plotting.difference_slices_figure(differences, labels, z_index), key="traverse_fig")
    st.caption(f"Decoded density minus the start's (purple: more, green: less) along direction {k + 1}, set to −3 to 3 "
               "standard deviations from the training crystals' centre; one z-slice.")


def interpolation_page() -> None:
    st.title("Interpolate between two crystals")
    folder, model, max_z = model_ui()
    left, right = st.columns(2)
    with left:
        st.subheader("Start")
        a = crystal_input_ui("int_a", "Si")
    with right:
        st.subheader("End")
        b = crystal_input_ui("int_b", "CsCl")
    if a is None or b is None:
        return
    c1, c2, c3 = st.columns(3)
    steps = int(c1.slider("Steps", 2, 20, 10, key="int_steps"))
    spherical = c2.checkbox("Spherical (slerp)", key="int_slerp")
    seed = int(c3.number_input("Orientation seed", 0, 1_000_000, 0, key="int_seed"))
    refine = refine_ui(model)
    rec_a = reconstruct(folder, arrays_key(a[1]), a[1], seed, refine)
    rec_b = reconstruct(folder, arrays_key(b[1]), b[1], seed, refine)
    key = f"{arrays_key(a[1])}|{arrays_key(b[1])}|{seed}|{encoding_tag(refine)}"
    frames = interpolate(folder, key, rec_a.decoded.latent, rec_b.decoded.latent, steps, spherical, max_z)
    st.session_state["interpolation_frames"] = len(frames)

    ends = []
    for (label, _), rec in ((a, rec_a), (b, rec_b)):
        pos, z = visible(model, rec.encoded.placement)
        ends.append(Panel(f"{Path(label).stem} (input)", rec.encoded.density, pos, z, plotting.INPUT_COLOUR))
    level, opacity = level_ui("int", [f.density for f in frames], default_level(f"{folder}|{key}|a", rec_a.encoded.density))
    st.plotly_chart(plotting.animation_figure([f.density for f in frames], level, labels=[str(i) for i in range(len(frames))],
                                              atoms=[(f.atoms.positions, f.atoms.atomic_numbers) for f in frames],
                                              ends=(ends[0], ends[1]), opacity=opacity, height=540), key="int_anim")
    st.caption("The true start and end crystals (blue) stand on either side of the decoded frame (orange); the slider under "
               "the scene, or ▶ play, moves through the frames, density and atoms together.")
    contacts = [report.close_contacts(f.atoms.positions, f.atoms.atomic_numbers)[1] for f in frames]
    st.dataframe(pd.DataFrame({
        "frame": range(len(frames)), "t": np.round(np.linspace(0, 1, len(frames)), 3),
        "atoms": [len(f.atoms) for f in frames], "formula": [report.formula(f.atoms.atomic_numbers) for f in frames],
        "atoms too close": [f"{len(c)} pairs (closest {c.min():.2f} Å)" if len(c) else "—" for c in contacts],
    }), hide_index=True)
    extra = {}
    for i, f in enumerate(frames):
        crystal, _ = decoded_crystal(folder, f"{key}|{steps}|{spherical}|{max_z}|{i}", f, None)
        if crystal is not None:
            extra[f"frame_{i:03d}.cif"] = to_cif(crystal)
    archive = plotting.frames_zip([(f.atoms.positions, f.atoms.atomic_numbers) for f in frames], extra=extra)
    st.download_button("All frames (ZIP of XYZ" + (", CIF where a lattice was recovered)" if extra else ")"),
                       icon=":material/download:", data=archive, file_name=f"interpolation_{Path(a[0]).stem}_{Path(b[0]).stem}.zip",
                       mime="application/zip")
    if model.representation == "single" and model.cell_head is not None and st.toggle(
            "Predict a periodic cell for one frame", key="int_cell_toggle"):
        frame = int(st.number_input("Frame", 0, len(frames) - 1, len(frames) // 2, key="int_frame"))
        predicted_cell_ui(frames[frame], model, folder, "int", f"interpolation_{Path(a[0]).stem}_{Path(b[0]).stem}_frame_{frame:03d}",
                          ask=False)


def sample_page() -> None:
    st.title("Random draws from the prior")
    folder, model, max_z = model_ui()
    c1, c2, c3 = st.columns(3)
    n = int(c1.slider("Number of samples", 1, 16, 6, key="sample_n"))
    seed = int(c2.number_input("Seed", 0, 1_000_000, 0, key="sample_seed"))
    priors = ["aggregate", "standard"] if model.prior is not None else ["standard"]
    prior = c3.radio("Prior", priors, horizontal=True, key="sample_prior",
                     help="standard: z = ε ~ N(0, 1), the VAE's prior; aggregate: ε mapped onto the encodings of the "
                          "training crystals (z = μ + Lε), where this low-β model's crystals actually lie")
    decoded, realism = sample(folder, n, seed, max_z, prior)
    reference, reference_source = real_realism(folder)
    percentiles = report.percentile_among(realism, reference)
    contacts = [report.close_contacts(d.atoms.positions, d.atoms.atomic_numbers) for d in decoded]
    st.dataframe(pd.DataFrame({
        "sample": range(n), "atoms": [len(d.atoms) for d in decoded],
        "formula": [report.formula(d.atoms.atomic_numbers) for d in decoded],
        "atoms too close": [report.describe_contacts(pairs, dist, d.atoms.atomic_numbers) or "—"
                            for (pairs, dist), d in zip(contacts, decoded, strict=True)],
        "realism (percentile of real decodings)": [f"{p:.0f}" for p in percentiles],
        "realism score": np.round(realism, 3),
    }), hide_index=True)
    n_bad = sum(len(pairs) > 0 for pairs, _ in contacts)
    if n_bad:
        st.warning(f"{n_bad} of {n} draws have atoms closer than {report.CLOSE_CONTACT_FACTOR} × the sum of their covalent "
                   "radii, which no real crystal has: treat them as unphysical.", icon=":material/warning:")
    st.caption(f"Realism percentile: the share of real decodings ({reference_source}) "
               "that score at or below the draw. The score is exp(−(e_density + e_atoms)), e the relative round-trip "
               "error of the decoded density and of the ideal density of its atoms; 0 when no atoms were found.")
    caveat = report.realism_caveat(samples_json(folder))
    if caveat:
        st.warning(caveat, icon=":material/info:")

    which = int(st.selectbox("Show sample", range(n), key="sample_show",
                             format_func=lambda i: f"sample {i}: {report.formula(decoded[i].atoms.atomic_numbers)}"))
    shown = decoded[which]
    flagged = np.zeros(len(shown.atoms), bool)
    flagged[contacts[which][0].ravel()] = True
    level, opacity = level_ui("sample", [shown.density], default_level(f"{folder}|{seed}|{which}|{prior}", shown.density))
    panel = Panel(f"sample {which}", shown.density, shown.atoms.positions, shown.atoms.atomic_numbers, plotting.DECODED_COLOUR,
                  flagged, "too close", report.contact_notes(*contacts[which], shown.atoms.atomic_numbers))
    scene_chart(plotting.crystal_scene_figure([panel], plotting.nested_levels(level), opacity=opacity, height=480),
                "sample_iso", f"sample|{folder}")
    predicted_cell_ui(shown, model, folder, "sample", f"sample_{seed}_{which}")
    st.subheader("Nearest-neighbour distances")
    real = []
    for e in example_encodings(folder):
        pos, _ = visible(model, e.placement)
        real.append(nearest_neighbour_distances(pos))
    drawn = [nearest_neighbour_distances(d.atoms.positions) for d in decoded]
    if sum(len(d) for d in drawn) == 0:
        hint = " Draws from the standard prior mostly decode to empty densities; try the aggregate prior." if prior == "standard" and len(priors) > 1 else ""
        st.info("The segmentation found fewer than two atoms in every sample, so only the examples are shown." + hint)
    st.plotly_chart(plotting.distance_histogram_figure({"decoded samples": np.concatenate(drawn),
                                                        "built-in examples": np.concatenate(real)}), key="sample_nn")


@st.cache_data(show_spinner=False, max_entries=4)
def held_out_map(folder: str, digest: str, paths: tuple[str, ...], n: int, layout: str) -> latent_map.LatentMap:
    """The latent map, from its disk cache or encoded with a progress bar (`digest`, the weights' hash, keys this
    cache too: new weights mean a new map)."""
    bar = st.progress(0.0, text="Reading held-out crystals…")
    lmap = latent_map.load_or_encode(load_model(folder), ROOT / folder, list(paths), MAP_CACHE, n,
                                     progress=lambda fraction, text: bar.progress(min(fraction, 1.0), text=text),
                                     layout=layout)
    bar.empty()
    return lmap


def send_to_page(page: str, rows: dict[str, tuple[str, int]]) -> None:
    """Open `page` with its crystal inputs (key prefix → (CSV path, row)) set to those dataset rows."""
    for prefix, (path, row) in rows.items():
        st.session_state[f"{prefix}_source"] = "Dataset row"
        st.session_state[f"{prefix}_path"] = path
        st.session_state[f"{prefix}_row"] = row
    st.switch_page(PAGES[page])


def latent_map_page() -> None:
    st.title("Latent map")
    folder, model, _ = model_ui()
    with st.expander("Data"):
        st.session_state.setdefault("map_data", str(DATA_DIR))
        st.session_state.setdefault("map_n", latent_map.MAP_SIZE)
        folder_text = st.text_input("Folder of dataset CSVs (.csv or .csv.gz with a 'cif' column)", key="map_data")
        n = int(st.number_input("Crystals on the map", 2, 10_000, step=500, key="map_n",
                                help="Shared evenly over the files; encoding takes about 40 ms a crystal on one CPU core, once "
                                     "per model: the encodings are cached on disk."))
    data = Path(folder_text).expanduser()
    paths = tuple(sorted(str(p) for p in data.iterdir() if p.name.lower().endswith((".csv", ".csv.gz")))) if data.is_dir() else ()
    if not paths:
        st.info(f"The map needs the dataset CSVs (Perov-5, Carbon-24, Materials Project) in **{data}**, and that folder "
                "has none. Put them there, or give another folder under *Data* above.", icon=":material/info:")
        return
    digest = latent_map.weights_digest(ROOT / folder)
    cols = st.columns([2, 1])
    layout = cols[1].radio("Layout", latent_map.LAYOUTS, key="map_layout", horizontal=True,
                           help="t-SNE keeps each crystal's nearest latent neighbours near it on the map (it reads better: "
                                "see the caption); PCA keeps straight axes, each the share of variance it carries.")
    lmap = held_out_map(folder, digest, paths, n, layout)
    table = lmap.table
    options = lmap.colour_options
    colour_by = cols[0].selectbox("Colour by", options, key="map_colour", format_func=latent_map.colour_title)
    if st.session_state.get("map_id") != (folder, digest, paths, n):  # the chosen ends are rows of one map
        st.session_state.update(map_id=(folder, digest, paths, n), map_ends=[])
    ends = [e for e in st.session_state.get("map_ends", []) if 0 <= e < len(table)]
    current = st.session_state.get("current_crystal")
    marked = (current["name"], current["latent"]) if current and current["folder"] == folder else None
    steps = int(st.session_state.get("int_steps", 10))
    path = (latent_map.path_points(lmap.latents[ends[0]], lmap.latents[ends[1]], steps, lmap.projection)
            if len(ends) == 2 else None)
    fig = latent_map.map_figure(lmap, colour_by, marked, ends, path)
    event = st.plotly_chart(fig, key="map", on_select="rerun", selection_mode="points")
    clicked = [int(p["customdata"]) for p in (event.selection.points if event else []) if p.get("customdata") is not None]
    # the chart keeps its selection over reruns: only a change of it is a click (else "Clear" would bring it back)
    if clicked != st.session_state.get("map_seen", []):
        st.session_state["map_seen"] = clicked
        new_ends = latent_map.updated_ends(ends, clicked)
        if new_ends != ends:
            st.session_state["map_ends"] = new_ends
            st.rerun()
    counts = ", ".join(f"{count} {source}" for source, count in table["source"].value_counts().items())
    skipped = sum(lmap.skipped.values())
    st.caption(f"{len(table)} crystals of the val and test splits (never trained on): {counts}"
               + (f"; {skipped} rows skipped ({', '.join(f'{k}: {v}' for k, v in lmap.skipped.items())})" if skipped else "")
               + ". Each is its posterior mean (orientation seed 0), "
               + ("laid out by t-SNE, which keeps latent neighbours together (on the 3,000-crystal map, trustworthiness at "
                  "10 neighbours 0.82 against PCA's 0.64); distances between far-apart groups mean little. " if layout == "t-SNE" else
                  "projected on the first two principal components of these encodings. ")
               + "Click a point to choose it; a second click chooses the other end of an interpolation, drawn as the "
               "straight latent path between them "
               + ("placed among the crystals it passes nearest." if layout == "t-SNE" else "(straight in projection too).")
               + (" The star is the crystal on the Reconstruct page." if marked else ""))
    if not ends:
        return
    rows = table.iloc[ends]
    labels = [f"{'AB'[i]}: {r.formula} ({r.source}, {r.material_id})" for i, r in enumerate(rows.itertuples())]
    st.markdown(" · ".join(f"**{label}**" for label in labels))
    where = [(str(data / r.file), int(r.row)) for r in rows.itertuples()]
    cols = st.columns(3)
    if cols[0].button(f"Reconstruct {rows.iloc[-1].formula}", icon=":material/biotech:", key="map_reconstruct"):
        send_to_page("home", {"rec": where[-1]})
    if len(ends) == 2 and cols[1].button(f"Interpolate {rows.iloc[0].formula} → {rows.iloc[1].formula}",
                                         icon=":material/animation:", key="map_interpolate"):
        send_to_page("interpolation", {"int_a": where[0], "int_b": where[1]})
    if cols[2].button("Clear the choice", icon=":material/close:", key="map_clear"):
        st.session_state["map_ends"] = []
        st.rerun()


FIGURES = {"atom_counts": "Atom counts", "distance_percentiles": "Distances", "species": "Species",
           "voxel_parity": "Voxel parity"}


def model_page() -> None:
    st.title("The model")
    folder, model, _ = model_ui()
    meta = model.metadata
    cols = st.columns(4)
    cols[0].metric("Representation", model.representation)
    cols[1].metric("Latent size", model.latent_size)
    trained = report.training_summary(meta)
    if trained["stages"]:
        cols[2].metric("Samples seen in training", f"{trained['samples'] / 1000:,.0f} k",
                       help=f"{trained['stages']} training stages ({trained['gpu_stages']} on a GPU, "
                            f"{trained['cpu_stages']} on a CPU), each continuing from the previous one's weights; "
                            "the ledger below lists them")
    else:
        cols[2].metric("Training steps", meta.get("steps", "—"))
    data = meta.get("data", {})
    cols[3].metric("Training crystals", data.get("n_train", "—"))
    if data:
        st.write("**Data:** " + ", ".join(data.get("sources", [])) + f" · split {data.get('split', '')}")
    metrics_file = ROOT / folder / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        sentence = report.held_out_sentence(metrics, model.representation)
        (st.warning if "under-trained" in sentence else st.info)(sentence)
        st.subheader("Held-out metrics")
        st.caption(f"{metrics.get('n_structures', '?')} crystals of the {metrics.get('split', '?')} split of each source file "
                   f"({metrics.get('n_skipped', 0)} skipped: do not fit the cube), from `python -m train.evaluate`. The split "
                   "is chosen by a hash of each material id, so the Perov-5 and Carbon-24 columns are crystals the model "
                   f"never saw, drawn from the published validation files. Decoded as the Reconstruct page does: "
                   f"{report.decoding_description(metrics)}.")
        table = report.metrics_table(metrics, model.representation)
        st.dataframe(table, hide_index=True, height=38 + 35 * len(table))
        figures = [f for f in FIGURES if (ROOT / folder / f"{f}.png").is_file()]
        if figures:
            for tab, name in zip(st.tabs([FIGURES[f] for f in figures]), figures, strict=True):
                tab.image(str(ROOT / folder / f"{name}.png"))
        with st.expander("All metrics of metrics.json, rounded, with units"):
            st.dataframe(report.flat_metrics_table(metrics), hide_index=True)
    else:
        st.info("No held-out metrics (metrics.json) for this checkpoint yet.")
    if trained["stages"]:
        st.subheader("Training ledger")
        st.caption("Every training stage of these weights, each continuing from the one before: device, minutes, "
                   "samples, learning rate, and the validation metrics measured after it (val split, plain decoding "
                   "of the posterior mean, not refined; blank where a stage was not scored).")
        curve = ROOT / folder / "learning_curve.png"
        if curve.is_file():
            st.image(str(curve))
        st.dataframe(report.ledger_table(meta), hide_index=True)
    log_file = ROOT / folder / "train_log.csv"
    if log_file.is_file():
        st.subheader("Loss curves")
        frame = pd.read_csv(log_file)
        groups = {"reconstruction": ["train/reconstruction", "val/reconstruction"],
                  "segmentation": ["train/segmentation", "val/segmentation"], "KL": ["train/kl", "val/kl"]}
        titles = {"reconstruction": "squared error per crystal ((Z units ÷ 10)²)",
                  "segmentation": "cross-entropy per crystal (nats)", "KL": "KL divergence per crystal (nats)"}
        tabs = st.tabs(list(groups))
        for tab, (label, columns) in zip(tabs, groups.items(), strict=True):
            present = [c for c in columns if c in frame.columns]
            with tab:
                if present:
                    st.plotly_chart(plotting.loss_curves_figure({c: frame[c].to_numpy() for c in ["step", *present]}, present,
                                                                y_title=titles[label]), key=f"loss_{label}")
    with st.expander("Full metadata (model.json)"):
        st.json(meta)


def main() -> None:
    st.set_page_config(page_title="Crystal Explorer", page_icon=":material/diamond:", layout="wide")
    pages = [
        st.Page(guarded(reconstruct_page), title="Reconstruct", icon=":material/biotech:", url_path="home", default=True),
        st.Page(guarded(latent_page), title="Latent explorer", icon=":material/tune:", url_path="latent"),
        st.Page(guarded(latent_map_page), title="Latent map", icon=":material/scatter_plot:", url_path="map"),
        st.Page(guarded(interpolation_page), title="Interpolation", icon=":material/animation:", url_path="interpolation"),
        st.Page(guarded(sample_page), title="Random draws", icon=":material/casino:", url_path="samples"),
        st.Page(guarded(model_page), title="Model", icon=":material/monitoring:", url_path="model"),
        # the default page is served at "/" only; this hidden twin makes /reconstruct a working deep link
        st.Page(guarded(reconstruct_page), title="Reconstruct", icon=":material/biotech:", url_path="reconstruct",
                visibility="hidden"),
    ]
    PAGES.update({page.url_path or "home": page for page in pages})  # the default page's url path is ""
    st.navigation(pages).run()


main()
