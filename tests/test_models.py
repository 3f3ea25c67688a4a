"""Tests of crystal_explorer.models: shapes of every configuration, the conditional bottleneck, and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crystal_explorer.grid import GridSpec
from crystal_explorer.losses import joint_loss
from crystal_explorer.models import CrystalVAE, ModelConfig, VAEOutput
from crystal_explorer.models.blocks import pixel_shuffle_3d
from crystal_explorer.models.unet import AttentionUNet3d
from crystal_explorer.placement import compact_cluster, fit_rotation, single_cell_positions
from crystal_explorer.representation import Placement, batch_grids, pad_batch
from crystal_explorer.structures import crystal_arrays

LATENT, MAX_Z, UNET = 17, 20, 4  # unequal sizes so a swapped dimension cannot hide


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread for this module


def _config(architecture: str, conditional: bool = False) -> ModelConfig:
    return ModelConfig(architecture=architecture, latent_size=LATENT, max_z=MAX_Z, unet_channels=UNET,
                       conditional=conditional)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two tiny crystals with Z ≤ 20 (network input (2, 1, 30³), species (2, 30³))."""
    from pymatgen.core import Lattice, Structure

    rng = np.random.default_rng(0)
    structures = [
        Structure(Lattice.cubic(4.8), ["Ca", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.hexagonal(3.1, 5.0), ["Al", "N", "Al", "N"],
                  [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.38], [2 / 3, 1 / 3, 0.5], [2 / 3, 1 / 3, 0.88]]),
    ]
    placements = []
    for s in structures:
        a = crystal_arrays(s)
        cluster = compact_cluster(a.lattice, a.frac_coords)
        placements.append(Placement(single_cell_positions(cluster, fit_rotation(cluster, rng)), a.atomic_numbers,
                                    np.eye(3), np.zeros(3)))
    return batch_grids(*pad_batch(placements), GridSpec())


def test_config_rejects_bad_options():
    with pytest.raises(ValueError, match="Invalid architecture"):
        ModelConfig(architecture="transformer")
    with pytest.raises(ValueError, match="n_voxels"):
        ModelConfig(n_voxels=32)
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"latent": 3})
    with pytest.raises(ValueError, match="Invalid decoder_head"):
        ModelConfig(decoder_head="transposed")
    with pytest.raises(ValueError, match="only for the compact"):
        ModelConfig(architecture="paper", decoder_head="shuffle")
    config = _config("paper", True)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.n_classes == MAX_Z + 1


@pytest.mark.parametrize("architecture", ["paper", "compact"])
@pytest.mark.parametrize("conditional", [False, True])
def test_output_shapes(architecture, conditional, batch):
    torch.manual_seed(0)
    model = CrystalVAE(_config(architecture, conditional)).eval()
    x, _ = batch
    with torch.no_grad():
        out = model(x, sample=False)
    assert isinstance(out, VAEOutput)
    assert out.density.shape == (2, 1, 30, 30, 30)
    assert out.scores.shape == (2, MAX_Z + 1, 30, 30, 30)
    assert out.mean.shape == out.log_var.shape == (2, LATENT)
    assert (out.density >= 0).all()  # both decoders end in a non-negative activation
    assert torch.isfinite(out.scores).all()


@pytest.mark.parametrize("architecture", ["paper", "compact"])
def test_encode_decode_segment_shapes(architecture):
    torch.manual_seed(0)
    model = CrystalVAE(_config(architecture)).eval()
    with torch.no_grad():
        mean, log_var = model.encode(torch.rand(3, 1, 30, 30, 30))
        density = model.decode(torch.randn(3, LATENT))
        scores = model.segment(density)
    assert mean.shape == (3, LATENT) and log_var.shape == (3, LATENT)
    assert density.shape == (3, 1, 30, 30, 30)
    assert scores.shape == (3, MAX_Z + 1, 30, 30, 30)


