"""Tests of crystal_explorer.placement: rotations, the compact single cell and the repeating lattice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from crystal_explorer.grid import GridSpec
from crystal_explorer.placement import (
    compact_cluster,
    fit_rotation,
    lattice_positions,
    random_rotations,
    single_cell_positions,
)
from crystal_explorer.structures import crystal_arrays
from crystal_explorer.voxel import density_grid

GRID = GridSpec()


def test_random_rotations_are_proper_and_orthonormal(rng):
    r = random_rotations(50, rng)
    assert r.shape == (50, 3, 3)
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", r, r), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)


def test_random_rotations_cover_so3(rng):
    """Uniform on SO(3): the mean of the rotated x axis is near zero."""
    r = random_rotations(4000, rng)
    assert np.abs(r[:, :, 0].mean(0)).max() < 0.05


@pytest.mark.parametrize("name", ["rock_salt", "perovskite", "hexagonal", "monoclinic"])
def test_compact_cluster_one_image_per_atom(name, request):
    structure = request.getfixturevalue(name)
    arrays = crystal_arrays(structure)
    cluster = compact_cluster(arrays.lattice, arrays.frac_coords)
    assert cluster.shape == (arrays.n_atoms, 3)
    np.testing.assert_allclose(cluster.mean(0), 0.0, atol=1e-10)
    # each cluster atom is an image of its own atom: the difference is a whole lattice vector
    frac_cluster = cluster @ np.linalg.inv(arrays.lattice)
    delta = frac_cluster - arrays.frac_coords
    delta -= delta[0]  # the centring shift is common to all atoms
    np.testing.assert_allclose(delta, np.round(delta), atol=1e-8)
    # the cluster is compact: no atom farther from its mean than the cell's half diagonal
    half_diagonal = 0.5 * np.linalg.norm(arrays.lattice.sum(0))
    assert np.linalg.norm(cluster, axis=1).max() <= half_diagonal + 1e-9


def test_pairwise_distances_survive_rotation(monoclinic, rng):
    arrays = crystal_arrays(monoclinic)
    cluster = compact_cluster(arrays.lattice, arrays.frac_coords)
    before = pdist(cluster)
    for _ in range(5):
        rotation = fit_rotation(cluster, rng, GRID)
        assert rotation is not None
        placed = single_cell_positions(cluster, rotation, GRID)
        np.testing.assert_allclose(pdist(placed), before, atol=1e-10)
        np.testing.assert_allclose(placed.mean(0), GRID.centre_angstrom, atol=1e-10)
        assert ((placed >= 0.5 - 1e-9) & (placed <= GRID.box_size_angstrom - 0.5 + 1e-9)).all()


def test_fit_rotation_returns_none_for_a_cluster_too_big(rng):
    cluster = np.array([[-6.0, 0, 0], [6.0, 0, 0], [0, 6.0, 0], [0, -6.0, 0], [0, 0, 6.0], [0, 0, -6.0]])
    assert fit_rotation(cluster, rng, GRID) is None


def test_fit_rotation_keeps_an_elongated_cluster_inside(rng):
    # a 9 Å rod does not fit every orientation of a 10 Å cube (half-diagonal limit) but fits some
    cluster = np.array([[-4.6, 0, 0], [4.6, 0, 0]])
    rotation = fit_rotation(cluster, rng, GRID, n_tries=256)
    assert rotation is not None
    placed = single_cell_positions(cluster, rotation, GRID)
    assert ((placed >= 0.5 - 1e-9) & (placed <= 9.5 + 1e-9)).all()


def _inside_density(lattice, frac, z, shift=None, rotation=None):
    pos, zz = lattice_positions(lattice, frac, z, rotation=rotation, shift_frac=shift, grid=GRID)
    return density_grid(pos, zz, GRID)


@pytest.mark.parametrize("name", ["perovskite", "hexagonal", "monoclinic"])
def test_lattice_periodicity_full_lattice_vector_shift(name, request, rng):
    arrays = crystal_arrays(request.getfixturevalue(name))
    rotation = random_rotations(1, rng)[0]
    shift = rng.random(3)
    base = _inside_density(arrays.lattice, arrays.frac_coords, arrays.atomic_numbers, shift, rotation)
    for step in ([1, 0, 0], [0, -1, 0], [2, 1, -1]):
        moved = _inside_density(arrays.lattice, arrays.frac_coords, arrays.atomic_numbers, shift + np.array(step),
                                rotation)
        np.testing.assert_allclose(moved, base, rtol=1e-9, atol=1e-9)


def test_lattice_canonical_placement_has_an_atom_at_the_origin(perovskite):
    arrays = crystal_arrays(perovskite, reduce=False)
    pos, z = lattice_positions(arrays.lattice, arrays.frac_coords, arrays.atomic_numbers, grid=GRID)
    at_origin = np.linalg.norm(pos, axis=1) < 1e-9
    assert at_origin.sum() == 1 and z[at_origin][0] == 38  # Sr at (0, 0, 0)


def test_lattice_atom_count_is_exact_for_an_axis_aligned_cube(perovskite):
    """Cubic cell, corner at the origin: along each axis the images f·a + n·a inside [−m, L + m] are countable."""
    arrays = crystal_arrays(perovskite, reduce=False)
    a = 3.905
    pos, z = lattice_positions(arrays.lattice, arrays.frac_coords, arrays.atomic_numbers, grid=GRID)
    lo, hi = -4 * GRID.sigma_angstrom, GRID.box_size_angstrom + 4 * GRID.sigma_angstrom
    n = np.arange(-5, 6)

    def per_axis(f: float) -> int:
        x = (f + n) * a
        return int(((x >= lo) & (x <= hi)).sum())

    expected = sum(np.prod([per_axis(f) for f in frac]) for frac in arrays.frac_coords)
    assert len(pos) == expected
    assert ((pos >= lo) & (pos <= hi)).all()
    assert (z == 38).sum() == per_axis(0.0) ** 3


def test_lattice_shift_moves_atoms_by_the_cartesian_shift(hexagonal):
    arrays = crystal_arrays(hexagonal)
    shift = np.array([0.25, 0.0, 0.0])
    p0, _ = lattice_positions(arrays.lattice, arrays.frac_coords, arrays.atomic_numbers, grid=GRID, margin_angstrom=0)
    p1, _ = lattice_positions(arrays.lattice, arrays.frac_coords, arrays.atomic_numbers, shift_frac=shift,
                              grid=GRID, margin_angstrom=0)
    moved = p0 + shift @ arrays.lattice
    inside = ((moved >= 0.5) & (moved <= 9.5)).all(1)
    d = np.linalg.norm(moved[inside][:, None] - p1[None], axis=-1).min(1)
    assert inside.sum() > 10 and d.max() < 1e-9


def test_lattice_rotation_preserves_nearest_neighbour_distance(rock_salt, rng):
    arrays = crystal_arrays(rock_salt)
    rotation = random_rotations(1, rng)[0]
    pos, _ = lattice_positions(arrays.lattice, arrays.frac_coords, arrays.atomic_numbers, rotation=rotation, grid=GRID)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(d.min(), 5.64 / 2, rtol=1e-9)
