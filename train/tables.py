"""`python -m train.tables METRICS.json [--before OLD.json]`: a train.evaluate metrics.json as a Markdown table.

One column for all crystals and one per source, one row per metric, in the layout of checkpoints/README.md;
with `--before`, each cell reads "old → new". Print it and paste it, so a README table is never retyped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# (label, key, kind): kind "pct" is a fraction shown as %, "A" three distance percentiles in Å, "num" a number
ROWS = (
    ("true atoms within 0.5 Å", "atoms_within_0.5A", "pct"),
    ("decoded atoms within 0.5 Å of a true one", "pred_atoms_within_0.5A", "pct"),
    ("exact atom count", "count_exact", "pct"),
    ("atom count within ±2", "count_within_2", "pct"),
    ("species exact (pairs within 0.5 Å)", "species_exact", "pct"),
    ("species within ±2", "species_within_2", "pct"),
    ("reduced formula exact", "formula_exact", "pct"),
    ("StructureMatcher match rate", "match_rate", "pct"),
    ("true→decoded 50/75/90 % (Å)", "distance_percentiles_true_to_pred", "A"),
    ("voxel MSE (Z units²)", "voxel_mse", "num"),
)


def _cell(value: object, kind: str) -> str:
    if value is None:
        return ""
    if kind == "pct":
        return f"{100 * float(value):.1f} %"
    if kind == "A":
        parts = [value.get(q) for q in ("50", "75", "90")]  # None or inf: fewer decoded atoms than that percentile
        return " / ".join("∞" if v is None or float(v) == float("inf") else f"{float(v):.2f}" for v in parts)
    return f"{float(value):.3g}"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table from its header and rows of cell texts."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    return "\n".join([line(header), "|" + " --- |" * len(header), *map(line, rows)])


def markdown_table(metrics: dict, before: dict | None = None) -> str:
    """Rows of ROWS present in `metrics`; columns: all, then each source (named as train.evaluate names them)."""
    from crystal_explorer.report import source_name

    sources = list(metrics.get("per_source", {}))
    header = ["metric", f"all ({metrics.get('n_structures', '?')})",
              *(f"{source_name(s)} ({metrics['per_source'][s].get('n_structures', '?')})" for s in sources)]
    rows = []
    for label, key, kind in ROWS:
        blocks = [(metrics, before), *((metrics["per_source"][s], (before or {}).get("per_source", {}).get(s))
                                       for s in sources)]
        cells = []
        for new, old in blocks:
            text = _cell(new.get(key), kind)
            previous = _cell(old.get(key), kind) if old else ""
            cells.append(f"{previous} → {text}" if previous and text and previous != text else text)
        if any(cells):
            rows.append([label, *cells])
    return markdown(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", help="a metrics.json from train.evaluate")
    parser.add_argument("--before", help="an earlier metrics.json of the same crystals, shown as 'old → new'")
    args = parser.parse_args(argv)
    from train import USER_ERRORS, user_error

    try:
        metrics = json.loads(Path(args.metrics).read_text())
        before = json.loads(Path(args.before).read_text()) if args.before else None
        print(markdown_table(metrics, before))
    except (*USER_ERRORS, json.JSONDecodeError) as exc:
        return user_error(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
