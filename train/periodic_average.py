"""`python -m train.periodic_average`: does averaging a lattice decoding over its crystal's translations help?

A repeating-lattice decoding shows the same cell many times in the cube. Averaging the U-Net's class scores
(or the decoded density, then segmenting that) over the translations t of the crystal's lattice,
f̄(r) = mean_t f(r + t) over the t that keep r + t inside the cube, keeps what is periodic and damps what is
not. Three paths are compared on the val split, each at several background offsets:

- `plain`: the shipped path (the refined decoding, segmented as it is);
- `mean scores`: class scores averaged over the input's placed lattice (density averaged as the weights);
- `U-Net on mean density`: the density averaged, then segmented by the U-Net.

An experiment, not a shipped path (measured 2026-11-27, README): the input's lattice is side information a
draw does not have, and the gains were mixed. Re-run it after a stage that sharpens the decoder.

    python -m train.periodic_average --checkpoint checkpoints/lattice --data data_cache/{mp_ground_states,perov_5_val,carbon_24_val,mp_bulk}.npz --limit 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from crystal_explorer.grid import GridSpec

OFFSETS = (1.0, 1.5, 2.0, 3.0)


def lattice_translations(lattice: np.ndarray, grid: GridSpec = GridSpec()) -> np.ndarray:
    """Lattice translations (T, 3) in Å (rows of `lattice` in the cube frame) that keep part of the cube in the
    cube: every integer combination with each Cartesian component shorter than the cube's edge, 0 included."""
    lattice = np.asarray(lattice, float)
    edge = grid.box_size_angstrom
    # the coefficients of a translation shorter than edge·√3 are bounded by that length over the cell's height
    volume = abs(np.linalg.det(lattice))
    heights = volume / np.linalg.norm(np.cross(lattice[[1, 2, 0]], lattice[[2, 0, 1]]), axis=1)
    bound = np.ceil(edge * np.sqrt(3) / heights).astype(int)
    ranges = [np.arange(-b, b + 1) for b in bound]
    coefficients = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3)
    t = coefficients @ lattice
    return t[(np.abs(t) < edge).all(1)]


def periodic_mean(field: np.ndarray, lattice: np.ndarray, grid: GridSpec = GridSpec()) -> np.ndarray:
    """`field` (C, n, n, n) averaged over the lattice's translations, each voxel over the translated points still
    inside the cube (trilinear interpolation between voxel centres): (C, n, n, n)."""
    n, edge = grid.n_voxels, grid.box_size_angstrom
    f = torch.from_numpy(np.asarray(field, np.float32)[None])
    centres = (np.indices((n, n, n)).reshape(3, -1).T + 0.5) * grid.voxel_size_angstrom
    total = torch.zeros_like(f)
    count = torch.zeros((1, 1, n, n, n))
    for t in lattice_translations(lattice, grid):
        q = centres + t
        inside = torch.from_numpy(((q > 0) & (q < edge)).all(1).reshape(1, 1, n, n, n)).float()
        # grid_sample's last axis is (x, y, z) = (W, H, D): our array axes reversed; align_corners=False puts
        # voxel centres at (2i + 1) / n − 1
        u = torch.from_numpy((2 * q / edge - 1)[:, ::-1].copy()).float().reshape(1, n, n, n, 3)
        total += torch.nn.functional.grid_sample(f, u, mode="bilinear", padding_mode="border", align_corners=False) * inside
        count += inside
    return (total / count.clamp(min=1))[0].numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.periodic_average", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/lattice")
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--limit", type=int, default=20, help="at most N val crystals per source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offsets", type=float, nargs="+", default=list(OFFSETS))
    parser.add_argument("--out", help="write the summaries here as JSON")
    args = parser.parse_args(argv)
    from crystal_explorer.latent import CrystalModel, compare_with_truth
    from crystal_explorer.lattice import placed_lattice
    from crystal_explorer.metrics import summarise
    from train import USER_ERRORS, user_error
    from train.calibrate import atoms_at_offset, decode_all
    from train.data import read_bundle

    try:
        model = CrystalModel.from_checkpoint(args.checkpoint, device="cpu")
        if model.representation != "lattice":
            raise ValueError(f"{args.checkpoint} is a '{model.representation}' model; this compares lattice decodings")
        bundles = {Path(p).name: read_bundle([p], progress=False) for p in args.data}
        decodings = decode_all(model, args.data, args.limit, args.seed)
    except USER_ERRORS as exc:
        return user_error(exc)
    grid, split = model.grid, model.segmentation["split_angstrom"]
    comparisons: dict[tuple, list] = {}
    for decoding in decodings:
        placement, encoded, name = decoding.encoded.placement, decoding.encoded, decoding.source
        scores, density = decoding.logits, decoding.density
        cell = placed_lattice(bundles[name][decoding.index].lattice, placement.rotation)
        mean_density = periodic_mean(density[None], cell, grid)[0]
        with torch.no_grad():
            scores_of_mean = model.network.segment(torch.from_numpy(mean_density[None, None] / model.scale).float())
        paths = {"plain": (scores, density), "mean scores": (periodic_mean(scores, cell, grid), mean_density),
                 "U-Net on mean density": (scores_of_mean.float()[0].numpy(), mean_density)}
        for path, (s, d) in paths.items():
            for b in args.offsets:
                atoms = atoms_at_offset(s, d, b, grid, split)
                c = compare_with_truth(placement, atoms, grid, encoded.density, d)
                comparisons.setdefault((path, b), []).append(c)
                comparisons.setdefault((path, b, name), []).append(c)
    summaries = {key: summarise(cs) for key, cs in comparisons.items()}
    print(f"{'path':<22} {'offset':>6} {'atoms ≤0.5 Å':>12} {'decoded ≤0.5 Å':>14} {'species':>8} {'median Å':>9} {'90th Å':>7}")
    for (path, b, *source), s in summaries.items():
        if source:
            continue
        p = s["distance_percentiles_true_to_pred"]
        print(f"{path:<22} {b:>6.1f} {s['atoms_within_0.5A']:>12.3f} {s['pred_atoms_within_0.5A'] or 0:>14.3f} "
              f"{s['species_exact'] or 0:>8.3f} {p['50']:>9.2f} {p['90']:>7.2f}")
    if args.out:
        from crystal_explorer.metrics import json_safe

        Path(args.out).write_text(json.dumps(json_safe({" | ".join(map(str, k)): v for k, v in summaries.items()}), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
