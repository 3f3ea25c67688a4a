"""The periodic cell of a decoded single unit cell: orientation search, parameters and the cell head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice

from crystal_explorer.cell import (
    CELL_HEAD_FILE,
    CellHead,
    CellHeadConfig,
    consistency_penalty,
    contact_cost,
    contact_table,
    image_distances,
    lattice_from_parameters,
    niggli_parameters,
    orient_cell,
)
from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.lattice import placed_lattice, single_cell_structure
from crystal_explorer.representation import place
from crystal_explorer.structures import crystal_arrays

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
MATCHER = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)


def _niggli_unrotated(structure) -> np.ndarray:
    """The crystal's Niggli cell in pymatgen's standard orientation: what the head is asked for."""
    return lattice_from_parameters(niggli_parameters(structure.lattice.get_niggli_reduced_lattice().matrix)[0])


# Rock salt's conventional cell is left out on purpose: its 8-atom cluster is much smaller than its
# Wigner–Seitz cell, so wrong orientations are fully consistent too (see crystal_explorer.cell).
@pytest.mark.parametrize("name", ["perovskite", "hexagonal", "monoclinic"])
def test_orientation_search_rebuilds_the_crystal_from_a_rotated_single_cell(name, request):
    structure = request.getfixturevalue(name)
    crystal = crystal_arrays(structure, name)
    placement = place(crystal, "single", np.random.default_rng(7))
    lattice, penalty = orient_cell(placement.positions, _niggli_unrotated(structure), atomic_numbers=placement.atomic_numbers)
    rebuilt = single_cell_structure(placement.positions, placement.atomic_numbers, lattice)
    assert penalty < 0.05
    assert MATCHER.fit(structure, rebuilt)
    # the found cell is the placed one up to the lattice's own symmetry: same volume, same metric
    truth = placed_lattice(crystal.lattice, placement.rotation)
    assert abs(np.linalg.det(lattice)) == pytest.approx(abs(np.linalg.det(truth)), rel=1e-6)


# Placements, search seeds and position noise (Å) far below what any CPU's rounding could matter for: the
# consistent orientations of these cells form a wide region, and before the contact cost and the float64
# final choice the monoclinic cell was rebuilt for 2 to 8 of 10 such variations (issue 13).
PERTURBATIONS = [(7, 0, 1e-6), (7, 1, 1e-4), (8, 0, 1e-5), (9, 2, 0.0), (10, 0, 3e-5), (11, 3, 1e-4)]


@pytest.mark.parametrize("name", ["perovskite", "hexagonal", "monoclinic"])
def test_orientation_search_is_robust_to_placement_seed_and_tiny_noise(name, request):
    structure = request.getfixturevalue(name)
    crystal = crystal_arrays(structure, name)
    noise = np.random.default_rng(0)
    for placement_seed, search_seed, sigma in PERTURBATIONS:
        placement = place(crystal, "single", np.random.default_rng(placement_seed))
        positions = placement.positions + sigma * noise.standard_normal(placement.positions.shape)
        lattice, penalty = orient_cell(positions, _niggli_unrotated(structure), atomic_numbers=placement.atomic_numbers,
                                       seed=search_seed)
        rebuilt = single_cell_structure(positions, placement.atomic_numbers, lattice)
        assert penalty < 0.05 and MATCHER.fit(structure, rebuilt), (placement_seed, search_seed, sigma)


def test_orientation_search_is_deterministic(monoclinic):
    placement = place(crystal_arrays(monoclinic, "m"), "single", np.random.default_rng(7))
    runs = [orient_cell(placement.positions, _niggli_unrotated(monoclinic), atomic_numbers=placement.atomic_numbers)
            for _ in range(2)]
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    with pytest.raises(CrystalExplorerError, match="5 atomic numbers for 6 atoms"):
        orient_cell(placement.positions, np.eye(3) * 5, atomic_numbers=placement.atomic_numbers[:5])


def test_contact_cost_is_zero_for_the_true_cell_and_counts_unknown_contacts(monoclinic):
    crystal = crystal_arrays(monoclinic, "m")
    placement = place(crystal, "single", np.random.default_rng(7))
    cluster = placement.positions - placement.positions.mean(0)
    truth = placed_lattice(crystal.lattice, placement.rotation)
    table = contact_table(cluster, placement.atomic_numbers)
    # the true cell's contacts across its faces are bonds the cluster shows (within the 0.2 Å width)
    assert contact_cost(table, image_distances(cluster, truth[None]))[0] < 0.5
    # squeezed by 10 %, contacts come at lengths the cluster does not show
    assert contact_cost(table, image_distances(cluster, 0.9 * truth[None]))[0] > 1.0


def test_penalty_is_zero_for_the_true_cell_and_positive_for_a_turned_or_shrunk_one(perovskite):
    crystal = crystal_arrays(perovskite, "SrTiO3")
    placement = place(crystal, "single", np.random.default_rng(3))
    cluster = placement.positions - placement.positions.mean(0)
    truth = placed_lattice(crystal.lattice, placement.rotation)
    turn = np.array([[np.cos(0.785), -np.sin(0.785), 0], [np.sin(0.785), np.cos(0.785), 0], [0, 0, 1]])
    penalties = consistency_penalty(cluster, np.stack([truth, truth @ turn.T, 0.8 * truth]), min_distance=1.7)
    assert penalties[0] < 1e-6
    assert penalties[1] > 0.1 and penalties[2] > 0.1


def test_no_atoms_is_a_clear_error():
    with pytest.raises(CrystalExplorerError, match="no atoms"):
        orient_cell(np.zeros((0, 3)), np.eye(3) * 4)


def test_parameters_round_trip_and_impossible_angles_fall_back():
    lattice = Lattice.from_parameters(3.1, 4.2, 5.3, 80, 95, 100)
    params = niggli_parameters(lattice.matrix)[0]
    assert Lattice(lattice_from_parameters(params)).parameters == pytest.approx(lattice.parameters, rel=1e-6)
    # three angles of 150° cannot close a cell: a box of the same edges comes back
    bad = np.array([np.log(3), np.log(4), np.log(5), -0.87, -0.87, -0.87])
    assert Lattice(lattice_from_parameters(bad)).angles == pytest.approx((90, 90, 90))


def test_head_saves_and_loads_and_refuses_bad_files(tmp_path):
    head = CellHead(CellHeadConfig(latent_size=8, hidden=16)).eval()
    z = np.random.default_rng(0).standard_normal((3, 8))
    head.save(tmp_path, {"fit": {"epochs": 1}})
    loaded = CellHead.load(tmp_path, 8)
    assert loaded.parameters_of(z) == pytest.approx(head.parameters_of(z))
    assert CellHead.load(tmp_path / "none", 8) is None
    with pytest.raises(CrystalExplorerError, match="latent size 8"):
        CellHead.load(tmp_path, 9)
    (tmp_path / CELL_HEAD_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(CrystalExplorerError, match="not a readable cell head"):
        CellHead.load(tmp_path, 8)


def test_shipped_single_cell_model_predicts_a_cell_for_a_reconstruction(perovskite):
    from crystal_explorer.latent import CrystalModel

    model = CrystalModel.from_checkpoint(CHECKPOINTS / "single_cell", device="cpu")
    if model.cell_head is None:
        pytest.skip("the shipped single-cell model has no cell head (python -m train.fit_cell)")
    rec = model.reconstruct(crystal_arrays(perovskite, "SrTiO3"))
    params = model.cell_head.parameters_of(rec.decoded.latent)[0]
    # SrTiO3 is in the test-like Perov-5 family: the predicted edges are within 10 % of 3.905 Å
    assert np.exp(params[:3]) == pytest.approx([3.905] * 3, rel=0.1)
    cell = model.predicted_cell(rec.decoded)
    assert cell.shape == (3, 3) and abs(np.linalg.det(cell)) == pytest.approx(3.905**3, rel=0.3)
