"""`python -m train.fit_cell`: train the cell head of a single-cell model (`crystal_explorer.cell`).

Encodes every train-split crystal `--rotations` times (posterior means, seeded random rotations as in
training), trains the MLP from latent to Niggli parameters, reports its errors on the val split and
writes CHECKPOINT/cell_head.safetensors. Only weights and summary errors are stored, nothing row by row.

    python -m train.fit_cell --checkpoint checkpoints/single_cell --data data_cache/*.npz
"""

from __future__ import annotations

import argparse

import numpy as np


def _encode(model, bundle, indices, rotations: int, seed: int, batch_size: int = 64):
    from pymatgen.core import Lattice
    from tqdm import tqdm

    from crystal_explorer.lattice import placed_lattice
    from crystal_explorer.representation import place

    placements, targets, sources = [], [], []
    todo = [(r, int(i)) for r in range(rotations) for i in indices]
    for r, i in tqdm(todo, desc="placing", unit=" crystal", leave=False):
        crystal = bundle[i]
        if crystal.atomic_numbers.max(initial=0) > model.network.config.max_z:
            continue
        p = place(crystal, "single", np.random.default_rng([seed, r, i]), model.grid)
        if p is None:
            continue
        targets.append(Lattice(placed_lattice(crystal.lattice, p.rotation)).get_niggli_reduced_lattice().matrix)
        sources.append(bundle.sources[i])
        placements.append(p)
    return model.encode_means(placements, batch_size), np.stack(targets), np.array(sources)


def errors(params: np.ndarray, truth: np.ndarray, sources: np.ndarray) -> dict:
    """Median relative error of a, b, c and median absolute angle error (degrees), per source."""
    rel = np.abs(np.exp(params[:, :3] - truth[:, :3]) - 1)
    ang = np.abs(np.degrees(np.arccos(np.clip(params[:, 3:], -1, 1)) - np.arccos(np.clip(truth[:, 3:], -1, 1))))
    return {str(s): {"n": int((sources == s).sum()), "abc_relative_error_median": float(np.median(rel[sources == s])),
                     "angle_error_median_degrees": float(np.median(ang[sources == s]))} for s in dict.fromkeys(sources)}


def fit(checkpoint: str, data: list[str], rotations: int, epochs: int, seed: int, limit: int | None = None) -> dict:
    import torch
    from tqdm import tqdm

    from crystal_explorer.cell import CellHead, CellHeadConfig, niggli_parameters
    from crystal_explorer.latent import CrystalModel
    from train.data import read_bundle

    torch.manual_seed(seed)
    model = CrystalModel.from_checkpoint(checkpoint, device="cpu")
    if model.representation != "single":
        raise ValueError("the cell head is for single-cell models (the lattice model recovers its own lattice)")
    bundle = read_bundle(data, progress=False)
    train = np.flatnonzero(bundle.splits == "train")[:limit]
    val = np.flatnonzero(bundle.splits == "val")[:limit]
    if len(train) < 2 or len(val) == 0:
        raise ValueError("the data needs crystals in both the train and the val split")
    z, lattices, _ = _encode(model, bundle, train, rotations, seed)
    zv, lattices_v, sources_v = _encode(model, bundle, val, 1, seed + 1)
    y, yv = niggli_parameters(lattices), niggli_parameters(lattices_v)

    head = CellHead(CellHeadConfig(latent_size=model.latent_size))
    head.z_mean.copy_(torch.tensor(z.mean(0))), head.z_std.copy_(torch.tensor(z.std(0) + 1e-6))
    head.y_mean.copy_(torch.tensor(y.mean(0))), head.y_std.copy_(torch.tensor(y.std(0) + 1e-6))
    x = torch.tensor(z, dtype=torch.float32)
    target = (torch.tensor(y, dtype=torch.float32) - head.y_mean) / head.y_std
    batch = 256
    opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=epochs * ((len(x) + batch - 1) // batch))
    for _ in tqdm(range(epochs), desc="training", unit=" epoch"):
        head.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), batch):
            b = order[start : start + batch]
            loss = torch.nn.functional.smooth_l1_loss(head(x[b]), target[b], beta=0.5)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    val_errors = errors(head.parameters_of(zv), yv, sources_v)
    info = {"n_train_encodings": len(z), "rotations_per_crystal": rotations, "epochs": epochs, "seed": seed,
            "val": val_errors}
    info["file"] = str(head.save(checkpoint, {"fit": info}))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.fit_cell", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a single-cell model folder; the head is written into it")
    parser.add_argument("--data", nargs="+", required=True, help="the training data (.npz bundles, CSV(.gz), CIF folders)")
    parser.add_argument("--rotations", type=int, default=6, help="random placements per training crystal")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--limit", type=int, help="at most N crystals per split (for a quick run)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from train import json_command

    return json_command(lambda: fit(args.checkpoint, args.data, args.rotations, args.epochs, args.seed, args.limit))


if __name__ == "__main__":
    raise SystemExit(main())
