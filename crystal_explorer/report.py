"""What a decoding got right and wrong, in the words and tables a user reads: formulas, atom-by-atom
comparisons, close contacts, realism percentiles and the held-out metrics of a checkpoint.

Positions are in Å in the cube frame; tables are pandas DataFrames with units in their column names.
"""

from __future__ import annotations

import collections
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Lattice, Structure

from crystal_explorer.consensus import ConsensusConfig
from crystal_explorer.grid import GridSpec
from crystal_explorer.metrics import MATCH_RADIUS_ANGSTROM, nearest_distances, reduced_composition
from crystal_explorer.plotting import covalent_radii, symbols
from crystal_explorer.representation import Placement

if TYPE_CHECKING:
    from crystal_explorer.latent import CrystalModel, Decoded

log = logging.getLogger(__name__)
CLOSE_CONTACT_FACTOR = 0.7  # atoms closer than 0.7 × the sum of their covalent radii are not physical


# --- formulas ---------------------------------------------------------------------------------------------
def formula(atomic_numbers: np.ndarray) -> str:
    """The reduced formula as chemists write it ("LaFeO3", not "La1Fe1O3"); "—" for no atoms."""
    numbers = np.asarray(atomic_numbers).reshape(-1)
    if len(numbers) == 0:
        return "—"
    return Composition(collections.Counter(symbols(numbers))).reduced_formula


