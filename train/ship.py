"""`python -m train.ship`: put a finished training stage into a shipped model folder.

    python -m train.ship --export runs/cpu12/single_cell/export --into checkpoints/single_cell \
        --log runs/cpu12/single_cell/logs/metrics.csv --what "encoder and decoder only, lr 3e-5, one CPU core"

The export of a stage started with `python -m train --init-from FOLDER` carries FOLDER's ledger plus the new
stage. This command checks that it continues exactly that folder's ledger (same model config, same earlier
stages), then replaces the folder's weights and model.json, keeping what the folder holds beyond the export
(its `note`, the labels of its earlier stages, its decoding settings, and its prior, cell head, directions,
samples and metrics, which are stale until refitted: checkpoints/README.md lists the commands), labels the new stage with `--what`, and appends the stage's
training rows to train_log.csv with steps counted across stages. Record the stage's validation metrics
afterwards with `python -m train.ledger --metrics`.

The decoding settings (refinement, segmentation, consensus: `DECODING_SETTINGS`) are the folder's: the export
inherited them when the run began, and any chosen since (`train.calibrate --write` on the folder) are newer.
`--settings-from-export` takes the export's instead, for settings calibrated on the export before shipping.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

LOG_FILE = "train_log.csv"
KEPT_METADATA = ("note",)  # model.json keys the shipped folder keeps from before the stage


def _stage_without_labels(stage: dict) -> dict:
    return {k: v for k, v in stage.items() if k not in ("what", "validation")}


def check_continues(shipped: dict, export: dict) -> None:
    """Raise ValueError unless `export`'s ledger is `shipped`'s plus exactly one new stage on the same model."""
    if shipped.get("model_config") != export.get("model_config"):
        raise ValueError("the export's model config differs from the shipped one's: not a continuation")
    old, new = shipped.get("training_stages") or [], export.get("training_stages") or []
    if len(new) != len(old) + 1:
        raise ValueError(f"the export's ledger has {len(new)} stages, the shipped one {len(old)}: "
                         "expected exactly one new stage (was the run started with --init-from this folder?)")
    for i, (a, b) in enumerate(zip(old, new, strict=False)):
        if _stage_without_labels(a) != _stage_without_labels(b):
            raise ValueError(f"stage {i} of the export's ledger differs from the shipped one's")
    if not new[-1].get("initialised_from_previous_stage"):
        raise ValueError("the new stage did not start from the previous stage's weights")


def stage_log_rows(log_csv: str | Path, header: list[str], step_offset: int, stage: int) -> list[dict]:
    """A Lightning CSV log's training rows in the shipped log's columns, steps shifted by `step_offset`."""
    rows = []
    with open(log_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if not any(row.get(k) for k in row if k.startswith("train/")):
                continue  # a validation row (the CPU stages' Lightning validation sees a few batches only)
            out = {k: row.get(k, "") for k in header}
            out["step"] = str(int(row["step"]) + step_offset)
            out["stage"] = str(stage)
            rows.append(out)
    return rows


def ship(export: str | Path, into: str | Path, log_csv: str | Path | None = None, what: str | None = None,
         settings_from_export: bool = False) -> dict:
    """Replace `into`'s weights and ledger by `export`'s continuation of them, keeping `into`'s decoding settings
    unless `settings_from_export`; returns the new stage."""
    from crystal_explorer.checkpoint import META_FILE, WEIGHTS_FILE, atomic_write, read_metadata
    from crystal_explorer.settings import DECODING_SETTINGS

    export, into = Path(export), Path(into)
    shipped_meta, export_meta = read_metadata(into), read_metadata(export)
    check_continues(shipped_meta, export_meta)
    # the earlier stages as the folder has them: labels added since the run began (a stage's `what` and
    # `validation`) are in the folder's ledger only
    stages = [*(shipped_meta.get("training_stages") or []), export_meta["training_stages"][-1]]
    stage = stages[-1]
    if what:
        stage["what"] = what
    kept = KEPT_METADATA if settings_from_export else (*KEPT_METADATA, *DECODING_SETTINGS)
    meta = {**export_meta, "training_stages": stages,  # the folder's where it has them
            **{k: shipped_meta[k] for k in kept if k in shipped_meta}}
    rows: list[dict] = []
    log_path = into / LOG_FILE
    if log_csv is not None:
        if not log_path.is_file():
            raise FileNotFoundError(f"{log_path} is missing: nothing to append the stage's log to")
        with open(log_path, newline="") as handle:
            header = next(csv.reader(handle))
        offset = sum(int(s.get("steps", 0)) for s in stages[:-1])
        rows = stage_log_rows(log_csv, header, offset, stage["stage"])
        if not rows:
            raise ValueError(f"{log_csv} has no training rows")
    atomic_write(into / WEIGHTS_FILE, (export / WEIGHTS_FILE).read_bytes())
    atomic_write(into / META_FILE, json.dumps(meta, indent=2, default=str).encode())
    if rows:
        text = io.StringIO()
        csv.DictWriter(text, fieldnames=header, lineterminator="\n").writerows(rows)
        with open(log_path, "a", newline="") as handle:
            handle.write(text.getvalue())
    return stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.ship", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="the stage's export folder (runs/.../export)")
    parser.add_argument("--into", required=True, help="the shipped model folder it continues")
    parser.add_argument("--log", help="the stage's Lightning metrics.csv, appended to train_log.csv")
    parser.add_argument("--what", help="one line on what the stage trained and how")
    parser.add_argument("--settings-from-export", action="store_true",
                        help="take the export's decoding settings (refinement, segmentation, consensus), not the folder's")
    args = parser.parse_args(argv)
    from train import USER_ERRORS, user_error

    try:
        stage = ship(args.export, args.into, args.log, args.what, args.settings_from_export)
    except USER_ERRORS as exc:
        return user_error(exc)
    print(f"{args.into}: stage {stage['stage']} shipped ({stage.get('samples')} samples, {stage.get('minutes')} min); "
          "refit the prior, cell head, directions, samples and test metrics, and record val with train.ledger")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
