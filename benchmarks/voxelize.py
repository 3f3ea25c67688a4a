"""Structures per second of the batched voxelizer (density M + species S) against a per-atom NumPy reference.

    python benchmarks/voxelize.py [--limit 200] [--batch 64] [--reference-limit 24] [--threads N]

Real structures from ../shared/data/mp_ground_states.csv.gz when present, else pymatgen's examples. Both
representations: single cells (compact cluster, random rotation) and lattice placements (random rotation
and shift, all images within 4σ of the cube). The reference loops over atoms — for the lattice that is
every periodic image in the placement — computing each voxel's distance with NumPy broadcasting.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from crystal_explorer.grid import GridSpec  # noqa: E402
from crystal_explorer.representation import pad_batch, place  # noqa: E402
from crystal_explorer.structures import crystal_arrays, example_structures, load_dataset  # noqa: E402
from crystal_explorer.voxel import density_grid, species_grid  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mp_ground_states.csv.gz"


def reference_grids(positions: np.ndarray, atomic_numbers: np.ndarray, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Straightforward M (peak-normalised) and S: one atom at a time over all n³ voxel centres."""
    n, h, s, r = grid.n_voxels, grid.voxel_size_angstrom, grid.sigma_angstrom, grid.species_radius_angstrom
    c = (np.arange(n) + 0.5) * h
    centres = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1)  # (n, n, n, 3)
    rho = np.zeros((n, n, n))
    nearest = np.full((n, n, n), np.inf)
    species = np.zeros((n, n, n), dtype=np.int64)
    for position, z in zip(positions, atomic_numbers, strict=True):
        if z == 0:
            continue
        d2 = ((centres - position) ** 2).sum(-1)
        rho += z * np.exp(-d2 / (2 * s * s))
        win = (d2 <= r * r) & (d2 < nearest)
        nearest[win] = d2[win]
        species[win] = z
    return rho, species


def load_crystals(limit: int):
    if DATA.is_file():
        data = load_dataset(DATA, limit=limit, progress=False)
        return [crystal_arrays(s, i) for i, s in zip(data.ids, data.structures, strict=True)], DATA.name
    examples = example_structures()
    return [crystal_arrays(s, name) for name, s in examples.items()], "pymatgen examples"


def bench_project(placements, batch: int, grid: GridSpec, repeats: int = 2) -> float:
    batches = [pad_batch(placements[i : i + batch]) for i in range(0, len(placements), batch)]
    for pos, z in batches[:1]:  # warm-up
        density_grid(pos, z, grid), species_grid(pos, z, grid)
    start = time.perf_counter()
    for _ in range(repeats):
        for pos, z in batches:
            density_grid(pos, z, grid)
            species_grid(pos, z, grid)
    return repeats * len(placements) / (time.perf_counter() - start)


def bench_reference(placements, grid: GridSpec) -> float:
    start = time.perf_counter()
    for p in placements:
        reference_grids(p.positions, p.atomic_numbers, grid)
    return len(placements) / (time.perf_counter() - start)


def agreement(placements, grid: GridSpec) -> tuple[float, float]:
    """Largest |ΔM| and the fraction of voxels where S differs, project vs reference, over a few crystals."""
    worst, differ = 0.0, []
    for p in placements[:4]:
        rho, s = reference_grids(p.positions, p.atomic_numbers, grid)
        worst = max(worst, float(np.abs(density_grid(p.positions, p.atomic_numbers, grid) - rho).max()))
        differ.append(float((species_grid(p.positions, p.atomic_numbers, grid) != s).mean()))
    return worst, float(np.mean(differ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reference-limit", type=int, default=24, help="crystals timed with the slow reference")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = GridSpec()
    crystals, source = load_crystals(args.limit)
    rng = np.random.default_rng(0)
    print(f"{len(crystals)} crystals from {source}; grid {grid.n_voxels}³ over {grid.box_size_angstrom} Å; "
          f"batch {args.batch}; torch threads {torch.get_num_threads()}; device cpu")
    rows, ratios = [], []
    for representation in ("single", "lattice"):
        start = time.perf_counter()
        placements = [p for c in crystals if (p := place(c, representation, rng, grid)) is not None]
        place_rate = len(placements) / (time.perf_counter() - start)
        atoms = np.mean([len(p.atomic_numbers) for p in placements])
        project = bench_project(placements, args.batch, grid)
        reference = bench_reference(placements[: args.reference_limit], grid)
        d_rho, d_s = agreement(placements, grid)
        rows.append((representation, len(placements), atoms, place_rate, project, reference, project / reference,
                     d_rho, d_s))
        ratios.append(project / reference)
    header = ("representation", "crystals", "atoms/placement", "placement/s", "project grids/s", "reference grids/s",
              "speed-up", "max |ΔM|", "S voxels differing")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for rep, n, atoms, pr, p, r, x, d_rho, d_s in rows:
        print(f"{rep} | {n} | {atoms:.1f} | {pr:.0f} | {p:.0f} | {r:.1f} | {x:.0f}× | {d_rho:.1e} | {d_s:.1e}")
    print(f"speed-up of the batched voxelizer over the reference: single {ratios[0]:.0f}×, lattice {ratios[1]:.0f}×")


if __name__ == "__main__":
    main()