def same_composition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two sets of atoms have the same reduced composition (LaFeO3 = La2Fe2O6)."""
    return reduced_composition(a) == reduced_composition(b)


# --- atom by atom ------------------------------------------------------------------------------------------
class AtomComparison(NamedTuple):
    """A decoding against its truth, atom by atom.

    Attributes:
        table: one row per true atom (its nearest decoded atom, distance in Å, verdict), then one per decoded
            atom with no true atom within 0.5 Å ("extra").
        true_missing: (N_true,) bool, no decoded atom within 0.5 Å.
        decoded_wrong: (N_dec,) bool, within 0.5 Å of a true atom of another element.
        decoded_extra: (N_dec,) bool, no true atom within 0.5 Å.
    """

    table: pd.DataFrame
    true_missing: np.ndarray
    decoded_wrong: np.ndarray
    decoded_extra: np.ndarray
    decoded_notes: list[str]  # (N_dec,) e.g. "Cr, true Ti", "extra Rb", "" when right

    @property
    def n_problems(self) -> int:
        return int(self.true_missing.sum() + self.decoded_wrong.sum() + self.decoded_extra.sum())

    def problems(self) -> list[str]:
        """What went wrong, one phrase per kind, e.g. "1 decoded atom has the wrong element"; [] when nothing."""
        kinds = (
            (self.decoded_wrong, "decoded atom has the wrong element", "decoded atoms have the wrong element"),
            (self.true_missing, "true atom has no decoded atom within 0.5 Å", "true atoms have no decoded atom within 0.5 Å"),
            (self.decoded_extra, "decoded atom matches no true atom", "decoded atoms match no true atom"),
        )
        return [f"{n} {one if n == 1 else many}" for mask, one, many in kinds if (n := int(mask.sum()))]


def compare_atoms(
    true_positions: np.ndarray, true_numbers: np.ndarray, decoded_positions: np.ndarray, decoded_numbers: np.ndarray,
    *, reference_positions: np.ndarray | None = None, reference_numbers: np.ndarray | None = None,
    radius: float = MATCH_RADIUS_ANGSTROM,
) -> AtomComparison:
    """Compare decoded atoms with the true ones as `metrics.compare` does (true → nearest decoded; decoded →
    nearest of `reference_*`, all placed atoms, which default to the true ones), atom by atom."""
    true_numbers = np.asarray(true_numbers).reshape(-1)
    decoded_numbers = np.asarray(decoded_numbers).reshape(-1)
    ref_pos = true_positions if reference_positions is None else reference_positions
    ref_z = true_numbers if reference_numbers is None else np.asarray(reference_numbers).reshape(-1)
    t2d, t_idx = nearest_distances(true_positions, decoded_positions)
    d2t, d_idx = nearest_distances(decoded_positions, ref_pos)
    true_sym, dec_sym = symbols(true_numbers), symbols(decoded_numbers)
    rows = []
    for i, (d, j) in enumerate(zip(t2d, t_idx, strict=True)):
        found = np.isfinite(d)
        if not found or d > radius:
            verdict = "missing"
        elif decoded_numbers[j] != true_numbers[i]:
            verdict = "wrong element"
        else:
            verdict = "ok"
        rows.append({"true atom": f"{true_sym[i]} #{i + 1}", "decoded atom": f"{dec_sym[j]} #{j + 1}" if found else "—",
                     "distance (Å)": round(float(d), 2) if found else None, "verdict": verdict})
    close = d2t <= radius
    wrong = close & (decoded_numbers != np.where(d_idx >= 0, ref_z[np.maximum(d_idx, 0)], -1))
    extra = ~close
    for j in np.flatnonzero(extra):
        rows.append({"true atom": "—", "decoded atom": f"{dec_sym[j]} #{j + 1}",
                     "distance (Å)": round(float(d2t[j]), 2) if np.isfinite(d2t[j]) else None, "verdict": "extra"})
    table = pd.DataFrame(rows, columns=["true atom", "decoded atom", "distance (Å)", "verdict"])
    ref_sym = symbols(ref_z)
    notes = [f"{dec_sym[j]}, true {ref_sym[d_idx[j]]}" if wrong[j] else f"extra {dec_sym[j]}" if extra[j] else ""
             for j in range(len(decoded_numbers))]
    return AtomComparison(table, ~(t2d <= radius), wrong, extra, notes)


def highlight_problems(table: pd.DataFrame):
    """A Styler that shades rows whose verdict is not "ok" (wrong species red, missing and extra amber)."""
    shades = {"wrong element": "background-color: #f8d0d0", "missing": "background-color: #fbe8c0",
              "extra": "background-color: #fbe8c0"}
    return table.style.apply(lambda row: [shades.get(row["verdict"], "")] * len(row), axis=1).format(
        {"distance (Å)": "{:.2f}"}, na_rep="—")


def close_contacts(positions: np.ndarray, atomic_numbers: np.ndarray, factor: float = CLOSE_CONTACT_FACTOR
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (P, 2) of atoms closer than `factor` × the sum of their covalent radii, and their distances (P,) Å."""
    positions = np.asarray(positions, float).reshape(-1, 3)
    if len(positions) < 2:
        return np.zeros((0, 2), int), np.zeros(0)
    radii = covalent_radii(atomic_numbers)
    i, j = np.triu_indices(len(positions), 1)
    d = np.linalg.norm(positions[i] - positions[j], axis=1)
    bad = d < factor * (radii[i] + radii[j])
    return np.stack([i[bad], j[bad]], 1), d[bad]


def describe_contacts(pairs: np.ndarray, distances: np.ndarray, atomic_numbers: np.ndarray, limit: int = 3) -> str:
    """"O–O 0.61 Å, Fe–O 0.88 Å" for the closest few pairs."""
    syms = symbols(atomic_numbers)
    order = np.argsort(distances)[:limit]
    return ", ".join(f"{syms[pairs[k, 0]]}–{syms[pairs[k, 1]]} {distances[k]:.2f} Å" for k in order)


def contact_notes(pairs: np.ndarray, distances: np.ndarray, atomic_numbers: np.ndarray) -> list[str]:
    """(K,) a note per atom naming its closest too-close partner ("O–Rb 1.50 Å"), "" for atoms with none."""
    syms = symbols(atomic_numbers)
    notes, best = [""] * len(syms), np.full(len(syms), np.inf)
    for (i, j), d in zip(pairs, distances, strict=True):
        for a, b in ((i, j), (j, i)):
            if d < best[a]:
                best[a], notes[a] = d, f"{syms[a]}–{syms[b]} {d:.2f} Å"
    return notes


