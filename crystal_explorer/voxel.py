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


def _species_owner(pos: torch.Tensor, z: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """For each voxel, the index of the nearest atom within the species radius, else −1: (B, n³)."""
    b, m = z.shape
    n, h, r = grid.n_voxels, grid.voxel_size_angstrom, grid.species_radius_angstrom
    # the atom lies in voxel `base`; a voxel k steps away has its centre ≥ (|k| − ½)h from it
    reach = int(math.ceil(r / h + 0.5))
    offsets = torch.arange(-reach, reach + 1, device=pos.device)
    stencil = torch.stack(torch.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3)
    base = torch.floor(pos / h).long()  # (B, N, 3) voxel holding the atom
    idx = base[:, :, None, :] + stencil  # (B, N, K, 3)
    d2 = (((idx.to(pos.dtype) + 0.5) * h - pos[:, :, None, :]) ** 2).sum(-1)  # (B, N, K)
    inside = ((idx >= 0) & (idx < n)).all(-1)
    keep = inside & (d2 <= r * r) & (z[:, :, None] > 0)
    flat = (torch.arange(b, device=pos.device)[:, None, None] * n**3 + idx[..., 0] * n * n + idx[..., 1] * n
            + idx[..., 2])
    atom = torch.arange(m, device=pos.device)[None, :, None].expand_as(flat)
    flat, d2, atom = flat[keep], d2[keep], atom[keep]
    nearest = torch.full((b * n**3,), float("inf"), device=pos.device, dtype=pos.dtype)
    nearest.scatter_reduce_(0, flat, d2, reduce="amin")
    win = d2 <= nearest[flat]
    owner = torch.full((b * n**3,), -1, device=pos.device, dtype=torch.long)
    owner[flat[win]] = atom[win]
    return owner.reshape(b, n**3)


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
    n = grid.n_voxels
    owner = _species_owner(pos, z, grid)
    zz = torch.cat([z.long(), torch.zeros_like(z[:, :1]).long()], 1)  # index −1 → the appended 0
    s = torch.gather(zz, 1, torch.where(owner < 0, zz.shape[1] - 1, owner)).reshape(-1, n, n, n)
    if squeeze:
        s = s[0]
    return s.cpu().numpy() if is_numpy else s


def visible_atoms(positions: Array, atomic_numbers: Array, grid: GridSpec = GridSpec()) -> Array:
    """Which atoms own at least one voxel of S, i.e. what a perfect segmentation could recover: (B, N) bool."""
    pos, z, is_numpy = _to_torch(positions, atomic_numbers)
    pos, z, squeeze = _batched(pos, z)
    owner = _species_owner(pos, z, grid)
    seen = torch.zeros(z.shape[0], z.shape[1] + 1, dtype=torch.bool, device=pos.device)
    seen.scatter_(1, torch.where(owner < 0, z.shape[1], owner), True)
    seen = seen[:, :-1]
    if squeeze:
        seen = seen[0]
    return seen.cpu().numpy() if is_numpy else seen
