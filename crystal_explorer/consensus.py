"""Consensus reconstruction: one crystal decoded in several orientations, its atoms kept where most decodings agree.

A single cell is placed in the cube with a random rotation, and the decoder's errors (a merged pair, a ghost
atom, a peak a few Z too low) change with that rotation. Encoding the same crystal in K orientations, mapping
each decoding's atoms back into the first orientation's frame and keeping the atoms that at least
`min_support` decodings agree on (within `radius_angstrom`) averages those errors out: positions are the mean
of the agreeing atoms, species come from their pooled votes and mean Gaussian amplitude
(`crystal_explorer.density_fit`). It uses nothing but the input crystal, as a plain reconstruction does; it
costs K decodings.

Measured on the val split (stage-14 single-cell model, refined encodings, up to 60 crystals per source,
`min_support` = K // 2 + 1), MP ground states / Perov-5 / Carbon-24 / mp_bulk, species exact and formula
exact: one orientation 51.5 / 68.8 / 100 / 65.0 % and 17.8 / 15.0 / 100 / 33.3 %; seven orientations
59.1 / 75.0 / 100 / 81.0 % and 35.6 / 30.0 / 100 / 63.2 %; atoms within 0.5 Å 75.9 → 79.4 % (MP), count
exact 33 → 47 % (Carbon-24). The orientations and support each checkpoint uses are in its model.json
("consensus"), chosen on val (README, "Consensus of orientations").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from crystal_explorer.settings import settings_from_dict


@dataclass(frozen=True)
class ConsensusConfig:
    """How many orientations a reconstruction decodes and how many must agree on an atom.

    Attributes:
        orientations: decodings per reconstruction (1 = the plain reconstruction of one orientation).
        min_support: decodings that must hold an atom for it to be kept; None = a majority, K // 2 + 1.
        radius_angstrom: atoms of two decodings farther apart than this (Å) are different atoms.
    """

    orientations: int = 1
    min_support: int | None = None
    radius_angstrom: float = 1.0

    def __post_init__(self) -> None:
        if self.orientations < 1:
            raise ValueError(f"consensus needs at least one orientation, got {self.orientations}")
        if self.min_support is not None and not 1 <= self.min_support <= self.orientations:
            raise ValueError(f"min_support must lie in 1..{self.orientations}, got {self.min_support}")
        if not self.radius_angstrom > 0:
            raise ValueError(f"radius_angstrom must be positive, got {self.radius_angstrom}")

    @property
    def support(self) -> int:
        return self.orientations // 2 + 1 if self.min_support is None else self.min_support

    def with_orientations(self, orientations: int, min_support: int | None = None) -> ConsensusConfig:
        """This config for another number of orientations (`min_support` None: a majority of them)."""
        return dataclasses.replace(self, orientations=orientations, min_support=min_support)

    @classmethod
    def from_dict(cls, data: dict | None) -> ConsensusConfig:
        return settings_from_dict(cls, data, "consensus")


class DecodedAtoms(NamedTuple):
    """One decoding's atoms: positions (K, 3) Å in a common frame, votes (K, C), Gaussian amplitudes (K,) in Z units."""

    positions: np.ndarray
    votes: np.ndarray
    amplitudes: np.ndarray


class Merged(NamedTuple):
    """Atoms agreed on: mean positions (M, 3) Å, pooled votes (M, C), mean amplitudes (M,), support (M,)."""

    positions: np.ndarray
    votes: np.ndarray
    amplitudes: np.ndarray
    support: np.ndarray


def to_reference_frame(positions: np.ndarray, rotation: np.ndarray, reference_rotation: np.ndarray,
                       centre_angstrom: float) -> np.ndarray:
    """Positions (K, 3) Å of a single cell placed with `rotation` about the cube centre, moved to where the
    placement with `reference_rotation` puts them (both rotations (3, 3), as in `placement.single_cell_positions`)."""
    positions = np.asarray(positions, float).reshape(-1, 3)
    return (positions - centre_angstrom) @ np.asarray(rotation) @ np.asarray(reference_rotation).T + centre_angstrom


def merge(decodings: list[DecodedAtoms], min_support: int, radius_angstrom: float = 1.0) -> Merged:
    """Atoms that at least `min_support` of `decodings` (all in one frame) hold within `radius_angstrom`.

    Decodings are taken in turn; each one's atoms are paired with the running clusters by the assignment of
    least total distance (one atom per cluster per decoding), and an atom with no partner within the radius
    starts a cluster of its own.
    """
    n_classes = max((d.votes.shape[1] for d in decodings if d.votes.ndim == 2), default=1)
    members: list[list[int]] = []  # per cluster, indices into the flat list of atoms
    pos, votes, amps = [], [], []
    for d in decodings:
        start = len(pos)
        for i in range(len(d.positions)):
            pos.append(np.asarray(d.positions[i], float))
            row = np.zeros(n_classes)
            row[: d.votes.shape[1]] = d.votes[i]
            votes.append(row)
            amps.append(float(d.amplitudes[i]))
        new = list(range(start, len(pos)))
        if members and new:
            centres = np.array([np.mean([pos[j] for j in m], 0) for m in members])
            distance = np.linalg.norm(np.array([pos[j] for j in new])[:, None] - centres[None], axis=-1)
            rows, cols = linear_sum_assignment(distance)
            paired = set()
            for r, c in zip(rows, cols, strict=True):
                if distance[r, c] <= radius_angstrom:
                    members[c].append(new[r])
                    paired.add(new[r])
            new = [j for j in new if j not in paired]
        members += [[j] for j in new]
    kept = [m for m in members if len(m) >= min_support]
    if not kept:
        return Merged(np.zeros((0, 3)), np.zeros((0, n_classes)), np.zeros(0), np.zeros(0, np.int64))
    return Merged(
        np.array([np.mean([pos[j] for j in m], 0) for m in kept]),
        np.array([np.sum([votes[j] for j in m], 0) for m in kept]),
        np.array([np.mean([amps[j] for j in m]) for m in kept]),
        np.array([len(m) for m in kept], np.int64),
    )
