"""Neural networks of the method: the β-VAE over density grids and the attention U-Net that segments them."""

from crystal_explorer.models.config import ModelConfig
from crystal_explorer.models.crystal_vae import CrystalVAE, VAEOutput

__all__ = ["CrystalVAE", "ModelConfig", "VAEOutput"]
