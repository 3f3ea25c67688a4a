"""Crystal Explorer: encode a crystal into the VAE's latent space, decode it, and explore that space.

UI only: every number comes from `crystal_explorer` (models, metrics) and every figure from
`crystal_explorer.plotting`. Run with `streamlit run app.py`.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from pymatgen.core import Composition

from crystal_explorer import plotting
from crystal_explorer.arrays import CrystalArrays
from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.grid import GridSpec
from crystal_explorer.latent import CrystalModel, Decoded, Encoded, Reconstruction
from crystal_explorer.metrics import summarise
from crystal_explorer.structures import (
    MAX_UPLOAD_BYTES,
    crystal_arrays,
    example_structures,
    load_dataset,
    structure_from_text,
)

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = {
    "Single unit cell": "checkpoints/single_cell",
    "Repeating lattice": "checkpoints/lattice",
    "Lattice, conditioned on max Z": "checkpoints/lattice_conditional",
}
DEFAULT_DATASET = str(ROOT.parent / "shared" / "data" / "perov_5_val.csv.gz")
LOCAL_3DMOL = ROOT / "static" / "3Dmol-min.js"  # optional offline copy, served at /app/static/
N_SLIDER_DIMS = 8
LATENT_LEVEL_TOP = 60.0  # Z units
log = logging.getLogger("crystal_explorer.app")


# --- cached library calls -----------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model…")
def load_model(folder: str) -> CrystalModel:
    return CrystalModel.from_checkpoint(ROOT / folder)


@st.cache_data(show_spinner=False)
def examples() -> dict[str, CrystalArrays]:
    return {name: crystal_arrays(s, name) for name, s in example_structures().items()}


@st.cache_data(show_spinner=False, max_entries=32)
def parse_upload(data: bytes, fmt: str, name: str) -> tuple[CrystalArrays, list[str]]:
    structure, warnings = structure_from_text(data, fmt)
    return crystal_arrays(structure, name), warnings


@st.cache_data(show_spinner="Reading the dataset…", max_entries=8)
def dataset_row(path: str, row: int) -> tuple[str, CrystalArrays]:
    data = load_dataset(path, limit=row + 1, progress=False)
    if len(data) <= row:
        raise CrystalExplorerError(f"{Path(path).name} has only {len(data)} usable rows")
    return data.ids[row], crystal_arrays(data.structures[row], data.ids[row])


def arrays_key(arrays: CrystalArrays) -> str:
    digest = hashlib.sha256()
    for a in (arrays.lattice, arrays.frac_coords, arrays.atomic_numbers):
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()[:16]


@st.cache_data(show_spinner="Encoding and decoding…", max_entries=64)
def reconstruct(folder: str, key: str, _arrays: CrystalArrays, seed: int) -> Reconstruction:
    return load_model(folder).reconstruct(_arrays, seed)


@st.cache_data(show_spinner="Encoding the example crystals…")
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
def ranked_dimensions(folder: str) -> list[int]:
    return [int(d) for d in load_model(folder).rank_dimensions(example_encodings(folder))]


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


@st.cache_data(show_spinner="Traversing…", max_entries=32)
def traverse(folder: str, key: str, _z: np.ndarray, dim: int, values: tuple[float, ...], max_z: float | None
             ) -> list[np.ndarray]:
    _, differences = load_model(folder).traverse(_z, dim, np.array(values), max_z=max_z)
    return differences


@st.cache_data(show_spinner=False, max_entries=32)
def atoms_html(key: str, _atom_sets: dict, height: int = 380) -> str:
    # cached per structure: py3Dmol stamps ids with the time, so fresh HTML reloads the viewer
    js = "/app/static/3Dmol-min.js" if LOCAL_3DMOL.is_file() else None
    return plotting.atoms_html(_atom_sets, height=height, js_url=js)


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
    return folder, model, max_z


def upload_format(name: str) -> str:
    lower = name.lower()
    return "poscar" if any(tag in lower for tag in ("poscar", "contcar", ".vasp")) else "cif"


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
        data = file.getvalue()
        if len(data) > MAX_UPLOAD_BYTES:
            raise CrystalExplorerError(f"{file.name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
        arrays, warnings = parse_upload(data, upload_format(file.name), file.name)
        for message in warnings[:5]:
            st.caption(f"pymatgen: {message}")
        return file.name, arrays
    path = st.text_input("Dataset CSV(.gz) with a 'cif' column", DEFAULT_DATASET, key=f"{key}_path")
    row = int(st.number_input("Row", 0, 100_000, 0, key=f"{key}_row"))
    material_id, arrays = dataset_row(path, row)
    return material_id, arrays


def new_seed(key: str) -> None:
    st.session_state[key] = int(np.random.default_rng().integers(0, 1_000_000))


def seed_ui(key: str) -> int:
    st.session_state.setdefault(key, 0)
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    seed = int(left.number_input("Orientation seed", 0, 1_000_000, key=key))
    right.button("New random orientation", icon=":material/casino:", on_click=new_seed, args=(key,), key=f"{key}_button")
    return seed


def level_ui(key: str, densities: list[np.ndarray], fixed_range: tuple[float, float] | None = None
             ) -> tuple[float, float]:
    """Iso-level (Z units) and opacity sliders; the level starts at the first density's 97th percentile
    because overlapping Gaussian tails give dense crystals a background of many Z units."""
    low = min(float(np.min(d)) for d in densities)
    high = max(float(np.max(d)) for d in densities)
    low, high = fixed_range or (np.floor(low * 10) / 10, np.ceil(high * 10) / 10)
    high = max(high, low + 0.2)
    left, right = st.columns(2)
    # with a key the slider's identity is its range, so this default only applies when it first appears
    default = float(np.clip(round(float(np.percentile(densities[0], 97)), 1), low, high))
    level = left.slider("Iso-level (Z units)", float(low), float(high), default, 0.1, key=f"{key}_level")
    opacity = right.slider("Opacity", 0.1, 1.0, 0.6, 0.05, key=f"{key}_opacity")
    return level, opacity


def formula(numbers: np.ndarray) -> str:
    if len(numbers) == 0:
        return "—"
    return Composition(collections.Counter(plotting.symbols(numbers))).formula.replace(" ", "")


def cif_of(decoded: Decoded, model: CrystalModel, cell: np.ndarray | None = None, predict: bool = False) -> tuple[str | None, str]:
    """A CIF of the periodic crystal behind a decoding and where its lattice came from, or (None, why not).

    Lattice models: the lattice is recovered from the decoded atoms; when none is and `cell` (the input's
    cell as placed) is given, the atoms are wrapped into that. Single-cell models keep no periodicity, so
    the atoms are wrapped into `cell` when it is given, else (with `predict`) into the cell head's cell.
    """
    from crystal_explorer.export import to_cif
    from crystal_explorer.lattice import recover_lattice, single_cell_structure, structure_in_cell

    try:
        if model.representation == "lattice":
            recovered = recover_lattice(decoded.atoms.positions, decoded.atoms.atomic_numbers)
            if recovered is not None:
                return to_cif(recovered.structure), "recovered"
            if cell is None or len(decoded.atoms) == 0:
                return None, "no lattice found"
            return to_cif(structure_in_cell(decoded.atoms.positions, decoded.atoms.atomic_numbers, cell, grid=GridSpec())), "input"
        source = "input"
        if cell is None and predict:
            cell, source = model.predicted_cell(decoded), "predicted"
        if cell is None or len(decoded.atoms) == 0:
            return None, "no lattice known"
        return to_cif(single_cell_structure(decoded.atoms.positions, decoded.atoms.atomic_numbers, cell)), source
    except Exception:  # noqa: BLE001 - the CIF is optional; XYZ always works
        log.exception("CIF export failed")
        return None, "export failed"


def predicted_cif_ui(decoded: Decoded, model: CrystalModel, stem: str, key: str) -> None:
    """A toggle that predicts a periodic cell for a single-cell decoding with no input cell, and its CIF download."""
    if model.representation != "single" or model.cell_head is None or len(decoded.atoms) == 0:
        return
    if not st.toggle("Predict a periodic cell for this decoding (CIF)", key=f"{key}_cell"):
        return
    with st.spinner("Predicting the cell and orienting it on the atoms…"):
        cif, _ = cif_of(decoded, model, predict=True)
    if cif is None:
        st.warning("No cell could be predicted for this decoding.")
        return
    from pymatgen.core import Structure

    crystal = Structure.from_str(cif, fmt="cif")
    a, b, c = crystal.lattice.abc
    alpha, beta, gamma = crystal.lattice.angles
    st.markdown(f"**{crystal.composition.reduced_formula}**, {len(crystal)} sites: a, b, c = {a:.2f}, {b:.2f}, {c:.2f} Å; "
                f"α, β, γ = {alpha:.1f}°, {beta:.1f}°, {gamma:.1f}°; {crystal.volume:.1f} Å³")
    st.download_button("Decoding as a crystal (CIF)", icon=":material/download:", data=cif, file_name=f"{stem}.cif",
                       mime="chemical/x-cif", key=f"{key}_cif")
    st.caption("The cell's a, b, c, α, β, γ come from the cell head (an MLP on the latent); its orientation is the one "
               "whose Wigner–Seitz cell holds every decoded atom without overlapping images. Held-out match rates are on "
               "the model page: check the structure before using it.")


# --- pages -----------------------------------------------------------------------------------------------
def reconstruct_page() -> None:
    st.title("Reconstruct a crystal")
    folder, model, _ = model_ui()
    chosen = crystal_input_ui("rec")
    if chosen is None:
        return
    name, arrays = chosen
    seed = seed_ui("rec_seed")
    rec = reconstruct(folder, arrays_key(arrays), arrays, seed)
    enc, dec, cmp = rec
    metrics = summarise([cmp])

    cols = st.columns(5)
    cols[0].metric("True atoms in cube", cmp.n_true)
    cols[1].metric("Decoded atoms", cmp.n_pred)
    cols[2].metric("True atoms within 0.5 Å", _percent(metrics["atoms_within_0.5A"]))
    cols[3].metric("Species exact", _percent(metrics["species_exact"]))
    cols[4].metric("Voxel MSE", f"{cmp.voxel_mse:.3g}")

    density_tab, slice_tab, atoms_tab, parity_tab, metrics_tab = st.tabs(
        ["Density", "Z-slices", "Atoms", "Parity", "All metrics"])
    densities = {"input": enc.density, "decoded": dec.density}
    with density_tab:
        level, opacity = level_ui("rec", list(densities.values()))
        st.plotly_chart(plotting.isosurface_figure(densities, level, opacity=opacity), key="rec_iso")
    with slice_tab:
        z_index = st.slider("z-slice (voxel)", 0, enc.density.shape[2] - 1, enc.density.shape[2] // 2, key="rec_z")
        st.plotly_chart(plotting.slices_figure(densities, z_index), key="rec_slices")
    with atoms_tab:
        p = enc.placement
        inside = np.all((p.positions >= 0) & (p.positions <= plotting.BOX_ANGSTROM), axis=1)
        sets = {"true": (p.positions[inside], p.atomic_numbers[inside]),
                "decoded": (dec.atoms.positions, dec.atoms.atomic_numbers)}
        st.iframe(atoms_html(f"{folder}|{arrays_key(arrays)}|{seed}", sets), height=420)
        st.caption(f"True: {formula(p.atomic_numbers[inside])} · decoded: {formula(dec.atoms.atomic_numbers)} "
                   "(atoms inside the 10 Å cube; the grey box is the cube)")
    with parity_tab:
        st.plotly_chart(plotting.parity_figure(enc.density, dec.density), key="rec_parity")
    with metrics_tab:
        st.json(metrics)
    xyz = plotting.xyz_text(dec.atoms.positions, dec.atoms.atomic_numbers, comment=f"decoded {name} ({folder}, seed {seed})")
    left, right = st.columns(2)
    left.download_button("Decoded atoms (XYZ)", icon=":material/download:", data=xyz, file_name=f"{Path(name).stem}_decoded.xyz", mime="chemical/x-xyz")
    from crystal_explorer.lattice import placed_lattice

    cell = placed_lattice(arrays.lattice, enc.placement.rotation)
    cif, source = cif_of(dec, model, cell)
    if cif is not None:
        right.download_button("Decoded crystal (CIF)", icon=":material/download:", data=cif, file_name=f"{Path(name).stem}_decoded.cif", mime="chemical/x-cif")
        if model.representation == "single":
            right.caption("A single cell keeps no periodicity: the CIF wraps the decoded atoms into the input's own cell.")
        elif source == "recovered":
            right.caption("The CIF's lattice was recovered from the decoded atoms alone.")
        else:
            right.caption("No periodic lattice could be recovered from the decoded atoms, so the CIF wraps them into "
                          "the input's own cell (one site per cluster, majority species).")
    else:
        right.caption("No CIF for this decoding; the XYZ has every atom.")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def standardised(folder: str, base: np.ndarray) -> np.ndarray:
    """Latent coordinates in units of the model's prior spread: (z − centre) / spread."""
    centre, spread = load_model(folder).axes()
    return (np.asarray(base, float) - centre) / spread


