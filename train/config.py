"""The training configuration, read from YAML: a `model` section (ModelConfig) and a `train` section."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from crystal_explorer.models import ModelConfig
from crystal_explorer.representation import check_representation


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        name: run name; checkpoints go to runs/<name>/.
        representation: "single" (unit cell) or "lattice" (repeating lattice).
        data: dataset paths (CSV/CSV.gz with a `cif` column, CIF folders, or .npz bundles from train.prepare).
        beta, gamma: weights of KL and segmentation in eq. (2); gamma = 0.1 as the paper.
        kl_warmup_steps: beta rises linearly from 0 over these steps.
        seg_on_target: extra weight of the U-Net's loss on the true density, which speeds its early
            training while the decoder is still blurry (0 = the paper's joint loss only).
        background_weight: cross-entropy weight of the "no atom" class.
        atom_weight: extra weight of the reconstruction error within 0.5 Å of an atom (0 = the paper's plain
            sum of squares; 4 counts those voxels 5 times).
        accumulate_batches: optimizer steps every this many batches, so a CPU stage of batch_size 16 with
            accumulate_batches 8 takes the steps of a 128-crystal batch (samples = steps × batch × this).
        canonical_fraction: for the lattice, the fraction of samples with a cell corner at the origin, unrotated.
        freeze_batchnorm: normalise with the batch-norm layers' running statistics and leave them as they are
            (their scale and shift still train): for fine-tuning with small batches, whose statistics are noisy
            (a CPU stage of batches of 16 moved the decoder's running variances by 5-11 % in 50 steps).
        unet_only: train the U-Net alone, on the frozen VAE's posterior-mean decodings (the density the app
            segments) plus, weighted by `seg_on_target`, the true density; encoder and decoder are not updated.
        channels_last: keep weights and activations in the channels_last_3d memory format (NDHWC), the
            layout of cuDNN's tensor-core convolutions; `benchmarks/train_step.py --layouts` says if it pays.
    """

    name: str = "run"
    representation: str = "single"
    data: tuple[str, ...] = ("../shared/data/mp_ground_states.csv.gz",)
    batch_size: int = 32
    accumulate_batches: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-5
    max_steps: int = 1000
    warmup_steps: int = 200
    beta: float = 1e-3
    gamma: float = 0.1
    kl_warmup_steps: int = 1000
    seg_on_target: float = 0.5
    background_weight: float = 1.0
    atom_weight: float = 0.0
    canonical_fraction: float = 0.1
    max_atoms: int = 100
    num_workers: int = 2
    seed: int = 0
    val_every_steps: int = 500
    val_batches: int = 8
    checkpoint_every_steps: int = 500
    gradient_clip: float = 1.0
    precision: str = "auto"
    channels_last: bool = False
    freeze_batchnorm: bool = False
    unet_only: bool = False
    limit: int | None = None

    def __post_init__(self) -> None:
        check_representation(self.representation)
        if self.accumulate_batches < 1:
            raise ValueError(f"accumulate_batches must be ≥ 1, got {self.accumulate_batches}")
        object.__setattr__(self, "data", tuple(self.data))


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict | None = None) -> RunConfig:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(raw) - {"model", "train"}
        if unknown:
            raise ValueError(f"unknown sections in {path}: {sorted(unknown)}")
        train = {**raw.get("train", {}), **(overrides or {})}
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        bad = set(train) - known
        if bad:
            raise ValueError(f"unknown train keys in {path}: {sorted(bad)}")
        model = dict(raw.get("model", {}))
        representation = train.get("representation", TrainConfig.representation)
        if model.setdefault("representation", representation) != representation:
            raise ValueError(f"{path}: model.representation {model['representation']!r} differs from train.representation {representation!r}")
        return cls(ModelConfig.from_dict(model), TrainConfig(**train))

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "train": dataclasses.asdict(self.train)}
