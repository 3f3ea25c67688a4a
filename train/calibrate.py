"""`python -m train.calibrate`: choose how decodings become atoms, on the validation split.

Two choices, both stored in CHECKPOINT/model.json under "segmentation" with `--write`:

- the **background offset** b, subtracted from the U-Net's background logit before the argmax: an
  under-trained U-Net calls many faint atom voxels background, so decodings miss atoms. Chosen by `score`, offsets within a point of the best counted as tied (`choose_offset`);
- with `--species-rules` (single-cell models, species "amplitude+vote"), the **species rule**
  (`crystal_explorer.density_fit.SpeciesRule`) at the chosen offset, from the grid `SPECIES_GRID`: chosen by
  species_exact + formula_exact, the current rule kept unless beaten by more than half a point
  (`choose_rule`). A rule retuned for each new U-Net, whose votes it weighs against the
  amplitudes.

Each crystal is decoded once, as the app decodes it (the posterior mean refined as the checkpoint says,
`--refine-steps 0` for the plain mean), and segmented at every offset in the sweep with the model's split rule.
With `--orientations K` (single cells) each crystal is decoded in K orientations, as a consensus
reconstruction decodes it (`crystal_explorer.consensus`): every orientation is segmented at each offset, the
atoms a majority agree on are kept, and the species rule is chosen on their pooled votes and mean amplitudes.
That choice is what reconstructions use. When they decode a consensus, `--orientations 1` chooses for single
decodings (draws, interpolations, the latent explorer, a one-orientation reconstruction) and stores it apart, as
"segmentation": "single_decoding" (`CrystalModel.segmentation_for`).

    python -m train.calibrate --checkpoint checkpoints/single_cell --data data_cache/{mp_ground_states,perov_5_val,carbon_24_val,mp_bulk}.npz \
        --limit 100 --species-rules --write
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np

OFFSETS = (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
SPECIES_GRID = {  # SpeciesRule fields and the values swept (3 · 2 · 5 · 4 · 3 = 360 rules)
    "sigma_z": (1.5, 2.0, 3.0),
    "floor": (1e-4, 1e-2),
    # 6 and 7 let the amplitude decide atoms voted O (the U-Net calls every N and F anion O)
    "light_max_z": (6, 7, 8, 10, 18),
    "heavy_sigma_z": (0.5, 0.7, 1.0, 1.5),
    "heavy_floor": (0.1, 1.0, 10.0),
}
KEYS = ("count_exact", "atoms_within_0.5A", "pred_atoms_within_0.5A", "species_exact", "formula_exact",
        "n_pred_atoms", "n_true_atoms")


def score(summary: dict, representation: str = "single") -> float:
    """What the offset sweep maximises. A single cell: exact counts plus recall and precision of atom positions
    (0 to 3). A lattice: the F1 of recall and precision plus species exact (0 to 2); its atom count is never
    exact (the cube cuts atoms at its faces), and precision alone would pick the offset that finds fewest atoms."""
    recall, precision = (float(summary.get(k) or 0.0) for k in ("atoms_within_0.5A", "pred_atoms_within_0.5A"))
    if representation == "lattice":
        f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
        return f1 + float(summary.get("species_exact") or 0.0)
    return float(summary.get("count_exact") or 0.0) + recall + precision


SCORE_TIE = 0.01  # offsets whose score is within this (a point of one metric) of the best are tied


def choose_offset(by_offset: dict, representation: str = "single", tie: float = SCORE_TIE) -> float:
    """The offset of {offset: summary} to use: among those scoring within `tie` of the best (a difference of a
    point is noise on a few hundred crystals), the best `species_score`, then the smaller shift."""
    top = max(score(s, representation) for s in by_offset.values())
    tied = [b for b, s in by_offset.items() if score(s, representation) >= top - tie]
    return max(tied, key=lambda b: (species_score(by_offset[b]), -abs(b)))


RULE_TIE = 0.005  # a rule must beat the current one's species + formula by more than this (half a point) to replace it


def choose_rule(by_rule: dict, current, current_summary: dict, tie: float = RULE_TIE):
    """The rule of `by_rule` ({SpeciesRule: summary}) with the best `species_score`, unless it beats `current`'s
    (`current_summary`) by no more than `tie`: then `current` stays (no churn for noise)."""
    if not by_rule:
        return current
    best = max(by_rule, key=lambda r: species_score(by_rule[r]))
    return best if species_score(by_rule[best]) > species_score(current_summary) + tie else current


def species_score(summary: dict) -> float:
    """What the species-rule sweep maximises: species exact over matched pairs plus formula exact (0 to 2)."""
    return sum(float(summary.get(k) or 0.0) for k in ("species_exact", "formula_exact"))


def _species_text(summary: dict) -> str:
    return f"species {summary.get('species_exact') or 0:.3f}, formula {summary.get('formula_exact') or 0:.3f}"


def species_rules(grid: dict = SPECIES_GRID) -> list:
    """Every `SpeciesRule` of the grid (field → values)."""
    from crystal_explorer.density_fit import SpeciesRule

    return [SpeciesRule(**dict(zip(grid, values, strict=True))) for values in itertools.product(*grid.values())]


@dataclasses.dataclass
class Decoding:
    """One val crystal decoded: its encoding, decoded density (Z units) and U-Net logits (C, n, n, n), the file it
    came from and its row there. A crystal decoded in several orientations keeps, instead of the logits, each
    orientation's atoms at every swept offset (`views`: offset → [DecodedAtoms] in the first orientation's frame)."""

    encoded: object
    density: np.ndarray
    logits: np.ndarray | None
    source: str = ""
    index: int = -1
    views: dict | None = None


def decode_all(model, data: list[str], limit: int, seed: int, split: str = "val", refine_steps: int | None = None,
               orientations: int = 1, offsets=OFFSETS) -> list[Decoding]:
    """Decode up to `limit` crystals of `split` per source, refined as the model says (or `refine_steps`); with
    `orientations` > 1, each in that many orientations (seeded as `train.evaluate` seeds them), segmented at
    `offsets` as they are decoded (the logits of K orientations would not fit in memory)."""
    import torch
    from tqdm import tqdm

    from crystal_explorer.representation import place
    from train.data import read_bundle

    refinement = model.refinement
    if refine_steps is not None:
        refinement = dataclasses.replace(refinement, steps=refine_steps)
    split_angstrom = model.segmentation_for(True)["split_angstrom"]  # of a consensus's orientations
    per_batch = max(1, 8 // orientations)
    out = []
    for path in data:
        bundle = read_bundle([path], progress=False)
        indices = (np.arange(len(bundle)) if split == "all" else np.flatnonzero(bundle.splits == split))[:limit]
        placed = [(int(i), place(bundle[int(i)], model.representation, np.random.default_rng([seed, int(i)]), model.grid))
                  for i in indices]
        placed = [(i, [p, *model.other_orientations(bundle[i], [seed, i], orientations - 1)])
                  for i, p in placed if p is not None]
        for start in tqdm(range(0, len(placed), per_batch), desc=f"{Path(path).name} ({split})", unit=" batch"):
            chunk = placed[start : start + per_batch]
            flat = [q for _, group in chunk for q in group]
            encoded = model.encode_placements(flat)
            latents = model.refine(encoded, refinement)
            at = 0
            for row, group in chunk:
                # several orientations are merged as a consensus; a crystal that fits the cube in one is a single decoding
                views = {b: [] for b in offsets} if len(group) > 1 else None
                for k, placement in enumerate(group):
                    enc = encoded[at + k]
                    with torch.no_grad():
                        z = torch.from_numpy(latents[at + k][None].astype(np.float32))
                        density = model.network.decode(z, model.condition_for(density=enc.density))
                        logits = model.network.segment(density).float()[0].numpy()
                    density = density[0, 0].numpy() * model.scale
                    if k == 0:
                        first = Decoding(encoded[at], density, None if views is not None else logits, Path(path).name, row, views)
                    for b in views or ():
                        atoms = atoms_at_offset(logits, density, b, model.grid, split_angstrom)
                        views[b].append(model.atoms_in_frame(atoms, density, placement, group[0]))
                out.append(first)
                at += len(group)
    return out


def atoms_at_offset(logits: np.ndarray, density: np.ndarray, offset: float, grid, split_angstrom: float | None):
    """The atoms of class logits (C, n, n, n) with `offset` subtracted from the background's, weighted by `density`."""
    from crystal_explorer.segment import atoms_from_species_grid

    shifted = logits.copy()
    shifted[0] -= offset
    return atoms_from_species_grid(shifted.argmax(0), grid, weights=density, split_angstrom=split_angstrom)


