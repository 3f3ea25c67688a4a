"""Training data: crystals from CSV/CIF folders/.npz bundles, split by id, placed afresh in the cube every draw."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from crystal_explorer.arrays import CrystalArrays, CrystalBundle
from crystal_explorer.grid import GridSpec
from crystal_explorer.placement import compact_cluster, fit_rotation, single_cell_positions
from crystal_explorer.representation import Placement, Representation, pad_batch, place


def read_bundle(paths: list[str] | tuple[str, ...], limit: int | None = None, progress: bool = True) -> CrystalBundle:
    """All crystals of the given sources as one bundle, each tagged with its split and source file.

    `.npz` files (from `python -m train.prepare`) load without pymatgen; other paths are parsed with it.
    """
    bundles = []
    for path in paths:
        if str(path).endswith(".npz"):
            bundles.append(CrystalBundle.load(path))
            continue
        from crystal_explorer.structures import crystal_arrays, load_dataset, split_of

        data = load_dataset(path, limit=limit, progress=progress)
        if data.skipped and progress:
            print(f"{Path(path).name}: skipped {sum(data.skipped.values())} rows: {dict(data.skipped)}")
        crystals = [crystal_arrays(s, i) for i, s in zip(data.ids, data.structures, strict=True)]
        bundles.append(CrystalBundle.from_crystals(crystals, [split_of(i) for i in data.ids], [Path(path).name] * len(crystals)))
    bundle = CrystalBundle.concatenate(bundles) if len(bundles) > 1 else bundles[0]
    if limit is not None and len(bundle) > limit:
        bundle = bundle.select(np.arange(len(bundle)) < limit)
    return bundle


def representable(
    bundle: CrystalBundle, representation: Representation, grid: GridSpec = GridSpec(), max_atoms: int = 1000, seed: int = 0
) -> tuple[np.ndarray, collections.Counter, list[np.ndarray | None]]:
    """Which crystals the representation can hold (mask (S,)), the reasons for the others, and for the
    single cell one rotation (3, 3) that fits each (a fallback when fresh draws keep failing).

    Single cell: the compact cluster must fit the cube under at least one of 64 random rotations.
    """
    rng = np.random.default_rng(seed)
    ok = np.ones(len(bundle), bool)
    reasons: collections.Counter = collections.Counter()
    rotations: list[np.ndarray | None] = [None] * len(bundle)
    for i in range(len(bundle)):
        crystal = bundle[i]
        if crystal.n_atoms > max_atoms:
            ok[i] = False
            reasons[f"more than {max_atoms} atoms"] += 1
        elif representation == "single":
            rotations[i] = fit_rotation(compact_cluster(crystal.lattice, crystal.frac_coords), rng, grid)
            if rotations[i] is None:
                ok[i] = False
                reasons["cell does not fit the cube"] += 1
    return ok, reasons, rotations


class PlacementDataset(Dataset):
    """Item i is crystal i placed with a fresh random rotation (and shift); `deterministic` seeds by index."""

    def __init__(
        self,
        crystals: list[CrystalArrays],
        representation: Representation,
        grid: GridSpec = GridSpec(),
        seed: int = 0,
        canonical_fraction: float = 0.0,
        deterministic: bool = False,
        fallback_rotations: list[np.ndarray | None] | None = None,
    ) -> None:
        self.fallback_rotations = fallback_rotations
        self.crystals, self.representation, self.grid = crystals, representation, grid
        self.seed, self.canonical_fraction, self.deterministic = seed, canonical_fraction, deterministic
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.crystals)

    def _generator(self, i: int) -> np.random.Generator:
        if self.deterministic:
            return np.random.default_rng([self.seed, i])
        if self._rng is None:  # one stream per worker, derived from the (seeded) torch worker seed
            self._rng = np.random.default_rng([self.seed, torch.initial_seed() % 2**32])
        return self._rng

    def __getitem__(self, i: int) -> Placement:
        rng = self._generator(i)
        canonical = self.representation == "lattice" and rng.random() < self.canonical_fraction
        for _ in range(4):
            placement = place(self.crystals[i], self.representation, rng, self.grid, canonical=canonical)
            if placement is not None:
                return placement
        if self.fallback_rotations is not None and self.fallback_rotations[i] is not None:
            # a cell that fits in few orientations: use the one found when it was checked
            crystal = self.crystals[i]
            rotation = self.fallback_rotations[i]
            positions = single_cell_positions(compact_cluster(crystal.lattice, crystal.frac_coords), rotation, self.grid)
            return Placement(positions, crystal.atomic_numbers, rotation, np.zeros(3))
        raise RuntimeError(f"crystal {self.crystals[i].material_id} no longer fits the cube")


def collate(placements: list[Placement]) -> dict[str, torch.Tensor]:
    positions, numbers = pad_batch(placements)
    return {"positions": positions, "atomic_numbers": numbers}
