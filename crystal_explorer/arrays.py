"""Crystals as plain arrays, and bundles of many of them in one .npz, free of pymatgen (the GPU path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CrystalArrays:
    """A crystal: `lattice` (3, 3) Å (rows are vectors), `frac_coords` (N, 3), `atomic_numbers` (N,)."""

    lattice: np.ndarray
    frac_coords: np.ndarray
    atomic_numbers: np.ndarray
    material_id: str = ""

    @property
    def n_atoms(self) -> int:
        return len(self.atomic_numbers)

    def to_structure(self):
        """The pymatgen Structure (imported here so the arrays stay usable without pymatgen)."""
        from pymatgen.core import Lattice, Structure

        return Structure(Lattice(self.lattice), [int(z) for z in self.atomic_numbers], self.frac_coords)


@dataclass(frozen=True)
class CrystalBundle:
    """Many crystals in flat arrays: atoms of crystal i are rows offsets[i]:offsets[i+1]."""

    lattices: np.ndarray  # (S, 3, 3) Å
    frac_coords: np.ndarray  # (T, 3)
    atomic_numbers: np.ndarray  # (T,)
    offsets: np.ndarray  # (S + 1,)
    ids: np.ndarray  # (S,) str
    splits: np.ndarray  # (S,) str: train / val / test
    sources: np.ndarray  # (S,) str: the file each came from

    def __len__(self) -> int:
        return len(self.lattices)

    def __getitem__(self, i: int) -> CrystalArrays:
        a, b = self.offsets[i], self.offsets[i + 1]
        return CrystalArrays(self.lattices[i], self.frac_coords[a:b], self.atomic_numbers[a:b], str(self.ids[i]))

    @classmethod
    def from_crystals(cls, crystals: list[CrystalArrays], splits: list[str], sources: list[str]) -> CrystalBundle:
        counts = [c.n_atoms for c in crystals]
        return cls(
            lattices=np.array([c.lattice for c in crystals], dtype=np.float64).reshape(-1, 3, 3),
            frac_coords=np.concatenate([c.frac_coords for c in crystals]).astype(np.float64).reshape(-1, 3),
            atomic_numbers=np.concatenate([c.atomic_numbers for c in crystals]).astype(np.int64),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            ids=np.array([c.material_id for c in crystals]),
            splits=np.array(splits),
            sources=np.array(sources),
        )

    def select(self, mask: np.ndarray) -> CrystalBundle:
        crystals = [self[i] for i in np.flatnonzero(mask)]
        return CrystalBundle.from_crystals(crystals, list(self.splits[mask]), list(self.sources[mask]))

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: str | Path) -> CrystalBundle:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    @classmethod
    def concatenate(cls, bundles: list[CrystalBundle]) -> CrystalBundle:
        crystals, splits, sources = [], [], []
        for b in bundles:
            crystals += [b[i] for i in range(len(b))]
            splits += list(b.splits)
            sources += list(b.sources)
        return cls.from_crystals(crystals, splits, sources)
