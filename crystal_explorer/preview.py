"""A static PNG preview of a decoding (matplotlib): the atoms in 3-D beside the density's middle z-slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crystal_explorer.segment import Atoms


def preview_png(density: np.ndarray, atoms: Atoms, path: str | Path, title: str = "", box_angstrom: float = 10.0) -> Path:
    """Write `path`: left, atoms (Å, cube frame) sized and coloured by Z; right, the density slice through the middle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8, 4))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    if len(atoms):
        z = np.asarray(atoms.atomic_numbers)
        p = np.asarray(atoms.positions)
        sc = ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=z, cmap="viridis", s=20 + 2 * z, vmin=1, vmax=max(2, z.max()))
        fig.colorbar(sc, ax=ax, shrink=0.6, label="Z")
    ax.set(xlim=(0, box_angstrom), ylim=(0, box_angstrom), zlim=(0, box_angstrom), xlabel="x (Å)", ylabel="y (Å)")
    ax.set_title(f"{title}: {len(atoms)} atoms")
    ax2 = fig.add_subplot(1, 2, 2)
    mid = density.shape[2] // 2
    im = ax2.imshow(density[:, :, mid].T, origin="lower", extent=(0, box_angstrom, 0, box_angstrom), cmap="magma")
    fig.colorbar(im, ax=ax2, shrink=0.8, label="density (Z units)")
    ax2.set(title=f"density, z = {(mid + 0.5) * box_angstrom / density.shape[2]:.2f} Å", xlabel="x (Å)", ylabel="y (Å)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
