"""Small real structures built with pymatgen, shared by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from crystal_explorer.arrays import CrystalArrays
from crystal_explorer.structures import crystal_arrays

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module (`pytestmark = pytest.mark.usefixtures("one_thread")`): 3-D
    convolutions on a shared 2-core machine run several times faster on one thread than on two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rock_salt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture
def perovskite() -> Structure:
    return Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


@pytest.fixture
def hexagonal() -> Structure:
    """Wurtzite ZnO."""
    return Structure(Lattice.hexagonal(3.25, 5.21), ["Zn", "Zn", "O", "O"],
                     [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.382], [2 / 3, 1 / 3, 0.882]])


@pytest.fixture
def monoclinic() -> Structure:
    return Structure(Lattice.monoclinic(5.1, 5.2, 5.3, 99.2), ["Zr", "Zr", "O", "O", "O", "O"],
                     [[0.28, 0.04, 0.21], [0.72, 0.54, 0.29], [0.07, 0.33, 0.34], [0.93, 0.83, 0.16],
                      [0.45, 0.76, 0.48], [0.55, 0.26, 0.02]])


@pytest.fixture
def perovskite_arrays(perovskite) -> CrystalArrays:
    return crystal_arrays(perovskite, "SrTiO3")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"the shared data folder {DATA} is not present")
    return DATA


def _p1_cif(a: float, sites: list[tuple[str, float, float, float]], angles: tuple[float, float, float] = (90, 90, 90)) -> str:
    """A minimal P1 CIF written by hand, so that it can say what pymatgen would never write."""
    rows = "\n".join(f"  {el} {el}{i} {x} {y} {z} 1" for i, (el, x, y, z) in enumerate(sites))
    return (f"data_test\n_symmetry_space_group_name_H-M 'P 1'\n_cell_length_a {a}\n_cell_length_b {a}\n"
            f"_cell_length_c {a}\n_cell_angle_alpha {angles[0]}\n_cell_angle_beta {angles[1]}\n"
            f"_cell_angle_gamma {angles[2]}\nloop_\n _symmetry_equiv_pos_as_xyz\n 'x, y, z'\nloop_\n"
            " _atom_site_type_symbol\n _atom_site_label\n _atom_site_fract_x\n _atom_site_fract_y\n"
            f" _atom_site_fract_z\n _atom_site_occupancy\n{rows}\n")


@pytest.fixture(scope="session")
def refused_inputs() -> dict[str, tuple[bytes, str]]:
    """Files users really have that no model can take: name → (bytes of a .cif file, regex of the refusal)."""
    from pymatgen.io.cif import CifWriter

    perovskite = Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                           [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    good = str(CifWriter(perovskite))
    nacl = str(CifWriter(Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                                   [[0, 0, 0], [0.5, 0.5, 0.5]]), symprec=0.01))
    rows = "".join(f"  Na  Na{i}  192  0.{i:02d}1  0.1{i:02d}  0.2{i:02d}  1\n" for i in range(10))  # general positions
    grid = [("Si", i / 25, j / 25, k / 25) for i in range(25) for j in range(25) for k in range(25)]
    disordered = Structure(Lattice.cubic(4.2), [{"Fe": 0.6, "Ni": 0.4}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    corpus = {
        "empty": (b"", "empty"),
        "whitespace only": (b"  \r\n\t\n", "empty"),
        "binary garbage": (bytes(range(256)) * 40, "binary"),
        "not a CIF": (b"Hello, I am a text file about crystals.\n", "not a CIF"),
        "no atom sites": (b"data_x\n_cell_length_a 3\n", "no atom sites"),
        "short loop row": ((good + "  O  O9  1  0.1  0.2\n").encode(), "could not parse.*values for 7 columns"),
        "negative cell length": (good.replace("_cell_length_a   3.90500000", "_cell_length_a   -3.90500000").encode(),
                                 "cell length a is -3.905 Å"),
        "angles that close no cell": (_p1_cif(4.0, [("Na", 0, 0, 0)], (170, 170, 90)).encode(), "do not close a cell"),
        "NaN coordinate": (_p1_cif(4.0, [("Na", 0, 0, 0), ("Cl", "nan", 0.5, 0.5)]).encode(), "NaN"),
        "infinite cell length": (good.replace("_cell_length_b   3.90500000", "_cell_length_b   inf").encode(), "infinite"),
        "unknown element": (_p1_cif(4.0, [("Xx", 0, 0, 0), ("Cl", 0.5, 0.5, 0.5)]).encode(), "unknown element 'Xx'"),
        "element beyond the model (Z = 95)": (_p1_cif(4.0, [("Am", 0, 0, 0), ("O", 0.5, 0.5, 0.5)]).encode(),
                                              r"Am is not supported \(atomic numbers 1 to 94\)"),
        "partial occupancy": (str(CifWriter(disordered)).encode(), "partial occupanc"),
        "0.4 Å cell, images 0.2 Å apart": (_p1_cif(0.4, [("H", 0, 0, 0), ("H", 0.5, 0, 0)]).encode(), "overlap"),
        "atoms 0.16 Å apart across the cell face": (_p1_cif(4.0, [("Na", 0.02, 0, 0), ("Cl", 0.98, 0, 0)]).encode(),
                                                    r"overlap: sites 1 \(Na\) and 2 \(Cl\) are 0.16 Å apart"),
        "15,625 sites in a 40 Å cell": (_p1_cif(40.0, grid).encode(), "too many atoms for the cube: the CIF lists 15625"),
        "10 rows × 192 operations": (nacl.replace("_atom_site_occupancy\n", "_atom_site_occupancy\n" + rows).encode(),
                                     "too many atoms for the cube: the CIF's 12 sites expand by symmetry to 1"),
        "10 rows in 'F m -3 m', no operations listed": (
            _p1_cif(40.0, [("Na", f"0.{i:02d}1", f"0.1{i:02d}", f"0.2{i:02d}") for i in range(10)])
            .replace("'P 1'", "'F m -3 m'").replace("loop_\n _symmetry_equiv_pos_as_xyz\n 'x, y, z'\n", "").encode(),
            "expand by symmetry to 1920"),
        "300 symmetry operations": (good.replace("  1  'x, y, z'", "\n".join(f"  {i}  'x, y, z'" for i in range(300))).encode(),
                                    "300 symmetry operations"),
        "6 MB file": ((good + "#" * 6_000_000 + "\n").encode(), "MB"),
    }
    return corpus


@pytest.fixture(scope="session")
def accepted_inputs() -> dict[str, tuple[bytes, str, int]]:
    """Unusual but valid files: name → (bytes of a .cif file, reduced formula, number of sites)."""
    from pymatgen.io.cif import CifWriter

    perovskite = Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                           [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    good = str(CifWriter(perovskite)).split("\n", 1)[1]  # starts at data_, where a byte-order mark hurts
    # 6 sites of Fm-3m: up to 6 × 192 images, really 120 sites (the site count must not be a bound)
    special = Structure.from_spacegroup("Fm-3m", Lattice.cubic(12), ["Na", "Cl", "K", "Br", "Li", "F"],
                                        [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], [0.2, 0, 0], [0.1, 0.1, 0.1], [0.3, 0.3, 0]])
    return {
        "UTF-8 byte-order mark and CRLF": (b"\xef\xbb\xbf" + good.replace("\n", "\r\n").encode(), "SrTiO3", 5),
        "old Mac CR line ends": (good.replace("\n", "\r").encode(), "SrTiO3", 5),
        "UTF-16 with byte-order mark": (good.encode("utf-16"), "SrTiO3", 5),
        "uncertainties on the cell": (good.replace("3.90500000", "3.905(2)").encode(), "SrTiO3", 5),
        "a data block without atoms first": (("data_notes\n_journal_year 2024\n\n" + good).encode(), "SrTiO3", 5),
        "symmetry with special positions": (str(CifWriter(special, symprec=0.01)).encode(),
                                            special.composition.reduced_formula, 120),
    }
