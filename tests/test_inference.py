"""crystal_explorer.inference: frozen traces give the eager networks' answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crystal_explorer.inference import FrozenParts
from crystal_explorer.latent import CrystalModel

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "single_cell"


def test_frozen_decoding_matches_eager():
    fast = CrystalModel.from_checkpoint(CHECKPOINT, device="cpu")
    eager = dataclasses.replace(fast, frozen=FrozenParts(enabled=False))
    z = fast.draw(2, seed=4)
    a, b = fast.decode(z), eager.decode(z)
    assert len(fast.frozen._traced) == 2  # decoder and U-Net, traced for a batch of 2
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.density, y.density, atol=1e-3)
        assert np.mean(x.species == y.species) > 0.999
        assert len(x.atoms) == len(y.atoms)


def test_frozen_parts_keep_a_few_shapes_and_skip_training_modules():
    parts = FrozenParts(max_shapes=2)
    layer = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.BatchNorm3d(2)).eval()
    for n in (1, 2, 3):
        x = torch.randn(n, 1, 6, 6, 6)
        torch.testing.assert_close(parts("layer", layer, x), layer(x), atol=1e-5, rtol=1e-4)
    assert [key[1][0] for key in parts._traced] == [2, 3]  # the oldest shape was dropped
    layer.train()
    parts("layer", layer, torch.randn(4, 1, 6, 6, 6))
    assert len(parts._traced) == 2  # a module in training mode runs eagerly
