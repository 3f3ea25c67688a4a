"""train.periodic_average: lattice translations and the average over them, on densities with a known answer."""

from __future__ import annotations

import numpy as np
import torch

from crystal_explorer.grid import GridSpec
from crystal_explorer.placement import lattice_positions
from crystal_explorer.voxel import density_grid
from train.periodic_average import lattice_translations, periodic_mean

GRID = GridSpec()


def _density(positions, z) -> np.ndarray:
    return density_grid(torch.tensor(positions, dtype=torch.float32)[None], torch.tensor(z)[None], GRID)[0].numpy()


def test_translations_of_a_cubic_cell():
    t = lattice_translations(np.eye(3) * 4.0, GRID)
    assert (np.abs(t) < GRID.box_size_angstrom).all()
    assert any(np.allclose(v, 0) for v in t)
    # multiples of 4 Å shorter than 10 Å on each axis: −8 … 8, five values per axis
    assert len(t) == 5**3
    # a skewed cell: every translation is an integer combination of its rows
    skewed = np.array([[3.0, 0, 0], [1.5, 3.0, 0], [0.5, 0.5, 3.5]])
    coefficients = lattice_translations(skewed, GRID) @ np.linalg.inv(skewed)
    np.testing.assert_allclose(coefficients, np.round(coefficients), atol=1e-9)


def test_a_periodic_density_is_kept_and_a_lone_atom_is_damped():
    # 10, 10 and 15 voxels: translations land on voxel centres; unequal, so the axis order is tested too
    lattice = np.diag([1 / 3, 1 / 3, 1 / 2]) * GRID.box_size_angstrom
    positions, z = lattice_positions(lattice, np.array([[0.5, 0.5, 0.5]]), np.array([8]), grid=GRID)
    periodic = _density(positions, z)
    averaged = periodic_mean(periodic[None], lattice, GRID)[0]
    inner = (slice(5, 25),) * 3  # away from the faces, where atoms outside the margin are missing
    np.testing.assert_allclose(averaged[inner], periodic[inner], rtol=0.02, atol=1e-3)
    lone = _density(np.array([[5.0, 5.0, 5.0]]), np.array([8]))
    damped = periodic_mean(lone[None], lattice, GRID)[0]
    assert damped.max() < 0.2 * lone.max()
    # the average keeps the total weight of a field it spreads: a constant stays constant
    np.testing.assert_allclose(periodic_mean(np.ones((2, 30, 30, 30)), lattice, GRID), 1.0, rtol=1e-6)