def slider_range(value: float) -> tuple[float, float]:
    """±4 prior σ, widened to hold a start point that lies further out."""
    return min(-4.0, np.floor(value)), max(4.0, np.ceil(value))


def reset_sliders(folder: str, dims: list[int], base: np.ndarray) -> None:
    u = standardised(folder, base)
    for d in dims:
        st.session_state[f"dim_{d}"] = round(float(u[d]), 2)


@st.fragment
def latent_sliders_ui(folder: str, base: np.ndarray, base_id: str, dims: list[int], max_z: float | None) -> None:
    """Sliders for the most used latent dimensions; a move reruns only this fragment and re-decodes."""
    try:
        if st.session_state.get("latent_base_id") != base_id:
            reset_sliders(folder, dims, base)
            st.session_state["latent_base_id"] = base_id
        st.button("Reset to the start point", icon=":material/restart_alt:", on_click=reset_sliders,
                  args=(folder, dims, base), key="latent_reset")
        centre, spread = load_model(folder).axes()
        start = standardised(folder, base)
        z = np.array(base, np.float32)
        cols = st.columns(4)
        for i, d in enumerate(dims):
            u = cols[i % 4].slider(f"z[{d}] (prior σ)", *slider_range(start[d]), step=0.05, key=f"dim_{d}")
            z[d] = centre[d] + u * spread[d]
        decoded = load_model(folder).decode(z, max_z=max_z)[0]
        st.caption(f"Decoded {len(decoded.atoms.atomic_numbers)} atoms: {formula(decoded.atoms.atomic_numbers)} · "
                   f"max density {decoded.density.max():.1f} Z units")
        # a fixed range: a range that followed each decoding would reset the slider on every move
        level, opacity = level_ui("latent", [decoded.density], fixed_range=(0.0, LATENT_LEVEL_TOP))
        st.plotly_chart(plotting.isosurface_figure({"decoded": decoded.density}, level, opacity=opacity, height=460),
                        key="latent_iso")
    except CrystalExplorerError as exc:
        st.error(str(exc), icon=":material/error:")


