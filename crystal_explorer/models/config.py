"""The model configuration: one frozen dataclass that a checkpoint stores as JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from crystal_explorer.representation import REPRESENTATIONS, Representation

ARCHITECTURES = ("paper", "compact")
DECODER_HEADS = ("conv", "shuffle")


@dataclass(frozen=True)
class ModelConfig:
    """What a `CrystalVAE` is built from.

    Attributes:
        architecture: "paper" (§8.1 of Hoffmann et al. exactly) or "compact" (ours: 3³ kernels,
            upsampling straight to 30³, a fraction of the FLOPs).
        latent_size: size of z (paper: 300).
        n_voxels: grid edge; the architectures are built for 30.
        max_z: largest atomic number; the U-Net has max_z + 1 classes (0 = no atom).
        unet_channels: channels of the U-Net's first level (doubled at each of its three levels).
        conditional: scale the bottleneck's input and output by the largest density present (§4.5).
        density_scale: the networks see the peak-normalised density (a lone atom peaks at Z) divided
            by this, so values stay near 1.
        representation: what the model was trained on, "single" (one unit cell) or "lattice" (the
            repeating lattice); it decides how crystals are placed and how decodings become crystals.
        decoder_head: how the compact decoder reaches 30³ from 15³: "conv" (trilinear upsampling, then 3³
            convolutions at 30³) or "shuffle" (convolutions at 15³, then a 3-D pixel shuffle that turns 8
            channels into the 2×2×2 sub-voxels; no work at 30³, issue 11 §2).
    """

    architecture: Literal["paper", "compact"] = "compact"
    latent_size: int = 300
    n_voxels: int = 30
    max_z: int = 94
    unet_channels: int = 16
    conditional: bool = False
    density_scale: float = 10.0
    representation: Representation = "single"
    decoder_head: Literal["conv", "shuffle"] = "conv"

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"Invalid representation={self.representation!r}, valid options are {REPRESENTATIONS}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"Invalid architecture={self.architecture!r}, valid options are {ARCHITECTURES}")
        if self.decoder_head not in DECODER_HEADS:
            raise ValueError(f"Invalid decoder_head={self.decoder_head!r}, valid options are {DECODER_HEADS}")
        if self.decoder_head != "conv" and self.architecture != "compact":
            raise ValueError(f"decoder_head={self.decoder_head!r} exists only for the compact architecture")
        if self.n_voxels != 30:
            raise ValueError(f"Invalid n_voxels={self.n_voxels}, the architectures are built for 30")

    @property
    def n_classes(self) -> int:
        return self.max_z + 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)
