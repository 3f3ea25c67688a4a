"""`python -m train.ledger`: a model's training ledger (model.json's training_stages) and its learning curve.

    python -m train.ledger --checkpoint checkpoints/single_cell --metrics outputs/val/metrics.json   # record
    python -m train.ledger --checkpoint checkpoints/single_cell --plot                            # draw the PNG
    python -m train.ledger --checkpoint checkpoints/single_cell --table                           # Markdown table
    python -m train.ledger --checkpoint checkpoints/single_cell --extrapolate --rate 450 10.5     # compute needed

Each stage holds device, minutes, samples and data; `--metrics` adds the validation metrics measured
after the newest stage (a `train.evaluate --split val` metrics.json), so the curve plots validation
quality against the samples seen, one line per source file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crystal_explorer.checkpoint import stage_samples

CURVE_FILE = "learning_curve.png"
CURVE_METRICS = ("atoms_within_0.5A", "count_exact", "species_exact")
TARGETS = {"atoms_within_0.5A": 0.995, "count_exact": 0.95, "species_exact": 0.85}  # issue 11's single-cell targets


def validation_summary(metrics: dict) -> dict:
    """The ledger's copy of a val metrics.json: split, seed, counts and the curve metrics, overall and per source."""
    keep = ("n_structures", *CURVE_METRICS, "species_within_2", "count_within_2")
    if metrics.get("split") != "val":
        raise ValueError(f"the ledger records validation metrics, not the {metrics.get('split')!r} split")
    return {
        "split": "val", "seed": metrics.get("seed"), "data": metrics.get("data"),
        **{k: metrics.get(k) for k in keep},
        "per_source": {name: {k: d.get(k) for k in keep} for name, d in metrics.get("per_source", {}).items()},
    }


def record_validation(folder: str | Path, metrics: dict) -> dict:
    """Attach validation metrics to the newest stage of `folder`/model.json (written atomically); returns the stage."""
    from crystal_explorer.checkpoint import META_FILE, atomic_write, read_metadata

    meta = read_metadata(folder)
    stages = meta.get("training_stages") or []
    if not stages:
        raise ValueError(f"{folder} has no training ledger to record into")
    stages[-1]["validation"] = validation_summary(metrics)
    meta["samples_seen"] = sum(stage_samples(s) for s in stages)
    atomic_write(Path(folder) / META_FILE, json.dumps(meta, indent=2, default=str).encode())
    return stages[-1]


def curve_series(meta: dict) -> dict[str, list[tuple[int, dict]]]:
    """Per source, (cumulative samples seen, that stage's validation metrics) for every stage that has them."""
    from crystal_explorer.report import source_stem

    seen, series = 0, {}
    for stage in meta.get("training_stages") or []:
        seen += stage_samples(stage)
        for name, metrics in (stage.get("validation") or {}).get("per_source", {}).items():
            series.setdefault(source_stem(Path(name).name), []).append((seen, metrics))
    return dict(sorted(series.items()))


def ledger_markdown(meta: dict) -> str:
    """The app's ledger table (`report.ledger_table`, without its long `what` column) as Markdown."""
    from crystal_explorer.report import ledger_table

    table = ledger_table(meta)
    if table.empty:
        raise ValueError("the folder's model.json has no training ledger")
    from train.tables import markdown

    table = table.drop(columns=["what"])
    return markdown(list(table.columns), [[str(v) for v in row] for row in table.itertuples(index=False)])


def extrapolate(meta: dict, targets: dict[str, float] = TARGETS, from_stage: int = 2) -> list[dict]:
    """Fit each pooled validation metric as a + b·log2(samples seen) over the stages from `from_stage` on, and
    solve for the samples at which it reaches its target. b is the gain per doubling of samples (a fraction);
    `samples_needed` is None where the fit does not rise. An extrapolation, not a promise: it assumes the
    log-linear trend of CPU stages holds far beyond them."""
    import numpy as np

    seen, points = 0, []
    for i, stage in enumerate(meta.get("training_stages") or []):
        seen += stage_samples(stage)
        validation = stage.get("validation")
        if validation and stage.get("stage", i) >= from_stage:
            points.append((seen, validation))
    if len(points) < 3:
        raise ValueError(f"only {len(points)} stages from stage {from_stage} on have validation metrics; need 3 to fit")
    x = np.log2([p for p, _ in points])
    rows = []
    for metric, target in targets.items():
        y = np.array([v.get(metric) or 0.0 for _, v in points])
        slope, intercept = np.polyfit(x, y, 1)
        doublings = (target - intercept) / slope if slope > 1e-6 else None  # flat or falling: never
        needed = None if doublings is None else float(2 ** min(doublings, 1000.0))
        rows.append({"metric": metric, "latest": float(y[-1]), "per_doubling": float(slope), "target": target,
                     "samples_seen": seen, "samples_needed": needed, "stages_fitted": len(points)})
    return rows


