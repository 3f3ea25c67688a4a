"""Cost and accuracy of orienting a single cell's lattice on its atoms (`crystal_explorer.cell.orient_cell`).

For built-in structures of growing atom count (placed as single cells with seeded random rotations and given
their true Niggli parameters), times `orient_cell` as shipped (float32 scan, margin and contact terms, float64 compass polish) against a simple
reference (the same 3,000 rotations scored in float64 by the plain penalty, no polish), and counts how often
each rebuilds the crystal
(StructureMatcher stol 0.5, angle_tol 10, ltol 0.3). Prints a table.

    python benchmarks/cell_orientation.py --placements 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from crystal_explorer.cell import consistency_penalty, lattice_from_parameters, niggli_parameters, orient_cell  # noqa: E402
from crystal_explorer.lattice import single_cell_structure  # noqa: E402
from crystal_explorer.matching import structure_matcher  # noqa: E402
from crystal_explorer.representation import place  # noqa: E402
from crystal_explorer.structures import crystal_arrays  # noqa: E402


def structures() -> dict[str, Structure]:
    perovskite = Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                           [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    monoclinic = Structure(Lattice.monoclinic(5.1, 5.2, 5.3, 99.2), ["Zr", "Zr", "O", "O", "O", "O"],
                           [[0.28, 0.04, 0.21], [0.72, 0.54, 0.29], [0.07, 0.33, 0.34], [0.93, 0.83, 0.16],
                            [0.45, 0.76, 0.48], [0.55, 0.26, 0.02]])
    spinel = Structure.from_spacegroup("Fd-3m", Lattice.cubic(8.08), ["Mg", "Al", "O"],
                                       [[0.125, 0.125, 0.125], [0.5, 0.5, 0.5], [0.26, 0.26, 0.26]])
    return {"SrTiO3 (5 atoms)": perovskite, "ZrO2-like (6)": monoclinic, "MgAl2O4 conventional (56)": spinel,
            "SrTiO3 2×1×1 (10)": perovskite * (2, 1, 1), "ZrO2-like 2×1×1 (12)": monoclinic * (2, 1, 1),
            "SrTiO3 2×2×2 (40)": perovskite * (2, 2, 2)}


def reference(positions: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Best of 3,000 random rotations by the plain penalty, no margin, no polish."""
    from scipy.spatial.distance import pdist
    from scipy.spatial.transform import Rotation

    x = positions - positions.mean(0)
    min_distance = min(0.9 * float(pdist(x).min()), 1.5)
    rotations = Rotation.random(3000, random_state=0).as_matrix()
    scores = np.concatenate([consistency_penalty(x, np.einsum("ij,mkj->mik", lattice, rotations[k : k + 200]), min_distance)
                             for k in range(0, 3000, 200)])
    return lattice @ rotations[scores.argmin()].T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placements", type=int, default=4, help="random placements per structure")
    args = parser.parse_args()
    matcher = structure_matcher()
    print(f"{'structure':<24} {'shipped s':>10} {'matched':>8} {'reference s':>12} {'matched':>8}")
    for name, structure in structures().items():
        crystal = crystal_arrays(structure, name)
        lattice = lattice_from_parameters(niggli_parameters(structure.lattice.get_niggli_reduced_lattice().matrix)[0])
        times, hits = {"shipped": [], "reference": []}, {"shipped": 0, "reference": 0}
        for seed in range(args.placements):
            placement = place(crystal, "single", np.random.default_rng(seed))
            if placement is None:
                continue
            for method in ("shipped", "reference"):
                start = time.perf_counter()
                found = orient_cell(placement.positions, lattice, atomic_numbers=placement.atomic_numbers)[0] if method == "shipped" else reference(placement.positions, lattice)
                times[method].append(time.perf_counter() - start)
                rebuilt = single_cell_structure(placement.positions, placement.atomic_numbers, found)
                hits[method] += bool(matcher.fit(structure, rebuilt))
        n = len(times["shipped"])
        if n == 0:
            print(f"{name:<24} does not fit the cube")
            continue
        print(f"{name:<24} {np.median(times['shipped']):>10.2f} {hits['shipped']:>5}/{n:<2} "
              f"{np.median(times['reference']):>12.2f} {hits['reference']:>5}/{n:<2}")


if __name__ == "__main__":
    main()
