"""Tests of crystal_explorer.metrics: per-crystal comparison and the metrics.json summary on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crystal_explorer.metrics import compare, nearest_distances, reduced_composition, species_by_z, summarise

ISSUE_2_KEYS = {
    "atoms_within_0.5A", "pred_atoms_within_0.5A", "distance_percentiles_true_to_pred",
    "distance_percentiles_pred_to_true", "count_exact", "count_within_2", "species_exact", "species_within_2",
    "voxel_mse",
}

TRUE = np.array([[1.0, 1.0, 1.0], [5.0, 5.0, 5.0], [8.0, 2.0, 6.0]])
TRUE_Z = np.array([8, 26, 14])


def test_nearest_distances_and_empty_reference():
    d, i = nearest_distances(np.array([[0.0, 0, 0], [3.0, 4.0, 0]]), np.array([[0.0, 0, 1], [3.0, 0, 0]]))
    np.testing.assert_allclose(d, [1.0, 4.0])
    np.testing.assert_array_equal(i, [0, 1])
    d, i = nearest_distances(np.ones((2, 3)), np.zeros((0, 3)))
    assert np.isinf(d).all() and (i == -1).all()


def test_perfect_prediction():
    c = compare(TRUE, TRUE_Z, TRUE.copy(), TRUE_Z.copy(), true_density=np.ones((4, 4, 4)), pred_density=np.ones((4, 4, 4)))
    np.testing.assert_allclose(c.true_to_pred, 0)
    assert c.n_true == c.n_pred == 3 and c.voxel_mse == 0.0
    np.testing.assert_array_equal(c.species_pairs, np.stack([TRUE_Z, TRUE_Z], 1))
    m = summarise([c])
    assert ISSUE_2_KEYS <= set(m)
    assert m["atoms_within_0.5A"] == m["pred_atoms_within_0.5A"] == 1.0
    assert m["count_exact"] == m["count_within_2"] == m["species_exact"] == m["species_within_2"] == 1.0
    assert m["distance_percentiles_true_to_pred"] == {"50": 0.0, "75": 0.0, "90": 0.0}
    assert m["voxel_mse"] == 0.0


def test_shifted_missing_extra_and_wrong_species():
    # atom 0 found 0.3 Å off with Z off by one; atom 1 found 0.4 Å off with Z off by 4; atom 2 missed;
    # plus one spurious atom 2 Å from atom 2
    pred = np.array([[1.3, 1.0, 1.0], [5.0, 5.4, 5.0], [8.0, 2.0, 8.0]])
    pred_z = np.array([9, 30, 14])
    c = compare(TRUE, TRUE_Z, pred, pred_z, true_density=np.zeros(8), pred_density=np.full(8, 2.0))
    np.testing.assert_allclose(c.true_to_pred, [0.3, 0.4, 2.0], atol=1e-12)
    np.testing.assert_allclose(c.pred_to_true, [0.3, 0.4, 2.0], atol=1e-12)
    np.testing.assert_array_equal(c.species_pairs, [[8, 9], [26, 30]])
    assert c.voxel_mse == pytest.approx(4.0)
    m = summarise([c])
    assert m["atoms_within_0.5A"] == pytest.approx(2 / 3)
    assert m["species_exact"] == 0.0
    assert m["species_within_2"] == 0.5
    assert m["count_exact"] == 1.0  # 3 predicted for 3 true, even though one is wrong
    assert m["distance_percentiles_true_to_pred"]["50"] == pytest.approx(0.4)


def test_count_fractions_over_several_crystals():
    one = compare(TRUE, TRUE_Z, TRUE, TRUE_Z)
    two_missing = compare(TRUE, TRUE_Z, TRUE[:1], TRUE_Z[:1])
    three_missing = compare(TRUE, TRUE_Z, np.zeros((0, 3)), np.zeros(0, int))
    m = summarise([one, two_missing, three_missing])
    assert m["count_exact"] == pytest.approx(1 / 3)
    assert m["count_within_2"] == pytest.approx(2 / 3)
    assert m["n_true_atoms"] == 9 and m["n_pred_atoms"] == 4
    assert m["voxel_mse"] is None  # no densities given


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_missing_atoms_give_an_infinite_percentile_not_nan():
    one_missing = summarise([compare(TRUE, TRUE_Z, TRUE[:2], TRUE_Z[:2])])["distance_percentiles_true_to_pred"]
    assert one_missing["50"] == 0.0
    assert one_missing["90"] > 0.5  # the unmatched atom's nearest prediction is another atom's
    missing = compare(TRUE, TRUE_Z, np.zeros((0, 3)), np.zeros(0, int))
    p = summarise([missing, compare(TRUE, TRUE_Z, TRUE[:1], TRUE_Z[:1])])["distance_percentiles_true_to_pred"]
    assert not any(math.isnan(v) for v in p.values())
    assert math.isinf(p["90"])


def test_reference_atoms_count_for_predictions_but_not_for_recall():
    outside = np.array([[10.3, 5.0, 5.0]])  # a lattice image just outside the cube
    pred = np.vstack([TRUE, outside + [0.1, 0, 0]])
    pred_z = np.append(TRUE_Z, 11)
    c = compare(TRUE, TRUE_Z, pred, pred_z, reference_positions=np.vstack([TRUE, outside]),
                reference_numbers=np.append(TRUE_Z, 11))
    assert c.n_true == 3 and c.n_pred == 4
    assert (c.pred_to_true <= 0.5).all()
    assert len(c.species_pairs) == 4


def test_summarise_of_nothing():
    assert summarise([]) == {}


def test_formula_exact_compares_reduced_compositions():
    pos = np.array([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2], [2, 2, 2]])
    lafeo3 = np.array([57, 26, 8, 8, 8])
    assert reduced_composition(np.concatenate([lafeo3, lafeo3])) == reduced_composition(lafeo3) == ((8, 3), (26, 1), (57, 1))
    assert compare(pos, lafeo3, pos, lafeo3).formula_exact
    crteo3 = np.array([24, 52, 8, 8, 8])  # every atom in place, the wrong elements (issue 11)
    assert not compare(pos, lafeo3, pos, crteo3).formula_exact
    assert not compare(pos, lafeo3, pos[:4], lafeo3[:4]).formula_exact
    summary = summarise([compare(pos, lafeo3, pos, lafeo3), compare(pos, lafeo3, pos, crteo3)])
    assert summary["formula_exact"] == 0.5


def test_species_by_true_z_counts_exact_and_the_usual_mistake():
    pairs = np.array([[8, 8], [8, 8], [7, 8], [7, 8], [7, 7], [26, 27]])
    table = species_by_z(pairs)
    assert list(table) == ["7", "8", "26"]
    assert table["7"] == {"n": 3, "exact": 1 / 3, "called": 8}  # nitrogen mostly called oxygen
    assert table["8"] == {"n": 2, "exact": 1.0, "called": 8}
    assert table["26"]["called"] == 27
    assert species_by_z(np.zeros((0, 2))) == {}
    pos = np.array([[0.0, 0, 0], [2, 0, 0]])
    summary = summarise([compare(pos, np.array([7, 8]), pos, np.array([8, 8]))])
    assert summary["species_by_true_z"]["7"]["exact"] == 0.0
