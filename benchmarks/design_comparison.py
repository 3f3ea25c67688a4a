"""Issue 11 §2: validation quality of each design after equal CPU wall time, with its training cost.

    python benchmarks/design_comparison.py [--minutes 30] [--designs compact shuffle-lite ...] [--parallel 2]
        [--data data_cache/three.npz data_cache/mp_bulk.npz] [--val-data NPZ ...] [--limit 50] [--runs runs/designs]

Each design of `train/designs.py` trains from scratch on the same data with the same schedule for the same wall
time (`python -m train --max-minutes`), one thread each (pinned to its own core with `taskset` when `--parallel`
runs several at once), then `python -m train.evaluate` scores it on the val split (plain posterior mean, no
refinement). The table gives FLOPs per training sample (forward + backward, from `benchmarks/train_step.py`'s
counter), samples seen in the time, and the val metrics. Progress is the training's own bar in each run's log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.designs import DESIGNS, Design  # noqa: E402

BASE = {
    "model": {"architecture": "compact", "latent_size": 300, "conditional": False},
    "train": {"representation": "single", "batch_size": 8, "lr": 1e-3, "max_steps": 1_000_000, "warmup_steps": 50,
              "beta": 1e-3, "gamma": 0.1, "kl_warmup_steps": 200, "num_workers": 0, "val_every_steps": 1_000_000,
              "val_batches": 1, "checkpoint_every_steps": 200},
}


def train_gflop(design: Design, data: str) -> float:
    """Forward + backward GFLOP of one training sample of `design`, on crystals of `data`."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    import torch
    from train_step import _crystals, train_flops

    from crystal_explorer.grid import GridSpec
    from crystal_explorer.models import CrystalVAE, ModelConfig
    from crystal_explorer.representation import pad_batch, place

    grid = GridSpec()
    rng = np.random.default_rng(0)
    placement = next(p for c in _crystals(data, 16) if (p := place(c, "single", rng, grid)) is not None)
    positions, numbers = pad_batch([placement])
    torch.manual_seed(0)
    model = CrystalVAE(ModelConfig(**{**BASE["model"], **design.model}))
    return train_flops(model, positions, numbers, grid, torch.device("cpu"), design.step_loss) / 1e9


def _command(design: Design, args: argparse.Namespace, config: Path) -> list[str]:
    return [sys.executable, "-m", "train", "--config", str(config), "--runs", str(args.runs),
            "--max-minutes", str(args.minutes), "--export", str(args.runs / design.name / "export")]


def _evaluate(design: Design, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "train.evaluate", "--checkpoint", str(args.runs / design.name / "export"),
            "--data", *args.val_data, "--split", "val", "--limit", str(args.limit), "--refine-steps", "0",
            "--out", str(args.runs / design.name / "eval")]


def _launch(command: list[str], log: Path, core: int | None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if core is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(core), *command]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def run_all(designs: list[Design], args: argparse.Namespace) -> None:
    """Train then evaluate each design, `args.parallel` at a time, each on its own core."""
    queue = list(designs)
    while queue:
        batch, queue = queue[: args.parallel], queue[args.parallel :]
        for stage in ("train", "eval"):
            running = []
            for core, design in enumerate(batch):
                folder = args.runs / design.name
                if stage == "train":
                    folder.mkdir(parents=True, exist_ok=True)
                    config = folder / "config.yaml"
                    config.write_text(yaml.safe_dump({
                        "model": {**BASE["model"], **design.model},
                        "train": {**BASE["train"], **design.train, "name": design.name, "data": list(args.data)},
                    }))
                command = _command(design, args, config) if stage == "train" else _evaluate(design, args)
                core_id = core if args.parallel > 1 else None
                print(f"[{stage}] {design.name}: {' '.join(command)}", flush=True)
                running.append((design, _launch(command, folder / f"{stage}.log", core_id)))
            for design, process in running:
                if process.wait() != 0:
                    raise SystemExit(f"{stage} of {design.name} failed: see {args.runs / design.name / f'{stage}.log'}")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def table(designs: list[Design], args: argparse.Namespace) -> str:
    head = ("design", "what", "train GFLOP/sample", "samples in the time", "atoms within 0.5 Å", "count exact",
            "species exact", "voxel MSE")
    rows = [" | ".join(head), " | ".join("---" for _ in head)]
    for design in designs:
        folder = args.runs / design.name
        model = json.loads((folder / "export" / "model.json").read_text())
        metrics = json.loads((folder / "eval" / "metrics.json").read_text())
        rows.append(" | ".join((
            design.name, design.what, f"{train_gflop(design, args.data[0]):.1f}", f"{model['samples_seen']:,}",
            _percent(metrics.get("atoms_within_0.5A")), _percent(metrics.get("count_exact")),
            _percent(metrics.get("species_exact")), f"{metrics['voxel_mse']:.4g}",
        )))
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall time per design")
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--parallel", type=int, default=1, help="designs trained at once, one core each")
    parser.add_argument("--data", nargs="+", default=["data_cache/three.npz", "data_cache/mp_bulk.npz"])
    parser.add_argument("--val-data", nargs="+", default=[
        "data_cache/mp_ground_states.npz", "data_cache/perov_5_val.npz", "data_cache/carbon_24_val.npz",
        "data_cache/mp_bulk.npz"])
    parser.add_argument("--limit", type=int, default=50, help="val crystals per source")
    parser.add_argument("--runs", type=Path, default=Path("runs/designs"))
    parser.add_argument("--table-only", action="store_true", help="only print the table of finished runs")
    args = parser.parse_args()
    designs = [DESIGNS[name] for name in args.designs]
    missing = [p for p in (*args.data, *args.val_data) if not (ROOT / p).exists() and not Path(p).exists()]
    if missing:
        raise SystemExit(f"missing data: {missing} (make them with python -m train.prepare)")
    if not args.table_only:
        run_all(designs, args)
    print(f"{args.minutes:g} minutes of training each, one thread, val split, {args.limit} crystals per source")
    print(table(designs, args))


if __name__ == "__main__":
    main()
