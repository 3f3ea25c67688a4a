"""Shipped model weights: safetensors (no code runs on load) plus a JSON of config and provenance."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.models import CrystalVAE, ModelConfig

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
_HALF_ABOVE = 4096  # large float tensors are stored as float16 to keep each file under 16 MiB
_BATCH_OF_UNLOGGED_STAGES = 64  # stages trained before the ledger recorded samples ran at batch 64


def stage_samples(stage: dict) -> int:
    """Samples one stage of model.json's `training_stages` ledger trained on (older entries recorded only steps)."""
    return int(stage.get("samples", stage.get("steps", 0) * _BATCH_OF_UNLOGGED_STAGES))


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def save_model(model: CrystalVAE, folder: str | Path, metadata: dict | None = None) -> Path:
    """Write `folder`/model.safetensors and model.json (config + `metadata`), each atomically."""
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        if t.is_floating_point() and t.numel() > _HALF_ABOVE:
            t = t.half()
        tensors[name] = t
    atomic_write(folder / WEIGHTS_FILE, save(tensors))
    meta = {"model_config": model.config.to_dict(), **(metadata or {})}
    atomic_write(folder / META_FILE, json.dumps(meta, indent=2, default=str).encode())
    return folder


def read_metadata(folder: str | Path) -> dict:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise CrystalExplorerError(f"no checkpoint at {folder}: {META_FILE} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CrystalExplorerError(f"checkpoint {folder} is corrupt: {META_FILE} is not valid JSON ({exc})") from None


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[CrystalVAE, dict]:
    """Rebuild a model from its folder alone, check every tensor's shape, return it in eval mode with its metadata.

    Raises:
        CrystalExplorerError: missing files, corrupt weights, or shapes that do not fit the config.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = read_metadata(folder)
    try:
        stored = dict(meta["model_config"])
        # files written before the representation moved into the config carry it beside the config
        stored.setdefault("representation", meta.get("representation"))
        if stored["representation"] is None:
            raise ValueError("it does not say which representation (single or lattice) it was trained on")
        config = ModelConfig.from_dict(stored)
    except (KeyError, TypeError, ValueError) as exc:
        raise CrystalExplorerError(f"checkpoint {folder} has an invalid model config: {exc}") from None
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CrystalExplorerError(f"no checkpoint weights at {weights}")
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CrystalExplorerError(f"checkpoint weights {weights} are corrupt: {exc}") from None
    model = CrystalVAE(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise CrystalExplorerError(
            f"checkpoint {folder} does not fit its config: {len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(wrong)} mis-shaped tensors (first: {(missing + unexpected + wrong)[0]})"
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return model.to(device).eval(), meta


def transfer_weights(source: torch.nn.Module, target: torch.nn.Module) -> tuple[list[str], list[str]]:
    """Copy into `target` every tensor of `source` with the same name and shape (a design change that keeps part
    of the network, e.g. a new decoder head: the rest continues from its trained weights).

    Returns:
        (names copied, names of `target` left as initialised).
    """
    theirs = source.state_dict()
    ours = target.state_dict()
    copied = [name for name, t in ours.items() if name in theirs and theirs[name].shape == t.shape]
    target.load_state_dict({**ours, **{name: theirs[name].to(ours[name].dtype) for name in copied}})
    kept = set(copied)
    return copied, [name for name in ours if name not in kept]