def latent_page() -> None:
    st.title("Latent explorer")
    folder, model, max_z = model_ui()
    start = st.radio("Start from", ["Encoded crystal", "Random draw"], horizontal=True, key="latent_start")
    if start == "Encoded crystal":
        chosen = crystal_input_ui("lat")
        if chosen is None:
            return
        name, arrays = chosen
        base = reconstruct(folder, arrays_key(arrays), arrays, 0).encoded.mean
        base_id = f"{folder}|{arrays_key(arrays)}"
    else:
        seed = int(st.number_input("Draw seed", 0, 1_000_000, 0, key="latent_seed"))
        base = model.draw(1, seed)[0]  # from the aggregate prior when the checkpoint has one
        base_id = f"{folder}|draw{seed}"
    ranked = ranked_dimensions(folder)
    dims = ranked[:N_SLIDER_DIMS]
    st.caption(f"Sliders for the {len(dims)} dimensions with the largest KL to the prior over the built-in examples, "
               "in units of the prior's spread: 0 is the prior's centre, ±1 one standard deviation.")
    latent_sliders_ui(folder, base, base_id, dims, max_z)

    st.subheader("Traversal of one dimension")
    left, right = st.columns(2)
    dim = int(left.selectbox("Dimension", ranked[:32], key="traverse_dim"))
    z_index = right.slider("z-slice (voxel)", 0, 29, 15, key="traverse_z")
    values = (-3.0, -1.5, 0.0, 1.5, 3.0)
    differences = traverse(folder, base_id, base, dim, values, max_z)
    st.plotly_chart(plotting.difference_slices_figure(differences, [f"z[{dim}] = μ {v:+.1f}σ" for v in values], z_index),
                    key="traverse_fig")
    st.caption("Decoded density minus the unaltered decoding (red: more, blue: less), one z-slice; the coordinate "
               "is set to the prior's centre plus −3 to 3 of its standard deviations.")


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
    za = reconstruct(folder, arrays_key(a[1]), a[1], seed).encoded.mean
    zb = reconstruct(folder, arrays_key(b[1]), b[1], seed).encoded.mean
    key = f"{arrays_key(a[1])}|{arrays_key(b[1])}|{seed}"
    frames = interpolate(folder, key, za, zb, steps, spherical, max_z)
    st.session_state["interpolation_frames"] = len(frames)

    level, _ = level_ui("int", [f.density for f in frames])
    labels = [f"{i}" for i in range(len(frames))]
    st.plotly_chart(plotting.animation_figure([f.density for f in frames], level, labels=labels), key="int_anim")
    table = pd.DataFrame({"frame": range(len(frames)), "t": np.linspace(0, 1, len(frames)),
                          "atoms": [len(f.atoms.atomic_numbers) for f in frames],
                          "composition": [formula(f.atoms.atomic_numbers) for f in frames]})
    frame = st.slider("Frame (atoms)", 0, len(frames) - 1, 0, key="int_frame")
    atoms = frames[frame].atoms
    st.iframe(atoms_html(f"{folder}|{key}|{steps}|{spherical}|{max_z}|{frame}",
                         {f"frame {frame}": (atoms.positions, atoms.atomic_numbers)}, height=360), height=400)
    st.dataframe(table, hide_index=True)
    predicted_cif_ui(frames[frame], model, f"interpolation_{a[0]}_{b[0]}_frame_{frame:03d}", "int")
    extra = {}
    for i, f in enumerate(frames):
        cif, _ = cif_of(f, model)
        if cif is not None:
            extra[f"frame_{i:03d}.cif"] = cif
    archive = plotting.frames_zip([(f.atoms.positions, f.atoms.atomic_numbers) for f in frames], extra=extra)
    st.download_button("All frames (ZIP of XYZ)", icon=":material/download:", data=archive, file_name=f"interpolation_{a[0]}_{b[0]}.zip",
                       mime="application/zip")


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
    st.dataframe(pd.DataFrame({
        "sample": range(n), "atoms": [len(d.atoms.atomic_numbers) for d in decoded],
        "composition": [formula(d.atoms.atomic_numbers) for d in decoded],
        "max density (Z units)": [float(d.density.max()) for d in decoded], "realism": realism,
    }), hide_index=True)
    st.caption("Realism: exp(−(e_density + e_atoms)), with e the relative error ‖D(E(x)) − x‖² / ‖x‖² of encoding and "
               "decoding again the decoded density and the ideal density of its segmented atoms; near 1 when both are "
               "fixed points of the model, 0 when segmentation found no atoms.")

    which = int(st.selectbox("Show sample", range(n), key="sample_show"))
    level, opacity = level_ui("sample", [decoded[which].density])
    st.plotly_chart(plotting.isosurface_figure({f"sample {which}": decoded[which].density}, level, opacity=opacity),
                    key="sample_iso")
    predicted_cif_ui(decoded[which], model, f"sample_{seed}_{which}", "sample")
    st.subheader("Nearest-neighbour distances")
    real = []
    for e in example_encodings(folder):
        p = e.placement
        inside = np.all((p.positions >= 0) & (p.positions <= plotting.BOX_ANGSTROM), axis=1)
        real.append(plotting.nearest_neighbour_distances(p.positions[inside]))
    drawn = [plotting.nearest_neighbour_distances(d.atoms.positions) for d in decoded]
    if sum(len(d) for d in drawn) == 0:
        hint = " Draws from the standard prior mostly decode to empty densities; try the aggregate prior." if prior == "standard" and len(priors) > 1 else ""
        st.info("The segmentation found fewer than two atoms in every sample, so only the examples are shown." + hint)
    st.plotly_chart(plotting.distance_histogram_figure({"decoded samples": np.concatenate(drawn),
                                                        "built-in examples": np.concatenate(real)}), key="sample_nn")


