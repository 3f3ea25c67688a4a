"""Principal directions of the aggregate prior: ordered by spread, and sliders that move only along them."""

from __future__ import annotations

import numpy as np

from crystal_explorer.directions import Directions
from crystal_explorer.prior import LatentPrior


def test_principal_directions_order_by_spread_and_round_trip(rng) -> None:
    latents = rng.standard_normal((400, 6)) * np.array([0.5, 4.0, 1.0, 2.0, 0.1, 0.2]) + 10
    prior = LatentPrior.fit(latents, shrinkage=0.0)
    axes = Directions.of_prior(prior, 3)
    assert np.all(np.diff(axes.spread) <= 0)
    assert abs(axes.vectors[0, 1]) > 0.99  # the widest coordinate first
    z = latents[0]
    u = axes.coordinates(z)
    np.testing.assert_allclose(axes.moved(z, u), z, atol=1e-4)  # moving to where it is changes nothing
    moved = axes.moved(z, u + np.array([2.0, 0, 0]))
    np.testing.assert_allclose(np.linalg.norm(moved - z), 2.0 * axes.spread[0], rtol=1e-4)
    assert 0 < axes.variance_share(prior).sum() <= 1


def test_single_axes_as_directions() -> None:
    axes = Directions.of_axes(np.zeros(5), np.arange(1.0, 6.0), [3, 1])
    np.testing.assert_allclose(axes.spread, [4.0, 2.0])
    np.testing.assert_allclose(axes.moved(np.zeros(5), np.array([1.0, 0.5])), [0, 1, 0, 4, 0])
