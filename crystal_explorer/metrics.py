"""The paper's reconstruction metrics (Hoffmann et al. 2019, Figs. 3 and 4), shared by every evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

MATCH_RADIUS_ANGSTROM = 0.5


def nearest_distances(points: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance in Å from each point (N, 3) to its nearest reference point (M, 3), and that point's index.

    With no reference points the distances are +inf and the indices −1.
    """
    points = np.asarray(points, float).reshape(-1, 3)
    reference = np.asarray(reference, float).reshape(-1, 3)
    if len(reference) == 0 or len(points) == 0:
        return np.full(len(points), np.inf), np.full(len(points), -1)
    d, i = cKDTree(reference).query(points)
    return d, i


def nearest_neighbour_distances(positions: np.ndarray) -> np.ndarray:
    """Distance in Å from each atom (K, 3) to its nearest other atom (no periodic images); empty below two atoms."""
    positions = np.asarray(positions, float).reshape(-1, 3)
    if len(positions) < 2:
        return np.zeros(0)
    distances, _ = cKDTree(positions).query(positions, k=2)
    return distances[:, 1]


@dataclass(frozen=True)
class Comparison:
    """How one decoded crystal compares with its truth."""

    true_to_pred: np.ndarray  # (N_true,) Å
    pred_to_true: np.ndarray  # (N_pred,) Å
    species_pairs: np.ndarray  # (K, 2) [true Z, predicted Z] for predicted atoms within 0.5 Å of a true atom
    n_true: int
    n_pred: int
    voxel_mse: float
    formula_exact: bool = False  # the decoded atoms' reduced formula is the true atoms'


def reduced_composition(numbers: np.ndarray) -> tuple[tuple[int, int], ...]:
    """((Z, count ÷ gcd), ...) sorted by Z: a reduced formula as numbers (LaFeO3 and La2Fe2O6 give the same)."""
    z, counts = np.unique(np.asarray(numbers, np.int64), return_counts=True)
    if len(z) == 0:
        return ()
    g = int(np.gcd.reduce(counts))
    return tuple((int(a), int(c) // g) for a, c in zip(z, counts, strict=True))


def compare(
    true_positions: np.ndarray,
    true_numbers: np.ndarray,
    pred_positions: np.ndarray,
    pred_numbers: np.ndarray,
    *,
    reference_positions: np.ndarray | None = None,
    reference_numbers: np.ndarray | None = None,
    true_density: np.ndarray | None = None,
    pred_density: np.ndarray | None = None,
) -> Comparison:
    """Compare predicted atoms with the true ones (positions in Å, same frame).

    `true_*` are the atoms that should be recovered (counted, and measured true → predicted);
    `reference_*` (default: the same) are all atoms a prediction may legitimately sit on, e.g. the
    lattice images just outside the cube, used for predicted → true distances and species.
    """
    ref_pos = true_positions if reference_positions is None else reference_positions
    ref_z = true_numbers if reference_numbers is None else reference_numbers
    t2p, _ = nearest_distances(true_positions, pred_positions)
    p2t, idx = nearest_distances(pred_positions, ref_pos)
    close = p2t <= MATCH_RADIUS_ANGSTROM
    pairs = np.stack([np.asarray(ref_z)[idx[close]], np.asarray(pred_numbers)[close]], 1) if close.any() else np.zeros((0, 2), int)
    mse = float(np.mean((np.asarray(true_density) - np.asarray(pred_density)) ** 2)) if true_density is not None and pred_density is not None else float("nan")
    same_formula = reduced_composition(true_numbers) == reduced_composition(pred_numbers)
    return Comparison(t2p, p2t, pairs.astype(int), len(true_numbers), len(pred_numbers), mse, same_formula)


def _percentiles(d: np.ndarray) -> dict[str, float | None]:
    """50/75/90th percentiles in Å; an atom with no counterpart counts as infinitely far, so a percentile
    that reaches those atoms is +inf (nearest-rank percentiles: interpolating with inf would give NaN)."""
    if len(d) == 0:
        return {"50": None, "75": None, "90": None}
    return {str(q): float(np.percentile(d, q, method="higher")) for q in (50, 75, 90)}


def json_safe(value):
    """Replace non-finite floats by None (strict JSON has no inf/NaN), recursively."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def species_by_z(pairs: np.ndarray) -> dict[str, dict]:
    """Per true Z of matched (true Z, predicted Z) pairs (P, 2): how many (`n`), the fraction exact, and the Z most
    often predicted for it (`called`); keys are Z as text (JSON), in order of Z."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    out = {}
    for z in np.unique(pairs[:, 0]):
        predicted = pairs[pairs[:, 0] == z, 1]
        values, counts = np.unique(predicted, return_counts=True)
        out[str(int(z))] = {"n": len(predicted), "exact": float(np.mean(predicted == z)), "called": int(values[counts.argmax()])}
    return out


def summarise(comparisons: list[Comparison]) -> dict[str, object]:
    """The metrics.json numbers over many crystals (fractions in [0, 1], distances in Å)."""
    if not comparisons:
        return {}
    t2p = np.concatenate([c.true_to_pred for c in comparisons])
    p2t = np.concatenate([c.pred_to_true for c in comparisons])
    pairs = np.concatenate([c.species_pairs for c in comparisons]).reshape(-1, 2)
    counts = np.array([[c.n_true, c.n_pred] for c in comparisons])
    mse = np.array([c.voxel_mse for c in comparisons])
    diff = np.abs(pairs[:, 0] - pairs[:, 1]) if len(pairs) else np.zeros(0)
    return {
        "atoms_within_0.5A": float(np.mean(t2p <= MATCH_RADIUS_ANGSTROM)) if len(t2p) else None,
        "pred_atoms_within_0.5A": float(np.mean(p2t <= MATCH_RADIUS_ANGSTROM)) if len(p2t) else None,
        "distance_percentiles_true_to_pred": _percentiles(t2p),
        "distance_percentiles_pred_to_true": _percentiles(p2t),
        "count_exact": float(np.mean(counts[:, 0] == counts[:, 1])),
        "count_within_2": float(np.mean(np.abs(counts[:, 0] - counts[:, 1]) <= 2)),
        "formula_exact": float(np.mean([c.formula_exact for c in comparisons])),
        "species_exact": float(np.mean(diff == 0)) if len(diff) else None,
        "species_within_2": float(np.mean(diff <= 2)) if len(diff) else None,
        "voxel_mse": float(np.nanmean(mse)) if np.isfinite(mse).any() else None,
        "n_true_atoms": int(counts[:, 0].sum()),
        "n_pred_atoms": int(counts[:, 1].sum()),
        "species_by_true_z": species_by_z(pairs),
    }
