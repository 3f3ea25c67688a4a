"""Tests of crystal_explorer.segment: atoms recovered from a species grid (argmax → components → atoms)."""

from __future__ import annotations

import numpy as np
import pytest

from crystal_explorer.grid import GridSpec
from crystal_explorer.placement import compact_cluster, fit_rotation, single_cell_positions
from crystal_explorer.segment import atoms_from_scores, atoms_from_species_grid
from crystal_explorer.voxel import species_grid

GRID = GridSpec()


def _match(true_pos, true_z, atoms, tol=0.1):
    assert len(atoms) == len(true_z)
    d = np.linalg.norm(true_pos[:, None] - atoms.positions[None], axis=-1)
    nearest = d.argmin(1)
    assert sorted(nearest.tolist()) == list(range(len(true_z)))  # one to one
    assert d.min(1).max() < tol
    np.testing.assert_array_equal(atoms.atomic_numbers[nearest], true_z)


def test_true_species_grid_recovers_the_perovskite_single_cell(perovskite_arrays, rng):
    cluster = compact_cluster(perovskite_arrays.lattice, perovskite_arrays.frac_coords)
    for _ in range(3):
        positions = single_cell_positions(cluster, fit_rotation(cluster, rng, GRID), GRID)
        atoms = atoms_from_species_grid(species_grid(positions, perovskite_arrays.atomic_numbers, GRID), GRID)
        _match(positions, perovskite_arrays.atomic_numbers, atoms)


def test_true_species_grid_recovers_random_well_separated_atoms(rng):
    positions = np.array([[2.1, 2.3, 2.7], [7.6, 2.2, 5.1], [5.05, 7.4, 7.9], [4.9, 5.2, 3.3], [2.6, 7.7, 5.0],
                          [7.8, 7.1, 2.4], [8.2, 4.7, 8.1]])
    z = np.array([1, 8, 26, 56, 79, 92, 3])
    atoms = atoms_from_species_grid(species_grid(positions, z, GRID), GRID)
    _match(positions, z, atoms)
    assert (atoms.n_voxels > 0).all()


def test_empty_grid_gives_no_atoms():
    atoms = atoms_from_species_grid(np.zeros((30, 30, 30), dtype=np.int64), GRID)
    assert len(atoms) == 0
    assert atoms.positions.shape == (0, 3)


def test_majority_vote_and_centre_of_mass():
    labels = np.zeros((30, 30, 30), dtype=np.int64)
    labels[10:13, 10:13, 10:13] = 8
    labels[11, 11, 12] = 7  # one dissenting voxel in the same component
    atoms = atoms_from_species_grid(labels, GRID)
    assert len(atoms) == 1
    assert atoms.atomic_numbers[0] == 8
    assert atoms.n_voxels[0] == 27
    np.testing.assert_allclose(atoms.positions[0], 11.5 * GRID.voxel_size_angstrom)


def test_weights_pull_the_centre_of_mass():
    labels = np.zeros((30, 30, 30), dtype=np.int64)
    labels[5:7, 5, 5] = 14
    weights = np.zeros((30, 30, 30))
    weights[5, 5, 5], weights[6, 5, 5] = 3.0, 1.0
    atoms = atoms_from_species_grid(labels, GRID, weights=weights)
    h = GRID.voxel_size_angstrom
    assert atoms.positions[0, 0] == pytest.approx((0.75 * 5.5 + 0.25 * 6.5) * h)


def test_min_voxels_drops_specks():
    labels = np.zeros((30, 30, 30), dtype=np.int64)
    labels[3, 3, 3] = 6
    labels[20:23, 20:23, 20:23] = 6
    assert len(atoms_from_species_grid(labels, GRID)) == 2
    assert len(atoms_from_species_grid(labels, GRID, min_voxels=2)) == 1


def test_diagonal_neighbours_are_separate_atoms():
    labels = np.zeros((30, 30, 30), dtype=np.int64)
    labels[5, 5, 5] = 6
    labels[6, 6, 6] = 6  # touches only at a corner: 6-connectivity keeps them apart
    assert len(atoms_from_species_grid(labels, GRID)) == 2


def test_atoms_from_scores_takes_the_argmax(rng):
    positions = np.array([[3.0, 3.0, 3.0], [7.0, 6.0, 5.0]])
    z = np.array([5, 9])
    labels = species_grid(positions, z, GRID)
    scores = rng.normal(0, 0.1, size=(12, 30, 30, 30))  # 12 classes: Z up to 11
    one_hot = np.moveaxis(np.eye(12)[labels], -1, 0)
    atoms = atoms_from_scores(scores + 5 * one_hot, GRID)
    _match(positions, z, atoms)


def _ball_labels(centres: np.ndarray, radius: float, z: int, grid: GridSpec = GridSpec()) -> np.ndarray:
    c = (np.indices((grid.n_voxels,) * 3).reshape(3, -1).T + 0.5) * grid.voxel_size_angstrom
    near = (np.linalg.norm(c[:, None] - centres[None], axis=-1) <= radius).any(1)
    return np.where(near, z, 0).reshape((grid.n_voxels,) * 3)


def test_watershed_split_separates_two_joined_atoms_and_keeps_a_lone_one():
    # two carbons 1.5 Å apart whose 0.8 Å balls overlap into one component, and a lone atom
    centres = np.array([[4.25, 5.0, 5.0], [5.75, 5.0, 5.0]])
    labels = _ball_labels(centres, 0.8, 6) + _ball_labels(np.array([[2.0, 2.0, 8.0]]), 0.8, 14)
    assert len(atoms_from_species_grid(labels)) == 2  # the paper's rule: one atom per component
    atoms = atoms_from_species_grid(labels, split_angstrom=1.0)
    assert len(atoms) == 3
    order = np.argsort(atoms.positions[:, 2] * 100 + atoms.positions[:, 0])
    np.testing.assert_allclose(atoms.positions[order][:2], centres, atol=0.2)
    assert sorted(atoms.atomic_numbers.tolist()) == [6, 6, 14]
    assert atoms.votes.shape == (3, 15) and (atoms.votes.sum(1) == atoms.n_voxels).all()


def test_watershed_split_leaves_the_true_species_grid_of_a_perovskite_alone(perovskite_arrays, rng):
    cluster = compact_cluster(perovskite_arrays.lattice, perovskite_arrays.frac_coords)
    positions = single_cell_positions(cluster, fit_rotation(cluster, rng, GRID), GRID)
    s = species_grid(positions, perovskite_arrays.atomic_numbers, GRID)
    atoms = atoms_from_species_grid(s, GRID, split_angstrom=1.0)
    _match(positions, perovskite_arrays.atomic_numbers, atoms)
