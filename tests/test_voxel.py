"""Tests of crystal_explorer.voxel: the density M of eq. (1), the species grid S and visible atoms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crystal_explorer.grid import GridSpec
from crystal_explorer.voxel import density_grid, species_grid, visible_atoms, voxel_centres

GRID = GridSpec()


def _voxel_of(position: np.ndarray, grid: GridSpec = GRID) -> tuple[int, ...]:
    return tuple(np.floor(np.asarray(position) / grid.voxel_size_angstrom).astype(int))


def test_density_integrates_to_total_z_for_atoms_well_inside(rng):
    positions = rng.uniform(4.0, 6.0, size=(5, 3))  # ≥ 4σ from every face
    z = np.array([8, 22, 38, 1, 92])
    rho = density_grid(positions, z, GRID, peak_normalised=False)
    h = GRID.voxel_size_angstrom
    assert rho.sum() * h**3 == pytest.approx(z.sum(), rel=1e-3)


def test_density_integral_on_a_non_default_grid(rng):
    grid = GridSpec(n_voxels=24, box_size_angstrom=12.0, sigma_angstrom=0.8)
    positions = rng.uniform(5.0, 7.0, size=(3, 3))
    z = np.array([3, 14, 26])
    rho = density_grid(positions, z, grid, peak_normalised=False)
    assert rho.shape == (24, 24, 24)
    assert rho.sum() * grid.voxel_size_angstrom**3 == pytest.approx(z.sum(), rel=1e-3)


def test_lone_atom_peaks_at_its_voxel_with_value_z():
    h = GRID.voxel_size_angstrom
    index = np.array([11, 17, 8])
    position = (index + 0.5) * h  # exactly on a voxel centre
    rho = density_grid(position[None], np.array([26]), GRID)
    assert np.unravel_index(rho.argmax(), rho.shape) == tuple(index)
    assert rho.max() == pytest.approx(26.0, rel=1e-5)


def test_lone_atom_off_centre_peaks_in_the_voxel_holding_it():
    position = np.array([3.21, 6.02, 4.77])
    rho = density_grid(position[None], np.array([14]), GRID)
    assert np.unravel_index(rho.argmax(), rho.shape) == _voxel_of(position)
    assert 0.9 * 14 < rho.max() <= 14.0


def test_density_follows_the_gaussian_profile():
    """M at a voxel centre a distance d from the atom is Z exp(−d²/2σ²) (peak-normalised)."""
    h = GRID.voxel_size_angstrom
    position = (np.array([15, 15, 15]) + 0.5) * h
    rho = density_grid(position[None], np.array([10]), GRID)
    for di in (1, 3, 6):
        d = di * h
        assert rho[15 + di, 15, 15] == pytest.approx(10 * np.exp(-d * d / 2), rel=1e-5)


def test_padding_atoms_contribute_nothing(rng):
    positions = rng.uniform(2, 8, size=(4, 3))
    z = np.array([6, 7, 0, 0])
    full = density_grid(positions, z, GRID)
    trimmed = density_grid(positions[:2], z[:2], GRID)
    np.testing.assert_allclose(full, trimmed, atol=1e-6)


def test_numpy_and_torch_agree_and_keep_their_library(rng):
    positions = rng.uniform(1, 9, size=(3, 7, 3))  # B=3, N=7
    z = rng.integers(0, 40, size=(3, 7))
    rho_np = density_grid(positions, z, GRID)
    rho_t = density_grid(torch.from_numpy(positions), torch.from_numpy(z), GRID)
    assert isinstance(rho_np, np.ndarray) and isinstance(rho_t, torch.Tensor)
    assert rho_np.shape == (3, 30, 30, 30) and tuple(rho_t.shape) == (3, 30, 30, 30)
    np.testing.assert_allclose(rho_np, rho_t.numpy(), rtol=1e-6, atol=1e-6)
    s_np = species_grid(positions, z, GRID)
    s_t = species_grid(torch.from_numpy(positions), torch.from_numpy(z), GRID)
    assert isinstance(s_t, torch.Tensor) and s_t.dtype == torch.int64
    np.testing.assert_array_equal(s_np, s_t.numpy())


def test_float32_torch_matches_float64_numpy(rng):
    positions = rng.uniform(1, 9, size=(6, 3))
    z = rng.integers(1, 60, size=6)
    rho64 = density_grid(positions, z, GRID)
    rho32 = density_grid(torch.tensor(positions, dtype=torch.float32), torch.from_numpy(z), GRID)
    assert rho32.dtype == torch.float32
    np.testing.assert_allclose(rho32.numpy(), rho64, rtol=1e-4, atol=1e-4)


def test_batched_equals_one_at_a_time(rng):
    positions = rng.uniform(1, 9, size=(2, 5, 3))
    z = rng.integers(1, 30, size=(2, 5))
    batch = density_grid(positions, z, GRID)
    for b in range(2):
        np.testing.assert_allclose(batch[b], density_grid(positions[b], z[b], GRID), atol=1e-6)
        np.testing.assert_array_equal(species_grid(positions, z, GRID)[b], species_grid(positions[b], z[b], GRID))


def test_species_grid_marks_voxels_within_the_radius():
    position = np.array([4.1, 5.3, 6.2])
    s = species_grid(position[None], np.array([29]), GRID)
    c = voxel_centres(GRID, dtype=torch.float64).numpy()
    d = np.sqrt(((np.stack(np.meshgrid(c, c, c, indexing="ij"), -1) - position) ** 2).sum(-1))
    np.testing.assert_array_equal(s == 29, d <= GRID.species_radius_angstrom)
    assert set(np.unique(s)) == {0, 29}
    assert (s > 0).sum() > 0


def test_species_grid_nearest_atom_wins():
    # two atoms 0.6 Å apart: their 0.5 Å balls overlap, each voxel goes to the nearer one
    a, b = np.array([5.0, 5.0, 5.0]), np.array([5.6, 5.0, 5.0])
    s = species_grid(np.stack([a, b]), np.array([8, 26]), GRID)
    c = voxel_centres(GRID, dtype=torch.float64).numpy()
    centres = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1)
    da, db = np.linalg.norm(centres - a, axis=-1), np.linalg.norm(centres - b, axis=-1)
    r = GRID.species_radius_angstrom
    expected = np.where((da <= r) & (da < db), 8, 0)
    expected = np.where((db <= r) & (db < da), 26, expected)
    tie = (da == db) & (da <= r)
    assert not tie.any()
    np.testing.assert_array_equal(s, expected)
    assert (s == 8).any() and (s == 26).any()


def test_species_grid_ignores_atoms_outside_the_cube():
    s = species_grid(np.array([[-2.0, 5.0, 5.0], [5.0, 5.0, 12.0]]), np.array([6, 7]), GRID)
    assert (s == 0).all()


def test_visible_atoms_flags_atoms_owning_a_voxel():
    # atom 0 inside; atom 1 far outside; atom 2 padding; atom 3 inside
    positions = np.array([[5.0, 5.0, 5.0], [20.0, 5.0, 5.0], [5.0, 5.0, 5.0], [2.0, 2.0, 2.0]])
    z = np.array([6, 8, 0, 14])
    seen = visible_atoms(positions, z, GRID)
    np.testing.assert_array_equal(seen, [True, False, False, True])
    seen_t = visible_atoms(torch.from_numpy(positions[None]), torch.from_numpy(z[None]), GRID)
    assert tuple(seen_t.shape) == (1, 4) and seen_t.dtype == torch.bool
    np.testing.assert_array_equal(seen_t[0].numpy(), seen)


def test_coincident_atoms_one_is_hidden():
    positions = np.array([[5.0, 5.0, 5.0], [5.0, 5.0, 5.0]])
    seen = visible_atoms(positions, np.array([6, 8]), GRID)
    assert seen.sum() == 1
