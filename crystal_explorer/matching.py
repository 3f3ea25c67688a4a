"""The reconstruction benchmark of CDVAE and DiffCSP: match rate, RMS of the matches, and validity.

A recovered crystal matches its truth when pymatgen's StructureMatcher(stol=0.5, angle_tol=10,
ltol=0.3) maps one onto the other; `match_rms` is the mean of `get_rms_dist()[0]` (RMS displacement
normalised by (V / N)^(1/3)) over the matches, as CDVAE reports it.
"""

from __future__ import annotations

from pymatgen.core import Structure
from pymatgen.core.structure_matcher import StructureMatcher

MIN_DISTANCE_ANGSTROM = 0.5


def structure_matcher() -> StructureMatcher:
    """The benchmark's matcher (CDVAE, Table 2): stol=0.5, angle_tol=10°, ltol=0.3."""
    return StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)


def is_valid(structure: Structure | None, min_distance_angstrom: float = MIN_DISTANCE_ANGSTROM) -> bool:
    """True when every interatomic distance, periodic images included, is at least `min_distance_angstrom`."""
    if structure is None or len(structure) == 0:
        return False
    centres, _, _, _ = structure.get_neighbor_list(min_distance_angstrom - 1e-8)
    return len(centres) == 0


def match_metrics(pairs: list[tuple[Structure, Structure | None]]) -> dict[str, float | int | None]:
    """Match rate, mean normalised RMS of the matches and valid fraction over (true, recovered) pairs.

    A recovered None (no lattice found) counts as neither matched nor valid. `match_rms` is None when
    nothing matched; rates are None for an empty list.
    """
    matcher = structure_matcher()
    n_match, rms, n_valid = 0, [], 0
    for true, recovered in pairs:
        if recovered is None:
            continue
        n_valid += is_valid(recovered)
        try:
            result = matcher.get_rms_dist(true, recovered)
        except Exception:  # noqa: BLE001 - the matcher fails on degenerate cells: no match
            result = None
        if result is not None:
            n_match += 1
            rms.append(float(result[0]))
    n = len(pairs)
    return {
        "n": n,
        "match_rate": n_match / n if n else None,
        "match_rms": sum(rms) / len(rms) if rms else None,
        "valid_fraction": n_valid / n if n else None,
    }
