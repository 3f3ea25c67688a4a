"""The designs of issue 11 §2's quality-per-compute comparison: each a change of the model and training config."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Design:
    """A named variant: `model` and `train` override the base YAML's sections."""

    name: str
    what: str
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)

    @property
    def step_loss(self) -> str:
        """Its training loss as `benchmarks/train_step.py` names it: the U-Net run twice or once a step."""
        return "joint+true" if self.train.get("seg_on_target", 0) > 0 else "joint"


DESIGNS = {
    d.name: d
    for d in (
        Design("compact", "the shipped design: conv head at 30³, U-Net 16 channels run twice (decoding + true density)",
               train={"seg_on_target": 0.5}),
        Design("unet8-once", "U-Net 8 channels, run once per step (on the decoding: eq. 2 alone)",
               model={"unet_channels": 8}, train={"seg_on_target": 0.0}),
        Design("shuffle-lite", "unet8-once + the decoder's last stage at 15³ with a 3-D pixel shuffle to 30³",
               model={"unet_channels": 8, "decoder_head": "shuffle"}, train={"seg_on_target": 0.0}),
        Design("shuffle-unet16-once", "the pixel-shuffle head with the shipped U-Net (16 channels) run once per step: "
               "train/configs/single_cell_shuffle.yaml, which continues the shipped weights with --init-partial",
               model={"decoder_head": "shuffle"}, train={"seg_on_target": 0.0}),
        Design("shuffle-lite-weighted", "shuffle-lite + reconstruction error within 0.5 Å of atoms counted 5 times",
               model={"unet_channels": 8, "decoder_head": "shuffle"}, train={"seg_on_target": 0.0, "atom_weight": 4.0}),
    )
}