FIGURES = {"atom_counts": "Atom counts", "distance_percentiles": "Distances", "species": "Species",
           "voxel_parity": "Voxel parity"}
METRIC_ROWS = {  # key in metrics.json → (label, paper's single-cell figure, paper's lattice figure)
    "atoms_within_0.5A": ("true atoms within 0.5 Å", "99 %", "—"),
    "pred_atoms_within_0.5A": ("decoded atoms within 0.5 Å of a true one", "—", "—"),
    "count_exact": ("exact atom count", "90 %", "—"),
    "count_within_2": ("atom count within ±2", "—", "—"),
    "species_exact": ("species exact (pairs within 0.5 Å)", "66 %", "65.4 %"),
    "species_within_2": ("species within ±2", "98 %", "—"),
    "match_rate": ("StructureMatcher match rate", "—", "—"),
    "input_cell_match_rate": ("match rate, decoded atoms in the input's cell", "—", "—"),
    "predicted_cell_match_rate": ("match rate, decoded atoms in the cell head's cell", "—", "—"),
    "predicted_cell_true_atoms_match_rate": ("match rate, true atoms in the cell head's cell", "—", "—"),
    "valid_fraction": ("valid (no atoms closer than 0.5 Å)", "—", "—"),
}


def metrics_table(metrics: dict, representation: str) -> pd.DataFrame:
    """Headline held-out metrics as percentages: overall, per data source, and the paper's figure."""
    sources = metrics.get("per_source", {})
    rows = []
    for key, (label, paper_single, paper_lattice) in METRIC_ROWS.items():
        # per source the match rates are flat keys; overall they sit in a block, e.g. predicted_cell.match_rate
        block = metrics.get(key.removesuffix("_match_rate")) if key.endswith("_match_rate") else None
        overall = block.get("match_rate") if isinstance(block, dict) else metrics.get(key)
        if overall is None:
            continue
        row = {"metric": label, "all": f"{100 * overall:.1f} %"}
        for name, values in sources.items():
            value = values.get(key)
            row[name.split(".")[0]] = "—" if value is None else f"{100 * value:.1f} %"
        row["paper"] = paper_single if representation == "single" else paper_lattice
        rows.append(row)
    median = (metrics.get("distance_percentiles_true_to_pred") or {}).get("50")
    if median is not None:
        rows.append({"metric": "median true → decoded distance", "all": f"{median:.2f} Å",
                     "paper": "—" if representation == "single" else "0.2 Å"})
    return pd.DataFrame(rows).fillna("—")


