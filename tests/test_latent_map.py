"""The latent map: PCA, the held-out sample, the on-disk cache and its invalidation, the figure."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
from pymatgen.io.cif import CifWriter

from crystal_explorer import latent_map
from crystal_explorer.latent_map import Projection, build_map, held_out_rows, load_or_encode, updated_ends
from crystal_explorer.structures import split_of

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "single_cell"


def ids_in(splits: tuple[str, ...], k: int) -> list[str]:
    """The first k ids "m0", "m1", ... whose split is one of `splits`."""
    return [m for m in (f"m{i}" for i in range(1000)) if split_of(m) in splits][:k]


@pytest.fixture
def tiny_csv(tmp_path: Path, perovskite, rock_salt, hexagonal, monoclinic) -> Path:
    """Four held-out crystals (heat_ref given) and two training ones, in one CSV."""
    structures = [perovskite, rock_salt, hexagonal, monoclinic, perovskite, rock_salt]
    ids = ids_in(("val", "test"), 4) + ids_in(("train",), 2)
    path = tmp_path / "data" / "tiny.csv"
    path.parent.mkdir()
    pd.DataFrame({"material_id": ids, "cif": [str(CifWriter(s)) for s in structures],
                  "heat_ref": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}).to_csv(path, index=False)
    return path


class FakeEncoded(NamedTuple):
    mean: np.ndarray


class FakeModel:
    """Stands in for CrystalModel: a 'latent' (6,) made of the crystal's cell lengths and atom count; counts calls."""

    latent_size = 6

    def __init__(self) -> None:
        self.calls = 0

    def place(self, crystal, seed):
        return crystal

    def encode_placements(self, placements):
        self.calls += 1
        return [FakeEncoded(np.array([*np.linalg.norm(c.lattice, axis=1), c.n_atoms, 1.0, 0.0], np.float32))
                for c in placements]


@pytest.fixture
def fake_checkpoint(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights v1")
    return folder


def test_pca_shapes_order_and_projection(rng) -> None:
    latents = rng.standard_normal((200, 12)) * np.array([5.0, 0.5, 3.0] + [0.1] * 9)  # spread 5 > 3 > 0.5 > 0.1
    projection = Projection.fit(latents, 2)
    assert projection.components.shape == (2, 12) and projection.centre.shape == (12,)
    assert projection.variance_ratio[0] > projection.variance_ratio[1] > 0
    assert projection.variance_ratio.sum() < 1
    assert abs(projection.components[0, 0]) > 0.99 and abs(projection.components[1, 2]) > 0.99
    xy = projection.project(latents)
    assert xy.shape == (200, 2)
    np.testing.assert_allclose(xy.var(0) / latents.var(0).sum(), projection.variance_ratio, rtol=1e-9)
    assert projection.project(latents[0]).shape == (1, 2)


def test_held_out_rows_are_val_and_test_only_and_fixed() -> None:
    ids = [f"m{i}" for i in range(300)]
    rows = held_out_rows(pd.DataFrame({"material_id": ids}))
    assert {split_of(ids[r]) for r in rows} <= {"val", "test"}
    assert len(rows) == sum(split_of(m) != "train" for m in ids)
    np.testing.assert_array_equal(rows, held_out_rows(pd.DataFrame({"material_id": ids})))
    assert not np.all(np.diff(rows) > 0)  # a hashed order, not the file's


def test_the_sample_is_shared_evenly_over_files(tmp_path: Path, perovskite, rock_salt) -> None:
    def table(name: str, structure, ids: list[str]) -> Path:
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"material_id": ids, "cif": [str(CifWriter(structure))] * len(ids)}).to_csv(path, index=False)
        return path

    held_out = ids_in(("val", "test"), 7)
    big, small = table("big", perovskite, held_out[:6]), table("small", rock_salt, held_out[6:])
    _, both, _ = latent_map.encode_held_out(FakeModel(), [big, small], n=4)
    assert both["file"].value_counts().to_dict() == {"big.csv": 3, "small.csv": 1}  # the small file's shortfall goes to the big
    _, even, _ = latent_map.encode_held_out(FakeModel(), [big, table("other", rock_salt, held_out[3:6])], n=4)
    assert even["file"].value_counts().to_dict() == {"big.csv": 2, "other.csv": 2}


