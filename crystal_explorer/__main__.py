"""`python -m crystal_explorer reconstruct|sample|interpolate|traverse`: the latent API from the command line.

Each decoding is written as a CIF when a periodic lattice is known (recovered from the atoms by lattice
models; for a reconstruction, the input's own cell when a single-cell model is used or no lattice is
recovered; for a single-cell draw or frame, the cell predicted by the model's cell head), else as XYZ of
the atoms in the 10 Å cube, plus a PNG preview and a summary.json. Bad input exits with status 2 and one line.

`reconstruct` takes one CIF or POSCAR (its files go straight into --out) or many inputs: files, folders of
them, and CSV files with a `cif` column (one crystal per row). The model loads once; each crystal gets a
folder, and --out/summary.csv one row per crystal, with the reason for each one refused (which does not
stop the others). Inputs are checked before the model loads, so a refusal is quick and writes nothing.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from crystal_explorer.errors import CrystalExplorerError, report_error

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "single_cell"
# atoms_in/out: the true atoms in the cube and the decoded ones; atoms_within_0.5A and species_exact: fractions
# (`metrics.summarise`); match: StructureMatcher (`matching.structure_matcher`) of the written CIF and the input
SUMMARY_COLUMNS = ("id", "formula_in", "formula_out", "atoms_in", "atoms_out", "atoms_within_0.5A",
                   "species_exact", "match", "seconds", "refusal")


def _write_decoded(model, decoded, out: Path, stem: str, cell: np.ndarray | None = None, png: bool = True):
    """Write one decoding as CIF (lattice recovered, `cell` known, or predicted by the cell head) or XYZ, and a
    PNG preview unless `png` is False; return its summary and the periodic Structure written (None for XYZ)."""
    from crystal_explorer.export import space_group, to_cif, to_xyz
    from crystal_explorer.preview import preview_png

    info = {"name": stem, "n_atoms": len(decoded.atoms), "species": sorted({int(z) for z in decoded.atoms.atomic_numbers})}
    structure, source = model.periodic_structure(decoded, cell=cell)
    if model.representation == "lattice":
        info["lattice_found"] = source == "recovered from the decoded atoms"
    if structure is not None:
        info["lattice"] = source
    if structure is not None:
        path = out / f"{stem}.cif"
        path.write_text(to_cif(structure))
        info["formula"] = structure.composition.reduced_formula
        info["space_group"] = list(space_group(structure))
    else:
        path = out / f"{stem}.xyz"
        path.write_text(to_xyz(decoded.atoms))
    info["file"] = path.name
    if png:
        preview_png(decoded.density, decoded.atoms, out / f"{stem}.png", title=stem)
    return info, structure


def _read(path: str, majority: bool):
    from crystal_explorer.structures import crystal_arrays, read_structure

    structure, _ = read_structure(path, majority_species=majority)
    return crystal_arrays(structure, Path(path).stem)


def _checkpoint_facts(folder: str | Path) -> tuple[str, int]:
    """The representation and largest Z of a checkpoint, from its model.json alone: inputs are checked
    against them before torch is imported (about 2 s), so that a refusal is quick."""
    path = Path(folder) / "model.json"
    if not path.is_file():
        raise CrystalExplorerError(f"no checkpoint at {folder}: model.json is missing")
    try:
        meta = json.loads(path.read_text())
        return str(meta.get("representation", "single")), int(meta["model_config"]["max_z"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CrystalExplorerError(f"checkpoint {folder} is corrupt: model.json ({exc})") from None


def _checked_input(source, representation: str, max_z: int, majority: bool, seed: int):
    """A source's validated Structure and its CrystalArrays; raises CrystalExplorerError if the model cannot
    take it: unreadable, invalid (`structures.validate_structure`), Z beyond the model, or, for the single
    cell, no orientation of the 64 that `CrystalModel.place` will try fits the cube (same seed, same draws)."""
    from crystal_explorer.grid import GridSpec
    from crystal_explorer.placement import compact_cluster, fit_rotation
    from crystal_explorer.structures import crystal_arrays

    structure, _ = source.read(majority_species=majority, max_z=max_z)
    crystal = crystal_arrays(structure, source.id)
    if representation == "single" and fit_rotation(
            compact_cluster(crystal.lattice, crystal.frac_coords), np.random.default_rng(seed), GridSpec()) is None:
        raise CrystalExplorerError(
            "the unit cell does not fit the 10 Å cube in any orientation tried; use the lattice model")
    return structure, crystal


def _reconstruct(model, structure, crystal, out: Path, seed: int, png: bool) -> dict:
    """Reconstruct one crystal into `out` (CIF or XYZ, PNG); its summary.json content with the paper's metrics
    and whether the written crystal matches the input under StructureMatcher (None when no CIF was written)."""
    from crystal_explorer.lattice import placed_lattice
    from crystal_explorer.matching import structure_matcher
    from crystal_explorer.metrics import summarise

    rec = model.reconstruct(crystal, seed=seed)
    cell = placed_lattice(crystal.lattice, rec.encoded.placement.rotation)
    info, written = _write_decoded(model, rec.decoded, out, "reconstruction", cell, png=png)
    match = None
    if written is not None:
        try:
            match = bool(structure_matcher().fit(structure, written))
        except Exception:  # noqa: BLE001 - the matcher fails on degenerate cells: no match
            match = False
    return {"input": {"formula": structure.composition.reduced_formula, "n_sites": len(structure)},
            "metrics": summarise([rec.comparison]), "decoded": info, "match": match}


def _summary_row(name: str, result: dict | None, seconds: float, refusal: str = "") -> dict:
    """One row of summary.csv (`SUMMARY_COLUMNS`); fractions in [0, 1], empty where nothing was decoded."""
    row = dict.fromkeys(SUMMARY_COLUMNS, "")
    row.update(id=name, seconds=f"{seconds:.3f}", refusal=refusal)
    if result is not None:
        metrics, decoded = result["metrics"], result["decoded"]
        row.update(formula_in=result["input"]["formula"], formula_out=decoded.get("formula", ""),
                   atoms_in=metrics["n_true_atoms"], atoms_out=metrics["n_pred_atoms"],
                   **{"atoms_within_0.5A": metrics["atoms_within_0.5A"], "species_exact": metrics["species_exact"]},
                   match="" if result["match"] is None else result["match"])
    return {k: "" if v is None else v for k, v in row.items()}


def _folder_name(name: str, used: set[str]) -> str:
    """A file-system-safe folder name for a crystal id, unique among `used` (which it joins)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "crystal"
    folder, k = base, 1
    while folder.lower() in used:
        k += 1
        folder = f"{base}-{k}"
    used.add(folder.lower())
    return folder


