"""The Lightning wrapper around `CrystalVAE`: voxelize on the device, the joint loss, optimiser and schedule."""

from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L
import torch

from crystal_explorer.grid import GridSpec
from crystal_explorer.losses import (
    LossTerms,
    atom_weights,
    joint_loss,
    kl_divergence,
    reconstruction_loss,
    segmentation_loss,
)
from crystal_explorer.models import CrystalVAE, ModelConfig
from crystal_explorer.representation import batch_grids
from train.config import RunConfig, TrainConfig


class CrystalVAEModule(L.LightningModule):
    def __init__(self, run: dict, max_minutes: float | None = None) -> None:
        super().__init__()
        self.max_minutes = max_minutes  # when set, the schedule also runs on wall time (ends at the deadline)
        self._started: float | None = None
        self.save_hyperparameters({"run": run})
        config = RunConfig(ModelConfig.from_dict(run["model"]), TrainConfig(**run["train"]))
        self.train_config = config.train
        self.model = CrystalVAE(config.model)
        self.grid = GridSpec()
        self.skipped_steps = 0

    def _beta(self) -> float:
        cfg = self.train_config
        return cfg.beta * min(1.0, self.global_step / max(1, cfg.kl_warmup_steps))

    @property
    def vae_only(self) -> bool:
        """γ = 0 and no loss on the true density: the U-Net is frozen and never run (a fine-tuning stage for the
        encoder and decoder alone, 2.6× the samples per second of the joint loss on the CPU)."""
        cfg = self.train_config
        return cfg.gamma == 0 and cfg.seg_on_target == 0 and not cfg.unet_only

    def _losses(self, batch: dict[str, torch.Tensor], sample: bool = True):
        x, species = batch_grids(batch["positions"], batch["atomic_numbers"], self.grid, self.model.config.density_scale)
        cfg = self.train_config
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        if cfg.unet_only:
            with torch.no_grad():
                density, mean, log_var = self.model.autoencode(x, sample=False)
            seg = segmentation_loss(self.model.segment(density), species, cfg.background_weight).mean()
            total = seg
            if cfg.seg_on_target > 0:
                total = total + cfg.seg_on_target * self._segmentation_on_target(x, species)
            rec = reconstruction_loss(density, x).mean()
            kl = kl_divergence(mean.float(), log_var.float()).mean()
            return total, LossTerms(total, rec, kl, seg)
        if self.vae_only:
            density, mean, log_var = self.model.autoencode(x, sample)
            rec = reconstruction_loss(density, x, atom_weights(species, cfg.atom_weight)).mean()
            kl = kl_divergence(mean.float(), log_var.float()).mean()
            total = rec + self._beta() * kl
            return total, LossTerms(total, rec, kl, torch.zeros((), device=x.device))
        out = self.model(x, sample=sample)
        terms = joint_loss(out, x, species, self._beta(), cfg.gamma, cfg.background_weight, cfg.atom_weight)
        total = terms.total
        if cfg.seg_on_target > 0:
            total = total + cfg.gamma * cfg.seg_on_target * self._segmentation_on_target(x, species)
        return total, terms

    def _segmentation_on_target(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """The U-Net's loss on the true density (the term `seg_on_target` weighs)."""
        return segmentation_loss(self.model.segment(x), species, self.train_config.background_weight).mean()

    def _vae_parts(self) -> list[torch.nn.Module]:
        """Everything but the U-Net (encoder, bottleneck, decoder): what a `unet_only` stage freezes."""
        return [part for name, part in self.model.named_children() if name != "unet"]

    def train(self, mode: bool = True) -> CrystalVAEModule:
        """Train mode, except the batch-norm layers when `freeze_batchnorm` and the VAE when `unet_only`."""
        super().train(mode)
        if mode:
            self._freeze()
        return self

    def _freeze(self) -> None:
        cfg = self.train_config
        if cfg.freeze_batchnorm:
            for module in self.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        if cfg.unet_only:  # the frozen VAE decodes as at inference (running statistics, no dropout)
            for part in self._vae_parts():
                part.eval()

    def on_train_batch_start(self, batch, batch_idx) -> None:
        # Lightning does not call .train() itself (it restores each submodule's captured mode around validation)
        self._freeze()

    def on_fit_start(self) -> None:
        if self.train_config.channels_last:
            self.model.to(memory_format=torch.channels_last_3d)

    def training_step(self, batch, batch_idx):
        total, terms = self._losses(batch)
        if not torch.isfinite(total):  # NaN guard: skip this step rather than poison the weights
            self.skipped_steps += 1
            self.log("train/skipped_steps", float(self.skipped_steps))
            return None
        n = batch["positions"].shape[0]
        self.log_dict(
            {"train/loss": total, "train/reconstruction": terms.reconstruction, "train/kl": terms.kl,
             "train/segmentation": terms.segmentation, "train/beta": self._beta()},
            prog_bar=False, batch_size=n,
        )
        self.log("loss", total, prog_bar=True, logger=False, batch_size=n)
        return total

    def validation_step(self, batch, batch_idx):
        total, terms = self._losses(batch, sample=False)
        n = batch["positions"].shape[0]
        self.log_dict(
            {"val/loss": total, "val/reconstruction": terms.reconstruction, "val/kl": terms.kl,
             "val/segmentation": terms.segmentation},
            batch_size=n, sync_dist=True,
        )

    def configure_optimizers(self):
        cfg = self.train_config
        if self.vae_only:
            self.model.unet.requires_grad_(False)
        if cfg.unet_only:
            for part in self._vae_parts():
                part.requires_grad_(False)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)

        def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 5% over max_steps (or max_minutes)
            if step < cfg.warmup_steps:
                return (step + 1) / cfg.warmup_steps
            progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
            if self.max_minutes:
                self._started = self._started or time.time()
                progress = max(progress, min(1.0, (time.time() - self._started) / (60 * self.max_minutes)))
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class StopFile(L.Callback):
    """Ends training after the optimizer step during which `path` appears (`touch runs/<name>/STOP`); the run
    then checkpoints, exports and records its stage as at any other end. A stale file is removed at the start."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if self.path.exists():
            self.path.unlink(missing_ok=True)
            print(f"{self.path} found: ending the stage after step {trainer.global_step}")
            trainer.should_stop = True