def segmented(model, decodings: list[Decoding], offset: float, amplitudes: bool = True) -> list:
    """The atoms (species not yet assigned by a rule) and, with `amplitudes`, their fitted amplitudes of each
    decoding at one offset (empty arrays without)."""
    from crystal_explorer.consensus import merge
    from crystal_explorer.density_fit import fit_amplitudes

    split = model.segmentation_for(False)["split_angstrom"]
    out = []
    for d in decodings:
        if d.views is not None:  # a consensus of orientations: the atoms a majority agree on
            consensus = model.consensus.with_orientations(len(d.views[offset]))  # a majority must agree
            merged = merge(d.views[offset], consensus.support, consensus.radius_angstrom)
            out.append((model.merged_atoms(merged), merged.amplitudes))
            continue
        atoms = atoms_at_offset(d.logits, d.density, offset, model.grid, split)
        fitted = amplitudes and len(atoms)
        out.append((atoms, fit_amplitudes(d.density, atoms.positions, model.grid) if fitted else np.zeros(0)))
    return out


def summary_for(model, decodings: list[Decoding], atoms_list: list, rule=None) -> dict:
    """Metrics of the decodings' atoms against the truth; with `rule`, species from that `SpeciesRule`."""
    from crystal_explorer.density_fit import species_from_amplitudes
    from crystal_explorer.latent import compare_with_truth
    from crystal_explorer.metrics import summarise
    from crystal_explorer.segment import Atoms

    comparisons = []
    for d, (atoms, amplitudes) in zip(decodings, atoms_list, strict=True):
        if rule is not None and len(atoms):
            z = species_from_amplitudes(amplitudes, atoms.votes, model.network.config.max_z, rule)
            atoms = Atoms(atoms.positions, z, atoms.n_voxels, atoms.votes)
        comparisons.append(compare_with_truth(d.encoded.placement, atoms, model.grid, d.encoded.density, d.density))
    return summarise(comparisons) | {"n_structures": len(comparisons)}


