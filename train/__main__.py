"""`python -m train --config train/configs/NAME.yaml`: train a model, checkpoint it, export safetensors weights."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from crystal_explorer.settings import DECODING_SETTINGS

# model.json keys a stage started with --init-from carries into its export: how the model is decoded (the
# refinement, the segmentation and the consensus of orientations were chosen on val for these weights' ancestors),
# so an export evaluates as the shipped model would; `python -m train.calibrate` re-chooses the segmentation for the
# new weights
INHERITED_METADATA = DECODING_SETTINGS


def _git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _parse_sets(items: list[str]) -> dict:
    """`KEY=VALUE` pairs: numbers as int or float (3e-4 too, which YAML reads as a string), else YAML."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, not {item!r}")
        for parse in (int, float, yaml.safe_load):
            try:
                out[key] = parse(value)
                break
            except ValueError:
                continue
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML with `model` and `train` sections")
    parser.add_argument("--runs", default="runs", help="folder for checkpoints and logs (default: runs)")
    parser.add_argument("--resume", action="store_true", help="continue from runs/<name>/last.ckpt")
    parser.add_argument("--init-from", help="start from the weights of an exported model folder")
    parser.add_argument("--init-partial", action="store_true",
                        help="with --init-from of another model config (a design change): copy every tensor whose name "
                             "and shape match, initialise the rest afresh")
    parser.add_argument("--max-steps", type=int, help="override train.max_steps")
    parser.add_argument("--max-minutes", type=float, help="stop (and checkpoint) after this wall time; "
                        "`touch RUNS/NAME/STOP` ends a stage earlier, still exported and recorded")
    parser.add_argument("--limit", type=int, help="use only the first N crystals of the data")
    parser.add_argument("--data", nargs="+", help="override train.data")
    parser.add_argument("--batch-size", type=int, help="override train.batch_size")
    parser.add_argument("--num-workers", type=int, help="override train.num_workers")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override any train key, e.g. --set lr=3e-4 seg_on_target=0 (values parsed as YAML)")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--devices", default="auto")
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--export", help="export the final weights here (default: runs/<name>/export)")
    args = parser.parse_args(argv)

    from train import USER_ERRORS, user_error

    try:
        return _train(args)
    except USER_ERRORS as exc:
        return user_error(exc)


