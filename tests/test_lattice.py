"""Lattice recovery from the true species grid of the repeating-lattice placement, and the single cell."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Molecule, Structure

from crystal_explorer.grid import GridSpec
from crystal_explorer.lattice import placed_lattice, recover_lattice, single_cell_structure, structure_in_cell
from crystal_explorer.matching import structure_matcher
from crystal_explorer.representation import place
from crystal_explorer.segment import atoms_from_species_grid
from crystal_explorer.structures import crystal_arrays
from crystal_explorer.voxel import species_grid


def oracle_atoms(structure: Structure, rng: np.random.Generator, canonical: bool):
    placement = place(crystal_arrays(structure), "lattice", rng, canonical=canonical)
    return atoms_from_species_grid(species_grid(placement.positions, placement.atomic_numbers))


@pytest.mark.parametrize("name", ["rock_salt", "perovskite", "hexagonal", "monoclinic"])
@pytest.mark.parametrize("canonical", [True, False])
def test_recovers_the_crystal_from_its_true_species_grid(name, canonical, request, rng):
    structure = request.getfixturevalue(name)
    atoms = oracle_atoms(structure, rng, canonical)
    recovered = recover_lattice(atoms.positions, atoms.atomic_numbers)
    assert recovered is not None
    assert structure_matcher().fit(structure, recovered.structure)
    # the primitive cell: as many sites as the primitive cell of the truth, volume to 5 %
    primitive = structure.get_primitive_structure()
    assert len(recovered.structure) == len(primitive)
    assert recovered.structure.volume == pytest.approx(primitive.volume, rel=0.05)
    assert (recovered.scores >= 0.95).all() and recovered.tolerance_angstrom == 0.5


def test_exact_positions_give_the_exact_lattice(perovskite, rng):
    placement = place(crystal_arrays(perovskite), "lattice", rng)
    recovered = recover_lattice(placement.positions, placement.atomic_numbers)
    assert recovered.structure.lattice.abc == pytest.approx((3.905,) * 3, abs=1e-6)
    assert recovered.structure.lattice.angles == pytest.approx((90.0,) * 3, abs=1e-6)


@pytest.mark.parametrize("n_atoms", [0, 2, 8, 40])
def test_random_atoms_have_no_lattice(n_atoms, rng):
    positions = rng.uniform(0, 10, (n_atoms, 3))
    atomic_numbers = rng.integers(1, 4, n_atoms)
    assert recover_lattice(positions, atomic_numbers) is None


def test_a_single_cell_cluster_has_no_lattice(monoclinic, rng):
    placement = place(crystal_arrays(monoclinic), "single", rng)
    assert recover_lattice(placement.positions, placement.atomic_numbers) is None


def test_noise_atoms_are_dropped(rock_salt, rng):
    atoms = oracle_atoms(rock_salt, rng, canonical=False)
    positions = np.vstack([atoms.positions, [[5.0, 5.0, 5.0]]])  # one stray hydrogen
    recovered = recover_lattice(positions, np.append(atoms.atomic_numbers, 1))
    assert recovered.n_dropped_sites == 1
    assert structure_matcher().fit(rock_salt, recovered.structure)


def test_single_cell_is_a_molecule_without_a_lattice(perovskite, rng):
    placement = place(crystal_arrays(perovskite), "single", rng)
    molecule = single_cell_structure(placement.positions, placement.atomic_numbers)
    assert isinstance(molecule, Molecule) and len(molecule) == 5


def test_single_cell_with_its_lattice_is_the_crystal(monoclinic, rng):
    crystal = crystal_arrays(monoclinic)
    placement = place(crystal, "single", rng)
    cell = placed_lattice(crystal.lattice, placement.rotation)  # the cell vectors rotated like the atoms
    structure = single_cell_structure(placement.positions, placement.atomic_numbers, cell)
    assert structure_matcher().fit(monoclinic, structure)


@pytest.mark.parametrize("name", ["rock_salt", "perovskite", "hexagonal", "monoclinic"])
@pytest.mark.parametrize("representation", ["single", "lattice"])
def test_atoms_segmented_from_the_true_grid_wrap_into_the_input_cell(name, representation, request, rng):
    # the true S of either placement, segmented, folded into the cell the crystal was placed with
    structure = request.getfixturevalue(name)
    crystal = crystal_arrays(structure)
    placement = place(crystal, representation, rng)
    atoms = atoms_from_species_grid(species_grid(placement.positions, placement.atomic_numbers))
    cell = placed_lattice(crystal.lattice, placement.rotation)
    if representation == "single":
        wrapped = single_cell_structure(atoms.positions, atoms.atomic_numbers, cell)
    else:
        wrapped = structure_in_cell(atoms.positions, atoms.atomic_numbers, cell, grid=GridSpec())
    assert len(wrapped) == len(crystal.atomic_numbers)
    assert structure_matcher().fit(structure, wrapped)


def test_single_cell_duplicates_merge_into_one_site(rock_salt, rng):
    crystal = crystal_arrays(rock_salt)
    placement = place(crystal, "single", rng)
    cell = placed_lattice(crystal.lattice, placement.rotation)
    # a decoding that sees one atom twice, once shifted by a lattice vector plus 0.2 Å of noise
    extra = placement.positions[:1] + cell[0] + 0.2 / np.sqrt(3)
    positions = np.vstack([placement.positions, extra])
    numbers = np.concatenate([placement.atomic_numbers, placement.atomic_numbers[:1]])
    wrapped = single_cell_structure(positions, numbers, cell)
    assert len(wrapped) == len(crystal.atomic_numbers)
    assert structure_matcher().fit(rock_salt, wrapped)


def test_atoms_only_at_the_cube_faces_have_no_lattice(rng):
    positions = rng.random((40, 3)) * 10.0
    positions[:, 0] = rng.choice([0.1, 9.9], size=40)  # every atom within the edge margin of a face
    assert recover_lattice(positions, np.full(40, 8)) is None


def test_a_site_seen_as_two_species_takes_the_majority(rock_salt, rng):
    crystal = crystal_arrays(rock_salt)
    placement = place(crystal, "single", rng)
    cell = placed_lattice(crystal.lattice, placement.rotation)
    # the first atom decoded twice more at its periodic images, once with the wrong species
    first, z = placement.positions[:1], int(placement.atomic_numbers[0])
    positions = np.vstack([placement.positions, first + cell[0], first + cell[1] + 0.1])
    numbers = np.concatenate([placement.atomic_numbers, [z, z + 1]])
    wrapped = structure_in_cell(positions, numbers, cell)
    assert len(wrapped) == len(crystal.atomic_numbers)
    assert structure_matcher().fit(rock_salt, wrapped)