OUT_OF_REACH = 1e12  # samples: beyond this the fit says nothing useful


def _samples(needed: float | None) -> str:
    if needed is None:
        return "never on this trend"
    return "out of reach (> 10¹²)" if needed > OUT_OF_REACH else f"{needed / 1e6:,.1f} M"


def extrapolation_table(rows: list[dict], rates: tuple[float, ...] = ()) -> str:
    """`extrapolate`'s rows as Markdown, with the hours each training rate (samples/s) would take to get there."""
    head = ["metric (pooled val)", "latest", "gain per doubling", "target", "samples needed",
            *(f"hours at {r:g} samples/s" for r in rates)]
    from train.tables import markdown

    lines = []
    for row in rows:
        needed = row["samples_needed"]
        more = None if needed is None else max(needed - row["samples_seen"], 0.0)
        cells = [row["metric"], f"{100 * row['latest']:.1f} %", f"{100 * row['per_doubling']:+.2f} points",
                 f"{100 * row['target']:g} %", _samples(needed),
                 *("" if more is None or more > OUT_OF_REACH else f"{more / r / 3600:,.0f}" for r in rates)]
        lines.append(cells)
    return markdown(head, lines)


def plot_learning_curve(folder: str | Path, out: str | Path | None = None) -> Path:
    """Validation metrics against cumulative samples seen, one panel per metric, one line per source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from crystal_explorer.checkpoint import read_metadata

    series = curve_series(read_metadata(folder))
    if not series:
        raise ValueError(f"{folder}: no stage has validation metrics yet (record them with --metrics)")
    last = max(x for points in series.values() for x, _ in points)
    fig, axes = plt.subplots(1, len(CURVE_METRICS), figsize=(4.2 * len(CURVE_METRICS), 3.4), sharex=True)
    for ax, metric in zip(axes, CURVE_METRICS, strict=True):
        for source, points in series.items():
            ax.plot([x for x, _ in points], [100 * (m.get(metric) or 0) for _, m in points], marker="o", label=source)
        ax.set_title(metric.replace("_", " ").replace("0.5A", "0.5 Å"))
        ax.set_xlabel("training samples seen")
        ax.set_ylabel("% (validation split)")
        ax.set_ylim(0, 100)
        ax.set_xlim(0, 1.15 * last)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:.0f} k"))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{Path(folder).name}: validation quality after each training stage")
    fig.tight_layout()
    path = Path(out) if out else Path(folder) / CURVE_FILE
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.ledger", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="an exported model folder")
    parser.add_argument("--metrics", help="a val-split metrics.json from train.evaluate to record on the newest stage")
    parser.add_argument("--plot", action="store_true", help=f"draw the learning curve into the folder's {CURVE_FILE}")
    parser.add_argument("--table", action="store_true", help="print the ledger as a Markdown table")
    parser.add_argument("--extrapolate", action="store_true",
                        help="fit pooled val metrics against log2(samples seen) and print the samples each target needs")
    parser.add_argument("--target", nargs="*", default=[], metavar="METRIC=FRACTION",
                        help=f"targets to extrapolate to (default {' '.join(f'{k}={v}' for k, v in TARGETS.items())})")
    parser.add_argument("--from-stage", type=int, default=2, help="first stage the extrapolation fits (default 2)")
    parser.add_argument("--rate", type=float, nargs="*", default=[],
                        help="training rates in samples/s to convert the remaining samples into hours")
    args = parser.parse_args(argv)
    from train import USER_ERRORS, user_error

    try:
        if args.metrics:
            stage = record_validation(args.checkpoint, json.loads(Path(args.metrics).read_text()))
            print(f"recorded validation metrics on stage {stage.get('stage')}")
        if args.plot:
            print(f"learning curve → {plot_learning_curve(args.checkpoint)}")
        if args.table or args.extrapolate:
            from crystal_explorer.checkpoint import read_metadata

            meta = read_metadata(args.checkpoint)
        if args.table:
            print(ledger_markdown(meta))
        if args.extrapolate:
            targets = dict(TARGETS)
            for item in args.target:
                metric, _, value = item.partition("=")
                if metric not in CURVE_METRICS:
                    raise ValueError(f"--target {item}: the ledger records {', '.join(CURVE_METRICS)}")
                targets[metric] = float(value)
            rows = extrapolate(meta, targets, from_stage=args.from_stage)
            print(f"fitted on {rows[0]['stages_fitted']} stages, {rows[0]['samples_seen']:,} samples seen")
            print(extrapolation_table(rows, tuple(args.rate)))
    except USER_ERRORS as exc:
        return user_error(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
