"""CIF, POSCAR and XYZ export of recovered crystals read back to the same structure."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Molecule, Structure

from crystal_explorer.export import atoms_to_molecule, space_group, to_cif, to_poscar, to_xyz
from crystal_explorer.lattice import recover_lattice
from crystal_explorer.matching import structure_matcher
from crystal_explorer.representation import place
from crystal_explorer.segment import Atoms, atoms_from_species_grid
from crystal_explorer.structures import crystal_arrays
from crystal_explorer.voxel import species_grid


def recovered(structure: Structure, rng) -> Structure:
    placement = place(crystal_arrays(structure), "lattice", rng)
    atoms = atoms_from_species_grid(species_grid(placement.positions, placement.atomic_numbers))
    return recover_lattice(atoms.positions, atoms.atomic_numbers).structure


@pytest.mark.parametrize(
    ("name", "number"), [("rock_salt", 225), ("perovskite", 221), ("hexagonal", 186), ("monoclinic", None)]
)
def test_cif_of_a_recovered_crystal_reads_back_with_its_space_group(name, number, request, rng):
    truth = request.getfixturevalue(name)
    structure = recovered(truth, rng)
    cif = to_cif(structure)
    back = Structure.from_str(cif, fmt="cif")
    assert structure_matcher().fit(structure, back) and structure_matcher().fit(truth, back)
    symbol, found = space_group(structure)
    if number is not None:  # the decoded positions keep the symmetry at the stated 0.1 Å tolerance
        assert found == number
        assert f"_symmetry_Int_Tables_number   {number}" in cif
        assert symbol in cif


def test_cif_without_symprec_is_p1(perovskite):
    cif = to_cif(perovskite, symprec=None)
    assert "P 1" in cif or "P1" in cif
    assert len(Structure.from_str(cif, fmt="cif")) == 5


def test_poscar_reads_back(hexagonal):
    back = Structure.from_str(to_poscar(hexagonal), fmt="poscar")
    assert back.lattice.abc == pytest.approx(hexagonal.lattice.abc)
    assert structure_matcher().fit(hexagonal, back)


def test_xyz_of_atoms_molecules_and_structures(perovskite):
    atoms = Atoms(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), np.array([8, 22]), np.array([10, 12]))
    text = to_xyz(atoms)
    back = Molecule.from_str(text, fmt="xyz")
    assert [s.specie.Z for s in back] == [8, 22]
    assert back.cart_coords == pytest.approx(atoms.positions)
    assert to_xyz(atoms_to_molecule(atoms)) == text
    assert text.splitlines()[0].strip() == "2"
    assert to_xyz(perovskite).splitlines()[0].strip() == "5"


def test_cif_of_slightly_off_symmetric_sites_reads_back_without_near_copies():
    # a decoded SrTiO3 wrapped into its input's (rotated) cell, positions up to symprec off the symmetric ones;
    # written unrefined, readers applied the operations to the off-site positions and got 27 sites for 5
    lattice = [[3.3333537, 1.2274118, 1.6221092], [1.6807826, -3.4159225, -0.8691767], [1.145752, 1.4401246, -3.4441717]]
    decoded = Structure(lattice, ["Sr", "O", "O", "O", "Ti"], [
        [0.7227628, 0.8426585, 0.4128511], [0.7287174, 0.3460374, 0.9154138], [0.2240716, 0.3429995, 0.4241508],
        [0.2274353, 0.8528203, 0.9241799], [0.2261647, 0.344145, 0.914446]])
    back = Structure.from_str(to_cif(decoded), fmt="cif")
    assert len(back) / back.volume == pytest.approx(len(decoded) / decoded.volume, rel=1e-3)
    assert back.composition.reduced_formula == "SrTiO3" and space_group(back)[1] > 1
