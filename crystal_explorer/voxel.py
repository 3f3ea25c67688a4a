"""The density and species grids of Hoffmann et al. (2019), eq. (1), batched for NumPy or torch.

Atoms are given as Cartesian positions in Å in the frame of the cube (which spans [0, box]³) and
atomic numbers Z, padded with Z = 0. Grid index [i, j, k] is the voxel centred at
((i + ½)h, (j + ½)h, (k + ½)h) with h the voxel size. NumPy in gives NumPy out; torch in gives torch
out on the same device, so training can voxelize on the GPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from crystal_explorer.grid import GridSpec

Array = np.ndarray | torch.Tensor


def _to_torch(positions: Array, atomic_numbers: Array) -> tuple[torch.Tensor, torch.Tensor, bool]:
    is_numpy = isinstance(positions, np.ndarray)
    pos = torch.as_tensor(positions)
    pos = pos.to(torch.float64 if pos.dtype == torch.float64 else torch.float32)
    z = torch.as_tensor(atomic_numbers, device=pos.device)
    return pos, z, is_numpy


def _batched(pos: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    if pos.ndim == 2:
        return pos[None], z[None], True
    return pos, z, False


def voxel_centres(grid: GridSpec, device: torch.device | None = None, dtype=torch.float32) -> torch.Tensor:
    """Centres of the voxels along one axis, (n,) in Å."""
    h = grid.voxel_size_angstrom
    return (torch.arange(grid.n_voxels, device=device, dtype=dtype) + 0.5) * h


def density_grid(
    positions: Array, atomic_numbers: Array, grid: GridSpec = GridSpec(), *, peak_normalised: bool = True
) -> Array:
    """The density M of eq. (1): Σ_m Z_m exp(−|r − r_m|²/2σ²) / (σ³(2π)^{3/2}), sampled at voxel centres.

    The isotropic Gaussian factorises per axis, so the grid is an outer product summed over atoms:
    one (B, n², N) × (B, N, n) matrix product.

    Args:
        positions: (B, N, 3) or (N, 3) Cartesian positions in Å, cube frame.
        atomic_numbers: (B, N) or (N,) Z; 0 marks padding.
        grid: the grid geometry.
        peak_normalised: multiply by σ³(2π)^{3/2} (as the paper does for plotting), so a lone atom
            peaks at Z; units are then "Z". If False, units are Z per Å³ and the grid sums to ΣZ/h³.

    Returns:
        (B, n, n, n) or (n, n, n) density, same library and device as `positions`.
    """
    pos, z, is_numpy = _to_torch(positions, atomic_numbers)
    pos, z, squeeze = _batched(pos, z)
    n, s = grid.n_voxels, grid.sigma_angstrom
    centres = voxel_centres(grid, pos.device, pos.dtype)
    # (B, N, 3, n): per-axis Gaussian factors
    g = torch.exp(-((centres - pos[..., None]) ** 2) / (2 * s * s))
    weight = z.to(pos.dtype)
    if not peak_normalised:
        weight = weight / (s**3 * (2 * math.pi) ** 1.5)
    gx = g[:, :, 0] * weight[..., None]  # (B, N, n)
    gxy = (gx[..., :, None] * g[:, :, 1, None, :]).flatten(2)  # (B, N, n²)
    rho = torch.bmm(gxy.transpose(1, 2), g[:, :, 2]).reshape(-1, n, n, n)  # (B, n, n, n)
    if squeeze:
        rho = rho[0]
    return rho.cpu().numpy() if is_numpy else rho


def _species_hits(pos: torch.Tensor, z: torch.Tensor, grid: GridSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxels within the species radius of an atom and the nearest such atom: flat voxel index into
    (B·n³,) and atom index into N, one entry per voxel that has an atom (ties go to the lower index).

    Only a 5³ stencil around each atom is visited, so the cost grows with the number of atoms, not
    with the B·n³ voxels of the grid.
    """
    n, h, r = grid.n_voxels, grid.voxel_size_angstrom, grid.species_radius_angstrom
    # the atom lies in voxel `base`; a voxel k steps away has its centre ≥ (|k| − ½)h from it
    reach = int(math.ceil(r / h + 0.5))
    offsets = torch.arange(-reach, reach + 1, device=pos.device)
    base = torch.floor(pos / h).long()  # (B, N, 3) voxel holding the atom
    idx = base[..., None] + offsets  # (B, N, 3, K) voxel indices along each axis
    d2_axis = ((idx.to(pos.dtype) + 0.5) * h - pos[..., None]) ** 2  # (B, N, 3, K), separable
    d2_axis = torch.where((idx >= 0) & (idx < n), d2_axis, torch.inf)  # outside the cube: never kept
    d2 = d2_axis[:, :, 0, :, None, None] + d2_axis[:, :, 1, None, :, None] + d2_axis[:, :, 2, None, None, :]
    keep = (d2 <= r * r) & (z[:, :, None, None, None] > 0)  # (B, N, K, K, K)
    bi, atom, ix, iy, iz = keep.nonzero(as_tuple=True)
    d2 = d2[bi, atom, ix, iy, iz]
    flat = bi * n**3 + idx[bi, atom, 0, ix] * n * n + idx[bi, atom, 1, iy] * n + idx[bi, atom, 2, iz]
    # nearest atom per voxel: order by distance, then (stably) by voxel, and keep each voxel's first entry
    by_distance = torch.sort(d2, stable=True).indices
    flat, atom = flat[by_distance], atom[by_distance]
    by_voxel = torch.sort(flat, stable=True).indices
    flat, atom = flat[by_voxel], atom[by_voxel]
    first = torch.ones_like(flat, dtype=torch.bool)
    first[1:] = flat[1:] != flat[:-1]
    return flat[first], atom[first]


def species_grid(positions: Array, atomic_numbers: Array, grid: GridSpec = GridSpec()) -> Array:
    """The species grid S: each voxel holds Z of the nearest atom within `species_radius_angstrom`, else 0.

    Args:
        positions: (B, N, 3) or (N, 3) Cartesian positions in Å, cube frame.
        atomic_numbers: (B, N) or (N,) Z; 0 marks padding.

    Returns:
        (B, n, n, n) or (n, n, n) integer grid of Z (int64), same library and device as `positions`.
    """
    pos, z, is_numpy = _to_torch(positions, atomic_numbers)
    pos, z, squeeze = _batched(pos, z)
    n, m = grid.n_voxels, z.shape[1]
    flat, atom = _species_hits(pos, z, grid)
    s = torch.zeros(z.shape[0] * n**3, dtype=torch.long, device=pos.device)
    s[flat] = z.long().reshape(-1)[torch.div(flat, n**3, rounding_mode="floor") * m + atom]
    s = s.reshape(-1, n, n, n)
    if squeeze:
        s = s[0]
    return s.cpu().numpy() if is_numpy else s


def visible_atoms(positions: Array, atomic_numbers: Array, grid: GridSpec = GridSpec()) -> Array:
    """Which atoms own at least one voxel of S, i.e. what a perfect segmentation could recover: (B, N) bool."""
    pos, z, is_numpy = _to_torch(positions, atomic_numbers)
    pos, z, squeeze = _batched(pos, z)
    flat, atom = _species_hits(pos, z, grid)
    seen = torch.zeros(z.shape[0] * z.shape[1], dtype=torch.bool, device=pos.device)
    seen[torch.div(flat, grid.n_voxels**3, rounding_mode="floor") * z.shape[1] + atom] = True
    seen = seen.reshape(z.shape)
    if squeeze:
        seen = seen[0]
    return seen.cpu().numpy() if is_numpy else seen
