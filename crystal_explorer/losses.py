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


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error summed over voxels, each voxel times `weight` (broadcast to pred) when given: (B,)."""
    error = (pred.float() - target.float()).pow(2)
    if weight is not None:
        error = error * weight
    return error.flatten(1).sum(1)


def atom_weights(species: torch.Tensor, atom_weight: float) -> torch.Tensor | None:
    """Voxel weights of the reconstruction loss: 1 + `atom_weight` within 0.5 Å of an atom (where the species
    grid is not 0: the peaks, whose amplitudes carry the species), 1 elsewhere; (B, 1, n, n, n), or None for 0."""
    if atom_weight == 0:
        return None
    return (1.0 + atom_weight * (species > 0).float()).unsqueeze(1)


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
    atom_weight: float = 0.0,
) -> LossTerms:
    """Eq. (2) of Hoffmann et al. with `output` a `VAEOutput`; returns batch means. `atom_weight` > 0 weighs
    the reconstruction error near atoms more (see `atom_weights`; 0 is the paper's plain sum)."""
    rec = reconstruction_loss(output.density, target_density, atom_weights(target_species, atom_weight)).mean()
    kl = kl_divergence(output.mean.float(), output.log_var.float()).mean()
    seg = segmentation_loss(output.scores, target_species, background_weight).mean()
    return LossTerms(rec + beta * kl + gamma * seg, rec, kl, seg)
