"""Species from physics: the Gaussian fit and the vote/amplitude rule."""

from __future__ import annotations

import numpy as np
import pytest

from crystal_explorer.density_fit import (
    FitConfig,
    MergedSplit,
    SpeciesRule,
    fewest_elements,
    fit_amplitudes,
    fit_atoms,
    gaussian_density,
    species_from_amplitudes,
    split_merged_atoms,
)
from crystal_explorer.grid import GridSpec
from crystal_explorer.segment import Atoms
from crystal_explorer.voxel import density_grid

GRID = GridSpec()


def _two_atoms() -> tuple[np.ndarray, np.ndarray]:
    return np.array([[4.0, 5.1, 4.9], [6.0, 5.0, 5.2]]), np.array([8, 26])  # O and Fe, 2.03 Å apart


def test_gaussian_density_is_eq_1_in_z_units():
    pos, z = _two_atoms()
    np.testing.assert_allclose(gaussian_density(pos, z.astype(float), GRID), density_grid(pos, z, GRID), rtol=1e-5, atol=1e-5)


def test_fit_recovers_two_overlapping_atoms_from_displaced_starts():
    pos, z = _two_atoms()
    rho = density_grid(pos, z, GRID)
    start = Atoms(pos + np.array([[0.3, -0.2, 0.1], [-0.25, 0.2, -0.3]]), np.array([1, 1]), np.array([1, 1]))
    result = fit_atoms(rho, start, GRID)
    np.testing.assert_allclose(result.atoms.positions, pos, atol=0.02)
    np.testing.assert_allclose(result.amplitudes, z, atol=0.05)
    assert result.atoms.atomic_numbers.tolist() == [8, 26]
    assert result.residual < 1e-3


def test_least_squares_amplitudes_separate_overlapping_tails():
    pos, z = _two_atoms()
    rho = density_grid(pos, z, GRID)
    np.testing.assert_allclose(fit_amplitudes(rho, pos, GRID), z, atol=1e-3)
    # the peak height alone overstates the lighter atom: its heavy neighbour's tail adds to it
    peak = rho[tuple(np.floor(pos[0] / GRID.voxel_size_angstrom).astype(int))]
    assert peak > z[0] + 1


def _carbon_votes(k: int) -> np.ndarray:
    votes = np.zeros((k, 95), np.int64)
    votes[:, 6] = 30
    return votes


def test_a_carbon_blob_weighing_like_two_carbons_is_cut_into_the_two():
    pair = np.array([[4.3, 5.0, 5.0], [5.75, 5.0, 5.0]])  # a C–C bond, 1.45 Å: one blob for the U-Net
    lone = np.array([[5.0, 8.0, 5.0]])
    rho = density_grid(np.vstack([pair, lone]), np.array([6, 6, 6]), GRID)
    blob = Atoms(np.vstack([pair.mean(0), lone[0]]), np.array([6, 6]), np.array([40, 40]), _carbon_votes(2))
    amplitudes = fit_amplitudes(rho, blob.positions, GRID)
    assert amplitudes[0] > 1.3 * 6 and abs(amplitudes[1] - 6) < 0.5
    atoms, amps = split_merged_atoms(rho, blob, amplitudes, GRID, MergedSplit(ratio=1.3, min_voxels=25))
    assert len(atoms) == 3 and atoms.atomic_numbers.tolist() == [6, 6, 6]
    np.testing.assert_allclose(np.sort(atoms.positions[:2], axis=0), np.sort(pair, axis=0), atol=0.1)
    np.testing.assert_allclose(atoms.positions[2], lone[0])
    np.testing.assert_allclose(amps[:2], [6, 6], atol=0.3)


def test_a_merged_split_leaves_small_blobs_and_heavy_atoms_whole():
    pair = np.array([[4.3, 5.0, 5.0], [5.75, 5.0, 5.0]])
    rho = density_grid(pair, np.array([6, 6]), GRID)
    blob = Atoms(pair.mean(0)[None], np.array([6]), np.array([20]), _carbon_votes(1))
    amplitudes = fit_amplitudes(rho, blob.positions, GRID)
    assert len(split_merged_atoms(rho, blob, amplitudes, GRID, MergedSplit(min_voxels=25))[0]) == 1  # too few voxels
    iron_votes = np.zeros((1, 95), np.int64)
    iron_votes[0, 26] = 40
    heavy = Atoms(pair.mean(0)[None], np.array([26]), np.array([40]), iron_votes)
    assert len(split_merged_atoms(rho, heavy, np.array([40.0]), GRID, MergedSplit(min_voxels=25))[0]) == 1
    with pytest.raises(ValueError, match="ratio > 1"):
        MergedSplit(ratio=1.0)


def test_an_atom_with_no_density_behind_it_is_dropped():
    pos, z = _two_atoms()
    rho = density_grid(pos[:1], z[:1], GRID)
    start = Atoms(np.vstack([pos[0], [8.5, 8.5, 8.5]]), np.array([8, 8]), np.array([1, 1]))
    result = fit_atoms(rho, start, GRID, FitConfig(min_amplitude=0.5))
    assert len(result.atoms) == 1 and result.atoms.atomic_numbers[0] == 8


