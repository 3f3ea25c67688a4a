"""`python -m crystal_explorer reconstruct|sample|interpolate|traverse`: the latent API from the command line.

Each decoding is written as a CIF when a periodic lattice is known (recovered from the atoms by lattice
models; for a reconstruction, the input's own cell when a single-cell model is used or no lattice is
recovered; for a single-cell draw or frame, the cell predicted by the model's cell head), else as XYZ of
the atoms in the 10 Å cube, plus a PNG preview and a summary.json. Bad input exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "single_cell"


def _write_decoded(model, decoded, out: Path, stem: str, cell: np.ndarray | None = None) -> dict:
    """Write one decoding as CIF (lattice recovered, `cell` known, or predicted by the cell head) or XYZ, and a PNG; return its summary."""
    from crystal_explorer.export import space_group, to_cif, to_xyz
    from crystal_explorer.lattice import recover_lattice, single_cell_structure, structure_in_cell
    from crystal_explorer.preview import preview_png

    info = {"name": stem, "n_atoms": len(decoded.atoms), "species": sorted({int(z) for z in decoded.atoms.atomic_numbers})}
    structure = None
    if model.representation == "lattice":
        recovered = recover_lattice(decoded.atoms.positions, decoded.atoms.atomic_numbers, grid=model.grid)
        structure = None if recovered is None else recovered.structure
        info["lattice_found"] = structure is not None
        if structure is not None:
            info["lattice"] = "recovered from the decoded atoms"
        elif cell is not None and len(decoded.atoms):
            structure = structure_in_cell(decoded.atoms.positions, decoded.atoms.atomic_numbers, cell, grid=model.grid)
            info["lattice"] = "the input's cell (none recovered)"
    elif cell is not None and len(decoded.atoms):
        structure = single_cell_structure(decoded.atoms.positions, decoded.atoms.atomic_numbers, cell)
        info["lattice"] = "the input's cell"
    else:
        predicted = model.predicted_cell(decoded)
        if predicted is not None:
            structure = single_cell_structure(decoded.atoms.positions, decoded.atoms.atomic_numbers, predicted)
            info["lattice"] = "predicted by the cell head (crystal_explorer.cell)"
    if structure is not None:
        path = out / f"{stem}.cif"
        path.write_text(to_cif(structure))
        info["formula"] = structure.composition.reduced_formula
        info["space_group"] = list(space_group(structure))
    else:
        path = out / f"{stem}.xyz"
        path.write_text(to_xyz(decoded.atoms))
    info["file"] = path.name
    preview_png(decoded.density, decoded.atoms, out / f"{stem}.png", title=stem)
    return info


def _read(path: str, majority: bool):
    from crystal_explorer.structures import crystal_arrays, read_structure

    structure, _ = read_structure(path, majority_species=majority)
    return crystal_arrays(structure, Path(path).stem)


def run(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from crystal_explorer.latent import CrystalModel

    model = CrystalModel.from_checkpoint(args.checkpoint, device=args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    max_z = getattr(args, "max_z", None)
    if model.conditional and max_z is None and args.command != "reconstruct":
        max_z = 30.0
    summary: dict = {"command": args.command, "checkpoint": str(args.checkpoint), "seed": args.seed}
    if args.command == "sample":
        summary["prior"] = args.prior or model.default_prior
    if args.command == "reconstruct":
        crystal = _read(args.cif, args.majority_species)
        rec = model.reconstruct(crystal, seed=args.seed)
        from crystal_explorer.metrics import summarise

        summary["metrics"] = summarise([rec.comparison])
        from crystal_explorer.lattice import placed_lattice

        cell = placed_lattice(crystal.lattice, rec.encoded.placement.rotation)
        summary["decoded"] = _write_decoded(model, rec.decoded, out, "reconstruction", cell)
    elif args.command == "sample":
        decoded = []
        for start in tqdm(range(0, args.n, 32), desc="sampling", unit=" batch", disable=args.n <= 32):
            decoded += model.sample(min(32, args.n - start), seed=args.seed + start, max_z=max_z, prior=args.prior)
        scores = model.realism(decoded)
        summary["samples"] = []
        for i, (d, s) in enumerate(tqdm(list(zip(decoded, scores, strict=True)), desc="writing", unit=" crystal", disable=args.n <= 2)):
            summary["samples"].append({**_write_decoded(model, d, out, f"sample_{i:03d}"), "realism": float(s)})
    elif args.command == "interpolate":
        za = model.encode(_read(args.cif_a, args.majority_species), seed=args.seed).mean
        zb = model.encode(_read(args.cif_b, args.majority_species), seed=args.seed).mean
        frames = model.interpolate(za, zb, args.steps, spherical=args.spherical, max_z=max_z)
        summary["frames"] = [_write_decoded(model, d, out, f"frame_{i:03d}")
                             for i, d in enumerate(tqdm(frames, desc="writing", unit=" frame"))]
    elif args.command == "traverse":
        if args.cif:
            z = model.encode(_read(args.cif, args.majority_species), seed=args.seed).mean
        else:
            z = model.draw(1, args.seed)[0]
        values = np.linspace(-3, 3, args.frames)
        frames, diffs = model.traverse(z, args.dim, values, max_z=max_z)
        summary["frames"] = []
        for i, (d, diff, v) in enumerate(tqdm(list(zip(frames, diffs, values, strict=True)), desc="writing", unit=" frame")):
            info = _write_decoded(model, d, out, f"dim{args.dim}_{i:02d}")
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
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("reconstruct", parents=[common], help="encode and decode one crystal")
    p.add_argument("cif")
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
    from crystal_explorer.errors import CrystalExplorerError

    try:
        summary = run(args)
    except CrystalExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {getattr(exc, 'filename', '')}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/summary.json ({args.command})")
    return 0 if summary else 1


if __name__ == "__main__":
    raise SystemExit(main())
