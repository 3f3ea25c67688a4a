"""Principal directions of the latent space: the axes along which the training crystals' encodings spread most.

Sliders on single latent coordinates barely move a decoding (each carries a small share of the spread);
the eigenvectors of the aggregate prior's covariance Σ = L Lᵀ (`crystal_explorer.prior`), ordered by
their variance, are the directions in which the training crystals differ most. A slider value u along
direction k moves z by u · √λ_k · v_k: u counts standard deviations of the training encodings.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from crystal_explorer.prior import LatentPrior


class Directions(NamedTuple):
    """A centre (L,), unit directions (K, L) as rows and the spread σ (K,) along each, most spread first."""

    centre: np.ndarray
    vectors: np.ndarray
    spread: np.ndarray

    @classmethod
    def of_prior(cls, prior: LatentPrior, k: int) -> Directions:
        """The k principal directions of a Gaussian prior N(μ, L Lᵀ)."""
        covariance = prior.scale_tril @ prior.scale_tril.T
        values, vectors = np.linalg.eigh(covariance)  # ascending
        order = np.argsort(values)[::-1][:k]
        return cls(prior.mean.copy(), vectors[:, order].T.copy(), np.sqrt(np.clip(values[order], 0, None)))

    @classmethod
    def of_axes(cls, centre: np.ndarray, spread: np.ndarray, dims: list[int]) -> Directions:
        """Single latent coordinates `dims` as directions (a model without a fitted prior)."""
        vectors = np.zeros((len(dims), len(centre)))
        vectors[np.arange(len(dims)), dims] = 1.0
        return cls(np.asarray(centre, float), vectors, np.asarray(spread, float)[dims])

    def coordinates(self, z: np.ndarray) -> np.ndarray:
        """Where a latent (L,) sits along each direction, in σ: (K,)."""
        return self.vectors @ (np.asarray(z, float) - self.centre) / self.spread

    def moved(self, z: np.ndarray, values: np.ndarray) -> np.ndarray:
        """z with its coordinates along the directions set to `values` (K,) in σ, the rest unchanged: (L,) float32."""
        shift = (np.asarray(values, float) - self.coordinates(z)) * self.spread
        return (np.asarray(z, float) + shift @ self.vectors).astype(np.float32)

    def variance_share(self, prior: LatentPrior) -> np.ndarray:
        """The fraction (K,) of the prior's total variance that each direction carries."""
        return self.spread**2 / float((prior.scale_tril**2).sum())
