"""`python -m train.evaluate`: the paper's metrics on held-out crystals, for a model or for the representation alone.

    python -m train.evaluate --oracle --data ../shared/data/mp_ground_states.csv.gz --representation single --out outputs/oracle_single
    python -m train.evaluate --checkpoint checkpoints/single_cell --data ../shared/data/*.csv.gz --split test --out outputs/eval_single

`--oracle` segments the true species grid S back into atoms (no model): the ceiling of the representation.
With `--checkpoint` each crystal is encoded (posterior mean, refined on its input density as the
checkpoint says, `crystal_explorer.refine`; `--refine-steps 0` for the paper's plain reconstruction), decoded and segmented;
a single cell is decoded in the checkpoint's consensus of orientations (`crystal_explorer.consensus`; `--orientations 1`
for one). Crystal i is placed
with the seeded generator [seed, i], so runs are reproducible. Writes OUT/metrics.json (overall, and per
source file) and, with `--figures`, the PNGs of the paper's Figs. 3 and 4.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np


def _place_all(bundle, indices, representation, seed):
    from crystal_explorer.representation import place

    placements, skipped = [], {}
    for i in indices:
        p = place(bundle[i], representation, np.random.default_rng([seed, int(i)]))
        if p is None:
            skipped["cell does not fit the cube"] = skipped.get("cell does not fit the cube", 0) + 1
        placements.append(p)
    return placements, skipped


def evaluate(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from crystal_explorer.grid import GridSpec
    from crystal_explorer.latent import CrystalModel, compare_decoding, compare_with_truth
    from crystal_explorer.metrics import json_safe, summarise
    from crystal_explorer.segment import atoms_from_species_grid
    from crystal_explorer.voxel import species_grid
    from train.data import read_bundle

    grid = GridSpec()
    model = None
    representation = args.representation
    if args.checkpoint:
        model = CrystalModel.from_checkpoint(args.checkpoint, device=args.device)
        if representation and representation != model.representation:
            raise ValueError(f"the checkpoint is a '{model.representation}' model, not '{representation}'")
        representation = model.representation
        refinement = model.refinement
        if args.refine_steps is not None:
            refinement = dataclasses.replace(refinement, steps=args.refine_steps)
        if args.refine_precision is not None:
            refinement = dataclasses.replace(refinement, precision=args.refine_precision)
        if getattr(args, "no_merged_split", False):  # the segmentation as it was before the merged split
            model.drop_merged_split()
        consensus = model.consensus
        if args.orientations is not None:
            consensus = consensus.with_orientations(args.orientations, args.min_support)
    if representation is None:
        raise ValueError("give --representation with --oracle")

    results: dict[str, list] = {}
    extra: dict[str, list] = {"counts": [], "pairs": [], "t2p": [], "p2t": [], "voxels": [], "match": []}
    skipped_total: dict[str, int] = {}
    n_considered = 0
    for path in args.data:
        bundle = read_bundle([path], progress=False)
        indices = np.flatnonzero(bundle.splits == args.split) if args.split != "all" else np.arange(len(bundle))
        if args.limit:
            indices = indices[: args.limit]
        n_considered += len(indices)
        placements, skipped = _place_all(bundle, indices, representation, args.seed)
        for k, v in skipped.items():
            skipped_total[k] = skipped_total.get(k, 0) + v
        valid = [(i, p) for i, p in zip(indices, placements, strict=True) if p is not None]
        comparisons = []
        name = Path(path).name
        for start in tqdm(range(0, len(valid), args.batch_size), desc=f"{name} ({representation})", unit=" batch"):
            chunk = valid[start : start + args.batch_size]
            if model is None:
                for i, p in chunk:
                    atoms = atoms_from_species_grid(species_grid(p.positions, p.atomic_numbers, grid), grid)
                    comparisons.append(compare_with_truth(p, atoms, grid))
                    extra["match"].append((bundle[int(i)], p, atoms, None, name))
                continue
            # each crystal in its orientations (one unless the consensus asks for more), all refined as one batch
            groups = [[p, *model.other_orientations(bundle[int(i)], [args.seed, int(i)], consensus.orientations - 1)]
                      for i, p in chunk]
            flat = [q for group in groups for q in group]
            encoded = model.encode_placements(flat)
            # refined as one batch (same result, faster); a crystal decoded in several orientations is segmented as a
            # consensus's orientations, one that fits the cube in only one as a single decoding (as `reconstruct` does)
            decoded = model.decode_encodings(encoded, config=refinement,
                                             consensus=[len(group) > 1 for group in groups for _ in group])
            starts = np.cumsum([0, *map(len, groups)])
            for (i, _), group, start in zip(chunk, groups, starts, strict=False):
                enc = encoded[start]
                dec = model.merged_decoding(group, decoded[start : start + len(group)], consensus)
                comparison = compare_decoding(enc, dec, grid)
                comparisons.append(comparison)
                if len(extra["voxels"]) < 200_000:
                    pick = np.random.default_rng(int(i)).choice(enc.density.size, 500, replace=False)
                    extra["voxels"].append(np.stack([enc.density.ravel()[pick], dec.density.ravel()[pick]], 1))
                extra["match"].append((bundle[int(i)], enc.placement, dec.atoms, dec, name))
        results[name] = comparisons
        for c in comparisons:
            extra["counts"].append((c.n_true, c.n_pred))
            extra["pairs"].append(c.species_pairs)
            extra["t2p"].append(c.true_to_pred)
            extra["p2t"].append(c.pred_to_true)

    everything = [c for cs in results.values() for c in cs]
    metrics = {
        "n_structures": len(everything),
        "n_skipped": int(sum(skipped_total.values())),
        "skipped_reasons": skipped_total,
        "representable_fraction": len(everything) / max(1, n_considered),
        "representation": representation,
        "mode": "oracle" if model is None else "model",
        "checkpoint": args.checkpoint,
        "refinement": dataclasses.asdict(refinement) if model is not None else None,
        "consensus": dataclasses.asdict(consensus) if model is not None else None,
        "split": args.split,
        "seed": args.seed,
        "data": [str(p) for p in args.data],
        **summarise(everything),
        "per_source": {name: {"n_structures": len(cs), **summarise(cs)} for name, cs in results.items()},
    }
    if args.match:
        matched = _match(extra["match"], representation, grid, model)
        for name, source_metrics in matched.pop("per_source").items():
            metrics["per_source"][name].update(source_metrics)
        metrics.update(matched)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2))  # inf percentiles → null
    if args.figures:
        _figures(out, extra, args.checkpoint)
    return metrics


def _match(items, representation: str, grid, model=None) -> dict:
    """Match rate of the periodic structure behind each decoding against the original (issue 5).

    Lattice models: `match_rate` recovers the lattice from the decoded atoms alone; `input_cell` repeats
    the benchmark with the decoded atoms wrapped into the input's own cell (rotated as placed), which
    measures atoms and species given the lattice. Single-cell models: a single cell carries no
    periodicity, so `match_rate` is the input's-cell rate; with a cell head, `predicted_cell` wraps the
    decoded atoms into the head's cell oriented on them, and `predicted_cell_true_atoms` the true atoms
    into the head's cell oriented on those (the cell prediction alone).
    """
    from tqdm import tqdm

    from crystal_explorer.lattice import placed_lattice, recover_lattice, single_cell_structure, structure_in_cell
    from crystal_explorer.matching import match_metrics

    pairs, in_cell, sources = [], [], []
    with_head = model is not None and model.cell_head is not None and representation == "single"
    predicted, predicted_true = [], []
    for crystal, placement, atoms, dec, source in tqdm(items, desc="matching", unit=" crystal"):
        cell = placed_lattice(crystal.lattice, placement.rotation)
        truth = crystal.to_structure()
        if representation == "lattice":
            recovered = recover_lattice(atoms.positions, atoms.atomic_numbers, grid=grid)
            pairs.append((truth, None if recovered is None else recovered.structure))
            in_cell.append((truth, structure_in_cell(atoms.positions, atoms.atomic_numbers, cell, grid=grid)))
        else:
            pairs.append((truth, single_cell_structure(atoms.positions, atoms.atomic_numbers, cell)))
            if with_head:
                true_cell = model.predicted_cell(dec, positions=placement.positions, atomic_numbers=placement.atomic_numbers)
                predicted_true.append((truth, single_cell_structure(placement.positions, placement.atomic_numbers, true_cell)))
                decoded_cell = model.predicted_cell(dec)
                predicted.append((truth, None if decoded_cell is None else
                                  single_cell_structure(atoms.positions, atoms.atomic_numbers, decoded_cell)))
        sources.append(source)

    def by_source(rows: list) -> dict:
        return {name: match_metrics([r for r, s in zip(rows, sources, strict=True) if s == name]) for name in dict.fromkeys(sources)}

    per_source = by_source(pairs)
    out = {**match_metrics(pairs), "match_lattice": "recovered from the decoded atoms" if representation == "lattice" else "the input's cell"}
    for key, rows in (("input_cell", in_cell), ("predicted_cell", predicted), ("predicted_cell_true_atoms", predicted_true)):
        if rows:
            out[key] = {**match_metrics(rows), "per_source": by_source(rows)}
            for name, metrics in out[key]["per_source"].items():
                per_source[name][f"{key}_match_rate"] = metrics["match_rate"]
    return {**out, "per_source": per_source}


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _figures(out: Path, extra: dict, checkpoint: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(extra["counts"]).reshape(-1, 2)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(counts[:, 0], counts[:, 1], s=6, alpha=0.5)
    top = counts.max() + 1 if len(counts) else 1
    ax.plot([0, top], [0, top], "r--", lw=1)
    ax.set(xlabel="true atoms", ylabel="recovered atoms", title="atom counts (Fig. 3B / 4D)")
    _save(fig, out / "atom_counts.png")

    qs = np.arange(1, 100)
    fig, ax = plt.subplots(figsize=(5, 4))
    for key, label in (("t2p", "true → nearest predicted"), ("p2t", "predicted → nearest true")):
        d = np.concatenate(extra[key]) if extra[key] else np.zeros(0)
        d = d[np.isfinite(d)]
        if len(d):
            ax.plot(qs, np.percentile(d, qs), label=label)
    ax.set(xlabel="percentile", ylabel="distance (Å)", yscale="log", title="distance percentiles (Fig. 3D / 4C)")
    ax.legend()
    _save(fig, out / "distance_percentiles.png")

    pairs = np.concatenate(extra["pairs"]).reshape(-1, 2) if extra["pairs"] else np.zeros((0, 2))
    fig, ax = plt.subplots(figsize=(4, 4))
    if len(pairs):
        ax.hist2d(pairs[:, 0], pairs[:, 1], bins=np.arange(0.5, 96), cmin=1, cmap="viridis")
    ax.plot([0, 95], [0, 95], "r--", lw=0.5)
    ax.set(xlabel="true Z", ylabel="predicted Z", title="species within 0.5 Å (Fig. 3C / 4E)")
    _save(fig, out / "species.png")

    if extra["voxels"]:
        v = np.concatenate(extra["voxels"])
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.hexbin(v[:, 0], v[:, 1], gridsize=60, bins="log", mincnt=1)
        m = v.max()
        ax.plot([0, m], [0, m], "r--", lw=1)
        ax.set(xlabel="target density (Z units)", ylabel="predicted density", title="voxel parity (Fig. 5A)")
        _save(fig, out / "voxel_parity.png")

    log = Path(checkpoint or "") / "train_log.csv"
    if checkpoint and log.is_file():
        import pandas as pd

        frame = pd.read_csv(log)
        fig, ax = plt.subplots(figsize=(5, 4))
        for col in ("train/reconstruction", "val/reconstruction"):
            if col in frame:
                d = frame[["step", col]].dropna()
                ax.plot(d["step"], d[col], label=col)
        ax.set(xlabel="step", ylabel="summed squared error", yscale="log", title="reconstruction loss (Fig. 3A)")
        ax.legend()
        _save(fig, out / "loss_curves.png")


def main(argv: list[str] | None = None) -> int:
    from crystal_explorer.refine import PRECISIONS

    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--oracle", action="store_true", help="no model: segment the true species grid")
    source.add_argument("--checkpoint", help="a folder with model.safetensors and model.json")
    parser.add_argument("--data", nargs="+", required=True, help="CSV(.gz) with a cif column, CIF folders or .npz bundles")
    parser.add_argument("--representation", choices=("single", "lattice"))
    parser.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    parser.add_argument("--limit", type=int, help="at most N crystals per data source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default=None)
    parser.add_argument("--match", action="store_true", help="also recover periodic structures and match them")
    parser.add_argument("--figures", action="store_true", help="write the PNG figures")
    parser.add_argument("--refine-steps", type=int, help="steps refining each posterior mean on its input density "
                        "(crystal_explorer.refine; default: the checkpoint's, 0 = the paper's plain reconstruction)")
    parser.add_argument("--refine-precision", choices=PRECISIONS,
                        help="the decoder's arithmetic while refining (default: the checkpoint's)")
    parser.add_argument("--orientations", type=int, help="decode each single cell in N orientations and keep the atoms "
                        "most agree on (crystal_explorer.consensus; default: the checkpoint's, 1 = one orientation)")
    parser.add_argument("--min-support", type=int, help="with --orientations: decodings that must agree (default: a majority)")
    parser.add_argument("--no-merged-split", action="store_true", help="segment without the checkpoint's merged split "
                        "(crystal_explorer.density_fit.MergedSplit), to measure what it does")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from train import USER_ERRORS, user_error

    try:
        metrics = evaluate(args)
    except USER_ERRORS as exc:
        return user_error(exc)
    keys = ("n_structures", "atoms_within_0.5A", "count_exact", "count_within_2", "species_exact", "species_within_2",
            "distance_percentiles_true_to_pred", "voxel_mse", "match_rate")
    for k in keys:
        if k in metrics:
            print(f"{k:>36}: {metrics[k]}")
    print(f"metrics written to {Path(args.out) / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
