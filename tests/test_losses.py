"""Tests of crystal_explorer.losses: the terms of eq. (2) against closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from crystal_explorer.losses import atom_weights, joint_loss, kl_divergence, reconstruction_loss, segmentation_loss
from crystal_explorer.models import VAEOutput


def test_kl_is_zero_at_the_prior_and_matches_the_closed_form():
    assert kl_divergence(torch.zeros(3, 7), torch.zeros(3, 7)).abs().max() == 0
    mean, log_var = torch.tensor([[1.0, -2.0]]), torch.tensor([[math.log(4.0), 0.0]])
    # ½ Σ (μ² + σ² − 1 − log σ²) = ½ [(1 + 4 − 1 − log 4) + (4 + 1 − 1 − 0)]
    expected = 0.5 * ((1 + 4 - 1 - math.log(4)) + 4)
    assert kl_divergence(mean, log_var).item() == pytest.approx(expected, rel=1e-6)


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mean, log_var = torch.randn(4, 11), torch.randn(4, 11)
    q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    p = torch.distributions.Normal(torch.zeros(11), torch.ones(11))
    torch.testing.assert_close(kl_divergence(mean, log_var), torch.distributions.kl_divergence(q, p).sum(1))


def test_reconstruction_is_summed_squared_error_per_crystal():
    pred = torch.zeros(2, 1, 3, 4, 5)
    target = torch.zeros(2, 1, 3, 4, 5)
    target[0] = 2.0
    torch.testing.assert_close(reconstruction_loss(pred, target), torch.tensor([4.0 * 60, 0.0]))


def test_atom_weights_count_voxels_near_atoms_more():
    pred, target = torch.zeros(1, 1, 2, 2, 2), torch.ones(1, 1, 2, 2, 2)
    species = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    species[0, 0, 0, 0] = 8  # one voxel within 0.5 Å of an oxygen
    assert atom_weights(species, 0.0) is None
    weight = atom_weights(species, 4.0)
    assert weight.shape == (1, 1, 2, 2, 2) and weight.sum() == 7 + 5
    torch.testing.assert_close(reconstruction_loss(pred, target, weight), torch.tensor([12.0]))
    out = VAEOutput(pred, torch.zeros(1, 9, 2, 2, 2), torch.zeros(1, 3), torch.zeros(1, 3))
    assert joint_loss(out, target, species, 0.0, atom_weight=4.0).reconstruction == 12.0
    assert joint_loss(out, target, species, 0.0).reconstruction == 8.0


def test_segmentation_is_summed_cross_entropy_and_weights_background():
    torch.manual_seed(0)
    scores = torch.randn(2, 5, 3, 4, 6)
    species = torch.randint(0, 5, (2, 3, 4, 6))
    expected = F.cross_entropy(scores, species, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(segmentation_loss(scores, species), expected)
    background_only = torch.zeros_like(species)
    half = segmentation_loss(scores, background_only, background_weight=0.5)
    torch.testing.assert_close(half, 0.5 * segmentation_loss(scores, background_only))
    # a weight on background leaves voxels of other classes alone
    no_background = torch.ones_like(species)
    torch.testing.assert_close(segmentation_loss(scores, no_background, 0.1), segmentation_loss(scores, no_background))


def test_joint_loss_combines_the_terms_as_eq_2():
    torch.manual_seed(0)
    out = VAEOutput(torch.rand(3, 1, 4, 4, 4), torch.randn(3, 6, 4, 4, 4), torch.randn(3, 9), torch.randn(3, 9))
    target, species = torch.rand(3, 1, 4, 4, 4), torch.randint(0, 6, (3, 4, 4, 4))
    terms = joint_loss(out, target, species, beta=0.01, gamma=0.3)
    torch.testing.assert_close(terms.reconstruction, reconstruction_loss(out.density, target).mean())
    torch.testing.assert_close(terms.kl, kl_divergence(out.mean, out.log_var).mean())
    torch.testing.assert_close(terms.segmentation, segmentation_loss(out.scores, species).mean())
    torch.testing.assert_close(terms.total, terms.reconstruction + 0.01 * terms.kl + 0.3 * terms.segmentation)


def test_losses_are_float32_under_half_precision_inputs():
    out = VAEOutput(torch.rand(2, 1, 3, 3, 3).half(), torch.randn(2, 4, 3, 3, 3).bfloat16(),
                    torch.randn(2, 5).half(), torch.randn(2, 5).half())
    terms = joint_loss(out, torch.rand(2, 1, 3, 3, 3), torch.randint(0, 4, (2, 3, 3, 3)), beta=1.0)
    assert all(t.dtype == torch.float32 for t in terms)
