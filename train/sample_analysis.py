"""`python -m train.sample_analysis`: how physical are random draws? (Hoffmann et al. §4.4, §9, Fig. 9A).

Decodes N draws (ε ~ N(0, 1), used as z itself — the standard prior — and, when the checkpoint has a fitted
latent prior, mapped onto the training encodings — the aggregate prior) and compares them with held-out real crystals: the nearest-neighbour distance
histograms (Wasserstein-1 distance between them), the fraction of draws with no two atoms closer than
0.5 Å (the usual validity criterion), and the realism score (`CrystalModel.realism`) of real decodings,
random draws and out-of-distribution inputs (a random gas of atoms with random Z), with the ROC AUC of
telling real decodings from each of the others by that score; for a conditional model, how well a
target max Z steers the heaviest decoded element; for a single-cell model with a cell head, how valid
the periodic crystals in the predicted cells are (`periodic`); and the mean number of distinct elements of
draws and of real crystals. Writes OUT/samples.json
and OUT/nearest_neighbours.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from crystal_explorer.metrics import nearest_neighbour_distances


def auc(higher: np.ndarray, lower: np.ndarray) -> float | None:
    """P(a score from `higher` exceeds one from `lower`), ties counting half: the ROC AUC of telling them apart."""
    higher, lower = np.asarray(higher, float), np.asarray(lower, float)
    if not len(higher) or not len(lower):
        return None
    above = (higher[:, None] > lower[None]).mean()
    ties = (higher[:, None] == lower[None]).mean()
    return float(above + 0.5 * ties)


def steering(model, targets: list[float], n: int, seed: int) -> dict[str, dict]:
    """For each target max Z of the conditional model (§4.5): the median heaviest decoded Z and peak density."""
    out = {}
    for target in targets:
        decoded = model.sample(n, seed=seed, max_z=target)
        heaviest = [int(d.atoms.atomic_numbers.max()) for d in decoded if len(d.atoms)]
        out[f"{target:g}"] = {"draws_with_atoms": len(heaviest), "n": n,
                              "median_heaviest_z": float(np.median(heaviest)) if heaviest else None,
                              "median_peak_density_z_units": float(np.median([d.density.max() for d in decoded]))}
    return out


def periodic(model, decoded: list, limit: int) -> dict | None:
    """Single-cell models with a cell head: the periodic crystals behind up to `limit` decodings, each
    wrapped into its predicted cell (`CrystalModel.periodic_structure`): how many are valid (no two atoms,
    images included, closer than 0.5 Å; mostly by construction, as the wrap merges atoms closer than
    0.5 Å into one site, though merged sites can still land close), how many decoded atoms survive that
    merge (the informative number), and how many have a space group above P1 at spglib's 0.1 Å."""
    from tqdm import tqdm

    from crystal_explorer.export import space_group
    from crystal_explorer.matching import is_valid

    if model.cell_head is None or model.representation != "single":
        return None
    rows = []
    for d in tqdm([d for d in decoded if len(d.atoms)][:limit], desc="predicted cells", unit=" decoding"):
        structure, _ = model.periodic_structure(d)
        rows.append((is_valid(structure), len(structure) / len(d.atoms), space_group(structure)[1] > 1))
    if not rows:
        return {"n": 0}
    valid, kept, symmetric = (np.array(c, float) for c in zip(*rows, strict=True))
    return {"n": len(rows), "valid_fraction": float(valid.mean()), "sites_kept_fraction_mean": float(kept.mean()),
            "above_p1_fraction": float(symmetric.mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.sample_analysis", description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", nargs="+", required=True, help="real crystals; the test split is used")
    parser.add_argument("--n", type=int, default=1000, help="random draws")
    parser.add_argument("--n-real", type=int, default=100)
    parser.add_argument("--max-z", type=float, default=30.0, help="conditional model only")
    parser.add_argument("--steer", type=float, nargs="*", default=[20, 40, 56, 80],
                        help="conditional model only: target max Z values to check the steering at")
    parser.add_argument("--n-steer", type=int, default=48, help="draws per steering target")
    parser.add_argument("--n-periodic", type=int, default=200,
                        help="single-cell models with a cell head: decodings given a predicted cell (about 1 s each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from scipy.stats import wasserstein_distance
    from tqdm import tqdm

    from crystal_explorer.latent import CrystalModel
    from crystal_explorer.representation import Placement
    from train.data import read_bundle

    model = CrystalModel.from_checkpoint(args.checkpoint, device="cpu")
    bundle = read_bundle(args.data, progress=False)
    test = np.flatnonzero(bundle.splits == "test")
    rng = np.random.default_rng(args.seed)
    picks = rng.permutation(test)
    real_enc = []
    for i in picks:
        try:
            real_enc.append(model.encode(bundle[int(i)], seed=int(i)))
        except Exception:  # noqa: BLE001 - cells that do not fit are simply not used
            continue
        if len(real_enc) >= args.n_real:
            break
    real_dec = [model.decode_encoded(e) for e in tqdm(real_enc, desc="real")]
    max_z = args.max_z if model.conditional else None
    priors = ["standard"] + (["aggregate"] if model.prior is not None else [])
    random_dec: dict[str, list] = {}
    for prior in priors:
        random_dec[prior] = []
        for start in tqdm(range(0, args.n, 32), desc=f"random draws ({prior} prior)", unit=" batch"):
            random_dec[prior] += model.sample(min(32, args.n - start), seed=args.seed + 1 + start, max_z=max_z, prior=prior)
    gas = []
    for _ in range(min(args.n_real, 50)):
        n_atoms = int(rng.integers(4, 30))
        gas.append(Placement(rng.uniform(1, 9, (n_atoms, 3)), rng.integers(1, 84, n_atoms), np.eye(3), np.zeros(3)))
    ood_enc = model.encode_placements(gas)
    ood_dec = [model.decode_encoded(e) for e in ood_enc]

    def elements(decoded: list) -> float:
        """Mean distinct elements per decoding that has atoms (real crystals: about 3)."""
        counts = [len(set(d.atoms.atomic_numbers.tolist())) for d in decoded if len(d.atoms)]
        return float(np.mean(counts)) if counts else 0.0

    def inside(positions: np.ndarray) -> np.ndarray:
        return positions[((positions >= 0) & (positions <= model.grid.box_size_angstrom)).all(1)]

    nn_true = np.concatenate([nearest_neighbour_distances(inside(e.placement.positions)) for e in real_enc])
    nn_real_dec = np.concatenate([nearest_neighbour_distances(d.atoms.positions) for d in real_dec])
    realism = {"real": model.realism(real_dec), "out_of_distribution": model.realism(ood_dec)}
    nn_random, draws = {}, {}
    for prior, decoded in random_dec.items():
        nn_random[prior] = np.concatenate([nearest_neighbour_distances(d.atoms.positions) for d in decoded])
        valid = [len(d.atoms) > 0 and (len(d.atoms) < 2 or nearest_neighbour_distances(d.atoms.positions).min() >= 0.5)
                 for d in decoded]
        realism[f"random_{prior}_prior"] = model.realism(decoded)
        draws[prior] = {
            "n": len(decoded),
            "with_atoms_fraction": float(np.mean([len(d.atoms) > 0 for d in decoded])),
            "valid_fraction_min_distance_0.5A": float(np.mean(valid)),
            "mean_atoms": float(np.mean([len(d.atoms) for d in decoded])),
            "mean_elements": elements(decoded),
            "nearest_neighbour_wasserstein_vs_true_A": (
                float(wasserstein_distance(nn_random[prior], nn_true)) if len(nn_random[prior]) else None),
        }
    result = {
        "checkpoint": args.checkpoint,
        "n_real": len(real_dec),
        "mean_atoms_real_true": float(np.mean([len(inside(e.placement.positions)) for e in real_enc])),
        "mean_atoms_real_decoded": float(np.mean([len(d.atoms) for d in real_dec])),
        "mean_elements_real_true": float(np.mean([len(set(e.placement.atomic_numbers.tolist())) for e in real_enc])),
        "mean_elements_real_decoded": elements(real_dec),
        "nearest_neighbour_wasserstein_real_decoded_vs_true_A": float(wasserstein_distance(nn_real_dec, nn_true)) if len(nn_real_dec) else None,
        "random_draws": draws,
        "realism": {k: {"mean": float(v.mean()), "median": float(np.median(v)), "std": float(v.std()),
                        "auc_real_above": None if k == "real" else auc(realism["real"], v),
                        # each real decoding's score: the app ranks a draw's realism among them as a percentile
                        **({"scores": [round(float(s), 5) for s in v]} if k == "real" else {})}
                    for k, v in realism.items()},
    }
    cells = {"real": periodic(model, real_dec, args.n_periodic)}
    if "aggregate" in random_dec:
        cells["random_aggregate_prior"] = periodic(model, random_dec["aggregate"], args.n_periodic)
    if cells["real"] is not None:
        result["predicted_cells"] = cells
    if model.conditional and args.steer:
        result["steering"] = steering(model, args.steer, args.n_steer, args.seed + 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples.json").write_text(json.dumps(result, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    bins = np.linspace(0, 5, 51)
    ax.hist(nn_true, bins, density=True, alpha=0.5, color="red", label="real crystals")
    for (prior, nn), colour in zip(nn_random.items(), ("grey", "blue"), strict=False):
        if len(nn):
            ax.hist(nn, bins, density=True, alpha=0.5, color=colour, label=f"decoded draws ({prior} prior)")
    ax.set(xlabel="nearest-neighbour distance (Å)", ylabel="density", title="Fig. 9A")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "nearest_neighbours.png", dpi=120)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
