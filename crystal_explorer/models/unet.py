"""A 3-D U-Net with attention gates (Oktay et al. 2018) that turns a density grid into class scores."""

from __future__ import annotations

import torch
from torch import nn

from crystal_explorer.models.blocks import conv_bn_act


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_act(c_in, c_out, 3, act="relu"), conv_bn_act(c_out, c_out, 3, act="relu"))


class AttentionGate(nn.Module):
    """Additive attention (Oktay et al. 2018, eq. 1): the coarser gating signal weighs the skip features."""

    def __init__(self, c_skip: int, c_gate: int, c_inter: int) -> None:
        super().__init__()
        self.skip = nn.Conv3d(c_skip, c_inter, 1, bias=False)
        self.gate = nn.Conv3d(c_gate, c_inter, 1)
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv3d(c_inter, 1, 1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.psi(self.skip(skip) + self.gate(gate))


class AttentionUNet3d(nn.Module):
    """(B, 1, 30, 30, 30) density → (B, n_classes, 30, 30, 30) scores; padded to 32³ inside."""

    def __init__(self, n_classes: int, channels: int = 16) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels, 2 * channels, 4 * channels, 8 * channels
        self.enc1, self.enc2, self.enc3 = double_conv(1, c1), double_conv(c1, c2), double_conv(c2, c3)
        self.bottom = double_conv(c3, c4)
        self.pool = nn.MaxPool3d(2)
        self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
        self.gate3, self.gate2, self.gate1 = AttentionGate(c3, c4, c3), AttentionGate(c2, c3, c2), AttentionGate(c1, c2, c1)
        self.dec3, self.dec2, self.dec1 = double_conv(c4 + c3, c3), double_conv(c3 + c2, c2), double_conv(c2 + c1, c1)
        self.head = nn.Conv3d(c1, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, (1, 1) * 3)  # (B, 1, 32, 32, 32)
        e1 = self.enc1(x)  # (B, c1, 32³)
        e2 = self.enc2(self.pool(e1))  # (B, c2, 16³)
        e3 = self.enc3(self.pool(e2))  # (B, c3, 8³)
        b = self.bottom(self.pool(e3))  # (B, c4, 4³)
        g = self.up(b)
        d3 = self.dec3(torch.cat([g, self.gate3(e3, g)], 1))
        g = self.up(d3)
        d2 = self.dec2(torch.cat([g, self.gate2(e2, g)], 1))
        g = self.up(d2)
        d1 = self.dec1(torch.cat([g, self.gate1(e1, g)], 1))
        return self.head(d1)[..., 1:-1, 1:-1, 1:-1]