def test_species_rule_trusts_votes_for_light_atoms_and_the_amplitude_for_heavy_ones():
    votes = np.zeros((4, 95))
    votes[0, 6] = 10  # a carbon whose amplitude came out high (overlapping neighbours): the votes hold
    votes[1, 8] = 10  # an oxygen that weighs like fluorine: the votes hold
    votes[2, 52] = 10  # the U-Net says Te but the density weighs like Fe: the amplitude wins
    votes[3, 22] = 10  # Ti voted, amplitude between Ti and V but nearer Ti
    z = species_from_amplitudes(np.array([8.6, 9.2, 26.1, 22.4]), votes)
    assert z.tolist() == [6, 8, 26, 22]


def test_species_rule_votes_break_a_tie_in_the_amplitude():
    votes = np.zeros((2, 95))
    votes[0, 23] = 10
    votes[1, 22] = 10
    assert species_from_amplitudes(np.array([22.5, 22.5]), votes).tolist() == [23, 22]


def test_votes_first_rule_is_the_earlier_rule():
    votes = np.zeros((1, 95))
    votes[0, 22] = 10  # a heavy atom's vote outweighs an amplitude 1.2 away under the earlier rule only
    assert species_from_amplitudes(np.array([23.2]), votes, rule=SpeciesRule.votes_first()).tolist() == [22]
    assert species_from_amplitudes(np.array([23.2]), votes).tolist() == [23]


def test_species_rule_from_dict_rejects_unknown_keys():
    assert SpeciesRule.from_dict({"light_max_z": 10}).light_max_z == 10
    assert SpeciesRule.from_dict(None) == SpeciesRule()
    with pytest.raises(ValueError, match="unknown species rule keys"):
        SpeciesRule.from_dict({"sigma": 1})


def test_max_elements_caps_a_decodings_distinct_elements_keeping_the_likeliest_set():
    amplitudes = np.array([26.2, 25.8, 26.1, 8.1, 7.9, 8.2, 8.0, 12.4, 30.6])  # Fe ×3, O ×4, one Mg-ish, one Zn-ish
    plain = species_from_amplitudes(amplitudes, None)
    assert len(set(plain.tolist())) == 4
    capped = species_from_amplitudes(amplitudes, None, rule=SpeciesRule(max_elements=2))
    assert set(capped.tolist()) == {26, 8}  # the two elements most atoms back
    assert capped.tolist() == [26, 26, 26, 8, 8, 8, 8, 8, 26]  # each stray atom takes the nearer of the two
    # a cap the decoding already meets changes nothing
    np.testing.assert_array_equal(species_from_amplitudes(amplitudes, None, rule=SpeciesRule(max_elements=4)), plain)
    with pytest.raises(ValueError, match="max_elements"):
        SpeciesRule(max_elements=0)


def test_element_penalty_merges_an_element_only_when_it_costs_the_atoms_less_than_the_penalty():
    # three Fe and one atom whose amplitude sits nearer Mn: 0.2 nats more likely as Mn than as Fe (σ_Z 0.7)
    amplitudes = np.array([26.2, 25.8, 26.1, 25.4])
    assert species_from_amplitudes(amplitudes, None).tolist() == [26, 26, 26, 25]
    assert species_from_amplitudes(amplitudes, None, rule=SpeciesRule(element_penalty=1.0)).tolist() == [26] * 4
    # far strays (Mg-ish, Zn-ish; about 20 nats each to merge) stay unless the penalty outweighs that
    strays = np.array([26.2, 25.8, 26.1, 8.1, 7.9, 8.2, 8.0, 12.4, 30.6])
    assert len(set(species_from_amplitudes(strays, None, rule=SpeciesRule(element_penalty=5.0)).tolist())) == 4
    assert set(species_from_amplitudes(strays, None, rule=SpeciesRule(element_penalty=25.0)).tolist()) == {26, 8}
    assert species_from_amplitudes(np.zeros(0), None, rule=SpeciesRule(element_penalty=1.0)).tolist() == []
    with pytest.raises(ValueError, match="element_penalty"):
        SpeciesRule(element_penalty=-1.0)


def test_fewest_elements_never_picks_the_no_atom_column():
    log_p = np.log(np.array([[0.9, 0.1, 0.0], [0.9, 0.0, 0.1]]) + 1e-12)  # column 0 (no atom) likeliest everywhere
    assert 0 not in fewest_elements(log_p, 1).tolist()


def test_species_rule_without_votes_rounds_and_stays_in_range():
    assert species_from_amplitudes(np.array([0.1, 7.6, 130.0]), None, max_z=94).tolist() == [1, 8, 94]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_density_leaves_the_atoms_as_they_are(bad):
    pos, z = _two_atoms()
    rho = density_grid(pos, z, GRID)
    rho[0, 0, 0] = bad
    start = Atoms(pos, z, np.array([1, 1]))
    result = fit_atoms(rho, start, GRID)
    assert result.atoms is start
