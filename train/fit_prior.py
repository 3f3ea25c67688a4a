"""`python -m train.fit_prior`: fit the latent prior random draws come from (`crystal_explorer.prior`).

Encodes up to N crystals of the train split (posterior means, each crystal placed with a seeded random
rotation, as in training) and writes CHECKPOINT/latent_prior.safetensors: the Gaussian N(μ, Σ) of those
encodings. Only the mean and covariance are stored, nothing row by row.

    python -m train.fit_prior --checkpoint checkpoints/single_cell --data data_cache/all.npz --limit 3000
"""

from __future__ import annotations

import argparse

import numpy as np


def fit(checkpoint: str, data: list[str], limit: int, seed: int, device: str | None, batch_size: int = 32) -> dict:
    from tqdm import tqdm

    from crystal_explorer.latent import CrystalModel
    from crystal_explorer.prior import LatentPrior
    from crystal_explorer.representation import place
    from train.data import read_bundle

    model = CrystalModel.from_checkpoint(checkpoint, device=device)
    bundle = read_bundle(data)
    train = np.flatnonzero(bundle.splits == "train")
    if len(train) == 0:
        raise ValueError("the data has no crystal in the train split")
    order = np.random.default_rng(seed).permutation(train)
    placements = []
    for i in tqdm(order, desc="placing", unit=" crystal", leave=False):
        if len(placements) == limit:
            break
        crystal = bundle[int(i)]
        if crystal.atomic_numbers.max(initial=0) > model.network.config.max_z:
            continue
        p = place(crystal, model.representation, np.random.default_rng([seed, int(i)]), model.grid)
        if p is not None:
            placements.append(p)
    latents = model.encode_means(placements, batch_size)
    prior = LatentPrior.fit(latents)
    path = prior.save(checkpoint)
    spread = np.sqrt(np.diag(prior.scale_tril @ prior.scale_tril.T))
    return {"file": str(path), "n_encodings": len(latents), "split": "train", "seed": seed,
            "mean_norm": float(np.linalg.norm(prior.mean)), "median_std_per_dimension": float(np.median(spread))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.fit_prior", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a model folder; the prior is written into it")
    parser.add_argument("--data", nargs="+", required=True, help="the training data (.npz bundles, CSV(.gz), CIF folders)")
    parser.add_argument("--limit", type=int, default=3000, help="at most N training crystals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    from train import json_command

    return json_command(lambda: fit(args.checkpoint, args.data, args.limit, args.seed, args.device))


if __name__ == "__main__":
    raise SystemExit(main())
