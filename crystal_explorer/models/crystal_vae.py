"""The whole model of Hoffmann et al. (2019), Fig. 2: encoder → z → decoder → U-Net segmentation."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from crystal_explorer.models.config import ModelConfig
from crystal_explorer.models.unet import AttentionUNet3d
from crystal_explorer.models.vae import build_encoder_decoder


class VAEOutput(NamedTuple):
    """density (B, 1, n, n, n) in network units; scores (B, C, n, n, n); mean and log-variance (B, latent)."""

    density: torch.Tensor
    scores: torch.Tensor
    mean: torch.Tensor
    log_var: torch.Tensor


class CrystalVAE(nn.Module):
    """β-VAE over density grids with a segmentation U-Net on the decoded density (trained jointly)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder, self.decoder = build_encoder_decoder(config)
        self.to_stats = nn.Linear(self.encoder.n_features, 2 * config.latent_size)
        self.unet = AttentionUNet3d(config.n_classes, config.unet_channels)

    @staticmethod
    def max_density(x: torch.Tensor) -> torch.Tensor:
        """The conditioning signal of §4.5: the largest density in each grid, (B, 1)."""
        return x.flatten(1).amax(1, keepdim=True).clamp_min(1e-3)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, n, n, n) density in network units → mean, log-variance (B, latent)."""
        h = self.encoder(x)
        if self.config.conditional:
            h = h * self.max_density(x)  # §4.5: the bottleneck's input times the largest density
        mean, log_var = self.to_stats(h).chunk(2, dim=1)
        return mean, log_var.clamp(-12, 8)

    def bottleneck(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """(B, latent) → the decoder's input (B, features); `condition` (B, 1) is the target largest density."""
        h = self.decoder.fc(z)
        if self.config.conditional:
            if condition is None:
                raise ValueError("the conditional model needs the target largest density to decode")
            h = h * condition  # §4.5: the bottleneck's output times the largest density
        return h

    def decode(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """(B, latent) → (B, 1, n, n, n) density; `condition` (B, 1) is the target largest density."""
        return self.decoder(self.bottleneck(z, condition))

    def segment(self, density: torch.Tensor) -> torch.Tensor:
        """(B, 1, n, n, n) density → (B, C, n, n, n) class scores (class c is Z = c)."""
        return self.unet(density)

    def autoencode(self, x: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, draw z (the mean unless `sample`) and decode, without the U-Net: density, mean, log-variance."""
        mean, log_var = self.encode(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var) if sample else mean
        condition = self.max_density(x) if self.config.conditional else None
        return self.decode(z, condition), mean, log_var

    def forward(self, x: torch.Tensor, sample: bool = True) -> VAEOutput:
        density, mean, log_var = self.autoencode(x, sample)
        return VAEOutput(density, self.segment(density), mean, log_var)
