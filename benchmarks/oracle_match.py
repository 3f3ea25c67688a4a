"""Oracle match rate of lattice recovery: true species grid → atoms → `recover_lattice` → StructureMatcher.

Each test crystal (hash split "test" of the file) is placed as the repeating lattice with a random
rotation and shift, its true species grid is segmented into atoms, and the recovered crystal is
compared with the original. This measures the recovery alone, with a perfect decoder.

    python benchmarks/oracle_match.py --limit 200 ../shared/data/perov_5_val.csv.gz ../shared/data/carbon_24_val.csv.gz
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from crystal_explorer.lattice import recover_lattice
from crystal_explorer.matching import match_metrics
from crystal_explorer.representation import place
from crystal_explorer.segment import atoms_from_species_grid
from crystal_explorer.structures import crystal_arrays, load_dataset
from crystal_explorer.voxel import species_grid


def oracle_pairs(structures, seed: int = 0):
    """(true, recovered) pairs from the true species grid of a random lattice placement of each structure."""
    rng = np.random.default_rng(seed)
    pairs = []
    for structure in structures:
        placement = place(crystal_arrays(structure), "lattice", rng)
        atoms = atoms_from_species_grid(species_grid(placement.positions, placement.atomic_numbers))
        recovered = recover_lattice(atoms.positions, atoms.atomic_numbers)
        pairs.append((structure, None if recovered is None else recovered.structure))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in args.datasets:
        data = load_dataset(path, limit=args.limit, split=args.split, progress=False)
        start = time.perf_counter()
        pairs = oracle_pairs(data.structures, args.seed)
        metrics = match_metrics(pairs)
        metrics["no_lattice_found"] = sum(r is None for _, r in pairs)
        metrics["seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps({"dataset": path, **metrics}))


if __name__ == "__main__":
    main()