def test_pixel_shuffle_3d_places_each_channel_at_its_sub_voxel():
    x = torch.arange(2 * 16 * 2 * 3 * 1, dtype=torch.float32).view(2, 16, 2, 3, 1)
    y = pixel_shuffle_3d(x, 2)
    assert y.shape == (2, 2, 4, 6, 2)
    # output channel c, voxel (d, h, w), sub-voxel (i, j, k) comes from input channel 8c + 4i + 2j + k
    for c, d, h, w, i, j, k in [(0, 0, 0, 0, 0, 0, 0), (1, 1, 2, 0, 1, 0, 1), (0, 1, 1, 0, 0, 1, 1)]:
        assert y[1, c, 2 * d + i, 2 * h + j, 2 * w + k] == x[1, 8 * c + 4 * i + 2 * j + k, d, h, w]
    # a permutation: nothing lost or repeated
    assert torch.equal(y.flatten().sort().values, x.flatten().sort().values)


def test_shuffle_head_decodes_to_30_cubed_with_less_work(batch):
    torch.manual_seed(0)
    conv = CrystalVAE(_config("compact")).eval()
    shuffle = CrystalVAE(ModelConfig(latent_size=LATENT, max_z=MAX_Z, unet_channels=UNET, decoder_head="shuffle")).eval()
    x, _ = batch
    with torch.no_grad():
        out = shuffle(x, sample=False)
    assert out.density.shape == (2, 1, 30, 30, 30) and (out.density >= 0).all()
    assert out.scores.shape == (2, MAX_Z + 1, 30, 30, 30)
    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    for name, model in (("conv", conv), ("shuffle", shuffle)):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model.decode(torch.zeros(1, LATENT))
        flops[name] = counter.get_total_flops()
    assert flops["shuffle"] < 0.8 * flops["conv"]


def test_conditional_decode_needs_and_uses_the_condition():
    torch.manual_seed(0)
    model = CrystalVAE(_config("compact", conditional=True)).eval()
    z = torch.randn(2, LATENT)
    with pytest.raises(ValueError, match="largest density"):
        model.decode(z)
    with torch.no_grad():
        low = model.decode(z, torch.full((2, 1), 0.5))
        high = model.decode(z, torch.full((2, 1), 3.0))
    assert not torch.allclose(low, high)


def test_conditional_encoder_sees_the_scale():
    """§4.5: the bottleneck input is multiplied by the largest density, so scaling x changes the code."""
    torch.manual_seed(0)
    model = CrystalVAE(_config("compact", conditional=True)).eval()
    x = torch.rand(1, 1, 30, 30, 30)
    assert CrystalVAE.max_density(2 * x).item() == pytest.approx(2 * x.max().item())
    with torch.no_grad():
        m1, _ = model.encode(x)
        m2, _ = model.encode(2 * x)
    assert not torch.allclose(m1, m2)


def test_unet_is_size_preserving_with_unequal_channels():
    unet = AttentionUNet3d(n_classes=7, channels=3).eval()
    with torch.no_grad():
        assert unet(torch.rand(2, 1, 30, 30, 30)).shape == (2, 7, 30, 30, 30)


def test_sampling_is_stochastic_and_mean_is_not(batch):
    torch.manual_seed(0)
    model = CrystalVAE(_config("compact")).eval()
    x, _ = batch
    with torch.no_grad():
        a, b = model(x, sample=False), model(x, sample=False)
        c = model(x, sample=True)
    torch.testing.assert_close(a.density, b.density)
    assert not torch.allclose(a.density, c.density)


def test_paper_model_has_more_parameters_than_compact():
    paper = sum(p.numel() for p in CrystalVAE(_config("paper")).parameters())
    compact = sum(p.numel() for p in CrystalVAE(_config("compact")).parameters())
    assert paper > compact


@pytest.mark.parametrize(("architecture", "n_crystals", "n_steps", "ratio"), [("paper", 1, 4, 0.97), ("compact", 2, 5, 0.9)])
def test_loss_falls_on_a_tiny_fixed_batch(architecture, n_crystals, n_steps, ratio, batch):
    """A few Adam steps on one fixed batch lower the joint loss (fewer for the costlier paper model)."""
    torch.manual_seed(0)
    model = CrystalVAE(_config(architecture)).train()
    x, species = batch[0][:n_crystals], batch[1][:n_crystals]
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(n_steps):
        optimiser.zero_grad()
        terms = joint_loss(model(x, sample=False), x, species, beta=1e-3)
        terms.total.backward()
        optimiser.step()
        losses.append(terms.total.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < ratio * losses[0], losses
