"""Consensus of orientations: frames, the merge, and reconstructions through the shipped single-cell model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crystal_explorer.consensus import ConsensusConfig, DecodedAtoms, merge, to_reference_frame
from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.grid import GridSpec
from crystal_explorer.latent import CrystalModel
from crystal_explorer.placement import compact_cluster, random_rotations, single_cell_positions
from crystal_explorer.structures import crystal_arrays

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
pytestmark = pytest.mark.usefixtures("one_thread")


def _atoms(positions, z, amplitudes=None, n_classes=30):
    positions = np.asarray(positions, float)
    votes = np.zeros((len(positions), n_classes))
    votes[np.arange(len(positions)), z] = 10
    amplitudes = np.asarray(z, float) if amplitudes is None else np.asarray(amplitudes, float)
    return DecodedAtoms(positions, votes, amplitudes)


def test_to_reference_frame_maps_one_placement_onto_another(perovskite_arrays, rng):
    grid = GridSpec()
    cluster = compact_cluster(perovskite_arrays.lattice, perovskite_arrays.frac_coords)
    r0, r1 = random_rotations(2, rng)
    moved = to_reference_frame(single_cell_positions(cluster, r1, grid), r1, r0, grid.centre_angstrom)
    np.testing.assert_allclose(moved, single_cell_positions(cluster, r0, grid), atol=1e-9)


def test_merge_keeps_what_a_majority_agrees_on():
    a, b = np.array([3.0, 5.0, 5.0]), np.array([6.0, 5.0, 5.0])
    decodings = [
        _atoms([a + 0.1, b], [8, 22], amplitudes=[8.0, 21.0]),
        _atoms([b - 0.2, a - 0.1, [1.0, 1.0, 1.0]], [22, 8, 6], amplitudes=[23.0, 8.0, 6.0]),  # a ghost at (1, 1, 1)
        _atoms([a, b + 0.2], [8, 21], amplitudes=[8.0, 22.0]),
    ]
    merged = merge(decodings, min_support=2)
    order = np.argsort(merged.positions[:, 0])
    np.testing.assert_allclose(merged.positions[order], [a, b], atol=1e-9)  # the ghost is gone, the jitter averaged
    np.testing.assert_array_equal(merged.support[order], [3, 3])
    np.testing.assert_allclose(merged.amplitudes[order], [8.0, 22.0])
    assert merged.votes[order[1], 22] == 20 and merged.votes[order[1], 21] == 10  # votes pooled
    assert len(merge(decodings, min_support=1).positions) == 3
    assert len(merge(decodings, min_support=4).positions) == 0


def test_merge_does_not_join_atoms_beyond_the_radius():
    merged = merge([_atoms([[3.0, 5, 5]], [8]), _atoms([[4.5, 5, 5]], [8])], min_support=1, radius_angstrom=1.0)
    assert len(merged.positions) == 2 and set(merged.support) == {1}


def test_config_checks_its_values():
    assert ConsensusConfig(7).support == 4 and ConsensusConfig(7, min_support=3).support == 3
    assert ConsensusConfig.from_dict(None) == ConsensusConfig()
    for bad in ({"orientations": 0}, {"orientations": 3, "min_support": 4}, {"radius_angstrom": 0}, {"K": 3}):
        with pytest.raises(ValueError):
            ConsensusConfig.from_dict(bad)


@pytest.fixture(scope="module")
def model() -> CrystalModel:
    return CrystalModel.from_checkpoint(CHECKPOINTS / "single_cell", device="cpu")


def test_one_orientation_is_the_plain_reconstruction(model, perovskite):
    arrays = crystal_arrays(perovskite)
    plain = model.reconstruct(arrays, seed=3, refine=False, orientations=1)
    encoded = model.encode(arrays, seed=3)
    np.testing.assert_allclose(plain.decoded.atoms.positions, model.decode_encoded(encoded, refine=False).atoms.positions)


def test_consensus_reconstruction_is_in_the_first_orientations_frame(model, perovskite):
    arrays = crystal_arrays(perovskite)
    rec = model.reconstruct(arrays, seed=3, refine=False, orientations=5)
    plain = model.reconstruct(arrays, seed=3, refine=False, orientations=1)
    np.testing.assert_array_equal(rec.encoded.placement.positions, plain.encoded.placement.positions)
    np.testing.assert_allclose(rec.decoded.density, plain.decoded.density, atol=1e-4)  # the first orientation's grid
    # the merged atoms sit where the first orientation's truth is: the SrTiO3 cell is decoded well enough
    assert rec.comparison.n_pred == 5 and np.max(rec.comparison.true_to_pred) < 0.5
    assert len(rec.decoded.atoms.votes) == 5 and np.all(rec.decoded.atoms.votes.sum(1) >= rec.decoded.atoms.n_voxels)


def test_a_lattice_model_decodes_one_orientation(perovskite):
    lattice = CrystalModel.from_checkpoint(CHECKPOINTS / "lattice", device="cpu")
    assert lattice.consensus.orientations == 1
    assert lattice.other_orientations(crystal_arrays(perovskite), 0, 4) == []


def test_an_unreadable_consensus_is_a_clear_error(tmp_path, perovskite):
    folder = tmp_path / "model"
    shutil.copytree(CHECKPOINTS / "single_cell", folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["consensus"] = {"orientations": 3, "support": 2}
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CrystalExplorerError, match="consensus is not readable"):
        CrystalModel.from_checkpoint(folder, device="cpu").reconstruct(crystal_arrays(perovskite))
