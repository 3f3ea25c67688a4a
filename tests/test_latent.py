"""The latent API on the shipped single-cell model (CPU, a few seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.latent import CrystalModel, slerp
from crystal_explorer.segment import Atoms
from crystal_explorer.structures import crystal_arrays

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.fixture(scope="module")
def model() -> CrystalModel:
    return CrystalModel.from_checkpoint(CHECKPOINTS / "single_cell", device="cpu")


def test_interpolation_endpoints_are_the_encodings(model, perovskite, rock_salt):
    za = model.encode(crystal_arrays(perovskite)).mean
    zb = model.encode(crystal_arrays(rock_salt)).mean
    frames = model.interpolate(za, zb, 4)
    assert len(frames) == 4
    np.testing.assert_allclose(frames[0].latent, za, atol=1e-6)
    np.testing.assert_allclose(frames[-1].latent, zb, atol=1e-6)
    np.testing.assert_allclose(frames[0].density, model.decode(za)[0].density, atol=1e-4)
    spherical = model.interpolate(za, zb, 3, spherical=True)
    np.testing.assert_allclose(spherical[-1].latent, zb, atol=1e-5)


def test_slerp_keeps_norm_between_equal_norm_vectors():
    a, b = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    assert np.linalg.norm(slerp(a, b, 0.5)) == pytest.approx(1.0)


def test_same_seed_same_samples_and_realism_in_range(model):
    a, b = model.sample(2, seed=7), model.sample(2, seed=7)
    c = model.sample(2, seed=8)
    np.testing.assert_array_equal(a[0].density, b[0].density)
    assert not np.allclose(a[0].density, c[0].density)
    scores = model.realism(a)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_realism_scores_an_empty_decoding_low(model):
    # The error is relative to the density's own size: an empty cube cannot look like a crystal.
    sample = model.sample(1, seed=3)[0]
    empty = sample._replace(density=np.zeros_like(sample.density))
    no_atoms = sample._replace(atoms=Atoms.empty())  # a blob in which segmentation finds nothing
    assert len(sample.atoms) > 0 and model.realism([sample])[0] > 0.5
    assert model.realism([empty])[0] < 1e-3 and model.realism([no_atoms])[0] == 0.0


def test_traverse_returns_frames_and_zero_difference_at_the_original_value(model, perovskite):
    z = model.encode(crystal_arrays(perovskite)).mean
    centre, spread = model.axes()
    values = np.array([-3.0, (z[5] - centre[5]) / spread[5], 3.0])  # in units of the prior's spread
    frames, diffs = model.traverse(z, 5, values)
    assert len(frames) == len(diffs) == 3
    assert np.abs(diffs[1]).max() < 1e-4
    assert np.abs(diffs[0]).max() > 0


def test_rank_dimensions_is_a_permutation(model, perovskite, rock_salt):
    encodings = [model.encode(crystal_arrays(s)) for s in (perovskite, rock_salt)]
    order = model.rank_dimensions(encodings)
    assert sorted(order.tolist()) == list(range(model.latent_size))


def test_reconstruction_compares_with_the_placed_truth(model, perovskite):
    rec = model.reconstruct(crystal_arrays(perovskite), seed=3)
    assert rec.comparison.n_true == 5
    assert rec.decoded.density.shape == (30, 30, 30)
    assert len(rec.comparison.pred_to_true) == len(rec.decoded.atoms)


def test_bad_inputs_give_clear_errors(model, perovskite):
    with pytest.raises(CrystalExplorerError, match="latent has size"):
        model.decode(np.zeros(7))
    with pytest.raises(CrystalExplorerError, match="at least 2"):
        model.interpolate(np.zeros(300), np.zeros(300), 1)
    with pytest.raises(CrystalExplorerError, match="outside"):
        model.traverse(np.zeros(300), 300, np.zeros(2))


def test_conditional_model_needs_and_uses_a_target():
    model = CrystalModel.from_checkpoint(CHECKPOINTS / "lattice_conditional", device="cpu")
    with pytest.raises(CrystalExplorerError, match="max Z"):
        model.sample(1, seed=0)
    light, heavy = model.sample(1, seed=0, max_z=8), model.sample(1, seed=0, max_z=80)
    assert heavy[0].density.max() > light[0].density.max()


def test_background_offset_moves_the_segmentation(model):
    z = model.draw(1, seed=0)
    meta = model.metadata
    try:
        model.metadata = {**meta, "segmentation": {"background_logit_offset": -1e4}}
        assert len(model.decode(z)[0].atoms) == 0  # everything background
        model.metadata = {**meta, "segmentation": {"background_logit_offset": 1e4}}
        decoded = model.decode(z)[0]
        assert (decoded.species > 0).all() and len(decoded.atoms) == 1  # one component fills the cube
    finally:
        model.metadata = meta


def test_single_decodings_use_their_own_segmentation_and_a_consensus_the_top_level_one(model, perovskite):
    z = model.draw(1, seed=0)
    meta = model.metadata
    crystal = crystal_arrays(perovskite, "SrTiO3")
    try:
        model.metadata = {**meta, "segmentation": {"background_logit_offset": 1e4,
                                                   "single_decoding": {"background_logit_offset": -1e4}}}
        assert model.background_offset == 1e4 and model.background_offset_for(False) == -1e4
        assert len(model.decode(z)[0].atoms) == 0  # a draw is a single decoding: everything background
        assert len(model.decode(z, consensus=True)[0].atoms) == 1  # a consensus's orientation: one component
        assert len(model.reconstruct(crystal, seed=0, orientations=1).decoded.atoms) == 0
        assert (model.reconstruct(crystal, seed=0, orientations=3).decoded.species > 0).all()  # first orientation's grid
        # the override replaces only what it names
        model.metadata = {**meta, "segmentation": {"species": "vote", "single_decoding": {"split_angstrom": None}}}
        assert model.segmentation_for(False) == {"split_angstrom": None, "species": "vote", "species_rule": {}, "merged_split": None}
        assert model.segmentation == {"split_angstrom": 1.0, "species": "vote", "species_rule": {}, "merged_split": None}
    finally:
        model.metadata = meta


def test_segmentation_rules_come_from_the_checkpoint_and_unknown_ones_are_refused(model, perovskite):
    # one orientation: the decoded atoms are then the segmentation of the decoded grids themselves
    rec = model.reconstruct(crystal_arrays(perovskite, "SrTiO3"), seed=0, orientations=1)
    meta = model.metadata
    try:
        model.metadata = {**meta, "segmentation": {"split_angstrom": None, "species": "vote"}}
        paper = model.atoms_of(rec.decoded.species, rec.decoded.density)
        assert model.segmentation == {"split_angstrom": None, "species": "vote", "species_rule": {}, "merged_split": None}
        votes = paper.votes[np.arange(len(paper)), paper.atomic_numbers]
        assert (votes == paper.votes.max(1)).all()  # the paper's rule is the majority vote
        model.metadata = {**meta, "segmentation": {"species": "astrology"}}
        with pytest.raises(CrystalExplorerError, match="unknown species rule"):
            model.atoms_of(rec.decoded.species, rec.decoded.density)
        model.metadata = {**meta, "segmentation": {"species_rule": {"sigma": 3}}}
        with pytest.raises(CrystalExplorerError, match="species rule is not readable"):
            model.atoms_of(rec.decoded.species, rec.decoded.density)
        model.metadata = {**meta, "segmentation": {"merged_split": {"ratio": 0.5}}}
        with pytest.raises(CrystalExplorerError, match="merged split is not readable"):
            model.atoms_of(rec.decoded.species, rec.decoded.density)
        model.metadata = {**meta, "segmentation": {"species_rule": {"light_max_z": 10**6}}}
        earlier = model.atoms_of(rec.decoded.species, rec.decoded.density)
        assert len(earlier) == len(rec.decoded.atoms)  # the rule changes species, never positions
        np.testing.assert_allclose(earlier.positions, rec.decoded.atoms.positions)
    finally:
        model.metadata = meta
    # single-cell defaults, with the species rule the checkpoint's calibration chose (train.calibrate), if any
    stored = meta.get("segmentation", {})
    assert model.segmentation == {"split_angstrom": 1.0, "species": "amplitude+vote",
                                  "species_rule": stored.get("species_rule", {}), "merged_split": stored.get("merged_split")}


def test_a_merged_split_in_the_checkpoint_cuts_heavy_light_atoms_and_can_be_dropped(model):
    from pymatgen.core import Lattice, Structure

    diamond = Structure(Lattice.cubic(3.567), ["C"] * 8, [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
                        [.25, .25, .25], [.25, .75, .75], [.75, .25, .75], [.75, .75, .25]])
    rec = model.reconstruct(crystal_arrays(diamond, "diamond"), seed=0, orientations=1)
    meta = model.metadata
    try:
        model.metadata = {**meta, "segmentation": {**meta.get("segmentation", {}), "single_decoding": {},
                                                   "merged_split": None}}
        whole = model.atoms_of(rec.decoded.species, rec.decoded.density)
        # every carbon whose amplitude tops 1.01 × 6 is a candidate: the aggressive split must cut some
        model.metadata["segmentation"]["merged_split"] = {"ratio": 1.01, "min_voxels": 1}
        cut = model.atoms_of(rec.decoded.species, rec.decoded.density)
        assert len(cut) > len(whole)
        model.drop_merged_split()
        again = model.atoms_of(rec.decoded.species, rec.decoded.density)
        np.testing.assert_allclose(again.positions, whole.positions)
    finally:
        model.metadata = meta


def test_periodic_structure_uses_the_given_cell_or_the_cell_head(model, perovskite):
    from crystal_explorer.lattice import placed_lattice

    crystal = crystal_arrays(perovskite, "SrTiO3")
    rec = model.reconstruct(crystal, seed=0)
    cell = placed_lattice(crystal.lattice, rec.encoded.placement.rotation)
    structure, source = model.periodic_structure(rec.decoded, cell=cell)
    assert source == "the input's cell"
    assert structure.volume == pytest.approx(abs(np.linalg.det(crystal.lattice)), rel=1e-6)
    structure, source = model.periodic_structure(rec.decoded)
    assert source == "predicted by the cell head" and len(structure) >= 1
    assert model.periodic_structure(rec.decoded, predict=False) == (None, "")
    empty = rec.decoded._replace(atoms=Atoms.empty())
    assert model.periodic_structure(empty, cell=cell) == (None, "")
