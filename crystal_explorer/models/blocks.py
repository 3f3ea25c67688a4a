"""Small 3-D building blocks shared by the VAE and the U-Net."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int = 1, act: str = "leaky") -> nn.Sequential:
    """Conv3d (padding keeps the size at stride 1) → BatchNorm → LeakyReLU/ReLU."""
    activation = nn.LeakyReLU(0.2, inplace=True) if act == "leaky" else nn.ReLU(inplace=True)
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm3d(c_out),
        activation,
    )


class Upsample(nn.Module):
    """Trilinear upsampling to a given size (the paper's decoder avoids transposed convolutions, §3.2)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, size=(self.size,) * 3, mode="trilinear", align_corners=False)


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Crop (B, C, D, H, W) to size³ about the centre."""
    lo = (x.shape[-1] - size) // 2
    return x[..., lo : lo + size, lo : lo + size, lo : lo + size]


def pixel_shuffle_3d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """(B, C·f³, D, H, W) → (B, C, f·D, f·H, f·W): each group of f³ channels becomes the f×f×f sub-voxels of
    its voxel (the 3-D form of `nn.PixelShuffle`)."""
    b, c, d, h, w = x.shape
    out = c // factor**3
    x = x.view(b, out, factor, factor, factor, d, h, w)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, out, d * factor, h * factor, w * factor)