def sweep(model, decodings: list[Decoding], offsets=OFFSETS, rules: list | None = None, consensus: bool = False,
          penalties=()) -> tuple[dict, float, dict, dict, dict]:
    """({offset: summary} with the species rule of the path calibrated (`consensus`: a consensus's orientations,
    else single decodings), the best offset, {rule: summary} at it ({} without rules), {source file: summary}
    at it with that rule, {rule: summary} at it for each element penalty of `penalties` applied to the rule
    `choose_rule` keeps ({} without))."""
    from tqdm import tqdm

    from crystal_explorer.density_fit import SpeciesRule

    segmentation = model.segmentation_for(consensus)  # the path calibrated: its rule is the current one
    current = SpeciesRule.from_dict(segmentation["species_rule"])
    uses_rule = segmentation["species"] == "amplitude+vote"
    by_offset, atoms_at = {}, {}
    for b in tqdm(offsets, desc="offsets", unit=" offset"):
        atoms_at[b] = segmented(model, decodings, b, amplitudes=uses_rule)
        by_offset[b] = summary_for(model, decodings, atoms_at[b], current if uses_rule else None)
    best = choose_offset(by_offset, model.representation)
    def per_source(rule) -> dict:
        out = {}
        for source in dict.fromkeys(d.source for d in decodings):
            mine = [i for i, d in enumerate(decodings) if d.source == source]
            out[source] = summary_for(model, [decodings[i] for i in mine], [atoms_at[best][i] for i in mine], rule)
        return out

    by_source = per_source(current if uses_rule else None)
    by_rule = {}
    # the cap on a decoding's elements comes from the training data, not from val: every rule keeps the model's
    # and its element penalty, swept apart (`penalties`) on the rule chosen
    rules = [dataclasses.replace(r, max_elements=current.max_elements, element_penalty=current.element_penalty)
             for r in rules or ()]
    if rules and uses_rule:
        for rule in tqdm(rules, desc=f"species rules at offset {best}", unit=" rule"):
            by_rule[rule] = summary_for(model, decodings, atoms_at[best], rule)
    by_penalty = {}
    if penalties and uses_rule:
        base = choose_rule(by_rule, current, by_offset[best])
        for penalty in tqdm(penalties, desc="element penalties", unit=" penalty"):
            rule = dataclasses.replace(base, element_penalty=float(penalty))
            by_penalty[rule] = summary_for(model, decodings, atoms_at[best], rule) | {"per_source": per_source(rule)}
    return by_offset, best, by_rule, by_source, by_penalty


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--limit", type=int, default=60, help="at most N val crystals per source")
    parser.add_argument("--split", choices=("train", "val", "test", "all"), default="val",
                        help="never test: that is where the choice is evaluated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offsets", type=float, nargs="+", default=list(OFFSETS), help="background offsets swept")
    parser.add_argument("--refine-steps", type=int, help="refinement steps (default: the checkpoint's; 0 = posterior mean)")
    parser.add_argument("--species-rules", action="store_true", help="also choose the species rule (SPECIES_GRID)")
    parser.add_argument("--split-angstrom", type=float,
                        help="segment with this watershed split of joined atoms (Å; 0 = one atom per component) instead "
                             "of the checkpoint's, and store it with --write")
    parser.add_argument("--orientations", type=int, default=1,
                        help="decode each single cell in N orientations and choose for their consensus (majority)")
    parser.add_argument("--element-penalties", type=float, nargs="+", default=(),
                        help="also choose SpeciesRule.element_penalty (nats per distinct element of a decoding) "
                             "among these, on the rule chosen")
    parser.add_argument("--write", action="store_true", help="store the choices in CHECKPOINT/model.json")
    args = parser.parse_args(argv)
    from crystal_explorer.checkpoint import META_FILE, atomic_write, read_metadata
    from crystal_explorer.density_fit import SpeciesRule
    from crystal_explorer.latent import CrystalModel
    from train import USER_ERRORS, user_error

    try:
        meta = read_metadata(args.checkpoint)
        model = CrystalModel.from_checkpoint(args.checkpoint, device="cpu")
        if args.orientations < 1 or (args.orientations > 1 and model.representation != "single"):
            raise ValueError("--orientations must be 1, or more for a single-cell model")
        # one orientation chooses for single decodings; it is stored apart when reconstructions decode a consensus
        single = args.orientations == 1 and (model.consensus.orientations > 1
                                             or "single_decoding" in meta.get("segmentation", {}))
        stored = model.metadata.setdefault("segmentation", {})
        if single:
            stored = stored.setdefault("single_decoding", {})
        if args.split_angstrom is not None:
            stored["split_angstrom"] = args.split_angstrom or None
        decodings = decode_all(model, args.data, args.limit, args.seed, args.split, args.refine_steps,
                               args.orientations, tuple(args.offsets))
        rules = species_rules() if args.species_rules else None
        by_offset, best, by_rule, by_source, by_penalty = sweep(model, decodings, tuple(args.offsets), rules,
                                                                args.orientations > 1, tuple(args.element_penalties))
    except USER_ERRORS as exc:
        return user_error(exc)
    rep = model.representation
    print(f"{'offset':>6} " + " ".join(f"{k:>22}" for k in KEYS) + f" {'score':>6}")
    for b, summary in by_offset.items():
        print(f"{b:>6.1f} " + " ".join(f"{summary.get(k) or 0:>22.3f}" for k in KEYS) + f" {score(summary, rep):>6.3f}")
    print(f"chosen background offset: {best} (score {score(by_offset[best], rep):.3f}; "
          f"0 gives {score(by_offset.get(0.0, {}), rep):.3f})")
    print(f"at offset {best}, per source:")
    for source, s in by_source.items():
        median = (s.get("distance_percentiles_true_to_pred") or {}).get("50")
        print(f"  {source}: " + ", ".join(f"{k} {s.get(k) or 0:.3f}" for k in KEYS[:5]) + f", median true→decoded {median} Å")
    path = model.segmentation_for(args.orientations > 1)
    top = meta.get("segmentation", {})
    segmentation = {**(top.get("single_decoding", {}) if single else top), "split_angstrom": path["split_angstrom"],
                    "background_logit_offset": best, "chosen_by": "python -m train.calibrate",
                    "split": args.split, "n_structures": by_offset[best]["n_structures"], "score": score(by_offset[best], rep),
                    "refinement_steps": args.refine_steps if args.refine_steps is not None else model.refinement.steps,
                    "orientations": args.orientations,
                    "sweep": {str(b): {k: by_offset[b].get(k) for k in KEYS} for b in by_offset}}
    if by_rule:
        ranked = sorted(by_rule, key=lambda r: species_score(by_rule[r]), reverse=True)
        current = SpeciesRule.from_dict(path["species_rule"])
        print(f"\nspecies rules at offset {best}, best 10 of {len(ranked)} (the current rule: "
              f"{_species_text(by_offset[best])}):")
        for rule in ranked[:10]:
            s = by_rule[rule]
            print(f"  {_species_text(s)}  {dataclasses.asdict(rule)}")
        chosen = choose_rule(by_rule, current, by_offset[best])  # the grid's best, if clearly better
        print(f"chosen species rule: {dataclasses.asdict(chosen)}")
        segmentation["species_rule"] = dataclasses.asdict(chosen)
        segmentation["species_rule_score"] = {"chosen": species_score(by_rule.get(chosen, by_offset[best])),
                                              "before": species_score(by_offset[best]), "n_rules": len(by_rule)}
    if by_penalty:
        base = SpeciesRule.from_dict(segmentation.get("species_rule", path["species_rule"]))
        base_summary = by_rule.get(base, by_offset[best])
        print(f"\nelement penalties (nats per distinct element) on that rule (now {base.element_penalty}: "
              f"{_species_text(base_summary)}):")
        for rule, s in by_penalty.items():
            print(f"  {rule.element_penalty:>6g}: {_species_text(s)}; "
                  + "; ".join(f"{src} {_species_text(t)}" for src, t in s["per_source"].items()))
        chosen = choose_rule(by_penalty, base, base_summary)
        print(f"chosen element penalty: {chosen.element_penalty}")
        segmentation["species_rule"] = dataclasses.asdict(chosen)
        segmentation["element_penalty_sweep"] = {str(r.element_penalty): {k: s.get(k) for k in ("species_exact", "formula_exact")}
                                                 for r, s in by_penalty.items()}
    if single:
        print("for single decodings (draws, interpolations, the latent explorer, one orientation): stored as "
              "segmentation.single_decoding, the consensus's segmentation kept")
    if args.write:
        meta["segmentation"] = {**top, "single_decoding": segmentation} if single else segmentation
        atomic_write(Path(args.checkpoint) / META_FILE, json.dumps(meta, indent=2, default=str).encode())
        print(f"written to {Path(args.checkpoint) / META_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
