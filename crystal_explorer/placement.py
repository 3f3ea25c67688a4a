"""Placing a crystal in the cube: the single unit cell and the repeating lattice of Hoffmann et al. (2019).

Pure NumPy functions of plain arrays: `lattice` (3, 3) in Å with lattice vectors as rows,
`frac_coords` (N, 3), `atomic_numbers` (N,). They return Cartesian positions in Å in the cube frame,
ready for `voxel.density_grid`.

Single unit cell (our choice, documented in the README): every atom of the cell appears once, at the
periodic image nearest the cell's centre (on the Niggli-reduced cell this gives the most compact
cluster); the cluster is centred on its mean and rotated about the cube centre by a random rotation
drawn until every atom lies at least `margin_angstrom` inside the cube. A cell for which no drawn
rotation fits is not representable and is excluded with the reason "does not fit the cube".

Repeating lattice: the infinite crystal is cut by the cube. The canonical placement puts a cell corner
(fractional origin) at the cube origin with no rotation; random placements rotate the crystal about the
cube centre and shift it by a random fraction of the cell. Atoms up to `margin_angstrom` outside the
cube are kept because their Gaussians still reach inside (4σ by default).
"""

from __future__ import annotations

import itertools

import numpy as np

from crystal_explorer.grid import GridSpec

NEIGHBOUR_SHIFTS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)  # (27, 3) cells, index 13 is 0


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rotation matrices drawn uniformly from SO(3) (normalised Gaussian quaternions): (n, 3, 3)."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        1,
    )


def compact_cluster(lattice: np.ndarray, frac_coords: np.ndarray) -> np.ndarray:
    """One image of every atom, each the one nearest the cell's centre, centred on their mean: (N, 3) Å."""
    lattice = np.asarray(lattice, float)
    cart = (np.asarray(frac_coords, float) % 1.0) @ lattice
    centre = 0.5 * lattice.sum(0)
    for _ in range(2):  # fold about the cell centre, then once more about the cluster's own mean
        candidates = cart[:, None, :] + (NEIGHBOUR_SHIFTS @ lattice)[None]  # (N, 27, 3)
        best = np.linalg.norm(candidates - centre, axis=-1).argmin(1)
        cart = candidates[np.arange(len(cart)), best]
        centre = cart.mean(0)
    return cart - cart.mean(0)


def fit_rotation(
    cluster: np.ndarray,
    rng: np.random.Generator,
    grid: GridSpec = GridSpec(),
    n_tries: int = 64,
    margin_angstrom: float = 0.5,
) -> np.ndarray | None:
    """A random rotation that keeps every atom of a centred cluster inside the cube, or None: (3, 3)."""
    half = grid.centre_angstrom - margin_angstrom
    if np.linalg.norm(cluster, axis=1).max(initial=0.0) <= half:
        return random_rotations(1, rng)[0]  # fits in any orientation
    rotations = random_rotations(n_tries, rng)
    extent = np.abs(np.einsum("rij,nj->rni", rotations, cluster)).max(axis=(1, 2))
    ok = np.flatnonzero(extent <= half)
    return rotations[ok[0]] if len(ok) else None


def single_cell_positions(cluster: np.ndarray, rotation: np.ndarray, grid: GridSpec = GridSpec()) -> np.ndarray:
    """Cartesian positions (N, 3) in Å of a centred cluster rotated about the cube centre."""
    return cluster @ np.asarray(rotation).T + grid.centre_angstrom


def lattice_positions(
    lattice: np.ndarray,
    frac_coords: np.ndarray,
    atomic_numbers: np.ndarray,
    rotation: np.ndarray | None = None,
    shift_frac: np.ndarray | None = None,
    grid: GridSpec = GridSpec(),
    margin_angstrom: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Atoms of the periodic crystal that fall in the cube (plus a margin), in the cube frame.

    The crystal point x maps to R (x + shift − c) + c with c the cube centre; with rotation=None and
    shift_frac=None a cell corner sits at the cube origin.

    Args:
        lattice: (3, 3) lattice vectors as rows, Å.
        frac_coords: (N, 3) fractional coordinates.
        atomic_numbers: (N,) Z.
        rotation: (3, 3) rotation about the cube centre, or None for the identity.
        shift_frac: (3,) translation of the crystal in fractional coordinates, or None for none.
        margin_angstrom: keep atoms this far outside the cube (default 4σ).

    Returns:
        positions (M, 3) in Å and atomic numbers (M,).
    """
    lattice = np.asarray(lattice, float)
    margin = 4 * grid.sigma_angstrom if margin_angstrom is None else margin_angstrom
    rot = np.eye(3) if rotation is None else np.asarray(rotation, float)
    shift = np.zeros(3) if shift_frac is None else np.asarray(shift_frac, float) @ lattice
    c = np.full(3, grid.centre_angstrom)
    lo, hi = -margin, grid.box_size_angstrom + margin
    corners = np.array(list(itertools.product((lo, hi), repeat=3)))
    crystal_corners = (corners - c) @ rot + c - shift  # inverse map: R^T (y − c) + c − shift
    corner_frac = crystal_corners @ np.linalg.inv(lattice)
    f0 = np.asarray(frac_coords, float) % 1.0
    n_lo = np.floor(corner_frac.min(0)).astype(int) - 1
    n_hi = np.ceil(corner_frac.max(0)).astype(int) + 1
    cells = np.stack(
        np.meshgrid(*[np.arange(a, b) for a, b in zip(n_lo, n_hi, strict=True)], indexing="ij"), -1
    ).reshape(-1, 3)
    frac = (f0[None, :, :] + cells[:, None, :]).reshape(-1, 3)
    z = np.tile(np.asarray(atomic_numbers), len(cells))
    pos = (frac @ lattice + shift - c) @ rot.T + c
    keep = ((pos >= lo) & (pos <= hi)).all(1)
    return pos[keep], z[keep]