def _is_batch(inputs: list[str]) -> bool:
    """Several inputs, or one folder or CSV: the one-folder-per-crystal layout with summary.csv."""
    path = Path(inputs[0])
    return len(inputs) > 1 or path.is_dir() or path.name.lower().endswith((".csv", ".csv.gz"))


def reconstruct_one(args: argparse.Namespace) -> dict:
    """`reconstruct FILE --out DIR`: the input is checked before the model loads; nothing is written if it is refused."""
    from crystal_explorer.metrics import json_safe
    from crystal_explorer.structures import read_sources

    representation, max_z = _checkpoint_facts(args.checkpoint)
    source = read_sources(args.inputs)[0]
    structure, crystal = _checked_input(source, representation, max_z, args.majority_species, args.seed)
    model = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"command": args.command, "checkpoint": str(args.checkpoint), "seed": args.seed,
               "refine_steps": model.refinement.steps,
               "orientations": model.consensus.orientations, **_reconstruct(model, structure, crystal, out, args.seed, png=not args.no_png)}
    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))
    return summary


def _load(args: argparse.Namespace):
    """The checkpoint's model, with `--refine-steps` and `--orientations` (when given) replacing its refinement
    and its consensus for this run."""
    from crystal_explorer.latent import CrystalModel

    model = CrystalModel.from_checkpoint(args.checkpoint, device=args.device)
    if args.refine_steps is not None:
        if args.refine_steps < 0:
            raise CrystalExplorerError(f"--refine-steps must be 0 or more, not {args.refine_steps}")
        refinement = dataclasses.replace(model.refinement, steps=args.refine_steps)
        model.metadata = {**model.metadata, "refinement": dataclasses.asdict(refinement)}
    if getattr(args, "orientations", None) is not None:
        if args.orientations < 1:
            raise CrystalExplorerError(f"--orientations must be 1 or more, not {args.orientations}")
        consensus = model.consensus.with_orientations(args.orientations)
        model.metadata = {**model.metadata, "consensus": dataclasses.asdict(consensus)}
    return model


