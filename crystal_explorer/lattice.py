"""Periodicity: from atoms decoded in the cube to a periodic crystal (pymatgen Structure).

Repeating lattice (`recover_lattice`): the decoded atoms are a piece of an infinite crystal cut by
the cube, so the crystal's lattice translations map the atom set onto itself with the same species.
We search those translations directly in real space (the atom-set analogue of the peaks of the
Patterson function, the density's autocorrelation):

1. candidates are the differences between atoms of the same species (every lattice vector joins
   two atoms of every species; all species are used because the atoms of one species seen in the
   cube may all lie in one plane), deduplicated on a grid of `tolerance_angstrom / 2`;
2. a candidate v scores the fraction of "testable" atoms (at least `edge_margin_angstrom` inside the
   cube, and still inside after moving by v) that have an atom of the same species within
   `tolerance_angstrom` of x + v; v is refined as the mean displacement of those matches;
3. the lattice is the three shortest linearly independent candidates scoring at least `min_score`
   with at least `min_support` testable atoms (in 3-D the successive minima of a lattice form a
   basis, so this gives a primitive, reduced cell);
4. all atoms are folded into that cell, atoms of the same species closer than the tolerance
   (periodically) are merged into one site at their mean (only atoms away from the cube's faces,
   whose positions are not cut by the faces, are averaged when there are any), sites seen much less
   often than the others are dropped as decoding noise, and the cell is Niggli-reduced.

No three independent translations (a single cluster, random atoms, a cell with a vector longer than
the cube can show) gives None: "no lattice found", never an exception.

Single unit cell (`single_cell_structure`): a decoded single cell is a finite cluster with no
periodicity left in it, and several lattices explain the same cluster equally well (the cluster is
the compact, folded image of the cell, so its extent alone does not fix the cell vectors). Without a
lattice the result is a non-periodic pymatgen Molecule (exported as XYZ); given a lattice in the cube
frame (the input's own cell, rotated as it was placed, when a known crystal is reconstructed; or, for
draws and interpolation frames, the cell predicted by `crystal_explorer.cell`) the atoms are wrapped
into it, duplicates merged into one site of the majority species (`structure_in_cell`), and a Structure
is returned. A lattice-model reconstruction whose lattice cannot be recovered is wrapped into the
input's cell the same way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from pymatgen.core import Lattice, Molecule, Structure
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from crystal_explorer.grid import GridSpec

_SPECIES_SEPARATION = 1e4  # Å: a 4th coordinate Z × this keeps different species apart in one k-d tree


class RecoveredCrystal(NamedTuple):
    """A crystal recovered from decoded atoms, with how well the lattice explains them.

    Attributes:
        structure: the Niggli-reduced periodic crystal.
        lattice_vectors: (3, 3) Å, the three translations found, as rows, in the cube frame.
        scores: (3,) fraction of testable atoms each translation maps onto a same-species atom.
        support: (3,) number of testable atoms behind each score.
        tolerance_angstrom: the matching and merging tolerance used.
        site_counts: (S,) how many decoded atoms were merged into each site of `structure` before reduction.
        n_dropped_sites: sites dropped because they were seen much less often than the others.
    """

    structure: Structure
    lattice_vectors: np.ndarray
    scores: np.ndarray
    support: np.ndarray
    tolerance_angstrom: float
    site_counts: np.ndarray
    n_dropped_sites: int


def _candidate_vectors(
    positions: np.ndarray, atomic_numbers: np.ndarray, reliable: np.ndarray, tolerance: float, max_length: float
) -> np.ndarray:
    """Differences between reliable atoms of the same species, one per `tolerance / 2` cell, by length: (C, 3)."""
    parts = []
    for z in np.unique(atomic_numbers[reliable]):
        pts = positions[reliable & (atomic_numbers == z)]
        parts.append((pts[None, :, :] - pts[:, None, :]).reshape(-1, 3))
    if not parts:  # no atom away from the cube's faces
        return np.zeros((0, 3))
    diff = np.concatenate(parts)
    length = np.linalg.norm(diff, axis=1)
    diff = diff[(length > 2 * tolerance) & (length <= max_length)]
    # v and −v are the same translation: keep the half-space with the first non-zero component positive
    sign = np.sign(np.where(np.abs(diff[:, 0]) > 1e-9, diff[:, 0], np.where(np.abs(diff[:, 1]) > 1e-9, diff[:, 1], diff[:, 2])))
    diff = diff * sign[:, None]
    _, first = np.unique(np.round(diff / (tolerance / 2)).astype(np.int64), axis=0, return_index=True)
    diff = diff[first]
    return diff[np.argsort(np.linalg.norm(diff, axis=1), kind="stable")]


def _score_translations(
    vectors: np.ndarray,
    positions: np.ndarray,
    atomic_numbers: np.ndarray,
    reliable: np.ndarray,
    lo: float,
    hi: float,
    tolerance: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score, support and refined vector of each candidate translation: (C,), (C,), (C, 3)."""
    tagged = np.column_stack([positions, atomic_numbers * _SPECIES_SEPARATION])
    tree = cKDTree(tagged)
    src = positions[reliable]  # (R, 3)
    src_z = atomic_numbers[reliable] * _SPECIES_SEPARATION
    moved = src[None] + vectors[:, None, :]  # (C, R, 3)
    testable = ((moved >= lo) & (moved <= hi)).all(-1)  # (C, R)
    query = np.concatenate([moved, np.broadcast_to(src_z[None, :, None], (*moved.shape[:2], 1))], -1)
    dist, idx = tree.query(query.reshape(-1, 4), distance_upper_bound=tolerance)
    dist, idx = dist.reshape(testable.shape), idx.reshape(testable.shape)
    matched = testable & np.isfinite(dist)
    support = testable.sum(1)
    score = matched.sum(1) / np.maximum(support, 1)
    partner = positions[np.minimum(idx, len(positions) - 1)]  # (C, R, 3)
    disp = np.where(matched[..., None], partner - src[None], 0.0).sum(1)
    refined = np.where(matched.any(1)[:, None], disp / np.maximum(matched.sum(1), 1)[:, None], vectors)
    return score, support, refined


