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
