"""A crystal placed in the cube as the single unit cell or the repeating lattice, and batches of grids from it."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import torch

from crystal_explorer.arrays import CrystalArrays
from crystal_explorer.grid import GridSpec
from crystal_explorer.placement import (
    compact_cluster,
    fit_rotation,
    lattice_positions,
    random_rotations,
    single_cell_positions,
)
from crystal_explorer.voxel import density_grid, species_grid

Representation = Literal["single", "lattice"]
REPRESENTATIONS = ("single", "lattice")


class Placement(NamedTuple):
    """Atoms of one crystal in the cube frame: positions (M, 3) Å, Z (M,), and how they were placed."""

    positions: np.ndarray
    atomic_numbers: np.ndarray
    rotation: np.ndarray  # (3, 3)
    shift_frac: np.ndarray  # (3,) zero for the single cell


def check_representation(representation: str) -> None:
    if representation not in REPRESENTATIONS:
        raise ValueError(f"Invalid {representation=}, valid options are {REPRESENTATIONS}")


def place(
    crystal: CrystalArrays,
    representation: Representation,
    rng: np.random.Generator,
    grid: GridSpec = GridSpec(),
    canonical: bool = False,
) -> Placement | None:
    """Place a crystal with a random rotation (and, for the lattice, a random shift); None if it cannot fit.

    `canonical` gives the unrotated placement (for the lattice: a cell corner at the cube origin).
    """
    check_representation(representation)
    if representation == "single":
        cluster = compact_cluster(crystal.lattice, crystal.frac_coords)
        rotation = np.eye(3) if canonical else fit_rotation(cluster, rng, grid)
        if rotation is None or (canonical and np.abs(cluster).max() > grid.centre_angstrom - 0.5):
            return None
        return Placement(single_cell_positions(cluster, rotation, grid), crystal.atomic_numbers, rotation, np.zeros(3))
    rotation = np.eye(3) if canonical else random_rotations(1, rng)[0]
    shift = np.zeros(3) if canonical else rng.random(3)
    pos, z = lattice_positions(crystal.lattice, crystal.frac_coords, crystal.atomic_numbers, rotation, shift, grid)
    return Placement(pos, z, rotation, shift)


def pad_batch(placements: list[Placement]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack placements into positions (B, N, 3) float32 and Z (B, N) int64, padded with Z = 0."""
    n = max(1, max(len(p.atomic_numbers) for p in placements))
    pos = np.zeros((len(placements), n, 3), np.float32)
    z = np.zeros((len(placements), n), np.int64)
    for i, p in enumerate(placements):
        pos[i, : len(p.atomic_numbers)] = p.positions
        z[i, : len(p.atomic_numbers)] = p.atomic_numbers
    return torch.from_numpy(pos), torch.from_numpy(z)


def batch_grids(
    positions: torch.Tensor, atomic_numbers: torch.Tensor, grid: GridSpec = GridSpec(), density_scale: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Network input and target: density (B, 1, n, n, n) peak-normalised / `density_scale`, species (B, n, n, n)."""
    with torch.autocast(device_type=positions.device.type, enabled=False):
        rho = density_grid(positions.float(), atomic_numbers, grid) / density_scale
        species = species_grid(positions.float(), atomic_numbers, grid)
    return rho[:, None], species