def _train(args: argparse.Namespace) -> int:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from crystal_explorer.checkpoint import load_model, save_model, transfer_weights
    from train.config import RunConfig
    from train.data import PlacementDataset, collate, read_bundle, representable
    from train.ledger import stage_samples
    from train.module import CrystalVAEModule, StopFile

    overrides = {k: v for k, v in {
        "max_steps": args.max_steps, "limit": args.limit, "batch_size": args.batch_size,
        "num_workers": args.num_workers, "data": tuple(args.data) if args.data else None}.items() if v is not None}
    overrides.update(_parse_sets(args.set))
    run = RunConfig.from_yaml(args.config, overrides)
    cfg = run.train
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")

    bundle = read_bundle(cfg.data, limit=cfg.limit)
    ok, reasons, fallback = representable(bundle, cfg.representation, max_atoms=cfg.max_atoms)
    print(f"{len(bundle)} crystals, {ok.sum()} representable as '{cfg.representation}'; excluded: {dict(reasons)}")
    train_idx = np.flatnonzero(ok & (bundle.splits == "train"))
    val_idx = np.flatnonzero(ok & (bundle.splits == "val"))
    if len(train_idx) == 0:
        raise ValueError("no training crystals after the split and the representability check")
    train_set = PlacementDataset([bundle[i] for i in train_idx], cfg.representation, seed=cfg.seed,
                                 canonical_fraction=cfg.canonical_fraction,
                                 fallback_rotations=[fallback[i] for i in train_idx])
    val_idx = val_idx if len(val_idx) else train_idx[: cfg.batch_size]
    val_set = PlacementDataset([bundle[i] for i in val_idx], cfg.representation, seed=cfg.seed + 1,
                               deterministic=True, fallback_rotations=[fallback[i] for i in val_idx])
    loader_kw = {"batch_size": cfg.batch_size, "collate_fn": collate, "num_workers": cfg.num_workers,
                 "persistent_workers": cfg.num_workers > 0}
    train_loader = DataLoader(train_set, shuffle=True, drop_last=len(train_set) > cfg.batch_size, **loader_kw)
    val_loader = DataLoader(val_set, shuffle=False, **loader_kw)

    run_dir = Path(args.runs) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(run.to_dict(), indent=2))
    module = CrystalVAEModule(run.to_dict(), max_minutes=args.max_minutes)
    stages: list[dict] = []
    inherited: dict = {}  # how the starting checkpoint is decoded (chosen on val), kept in the export
    initialised: bool | str = False
    if args.init_from:
        initial, initial_meta = load_model(args.init_from)
        stages = list(initial_meta.get("training_stages", []))
        inherited = {k: initial_meta[k] for k in INHERITED_METADATA if k in initial_meta}
        if initial.config == module.model.config:
            module.model.load_state_dict(initial.state_dict())
            initialised = True
        elif args.init_partial:
            copied, fresh = transfer_weights(initial, module.model)
            initialised = f"partial: {len(copied)} of {len(copied) + len(fresh)} tensors"
            print(f"--init-partial: {len(copied)} tensors from {args.init_from}; fresh: "
                  f"{sorted({'.'.join(n.split('.')[:3]) for n in fresh})}")
        else:
            raise ValueError(f"--init-from {args.init_from}: its model config differs from {args.config}'s "
                             "(add --init-partial to keep the tensors that still fit)")
    if cfg.freeze_batchnorm and initialised is not True and not args.resume:
        print("warning: freeze_batchnorm without --init-from (or with --init-partial): the batch-norm layers keep "
              "running statistics that no training has set (mean 0, variance 1, or partly fresh)")
    gpu = torch.cuda.is_available() and args.accelerator in ("auto", "gpu", "cuda")
    precision = cfg.precision if cfg.precision != "auto" else ("bf16-mixed" if gpu else "32-true")
    checkpoint = ModelCheckpoint(dirpath=run_dir, filename="step{step}", every_n_train_steps=cfg.checkpoint_every_steps,
                                 save_last=True, save_top_k=1, monitor="step", mode="max", auto_insert_metric_name=False)
    from lightning.pytorch.callbacks import TQDMProgressBar

    callbacks = [checkpoint, TQDMProgressBar(refresh_rate=1 if sys.stderr.isatty() else 50), StopFile(run_dir / "STOP")]
    if args.max_minutes:
        from lightning.pytorch.callbacks import Timer

        callbacks.append(Timer(duration={"minutes": args.max_minutes}, interval="step"))
    trainer = L.Trainer(
        max_steps=cfg.max_steps, accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes,
        precision=precision, gradient_clip_val=cfg.gradient_clip, callbacks=callbacks,
        accumulate_grad_batches=cfg.accumulate_batches,
        logger=CSVLogger(args.runs, name=cfg.name, version="logs"), log_every_n_steps=10,
        val_check_interval=min(cfg.val_every_steps, max(1, len(train_loader))), check_val_every_n_epoch=None,
        limit_val_batches=cfg.val_batches, deterministic=False, benchmark=gpu,
    )
    resume = run_dir / "last.ckpt" if args.resume else None
    if resume is not None and not resume.is_file():
        raise FileNotFoundError(f"nothing to resume: {resume} does not exist")
    started = time.time()
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    trainer.save_checkpoint(run_dir / "last.ckpt", weights_only=False)  # optimizer and loops too, for --resume
    seconds = time.time() - started
    if trainer.is_global_zero:
        export = Path(args.export) if args.export else run_dir / "export"
        samples = trainer.global_step * cfg.batch_size * cfg.accumulate_batches
        device = torch.cuda.get_device_name() if gpu else f"cpu ({torch.get_num_threads()} threads)"
        stages.append({
            "stage": len(stages), "steps": int(trainer.global_step), "samples": int(samples),
            "minutes": round(seconds / 60, 1), "samples_per_second": round(samples / max(seconds, 1e-9), 2),
            "device": device, "initialised_from_previous_stage": initialised,
            "data": [Path(p).name for p in cfg.data], "lr": cfg.lr,
            "batch_size": cfg.batch_size * cfg.accumulate_batches,
            **({"accumulated": f"{cfg.accumulate_batches} batches of {cfg.batch_size}"} if cfg.accumulate_batches > 1 else {}),
        })
        save_model(module.model.float(), export, {
            "representation": cfg.representation,
            "train": run.to_dict()["train"],
            "data": {"sources": sorted(set(map(str, bundle.sources))), "n_train": int(len(train_idx)),
                     "n_val": int(len(val_idx)), "excluded": dict(reasons),
                     "split": "sha256(material_id): test < 0.1 ≤ val < 0.2 ≤ train"},
            "steps": int(trainer.global_step),
            "git_revision": _git_revision(),
            "device": device,
            "samples_per_second": samples / max(seconds, 1e-9),
            "training_stages": stages,
            "samples_seen": sum(stage_samples(s) for s in stages),
            **inherited,
        })
        print(f"trained {trainer.global_step} steps in {seconds:.0f} s ({samples / seconds:.1f} samples/s); weights in {export}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
