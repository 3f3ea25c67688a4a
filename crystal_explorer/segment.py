"""From a segmented grid to atoms (Hoffmann et al. 2019, §4.2.2): argmax, connected components,
majority vote for the species, centre of mass for the position."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from crystal_explorer.grid import GridSpec


class Atoms(NamedTuple):
    """Atoms in the cube frame: `positions` (K, 3) in Å, `atomic_numbers` (K,), `n_voxels` (K,) per atom."""

    positions: np.ndarray
    atomic_numbers: np.ndarray
    n_voxels: np.ndarray

    @classmethod
    def empty(cls) -> Atoms:
        return cls(np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.atomic_numbers)


def atoms_from_species_grid(
    labels: np.ndarray, grid: GridSpec = GridSpec(), weights: np.ndarray | None = None, min_voxels: int = 1
) -> Atoms:
    """Atoms from an integer grid of Z (0 = background): one atom per 6-connected component.

    Args:
        labels: (n, n, n) Z per voxel, e.g. `species_grid(...)` or the argmax of class scores.
        weights: optional (n, n, n) non-negative weights for the centre of mass (e.g. the decoded
            density); uniform if None.
        min_voxels: drop components smaller than this (1 keeps everything).
    """
    labels = np.asarray(labels)
    components, n_comp = ndimage.label(labels > 0)
    if n_comp == 0:
        return Atoms.empty()
    flat = components.ravel()
    z = labels.ravel().astype(np.int64)
    n_classes = int(z.max()) + 1
    # majority vote: histogram of Z within each component
    votes = np.bincount(flat * n_classes + z, minlength=(n_comp + 1) * n_classes).reshape(n_comp + 1, n_classes)
    votes[:, 0] = 0
    species = votes[1:].argmax(1)
    w = np.ones_like(z, dtype=float) if weights is None else np.clip(np.asarray(weights, float).ravel(), 0, None)
    w = np.where(flat > 0, w + 1e-12, 0.0)
    centres = (np.indices(labels.shape).reshape(3, -1).T + 0.5) * grid.voxel_size_angstrom
    mass = np.bincount(flat, weights=w, minlength=n_comp + 1)[1:]
    com = np.stack([np.bincount(flat, weights=w * centres[:, a], minlength=n_comp + 1)[1:] for a in range(3)], 1)
    count = np.bincount(flat, minlength=n_comp + 1)[1:]
    keep = count >= min_voxels
    return Atoms(com[keep] / mass[keep, None], species[keep], count[keep])


def atoms_from_scores(scores: np.ndarray, grid: GridSpec = GridSpec(), weights: np.ndarray | None = None) -> Atoms:
    """Atoms from class scores (C, n, n, n) whose class c is Z = c (class 0 is background)."""
    return atoms_from_species_grid(np.asarray(scores).argmax(0), grid, weights)
