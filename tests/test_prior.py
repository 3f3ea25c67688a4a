"""The aggregate latent prior: fitting, drawing, storage, and what it changes for the shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.latent import CrystalModel
from crystal_explorer.prior import PRIOR_FILE, LatentPrior

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def test_fit_recovers_the_mean_and_covariance_of_its_encodings(rng):
    true_mean = rng.normal(0, 5, 6)
    mixing = rng.normal(0, 1, (6, 6))
    latents = true_mean + rng.standard_normal((20_000, 6)) @ mixing.T
    prior = LatentPrior.fit(latents, shrinkage=0.0)
    assert prior.mean == pytest.approx(true_mean, abs=0.1)
    cov = prior.scale_tril @ prior.scale_tril.T
    assert np.abs(cov - mixing @ mixing.T).max() < 0.1 * np.abs(mixing @ mixing.T).max()
    draws = prior.draw(20_000, np.random.default_rng(1))
    assert draws.dtype == np.float32 and draws.mean(0) == pytest.approx(true_mean, abs=0.15)


def test_standard_prior_is_the_identity_map():
    eps = np.random.default_rng(0).standard_normal((3, 4))
    assert LatentPrior.standard(4).to_latent(eps) == pytest.approx(eps)


def test_too_few_encodings_are_refused():
    with pytest.raises(CrystalExplorerError, match="at least 2"):
        LatentPrior.fit(np.zeros((1, 3)))


def test_save_and_load_round_trip_and_bad_files(tmp_path, rng):
    prior = LatentPrior.fit(rng.standard_normal((50, 5)))
    prior.save(tmp_path)
    loaded = LatentPrior.load(tmp_path, 5)
    assert loaded.n_encodings == 50
    assert loaded.mean == pytest.approx(prior.mean, abs=1e-6)
    assert loaded.scale_tril == pytest.approx(prior.scale_tril, abs=1e-5)
    assert LatentPrior.load(tmp_path / "none", 5) is None  # no prior: fall back to N(0, 1)
    with pytest.raises(CrystalExplorerError, match="latent size 7"):
        LatentPrior.load(tmp_path, 7)
    (tmp_path / PRIOR_FILE).write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(CrystalExplorerError, match="not a readable latent prior"):
        LatentPrior.load(tmp_path, 5)


def test_shipped_model_draws_from_its_aggregate_prior():
    model = CrystalModel.from_checkpoint(CHECKPOINTS / "single_cell", device="cpu")
    assert model.prior is not None and model.default_prior == "aggregate"
    assert np.array_equal(model.draw(4, seed=3), model.draw(4, seed=3))
    with pytest.raises(CrystalExplorerError, match="unknown prior"):
        model.draw(1, prior="uniform")
    # this low-β model's encodings lie far from N(0, 1): standard draws decode to (nearly) empty cells,
    # draws from the aggregate prior to cells with atoms
    aggregate = model.sample(6, seed=0, prior="aggregate")
    standard = model.sample(6, seed=0, prior="standard")
    assert np.mean([len(d.atoms) for d in aggregate]) > np.mean([len(d.atoms) for d in standard]) + 2