def _shortest_basis(vectors: np.ndarray, min_sin: float = 0.3, min_volume: float = 0.2) -> list[int]:
    """Indices of the shortest three linearly independent rows of `vectors` (sorted by length), or fewer."""
    chosen: list[int] = []
    for i, v in enumerate(vectors):
        n = np.linalg.norm(v)
        if not chosen:
            chosen.append(i)
        elif len(chosen) == 1:
            a = vectors[chosen[0]]
            if np.linalg.norm(np.cross(a, v)) / (np.linalg.norm(a) * n) > min_sin:
                chosen.append(i)
        else:
            a, b = vectors[chosen[0]], vectors[chosen[1]]
            if abs(np.linalg.det(np.stack([a, b, v]))) / (np.linalg.norm(a) * np.linalg.norm(b) * n) > min_volume:
                chosen.append(i)
                break
    return chosen


def _periodic_mean(frac: np.ndarray) -> np.ndarray:
    """Mean (3,) in [0, 1) of fractional coordinates (M, 3) that sit near one site, each taken at its image
    nearest the first."""
    return (frac - np.round(frac - frac[0])).mean(0) % 1.0


def _merge_sites(
    frac: np.ndarray, atomic_numbers: np.ndarray, reliable: np.ndarray, lattice: Lattice, tolerance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge atoms of one species closer than `tolerance` (periodically): frac (S, 3), Z (S,), counts (S,)."""
    out_f, out_z, out_n = [], [], []
    for z in np.unique(atomic_numbers):
        sel = atomic_numbers == z
        f, ok = frac[sel], reliable[sel]
        close = lattice.get_all_distances(f, f) < tolerance
        n_comp, label = connected_components(close, directed=False)
        for c in range(n_comp):
            members = label == c
            use = members & ok if (members & ok).any() else members
            out_f.append(_periodic_mean(f[use]))
            out_z.append(z)
            out_n.append(int(members.sum()))
    return np.array(out_f).reshape(-1, 3), np.array(out_z, dtype=np.int64), np.array(out_n, dtype=np.int64)


def recover_lattice(
    positions: np.ndarray,
    atomic_numbers: np.ndarray,
    *,
    grid: GridSpec = GridSpec(),
    tolerance_angstrom: float = 0.5,
    edge_margin_angstrom: float = 0.6,
    min_score: float = 0.95,
    min_support: int = 3,
    min_site_fraction: float = 0.3,
) -> RecoveredCrystal | None:
    """The periodic crystal behind atoms decoded from the repeating-lattice representation, or None.

    Args:
        positions: (K, 3) Cartesian positions in Å in the cube frame (e.g. `Atoms.positions`).
        atomic_numbers: (K,) Z.
        grid: the cube geometry the atoms were decoded from.
        tolerance_angstrom: a translated atom matches an atom of its species within this distance;
            atoms closer than this (periodically) after folding are one site.
        edge_margin_angstrom: atoms closer than this to a face of the cube may be cut by it (their
            voxels are partly outside), so they are not used to test translations or to place sites.
        min_score: least fraction of testable atoms a lattice translation must map onto the crystal.
        min_support: least number of testable atoms behind a translation's score.
        min_site_fraction: a site made of fewer atoms than this fraction of the median site is noise.

    Returns:
        The recovered crystal and its diagnostics, or None when no three independent translations
        are found ("no lattice found").
    """
    positions = np.asarray(positions, float).reshape(-1, 3)
    atomic_numbers = np.asarray(atomic_numbers).astype(np.int64).reshape(-1)
    if len(positions) < 4:
        return None
    lo, hi = edge_margin_angstrom, grid.box_size_angstrom - edge_margin_angstrom
    reliable = ((positions >= lo) & (positions <= hi)).all(1)
    candidates = _candidate_vectors(positions, atomic_numbers, reliable, tolerance_angstrom, np.sqrt(3) * (hi - lo))
    if len(candidates) < 3:
        return None

    # Score candidates shortest first, in chunks, until three independent good ones are found.
    good_v, good_s, good_n = np.zeros((0, 3)), np.zeros(0), np.zeros(0, dtype=np.int64)
    basis: list[int] = []
    for start in range(0, len(candidates), 256):
        chunk = candidates[start : start + 256]
        score, support, refined = _score_translations(
            chunk, positions, atomic_numbers, reliable, lo, hi, tolerance_angstrom
        )
        ok = (score >= min_score) & (support >= min_support)
        good_v = np.concatenate([good_v, refined[ok]])
        good_s, good_n = np.concatenate([good_s, score[ok]]), np.concatenate([good_n, support[ok]])
        order = np.argsort(np.linalg.norm(good_v, axis=1), kind="stable")
        good_v, good_s, good_n = good_v[order], good_s[order], good_n[order]
        basis = _shortest_basis(good_v)
        # a later chunk holds only longer candidates, so the basis cannot change once complete
        if len(basis) == 3 and np.linalg.norm(good_v[basis[2]]) <= np.linalg.norm(chunk[-1]) - tolerance_angstrom:
            break
    if len(basis) < 3:
        return None
    vectors = good_v[basis]
    if np.linalg.det(vectors) < 0:  # a right-handed cell
        vectors[2] *= -1

    lattice = Lattice(vectors)
    frac = (positions - positions[reliable].mean(0) if reliable.any() else positions) @ np.linalg.inv(vectors) % 1.0
    site_frac, site_z, counts = _merge_sites(frac, atomic_numbers, reliable, lattice, tolerance_angstrom)
    keep = counts >= min_site_fraction * np.median(counts)
    # the same fractional coordinates in pymatgen's standard orientation of the cell
    standard = Lattice.from_parameters(*lattice.parameters)
    structure = Structure(standard, [int(z) for z in site_z[keep]], site_frac[keep])
    try:
        structure = structure.get_reduced_structure("niggli")
    except Exception:  # noqa: BLE001 - a degenerate cell keeps its own basis
        pass
    return RecoveredCrystal(
        structure=structure,
        lattice_vectors=vectors,
        scores=good_s[basis],
        support=good_n[basis],
        tolerance_angstrom=tolerance_angstrom,
        site_counts=counts[keep],
        n_dropped_sites=int((~keep).sum()),
    )


def placed_lattice(lattice: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Lattice vectors (rows, Å) of a cell placed with `rotation` in the cube frame: (3, 3)."""
    return np.asarray(lattice, float) @ np.asarray(rotation, float).T


def structure_in_cell(
    positions: np.ndarray,
    atomic_numbers: np.ndarray,
    lattice: np.ndarray,
    *,
    merge_tolerance_angstrom: float = 0.5,
    grid: GridSpec | None = None,
    edge_margin_angstrom: float = 0.6,
    min_site_fraction: float = 0.3,
) -> Structure:
    """Decoded atoms wrapped into a given cell: one site per cluster of atoms, its species by majority vote.

    Atoms closer than `merge_tolerance_angstrom` once wrapped (periodic images included) are one site,
    whatever species each was decoded as; the site takes the most common species and the mean position
    of the atoms that voted for it. With `grid` (a repeating-lattice decoding, many images of each site)
    only atoms `edge_margin_angstrom` inside the cube vote and place sites when there are any, since
    the faces cut the others, and sites seen less than `min_site_fraction` times as often as the median
    site are dropped as noise.

    Args:
        positions: (K, 3) Cartesian positions in Å in the cube frame.
        atomic_numbers: (K,) Z.
        lattice: (3, 3) lattice vectors as rows in Å, in the cube frame (see `placed_lattice`).
    """
    positions = np.asarray(positions, float).reshape(-1, 3)
    species = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
    lat = Lattice(np.asarray(lattice, float))
    if len(species) == 0:
        return Structure(lat, [], [])
    reliable = np.ones(len(species), bool)
    if grid is not None:
        lo, hi = edge_margin_angstrom, grid.box_size_angstrom - edge_margin_angstrom
        inside = ((positions >= lo) & (positions <= hi)).all(1)
        if inside.any():
            reliable = inside
    frac = lat.get_fractional_coords(positions) % 1.0
    n_comp, label = connected_components(lat.get_all_distances(frac, frac) < merge_tolerance_angstrom, directed=False)
    sites_f, sites_z, counts = [], [], []
    for c in range(n_comp):
        members = label == c
        voters = members & reliable if (members & reliable).any() else members
        z = int(np.bincount(species[voters]).argmax())
        sites_f.append(_periodic_mean(frac[voters & (species == z)]))
        sites_z.append(z)
        counts.append(int(voters.sum()))
    counts = np.array(counts)
    keep = counts >= min_site_fraction * np.median(counts) if grid is not None else np.ones(len(counts), bool)
    return Structure(lat, [z for z, k in zip(sites_z, keep, strict=True) if k], np.array(sites_f)[keep])


def single_cell_structure(
    positions: np.ndarray,
    atomic_numbers: np.ndarray,
    lattice: np.ndarray | None = None,
    merge_tolerance_angstrom: float = 0.5,
) -> Molecule | Structure:
    """The crystal behind a decoded single unit cell: a Molecule without a lattice, else a Structure.

    Args:
        positions: (K, 3) Cartesian positions in Å in the cube frame.
        atomic_numbers: (K,) Z.
        lattice: (3, 3) lattice vectors as rows in Å, in the cube frame (`placed_lattice` of the input's
            cell and the rotation it was placed with), or None when no lattice is known.
        merge_tolerance_angstrom: decoded atoms that land closer than this once wrapped into the cell
            (periodic images included) become one site (`structure_in_cell`).
    """
    positions = np.asarray(positions, float).reshape(-1, 3)
    species = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
    if lattice is None:
        return Molecule([int(z) for z in species], positions)
    return structure_in_cell(positions, species, lattice, merge_tolerance_angstrom=merge_tolerance_angstrom)
