"""Where to draw latents: the aggregate posterior of the training crystals as a Gaussian.

A β-VAE with a small β (ours: 10⁻³, as the reconstruction targets demand) leaves its encodings far from
N(0, 1): posterior widths of ~0.07, and means spread with a median standard deviation of ~5 per
coordinate about a centre of norm 37 (shipped single-cell model; 17 for the lattice model).
Decoding z ~ N(0, 1) then lands between the crystals and gives empty densities (measured: 1.1 % of 1,000
draws of the shipped single-cell model hold an atom). The usual remedy (ex-post density estimation,
Ghosh et al. 2020, "From variational to deterministic regularized autoencoders") fits a density to the
encodings of the training set after training and draws from it. We fit one Gaussian N(μ, Σ), Σ shrunk
towards its diagonal, and draw z = μ + L ε with ε ~ N(0, 1) and L L^T = Σ, so a user still draws the
standard normal ε that the paper describes, mapped onto where the crystals are.

Stored beside a checkpoint as `latent_prior.safetensors` (μ, L, and how many encodings made them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crystal_explorer.errors import CrystalExplorerError

PRIOR_FILE = "latent_prior.safetensors"
PRIORS = ("aggregate", "standard")


@dataclass(frozen=True)
class LatentPrior:
    """A Gaussian over the latent space: mean (L,) and lower-triangular scale (L, L), L L^T = Σ."""

    mean: np.ndarray
    scale_tril: np.ndarray
    n_encodings: int = 0

    @property
    def latent_size(self) -> int:
        return len(self.mean)

    @classmethod
    def standard(cls, latent_size: int) -> LatentPrior:
        """N(0, 1): the VAE's own prior."""
        return cls(np.zeros(latent_size), np.eye(latent_size), 0)

    @classmethod
    def fit(cls, latents: np.ndarray, shrinkage: float = 0.1) -> LatentPrior:
        """Fit N(μ, Σ) to encodings (n, L); Σ = (1 − s)·S + s·diag(S) keeps it well conditioned for small n."""
        latents = np.asarray(latents, np.float64)
        if latents.ndim != 2 or len(latents) < 2:
            raise CrystalExplorerError("fitting a latent prior needs at least 2 encodings")
        mean = latents.mean(0)
        cov = np.cov(latents, rowvar=False)
        cov = (1 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov)) + 1e-6 * np.eye(len(mean))
        return cls(mean, np.linalg.cholesky(cov), len(latents))

    def to_latent(self, standard_normal: np.ndarray) -> np.ndarray:
        """Map ε (…, L) drawn from N(0, 1) to z = μ + L ε."""
        return self.mean + np.asarray(standard_normal) @ self.scale_tril.T

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n latents (n, L) float32 from ε ~ N(0, 1)."""
        eps = rng.standard_normal((n, self.latent_size))
        return self.to_latent(eps).astype(np.float32)

    def save(self, folder: str | Path) -> Path:
        from safetensors.numpy import save

        from crystal_explorer.checkpoint import atomic_write

        path = Path(folder) / PRIOR_FILE
        atomic_write(path, save({"mean": self.mean.astype(np.float32), "scale_tril": self.scale_tril.astype(np.float32)},
                                metadata={"n_encodings": str(self.n_encodings)}))
        return path

    @classmethod
    def load(cls, folder: str | Path, latent_size: int) -> LatentPrior | None:
        """The prior stored in `folder`, None when there is none; a corrupt or mismatched file raises."""
        path = Path(folder) / PRIOR_FILE
        if not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as handle:
                meta = handle.metadata() or {}
                mean, tril = handle.get_tensor("mean"), handle.get_tensor("scale_tril")
        except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt file
            raise CrystalExplorerError(f"{path} is not a readable latent prior ({exc})") from exc
        if mean.shape != (latent_size,) or tril.shape != (latent_size, latent_size) or not np.isfinite(tril).all():
            raise CrystalExplorerError(f"{path} does not fit a model with latent size {latent_size}")
        return cls(mean.astype(np.float64), tril.astype(np.float64), int(meta.get("n_encodings", 0)))