def reconstruct_many(args: argparse.Namespace) -> tuple[int, int]:
    """`reconstruct A.cif B.cif folder/ data.csv --out DIR`: DIR/<id>/ per crystal and DIR/summary.csv with one
    row per crystal, refused ones included; returns (reconstructed, refused)."""
    from tqdm import tqdm

    from crystal_explorer.metrics import json_safe
    from crystal_explorer.structures import read_sources

    representation, max_z = _checkpoint_facts(args.checkpoint)
    sources = read_sources(args.inputs)
    model = None
    if any(not s.refusal for s in sources):
        model = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, used, done = [], {"summary.csv"}, 0
    for source in tqdm(sources, desc="reconstructing", unit=" crystal", disable=len(sources) < 2):
        start = time.perf_counter()
        folder = None
        try:
            structure, crystal = _checked_input(source, representation, max_z, args.majority_species, args.seed)
            folder = out / _folder_name(source.id, used)
            folder.mkdir(parents=True, exist_ok=True)
            result = _reconstruct(model, structure, crystal, folder, args.seed, png=not args.no_png)
            summary = {"command": args.command, "id": source.id, "checkpoint": str(args.checkpoint),
                       "seed": args.seed, **result}
            (folder / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))
            rows.append(_summary_row(source.id, result, time.perf_counter() - start))
            done += 1
        except Exception as exc:  # noqa: BLE001 - one crystal's failure is its row's reason, never the batch's end
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            reason = str(exc) if isinstance(exc, CrystalExplorerError) else f"failed: {type(exc).__name__}: {exc}"
            rows.append(_summary_row(source.id, None, time.perf_counter() - start, reason.splitlines()[0] if reason else ""))
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return done, len(rows) - done


