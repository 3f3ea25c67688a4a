"""`python -m train.calibrate`: choose the segmentation's background offset on the validation split.

An under-trained U-Net calls many faint atom voxels background, so decodings miss atoms (counts fall
short of the truth). Subtracting an offset b from the background logit before the argmax trades missed
atoms for spurious ones. This decodes up to N crystals of the **val** split per source once, segments
them at every offset in the sweep (with the model's split and species rules, `CrystalModel.atoms_of`), and keeps the offset with the best score
(count_exact + atoms_within_0.5A + pred_atoms_within_0.5A, each a fraction). With `--write` the choice
goes into CHECKPOINT/model.json under "segmentation", which `CrystalModel` applies to every decoding.

    python -m train.calibrate --checkpoint checkpoints/single_cell --data ../shared/data/*.csv.gz --limit 60 --write
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

OFFSETS = (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)


def score(summary: dict) -> float:
    """What the sweep maximises: exact counts plus recall and precision of atom positions (0 to 3)."""
    return sum(float(summary.get(k) or 0.0) for k in ("count_exact", "atoms_within_0.5A", "pred_atoms_within_0.5A"))


def sweep(checkpoint: str, data: list[str], limit: int, seed: int, offsets=OFFSETS, split: str = "val") -> dict:
    """Metrics of the `split` crystals' reconstructions at each background offset: {offset: summary}."""
    import torch
    from tqdm import tqdm

    from crystal_explorer.latent import CrystalModel, compare_with_truth
    from crystal_explorer.metrics import summarise
    from crystal_explorer.representation import place
    from train.data import read_bundle

    model = CrystalModel.from_checkpoint(checkpoint, device="cpu")
    comparisons: dict[float, list] = {b: [] for b in offsets}
    for path in data:
        bundle = read_bundle([path], progress=False)
        indices = (np.arange(len(bundle)) if split == "all" else np.flatnonzero(bundle.splits == split))[:limit]
        placements = [place(bundle[int(i)], model.representation, np.random.default_rng([seed, int(i)]), model.grid)
                      for i in indices]
        placements = [p for p in placements if p is not None]
        for start in tqdm(range(0, len(placements), 8), desc=f"{Path(path).name} ({split})", unit=" batch"):
            encoded = model.encode_placements(placements[start : start + 8])
            for enc in encoded:
                with torch.no_grad():
                    z = torch.from_numpy(enc.mean[None].astype(np.float32))
                    density = model.network.decode(z, model.condition_for(density=enc.density))
                    logits = model.network.segment(density).float()[0].numpy()
                dens = density[0, 0].numpy() * model.scale
                for b in offsets:
                    shifted = logits.copy()
                    shifted[0] -= b
                    species = shifted.argmax(0)
                    atoms = model.atoms_of(species, dens)  # the model's own rule: split and species
                    comparisons[b].append(compare_with_truth(enc.placement, atoms, model.grid, enc.density, dens))
    return {b: summarise(cs) | {"n_structures": len(cs)} for b, cs in comparisons.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--limit", type=int, default=60, help="at most N val crystals per source")
    parser.add_argument("--split", choices=("train", "val", "test", "all"), default="val",
                        help="never test: that is where the chosen offset is evaluated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="store the chosen offset in CHECKPOINT/model.json")
    args = parser.parse_args(argv)
    from crystal_explorer.checkpoint import META_FILE, atomic_write, read_metadata
    from train import USER_ERRORS, user_error

    try:
        meta = read_metadata(args.checkpoint)
        results = sweep(args.checkpoint, args.data, args.limit, args.seed, split=args.split)
    except USER_ERRORS as exc:
        return user_error(exc)
    keys = ("count_exact", "atoms_within_0.5A", "pred_atoms_within_0.5A", "species_exact", "n_pred_atoms", "n_true_atoms")
    print(f"{'offset':>6} " + " ".join(f"{k:>22}" for k in keys) + f" {'score':>6}")
    for b, summary in results.items():
        print(f"{b:>6.1f} " + " ".join(f"{summary.get(k) or 0:>22.3f}" for k in keys) + f" {score(summary):>6.3f}")
    best = max(results, key=lambda b: score(results[b]))
    print(f"chosen background offset: {best} (score {score(results[best]):.3f}; 0 gives {score(results.get(0.0, {})):.3f})")
    if args.write:
        meta["segmentation"] = {
            **meta.get("segmentation", {}),
            "background_logit_offset": best, "chosen_by": "python -m train.calibrate",
            "split": args.split, "n_structures": results[best]["n_structures"], "score": score(results[best]),
            "sweep": {str(b): {k: results[b].get(k) for k in keys} for b in results},
        }
        atomic_write(Path(args.checkpoint) / META_FILE, json.dumps(meta, indent=2, default=str).encode())
        print(f"written to {Path(args.checkpoint) / META_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