def percentile_among(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each score, the percentage of reference scores at or below it (0–100)."""
    reference = np.sort(np.asarray(reference, float))
    if len(reference) == 0:
        return np.full(len(np.atleast_1d(scores)), np.nan)
    return 100.0 * np.searchsorted(reference, np.atleast_1d(scores), side="right") / len(reference)


REALISM_AUC_USEFUL = 0.7  # below this a model's realism score barely separates real decodings from a random gas


def read_samples(folder: str | Path) -> dict:
    """A model folder's samples.json (`python -m train.sample_analysis`), or {} when it is missing or unreadable."""
    try:
        data = json.loads((Path(folder) / "samples.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def realism_caveat(samples: dict, useful: float = REALISM_AUC_USEFUL) -> str | None:
    """A warning when samples.json (`train.sample_analysis`) shows that this model's realism score does not
    separate real decodings from a decoded random gas of atoms (ROC AUC below `useful`; 0.5 is chance), else None."""
    auc = samples.get("realism", {}).get("out_of_distribution", {}).get("auc_real_above")
    if auc is None or auc >= useful:
        return None
    return (f"For this model the realism score does not tell real crystals from nonsense: a decoded random gas of "
            f"atoms outscores a real crystal's decoding {100 * (1 - auc):.0f} % of the time (ROC AUC {auc:.2f}, "
            "0.5 is chance; samples.json). Do not rank draws by it; the distances and close contacts still apply.")


# --- periodic crystals ---------------------------------------------------------------------------------------
def decoded_crystal(decoded: Decoded, model: CrystalModel, cell: np.ndarray | None = None, predict: bool = False
                    ) -> tuple[Structure | None, str]:
    """The periodic crystal behind a decoding (`CrystalModel.periodic_structure`) and where its lattice came
    from in one word ("recovered", "input", "predicted"), or (None, why not); never raises, since the
    crystal is optional and the atoms in the cube always exist. `cell`: the input's cell as placed (Å rows)."""
    try:
        structure, source = model.periodic_structure(decoded, cell=cell, predict=predict)
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("building the decoded crystal failed")
        return None, "export failed"
    if structure is None:
        return None, "no lattice found" if model.representation == "lattice" else "no lattice known"
    return structure, _SOURCE_WORDS[source]


_SOURCE_WORDS = {"recovered from the decoded atoms": "recovered", "the input's cell (none recovered)": "input",
                 "the input's cell": "input", "predicted by the cell head": "predicted"}


def site_mismatches(truth: Structure, decoded: Structure, radius: float = MATCH_RADIUS_ANGSTROM) -> np.ndarray:
    """(N_decoded,) bool: decoded sites within `radius` Å (periodically) of a true site of another element,
    or with no true site that close; both structures must share one lattice."""
    if len(decoded) == 0 or len(truth) == 0:
        return np.ones(len(decoded), bool)
    d = decoded.lattice.get_all_distances(decoded.frac_coords, truth.frac_coords)  # (N_dec, N_true)
    nearest = d.argmin(1)
    z_true = np.array([s.specie.Z for s in truth])[nearest]
    z_dec = np.array([s.specie.Z for s in decoded])
    return (d[np.arange(len(decoded)), nearest] > radius) | (z_dec != z_true)


def cell_frame_shift(lattice: np.ndarray, frac_coords: np.ndarray, placement: Placement, representation: str,
                     grid: GridSpec = GridSpec()) -> np.ndarray:
    """The fractional translation t (3,) from the input's own cell to the cube frame: a point at fractional
    coordinates f of the input's cell sits at f + t (mod 1) of its placed cell (`lattice.placed_lattice`).

    The placement maps a crystal point x (a row, Å) to x Rᵀ + b: for the single cell b puts input atom 0
    where placed atom 0 is (the cluster keeps the input's atom order); for the lattice b = (s − c) Rᵀ + c,
    with s the fractional shift in Å and c the cube centre (`placement.lattice_positions`).
    """
    lattice = np.asarray(lattice, float)
    rotation = np.asarray(placement.rotation, float)
    cell = lattice @ rotation.T
    if representation == "single":
        b = placement.positions[0] - np.asarray(frac_coords, float)[0] @ cell
    else:
        c = np.full(3, grid.centre_angstrom)
        b = (np.asarray(placement.shift_frac, float) @ lattice - c) @ rotation.T + c
    return b @ np.linalg.inv(cell)


def in_input_cell(crystal: Structure, lattice: np.ndarray, shift: np.ndarray) -> Structure:
    """A crystal built in the placed input cell (`decoded_crystal` with source "input"), moved back into the
    input's own cell and origin (fractional coordinates − `shift`, see `cell_frame_shift`)."""
    return Structure(Lattice(np.asarray(lattice, float)), crystal.species, (crystal.frac_coords - shift) % 1.0)


# --- held-out metrics ------------------------------------------------------------------------------------------
SOURCE_NAMES = {"mp_ground_states": "Materials Project", "mp_bulk": "Materials Project (bulk)",
                "perov_5_val": "Perov-5", "perov_5": "Perov-5", "carbon_24_val": "Carbon-24", "carbon_24": "Carbon-24"}
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
PAPER_SINGLE_ATOMS_WITHIN = 0.99  # Hoffmann et al. 2019, single cell: 99 % of atoms within 0.5 Å


def source_stem(file_name: str) -> str:
    """A data file's source, whatever its format: "mp_bulk.csv.gz" and "mp_bulk.npz" are both "mp_bulk"."""
    return file_name.split(".")[0]


def source_name(file_name: str) -> str:
    """"perov_5_val.csv.gz" → "Perov-5"."""
    stem = source_stem(file_name)
    return SOURCE_NAMES.get(stem, stem)


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
            row[source_name(name)] = "—" if value is None else f"{100 * value:.1f} %"
        row["paper"] = paper_single if representation == "single" else paper_lattice
        rows.append(row)
    for percentile, label, paper_lattice in (("50", "median", "0.2 Å"), ("90", "90th percentile", "2 Å")):
        if percentile not in (metrics.get("distance_percentiles_true_to_pred") or {}):
            continue
        row = {"metric": f"{label} true → decoded distance", "all": _distance(metrics, percentile)}
        for name, values in sources.items():
            row[source_name(name)] = _distance(values, percentile)
        row["paper"] = "—" if representation == "single" else paper_lattice
        rows.append(row)
    return pd.DataFrame(rows).fillna("—")


def _distance(metrics: dict, percentile: str) -> str:
    """A true → decoded distance percentile in Å. metrics.json writes null (or inf) where fewer atoms were decoded
    than that percentile needs: infinitely far, not missing."""
    percentiles = metrics.get("distance_percentiles_true_to_pred") or {}
    if percentile not in percentiles:
        return "—"
    value = percentiles[percentile]
    return "∞ (too few decoded atoms)" if value is None or not np.isfinite(value) else f"{value:.2f} Å"


def _unit(key: str) -> str:
    if any(tag in key for tag in ("within", "exact", "fraction", "match_rate", "species", "count_")):
        return "%"
    if "percentiles" in key or key.endswith("_A"):
        return "Å"
    if "mse" in key:
        return "(Z units)²"
    if "rms" in key:
        return "× (V/N)^⅓"
    return ""


def _label(path: list[str]) -> str:
    parts = []
    for key in path:
        if key in {"50", "75", "90"}:
            parts.append(f"{key}th percentile")
        elif key.endswith((".csv", ".csv.gz")):
            parts.append(source_name(key))
        else:
            parts.append(key.replace("0.5A", "0.5 Å").replace("_", " "))
    return " · ".join(parts)


def flat_metrics_table(metrics: dict) -> pd.DataFrame:
    """Every number of a metrics dict, one row each, rounded and with its unit (fractions as %)."""
    rows = []

    def walk(path: list[str], value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk([*path, str(key)], inner)
            return
        if value is None or isinstance(value, list):
            return
        key = "_".join(path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            rows.append({"metric": _label(path), "value": str(value), "unit": ""})
            return
        unit = _unit(key)
        if unit == "%":
            text = f"{100 * value:.1f}"
        elif isinstance(value, int):
            text = f"{value:d}"
        else:
            text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        rows.append({"metric": _label(path), "value": text, "unit": unit})

    walk([], metrics)
    return pd.DataFrame(rows, columns=["metric", "value", "unit"])


def training_summary(meta: dict) -> dict:
    """Totals of model.json's training ledger: stages, samples seen, minutes, and how many stages ran on a GPU."""
    from crystal_explorer.checkpoint import stage_samples

    stages = meta.get("training_stages") or []
    gpu = sum("cpu" not in str(s.get("device", "")).lower() for s in stages)
    return {"stages": len(stages), "gpu_stages": gpu, "cpu_stages": len(stages) - gpu,
            "samples": sum(stage_samples(s) for s in stages),
            "minutes": sum(float(s.get("minutes") or 0) for s in stages)}


def ledger_table(meta: dict) -> pd.DataFrame:
    """One row per training stage: device, minutes, samples (cumulative too), learning rate, what it trained and
    the validation metrics recorded after it (%, blank where none were)."""
    from crystal_explorer.checkpoint import stage_samples

    rows, seen = [], 0
    for stage in meta.get("training_stages") or []:
        seen += stage_samples(stage)
        val = stage.get("validation") or stage.get("validation_at_the_time") or {}

        def pct(key: str, val: dict = val) -> str:
            return "" if val.get(key) is None else f"{100 * val[key]:.1f}"

        device = str(stage.get("device", "—"))
        rows.append({
            "stage": stage.get("stage"), "device": device.replace("NVIDIA ", "").replace(" 80GB HBM3", ""),
            "minutes": "" if stage.get("minutes") is None else f"{float(stage['minutes']):.0f}",
            "samples": f"{stage_samples(stage):,}", "samples seen": f"{seen:,}",
            "lr": "" if stage.get("lr") is None else f"{float(stage['lr']):.0e}",
            "val atoms within 0.5 Å (%)": pct("atoms_within_0.5A"), "val count exact (%)": pct("count_exact"),
            "val species exact (%)": pct("species_exact"), "what": stage.get("what", ""),
        })
    return pd.DataFrame(rows)


def decoding_description(metrics: dict) -> str:
    """How a metrics.json's crystals were decoded, in words: refinement steps and orientations merged."""
    steps = (metrics.get("refinement") or {}).get("steps", 0)
    consensus = ConsensusConfig.from_dict(metrics.get("consensus"))
    orientations = consensus.orientations
    parts = [f"encodings refined for {steps} steps" if steps else "posterior means decoded as they are (not refined)"]
    if orientations > 1:
        parts.append(f"each crystal decoded in {orientations} orientations, keeping the atoms {consensus.support} of them agree on")
    else:
        parts.append("one orientation per crystal")
    return "; ".join(parts)


def held_out_sentence(metrics: dict, representation: str) -> str:
    """One plain sentence on how well the model does on held-out crystals, and whether it is under-trained."""
    n = metrics.get("n_structures", "?")
    within = metrics.get("atoms_within_0.5A")
    count = metrics.get("count_exact")
    species = metrics.get("species_exact")
    if within is None:
        return f"No held-out reconstruction metrics for this model ({n} crystals evaluated)."

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{100 * v:.0f} %"

    sentence = (f"On {n} held-out crystals ({metrics.get('split', 'test')} split) it puts {pct(within)} of the true atoms "
                f"within 0.5 Å of a decoded one, decodes the exact atom count for {pct(count)} of the crystals and the "
                f"right element for {pct(species)} of the atoms it places within 0.5 Å of a true one")
    paper = ("99 %, 90 % and 66 %" if representation == "single" else "a median distance of 0.2 Å and 65 % of species")
    if within < 0.9 * PAPER_SINGLE_ATOMS_WITHIN:
        return sentence + f"; the paper's model reached {paper}: this model is under-trained, so expect wrong atoms."
    return sentence + f" (the paper: {paper})."
