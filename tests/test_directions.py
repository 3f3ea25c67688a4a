"""Principal directions of the aggregate prior: ordered by spread, sliders that move only along them, and the labels
saying what each changes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from crystal_explorer.directions import (
    DESCRIPTIONS_FILE,
    QUANTITIES,
    DirectionEffects,
    Directions,
    describe_directions,
    label_of,
    main,
)
from crystal_explorer.prior import LatentPrior

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
pytestmark = pytest.mark.usefixtures("one_thread")


def test_principal_directions_order_by_spread_and_round_trip(rng) -> None:
    latents = rng.standard_normal((400, 6)) * np.array([0.5, 4.0, 1.0, 2.0, 0.1, 0.2]) + 10
    prior = LatentPrior.fit(latents, shrinkage=0.0)
    axes = Directions.of_prior(prior, 3)
    assert np.all(np.diff(axes.spread) <= 0)
    assert axes.vectors[0, 1] > 0.99  # the widest coordinate first, its sign fixed (largest component positive)
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


# --- what each direction changes ------------------------------------------------------------------
class StubModel:
    """A decoder whose answer is known: mean Z = 10 + 3·z₀, atom count = 4 + 2·z₂ (atoms 2 Å apart on a line),
    z₁ changes nothing, peak density 10 Z units."""

    latent_size = 3

    def draw(self, n: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n, self.latent_size)).astype(np.float32)

    def decode(self, latents: np.ndarray, max_z: float | None = None) -> list:
        out = []
        for z in np.atleast_2d(latents):
            count = int(np.clip(np.round(4 + 2 * z[2]), 2, 20))
            atoms = SimpleNamespace(atomic_numbers=np.full(count, int(np.clip(np.round(10 + 3 * z[0]), 1, 94))),
                                    positions=np.arange(count)[:, None] * np.array([2.0, 0, 0]))
            out.append(SimpleNamespace(atoms=atoms, density=np.full((2, 2, 2), 10.0)))
        return out


def stub_directions(*vectors) -> Directions:
    vectors = np.array(vectors, float)
    return Directions(np.zeros(3), vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.ones(len(vectors)))


def test_a_direction_is_labelled_by_what_it_changes() -> None:
    axes = stub_directions([1, 0, 0], [0, 1, 0], [0, 0, -1], [1, 0, 1])
    effects = describe_directions(StubModel(), axes, n_samples=16, step=2.0)
    assert effects.labels[:3] == ("mean Z ↑", "little change", "atom count ↓")
    assert set(effects.labels[3].split(", ")) == {"mean Z ↑", "atom count ↑"}
    np.testing.assert_allclose(effects.change[0, QUANTITIES.index("mean Z")], 12.0, atol=1.0)  # 3 Z per unit × 4 σ
    np.testing.assert_allclose(effects.change[:, QUANTITIES.index("NN distance")], 0.0)
    np.testing.assert_allclose(effects.change[:, QUANTITIES.index("peak density")], 0.0)
    again = describe_directions(StubModel(), axes, n_samples=16, step=2.0)
    np.testing.assert_array_equal(again.change, effects.change)  # deterministic for a seed


def test_label_takes_the_two_largest_changes_over_the_threshold() -> None:
    assert label_of(np.array([0.3, -2.0, 0.1, 1.0])) == "atom count ↓, peak density ↑"
    assert label_of(np.array([0.1, -0.2, 0.0, 0.0])) == "little change"
    assert label_of(np.array([0.0, 0.0, -0.9, 0.1])) == "NN distance ↓"


def test_effects_round_trip_through_the_checkpoint_folder(tmp_path: Path) -> None:
    axes = stub_directions([1, 0, 0], [0, 0, 1])
    effects = describe_directions(StubModel(), axes, n_samples=8)
    effects.save(tmp_path)
    loaded = DirectionEffects.load(tmp_path)
    assert loaded is not None and loaded.labels == effects.labels and loaded.matches(axes)
    assert not loaded.matches(axes._replace(spread=np.array([2.0, 1.0])))  # measured on other directions: stale
    assert DirectionEffects.load(tmp_path / "absent") is None
    (tmp_path / DESCRIPTIONS_FILE).write_text("{not json")
    assert DirectionEffects.load(tmp_path) is None


def test_describing_a_shipped_model_and_its_stored_labels() -> None:
    from crystal_explorer.latent import CrystalModel

    folder = CHECKPOINTS / "single_cell"
    model = CrystalModel.from_checkpoint(folder, device="cpu")
    axes = Directions.of_prior(model.prior, 8)
    effects = describe_directions(model, axes._replace(vectors=axes.vectors[:1], spread=axes.spread[:1]), n_samples=2)
    assert effects.change.shape == (1, len(QUANTITIES)) and np.isfinite(effects.change).all()
    stored = DirectionEffects.load(folder)
    assert stored is not None and stored.matches(axes)  # regenerate with python -m crystal_explorer.directions


def test_command_with_a_bad_checkpoint_exits_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["--checkpoint", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert not (tmp_path / "missing" / DESCRIPTIONS_FILE).exists()
