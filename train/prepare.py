"""`python -m train.prepare --data PATH... --out FILE.npz`: parse CIFs once into a pymatgen-free bundle of arrays.

The bundle carries lattice, fractional coordinates, Z, id, split and source of every parsable crystal, so
training can run where pymatgen is not installed (the GPU machine). It is derived row by row from the data:
keep it out of git (data_cache/ is ignored).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.prepare", description=__doc__)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)
    from crystal_explorer.errors import CrystalExplorerError
    from train.data import read_bundle

    try:
        bundle = read_bundle(args.data, limit=args.limit)
    except CrystalExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bundle.save(args.out)
    print(f"{len(bundle)} crystals ({len(bundle.atomic_numbers)} atoms) → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