def run(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    model = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    max_z = getattr(args, "max_z", None)
    if model.conditional and max_z is None:
        max_z = 30.0
    summary: dict = {"command": args.command, "checkpoint": str(args.checkpoint), "seed": args.seed}
    if args.command == "sample":
        summary["prior"] = args.prior or model.default_prior
        decoded = []
        for start in tqdm(range(0, args.n, 32), desc="sampling", unit=" batch", disable=args.n <= 32):
            decoded += model.sample(min(32, args.n - start), seed=args.seed + start, max_z=max_z, prior=args.prior)
        scores = model.realism(decoded)
        summary["samples"] = []
        for i, (d, s) in enumerate(tqdm(list(zip(decoded, scores, strict=True)), desc="writing", unit=" crystal", disable=args.n <= 2)):
            summary["samples"].append({**_write_decoded(model, d, out, f"sample_{i:03d}")[0], "realism": float(s)})
        from crystal_explorer.report import read_samples, realism_caveat

        caveat = realism_caveat(read_samples(args.checkpoint))
        if caveat:
            summary["realism_caveat"] = caveat
    elif args.command == "interpolate":
        za, zb = model.refine([model.encode(_read(cif, args.majority_species), seed=args.seed)
                               for cif in (args.cif_a, args.cif_b)])  # the ends decode as their reconstructions
        frames = model.interpolate(za, zb, args.steps, spherical=args.spherical, max_z=max_z)
        summary["frames"] = [_write_decoded(model, d, out, f"frame_{i:03d}")[0]
                             for i, d in enumerate(tqdm(frames, desc="writing", unit=" frame"))]
    elif args.command == "traverse":
        if args.cif:
            z = model.refine([model.encode(_read(args.cif, args.majority_species), seed=args.seed)])[0]
        else:
            z = model.draw(1, args.seed)[0]
        values = np.linspace(-3, 3, args.frames)
        frames, diffs = model.traverse(z, args.dim, values, max_z=max_z)
        summary["frames"] = []
        for i, (d, diff, v) in enumerate(tqdm(list(zip(frames, diffs, values, strict=True)), desc="writing", unit=" frame")):
            info, _ = _write_decoded(model, d, out, f"dim{args.dim}_{i:02d}")
            summary["frames"].append({**info, "value_prior_sigma": float(v), "max_abs_density_change": float(np.abs(diff).max())})
    from crystal_explorer.metrics import json_safe

    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crystal_explorer", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="model folder (default: checkpoints/single_cell)")
    common.add_argument("--out", required=True, help="folder for the CIF/XYZ, PNG and summary.json files")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    common.add_argument("--majority-species", action="store_true", help="give disordered sites their majority species")
    common.add_argument("--refine-steps", type=int, help="steps refining an encoding on its input density "
                        "(default: the checkpoint's; 0 = the posterior mean, the paper's reconstruction)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("reconstruct", parents=[common], help="encode and decode crystals: CIF/POSCAR files, folders, CSVs")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a CIF or POSCAR file, a folder of them, or a CSV(.gz) with a 'cif' column (and 'material_id')")
    p.add_argument("--no-png", action="store_true", help="skip the PNG preview: more than half of a batch's time per crystal")
    p.add_argument("--orientations", type=int, help="decode a single cell in N orientations and keep the atoms most agree "
                   "on (default: the checkpoint's; 1 = one decoding, the paper's)")
    p = sub.add_parser("sample", parents=[common], help="decode random draws (ε ~ N(0, 1); see --prior)")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--prior", choices=("aggregate", "standard"),
                   help="aggregate: ε mapped onto the training encodings (default when the checkpoint has one); "
                        "standard: z = ε")
    p.add_argument("--max-z", type=float, help="conditional model: the heaviest element to aim for")
    p = sub.add_parser("interpolate", parents=[common], help="decode the path between two crystals")
    p.add_argument("cif_a")
    p.add_argument("cif_b")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--spherical", action="store_true")
    p.add_argument("--max-z", type=float)
    p = sub.add_parser("traverse", parents=[common], help="move one latent coordinate from -3 to 3 prior standard deviations about the prior's centre")
    p.add_argument("cif", nargs="?", help="start from this crystal's encoding (default: a random draw)")
    p.add_argument("--dim", type=int, default=0)
    p.add_argument("--frames", type=int, default=7)
    p.add_argument("--max-z", type=float)
    args = parser.parse_args(argv)
    try:
        if args.command == "reconstruct" and _is_batch(args.inputs):
            done, refused = reconstruct_many(args)
            print(f"wrote {args.out}/summary.csv: {done} reconstructed, {refused} refused")
            if done == 0:
                return report_error(f"none of the {refused} inputs could be reconstructed (reasons in {args.out}/summary.csv)")
            return 0
        summary = reconstruct_one(args) if args.command == "reconstruct" else run(args)
    except CrystalExplorerError as exc:
        return report_error(exc)
    except OSError as exc:
        return report_error(f"{exc.strerror or exc}: {getattr(exc, 'filename', '')}")
    print(f"wrote {args.out}/summary.json ({args.command})")
    return 0 if summary else 1


if __name__ == "__main__":
    raise SystemExit(main())