def test_encode_held_out_keeps_held_out_rows_with_their_metadata(tiny_csv: Path) -> None:
    seen = []
    latents, table, skipped = latent_map.encode_held_out(FakeModel(), [tiny_csv], n=10,
                                                         progress=lambda f, text: seen.append(f))
    assert latents.shape == (4, 6) and len(table) == 4 and not skipped
    assert set(table["split"]) <= {"val", "test"} and set(table["row"]) == {0, 1, 2, 3}
    assert set(table["formula"]) == {"SrTiO3", "NaCl", "ZnO", "ZrO2"}  # reduced, conventional formulas
    nacl = table[table["formula"] == "NaCl"].iloc[0]
    assert nacl["atom count"] == 8 and nacl["element count"] == 2 and nacl["property:heat_ref"] == 0.2
    assert seen and seen[-1] == 1.0


def test_cache_hit_and_invalidation_when_weights_change(tiny_csv: Path, fake_checkpoint: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    model = FakeModel()
    first = load_or_encode(model, fake_checkpoint, [tiny_csv], cache, n=10)
    calls = model.calls
    again = load_or_encode(model, fake_checkpoint, [tiny_csv], cache, n=10)
    assert model.calls == calls  # read from disk, nothing encoded
    pd.testing.assert_frame_equal(first.table, again.table)
    np.testing.assert_array_equal(first.latents, again.latents)
    assert len(list(cache.glob("*.npz"))) == 1
    (fake_checkpoint / "model.safetensors").write_bytes(b"weights v2")
    load_or_encode(model, fake_checkpoint, [tiny_csv], cache, n=10)
    assert model.calls > calls
    assert len(list(cache.glob("*.npz"))) == 1  # the old weights' map is gone
    calls = model.calls
    next(cache.glob("*.npz")).write_bytes(b"half a file")
    again = load_or_encode(model, fake_checkpoint, [tiny_csv], cache, n=10)
    assert model.calls > calls and len(again.table) == 4  # an unreadable cache is encoded afresh


def test_tsne_keeps_clusters_apart_and_new_points_land_among_their_neighbours(rng) -> None:
    centres = np.zeros((2, 10))
    centres[1, 0] = 20.0
    latents = np.concatenate([c + rng.standard_normal((20, 10)) for c in centres])
    xy = latent_map.tsne_layout(latents)
    assert xy.shape == (40, 2)
    np.testing.assert_array_equal(xy, latent_map.tsne_layout(latents))  # seeded: the same map every time
    nearest = np.argsort(np.linalg.norm(xy[:, None] - xy[None], axis=-1), axis=1)[:, 1:6]
    assert ((nearest < 20) == (np.arange(40) < 20)[:, None]).mean() > 0.95  # map neighbours are cluster mates
    layout = latent_map.NeighbourLayout(latents, xy)
    np.testing.assert_allclose(layout.project(latents[7]), xy[[7]], atol=1e-6)  # a map crystal sits at its place
    inside = layout.project(centres[1])[0]  # a new latent in the second cluster lands among that cluster's points
    assert np.linalg.norm(inside - xy[20:].mean(0)) < np.linalg.norm(inside - xy[:20].mean(0))
    two = latent_map.NeighbourLayout(np.array([[0.0, 0], [2, 0], [100, 0]]), np.array([[0.0, 0], [4, 2], [9, 9]]), k=2)
    np.testing.assert_allclose(two.project([1.0, 0.0]), [[2.0, 1.0]])  # halfway between its two equidistant neighbours


def test_tsne_layout_is_cached_beside_the_encodings(tiny_csv: Path, fake_checkpoint: Path, tmp_path: Path,
                                                     monkeypatch) -> None:
    cache = tmp_path / "cache"
    runs = []
    real = latent_map.tsne_layout
    monkeypatch.setattr(latent_map, "tsne_layout", lambda latents: runs.append(1) or real(latents))
    first = load_or_encode(FakeModel(), fake_checkpoint, [tiny_csv], cache, n=10, layout="t-SNE")
    again = load_or_encode(FakeModel(), fake_checkpoint, [tiny_csv], cache, n=10, layout="t-SNE")
    assert len(runs) == 1 and len(list(cache.glob("*.tsne.npy"))) == 1  # laid out once
    pd.testing.assert_frame_equal(first.table, again.table)
    assert first.axis_title(0).startswith("t-SNE 1") and isinstance(first.projection, latent_map.NeighbourLayout)
    pca = load_or_encode(FakeModel(), fake_checkpoint, [tiny_csv], cache, n=10, layout="PCA")
    assert pca.axis_title(0).startswith("PC1 (") and len(runs) == 1
    (fake_checkpoint / "model.safetensors").write_bytes(b"weights v2")
    load_or_encode(FakeModel(), fake_checkpoint, [tiny_csv], cache, n=10, layout="PCA")
    assert not list(cache.glob("*.tsne.npy"))  # the old weights' layout went with their encodings
    with pytest.raises(ValueError, match="Invalid layout"):
        load_or_encode(FakeModel(), fake_checkpoint, [tiny_csv], cache, n=10, layout="UMAP")


def test_ends_follow_clicks() -> None:
    assert updated_ends([], [7]) == [7]
    assert updated_ends([7], [9]) == [7, 9]
    assert updated_ends([7, 9], [4]) == [9, 4]
    assert updated_ends([7, 9], [9]) == [7, 9]  # the same selection on a rerun changes nothing
    assert updated_ends([7], [1, 2, 3]) == [1, 2]
    assert updated_ends([7, 9], []) == [7, 9]


def test_figure_axes_colours_path_and_current_crystal(rng) -> None:
    table = pd.DataFrame({"formula": ["A", "B", "C", "D"], "source": ["Perov-5", "Perov-5", "Carbon-24", "Carbon-24"],
                          "material_id": ["1", "2", "3", "4"], "split": ["val"] * 4, "atom count": [5, 5, 8, 12],
                          "element count": [3, 3, 1, 1], "property:heat_ref": [0.1, 0.2, np.nan, np.nan]})
    lmap = build_map(rng.standard_normal((4, 6)), table)
    assert lmap.colour_options == ["source", "element count", "atom count", "property:heat_ref"]
    fig = latent_map.map_figure(lmap, "source")
    assert [t.name for t in fig.data] == ["Carbon-24", "Perov-5"]
    assert fig.layout.xaxis.title.text.startswith("PC1 (") and fig.layout.yaxis.title.text.endswith("% of variance)")
    path = latent_map.path_points(lmap.latents[0], lmap.latents[2], 5, lmap.projection)
    np.testing.assert_allclose(path[[0, -1]], lmap.table[["x", "y"]].to_numpy()[[0, 2]], atol=1e-9)
    fig = latent_map.map_figure(lmap, "property:heat_ref", ("SrTiO3", lmap.latents[1]), [0, 2], path)
    names = [t.name for t in fig.data]
    assert names == ["no heat_ref (eV/atom)", "heat_ref (eV/atom)", "interpolation path", "chosen", "your crystal: SrTiO3"]
    assert fig.data[1].marker.colorbar.title.text == "heat_ref (eV/atom)"
    with pytest.raises(ValueError, match="Invalid colour_by"):
        latent_map.map_figure(lmap, "band gap")


@pytest.mark.usefixtures("one_thread")
def test_real_model_stores_the_posterior_means(tiny_csv: Path, tmp_path: Path) -> None:
    from pymatgen.core import Structure

    from crystal_explorer.latent import CrystalModel
    from crystal_explorer.structures import crystal_arrays

    model = CrystalModel.from_checkpoint(CHECKPOINT, "cpu")
    lmap = load_or_encode(model, CHECKPOINT, [tiny_csv], tmp_path / "cache", n=10)
    assert lmap.latents.shape == (len(lmap.table), model.latent_size) and len(lmap.table) >= 3
    first = lmap.table.iloc[0]
    structure = Structure.from_str(pd.read_csv(tiny_csv)["cif"][first["row"]], fmt="cif")
    expected = model.encode(crystal_arrays(structure), latent_map.PLACEMENT_SEED).mean
    np.testing.assert_allclose(lmap.latents[0], expected, atol=1e-4)


def test_shared_data_sample_is_held_out(shared_data: Path) -> None:
    frame = pd.read_csv(shared_data / "perov_5_val.csv.gz", usecols=["material_id"])
    rows = held_out_rows(frame)
    assert 0.15 < len(rows) / len(frame) < 0.25  # val + test are a fifth of the ids
    assert {split_of(str(frame["material_id"].iloc[r])) for r in rows[:500]} <= {"val", "test"}
