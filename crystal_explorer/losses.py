"""The joint loss of eq. (2): L = L_RE + β·KL + γ·L_seg, each summed over a crystal and averaged over the batch."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F


class LossTerms(NamedTuple):
    total: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    segmentation: torch.Tensor


def kl_divergence(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) ‖ N(0, 1)) summed over latent dimensions: (B,)."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error summed over voxels: (B,)."""
    return (pred.float() - target.float()).pow(2).flatten(1).sum(1)


def segmentation_loss(scores: torch.Tensor, species: torch.Tensor, background_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy over classes summed over voxels: (B,). We use softmax cross-entropy where the paper
    used BCE on one-hot S: the classes are exclusive and decoding takes the argmax."""
    weight = None
    if background_weight != 1.0:
        weight = torch.ones(scores.shape[1], device=scores.device)
        weight[0] = background_weight
    ce = F.cross_entropy(scores.float(), species, weight=weight, reduction="none")
    return ce.flatten(1).sum(1)


def joint_loss(
    output,
    target_density: torch.Tensor,
    target_species: torch.Tensor,
    beta: float,
    gamma: float = 0.1,
    background_weight: float = 1.0,
) -> LossTerms:
    """Eq. (2) of Hoffmann et al. with `output` a `VAEOutput`; returns batch means."""
    rec = reconstruction_loss(output.density, target_density).mean()
    kl = kl_divergence(output.mean.float(), output.log_var.float()).mean()
    seg = segmentation_loss(output.scores, target_species, background_weight).mean()
    return LossTerms(rec + beta * kl + gamma * seg, rec, kl, seg)
