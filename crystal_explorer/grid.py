"""The voxel grid of the representation: a cube of side `box_size_angstrom` cut into `n_voxels`³ voxels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GridSpec:
    """Geometry of the density grid and the Gaussian atoms drawn on it (Hoffmann et al. 2019, §3).

    Attributes:
        n_voxels: voxels along each edge (paper: 30).
        box_size_angstrom: cube edge in Å (paper: 10 Å, so voxels are 0.33 Å).
        sigma_angstrom: Gaussian width σ of each atom in Å (paper: 1 Å).
        species_radius_angstrom: a voxel of the species grid S holds Z of an atom whose centre is
            within this distance of the voxel centre (paper: 0.5 Å).
    """

    n_voxels: int = 30
    box_size_angstrom: float = 10.0
    sigma_angstrom: float = 1.0
    species_radius_angstrom: float = 0.5

    @property
    def voxel_size_angstrom(self) -> float:
        return self.box_size_angstrom / self.n_voxels

    @property
    def centre_angstrom(self) -> float:
        """The cube's centre along each axis, in Å (the cube spans [0, box_size])."""
        return self.box_size_angstrom / 2