def model_page() -> None:
    st.title("The model")
    folder, model, _ = model_ui()
    meta = model.metadata
    cols = st.columns(4)
    cols[0].metric("Representation", model.representation)
    cols[1].metric("Latent size", model.latent_size)
    cols[2].metric("Training steps", meta.get("steps", "—"))
    data = meta.get("data", {})
    cols[3].metric("Training crystals", data.get("n_train", "—"))
    if data:
        st.write("**Data:** " + ", ".join(data.get("sources", [])) + f" · split {data.get('split', '')}")
    metrics_file = ROOT / folder / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        st.subheader("Held-out metrics")
        st.caption(f"{metrics.get('n_structures', '?')} crystals of the {metrics.get('split', '?')} split "
                   f"({metrics.get('n_skipped', 0)} skipped: do not fit the cube), from `python -m train.evaluate`.")
        st.dataframe(metrics_table(metrics, model.representation), hide_index=True)
        figures = [f for f in FIGURES if (ROOT / folder / f"{f}.png").is_file()]
        if figures:
            for tab, name in zip(st.tabs([FIGURES[f] for f in figures]), figures, strict=True):
                tab.image(str(ROOT / folder / f"{name}.png"))
        with st.expander("All metrics (metrics.json)"):
            st.json(metrics)
    else:
        st.info("No held-out metrics (metrics.json) for this checkpoint yet.")
    log_file = ROOT / folder / "train_log.csv"
    if log_file.is_file():
        st.subheader("Loss curves")
        frame = pd.read_csv(log_file)
        groups = {"reconstruction": ["train/reconstruction", "val/reconstruction"],
                  "segmentation": ["train/segmentation", "val/segmentation"], "KL": ["train/kl", "val/kl"]}
        tabs = st.tabs(list(groups))
        for tab, (label, columns) in zip(tabs, groups.items(), strict=True):
            present = [c for c in columns if c in frame.columns]
            with tab:
                if present:
                    st.plotly_chart(plotting.loss_curves_figure({c: frame[c].to_numpy() for c in ["step", *present]}, present),
                                    key=f"loss_{label}")
    with st.expander("Full metadata (model.json)"):
        st.json(meta)


def main() -> None:
    st.set_page_config(page_title="Crystal Explorer", page_icon=":material/diamond:", layout="wide")
    pages = [
        st.Page(guarded(reconstruct_page), title="Reconstruct", icon=":material/biotech:", url_path="reconstruct", default=True),
        st.Page(guarded(latent_page), title="Latent explorer", icon=":material/tune:", url_path="latent"),
        st.Page(guarded(interpolation_page), title="Interpolation", icon=":material/animation:", url_path="interpolation"),
        st.Page(guarded(sample_page), title="Random draws", icon=":material/casino:", url_path="samples"),
        st.Page(guarded(model_page), title="Model", icon=":material/monitoring:", url_path="model"),
    ]
    st.navigation(pages).run()


main()
