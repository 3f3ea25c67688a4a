"""Writing recovered crystals for other tools: CIF (with the space group spglib finds), POSCAR and XYZ.

The symmetry tolerance `SYMPREC_ANGSTROM` = 0.1 Å is spglib's distance tolerance: decoded positions
carry errors of about a voxel (0.33 Å) before averaging, so the tighter default 0.01 Å would report P1
for nearly every decoded crystal.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Molecule, Structure
from pymatgen.io.cif import CifWriter
from pymatgen.io.xyz import XYZ
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from crystal_explorer.segment import Atoms

SYMPREC_ANGSTROM = 0.1
ANGLE_TOLERANCE_DEGREES = 5.0


def space_group(structure: Structure, symprec: float = SYMPREC_ANGSTROM) -> tuple[str, int]:
    """The space group (Hermann–Mauguin symbol, number) spglib finds at `symprec` Å; ("P1", 1) if it finds none."""
    try:
        analyzer = SpacegroupAnalyzer(structure, symprec=symprec, angle_tolerance=ANGLE_TOLERANCE_DEGREES)
        return analyzer.get_space_group_symbol(), int(analyzer.get_space_group_number())
    except Exception:  # noqa: BLE001 - spglib gives up on degenerate cells; the crystal is then P1
        return "P1", 1


def _sites_per_volume(structure: Structure) -> float:
    return len(structure) / structure.volume


def to_cif(structure: Structure, symprec: float | None = SYMPREC_ANGSTROM) -> str:
    """CIF text; with `symprec` (Å) the symmetrised cell and its space group, else P1 with every site.

    The sites are first moved onto the symmetric positions spglib finds (its refined cell): a CIF lists one site
    per orbit and a reader applies the operations to it, so an unrefined site up to `symprec` off its ideal
    position comes back as a cloud of near-copies (seen: a decoded SrTiO3 read back with 19 sites for 5). The
    text is read back, and a symmetrised CIF whose site density differs from the input's is replaced by P1.
    """
    if symprec is not None:
        try:
            refined = SpacegroupAnalyzer(structure, symprec=symprec,
                                         angle_tolerance=ANGLE_TOLERANCE_DEGREES).get_refined_structure()
            text = str(CifWriter(refined, symprec=symprec, angle_tolerance=ANGLE_TOLERANCE_DEGREES))
            back = Structure.from_str(text, fmt="cif")
            if abs(_sites_per_volume(back) / _sites_per_volume(structure) - 1) < 1e-3:
                return text
        except Exception:  # noqa: BLE001 - spglib or the reader gives up: fall back to the P1 cell, still a valid CIF
            pass
    return str(CifWriter(structure))


def to_poscar(structure: Structure) -> str:
    """VASP POSCAR text of the cell as it is (no symmetrisation)."""
    return structure.to(fmt="poscar")


def atoms_to_molecule(atoms: Atoms) -> Molecule:
    """Decoded atoms (cube frame, Å) as a pymatgen Molecule."""
    return Molecule([int(z) for z in np.asarray(atoms.atomic_numbers)], np.asarray(atoms.positions, float).reshape(-1, 3))


def xyz_text(positions: np.ndarray, atomic_numbers: np.ndarray, comment: str = "") -> str:
    """An XYZ file of atoms (Cartesian Å) with `comment` as its second line; no atoms give a valid empty file."""
    positions = np.asarray(positions, float).reshape(-1, 3)
    if len(positions) == 0:
        return f"0\n{comment}\n"
    lines = to_xyz(Molecule([int(z) for z in np.asarray(atomic_numbers)], positions)).splitlines()
    lines[1] = comment
    return "\n".join(lines) + "\n"


def to_xyz(atoms: Atoms | Molecule | Structure) -> str:
    """XYZ text (Cartesian Å) of decoded atoms, a Molecule or the sites of one cell of a Structure."""
    if isinstance(atoms, Atoms):
        atoms = atoms_to_molecule(atoms)
    elif isinstance(atoms, Structure):
        atoms = Molecule(atoms.species, atoms.cart_coords)
    return str(XYZ(atoms))
