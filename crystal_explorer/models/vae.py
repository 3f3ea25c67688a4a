"""Encoders and decoders of the β-VAE: the paper's (§8.1) and our compact one."""

from __future__ import annotations

import torch
from torch import nn

from crystal_explorer.models.blocks import Upsample, centre_crop, conv_bn_act, pixel_shuffle_3d
from crystal_explorer.models.config import ModelConfig


class PaperEncoder(nn.Module):
    """§8.1.1: conv 5/2/16, conv 3/1/32, conv 3/1/64, conv 3/2/128, each BatchNorm + LeakyReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            conv_bn_act(1, 16, 5, 2),  # (B, 16, 15, 15, 15)
            conv_bn_act(16, 32, 3, 1),
            conv_bn_act(32, 64, 3, 1),
            conv_bn_act(64, 128, 3, 2),  # (B, 128, 8, 8, 8)
        )
        self.n_features = 128 * 8**3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


class PaperDecoder(nn.Module):
    """§8.1.2: FC → 128×5³, then (×2, conv 5 → 64), (×2, conv 5 → 32), (×2, conv 4 → 16), conv 4 → 1, ReLU.

    The two even kernels shrink 40³ to 38³, cropped about the centre to 30³.
    """

    def __init__(self, latent_size: int) -> None:
        super().__init__()
        self.n_features = 128 * 5**3
        self.fc = nn.Linear(latent_size, self.n_features)
        act = nn.LeakyReLU(0.2, inplace=True)
        self.net = nn.Sequential(
            Upsample(10), nn.Conv3d(128, 64, 5, padding=2), act,
            Upsample(20), nn.Conv3d(64, 32, 5, padding=2), act,
            Upsample(40), nn.Conv3d(32, 16, 4, padding=1), act,  # (B, 16, 39, 39, 39)
            nn.Conv3d(16, 1, 4, padding=1), nn.ReLU(),  # (B, 1, 38, 38, 38)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return centre_crop(self.net(h.view(-1, 128, 5, 5, 5)), 30)


class CompactEncoder(nn.Module):
    """Ours: 3³ kernels, stride-2 steps 30 → 15 → 8 → 4, so the bottleneck's FC is 16× smaller."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            conv_bn_act(1, 24, 3, 1),  # (B, 24, 30, 30, 30)
            conv_bn_act(24, 48, 3, 2),  # (B, 48, 15, 15, 15)
            conv_bn_act(48, 48, 3, 1),
            conv_bn_act(48, 96, 3, 2),  # (B, 96, 8, 8, 8)
            conv_bn_act(96, 96, 3, 1),
            conv_bn_act(96, 64, 3, 2),  # (B, 64, 4, 4, 4)
        )
        self.n_features = 64 * 4**3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


class PixelShuffle3d(nn.Module):
    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle_3d(x, self.factor)


class CompactDecoder(nn.Module):
    """Ours: FC → 64×4³, trilinear to 8 and 15 with 3³ convolutions, then to 30³ by `head`: "conv" (trilinear
    to 30 and two 3³ convolutions there) or "shuffle" (a 3³ convolution to 8 channels at 15³, each channel one
    of a voxel's 2×2×2 sub-voxels at 30³: a fifth of the decoder's FLOPs)."""

    def __init__(self, latent_size: int, head: str = "conv") -> None:
        super().__init__()
        self.n_features = 64 * 4**3
        self.fc = nn.Linear(latent_size, self.n_features)
        if head == "shuffle":
            top = [nn.Conv3d(48, 8, 3, padding=1), PixelShuffle3d(2)]
        else:
            top = [Upsample(30), conv_bn_act(48, 24, 3), nn.Conv3d(24, 1, 3, padding=1)]
        self.net = nn.Sequential(
            Upsample(8), conv_bn_act(64, 96, 3), conv_bn_act(96, 96, 3),
            Upsample(15), conv_bn_act(96, 48, 3), conv_bn_act(48, 48, 3),
            *top, nn.Softplus(),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h.view(-1, 64, 4, 4, 4))


def build_encoder_decoder(config: ModelConfig) -> tuple[nn.Module, nn.Module]:
    if config.architecture == "paper":
        return PaperEncoder(), PaperDecoder(config.latent_size)
    return CompactEncoder(), CompactDecoder(config.latent_size, config.decoder_head)
