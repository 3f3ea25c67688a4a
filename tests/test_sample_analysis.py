"""train.sample_analysis: the random-draw analyses (Fig. 9A, validity, realism) on a handful of crystals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.io.cif import CifWriter

from crystal_explorer.metrics import nearest_neighbour_distances
from crystal_explorer.structures import split_of
from train.sample_analysis import auc, main

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "single_cell"


def test_auc_orders_two_samples():
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auc(np.ones(3), np.ones(2)) == 0.5
    assert auc(np.ones(3), np.zeros(0)) is None


def test_nearest_neighbour_distances():
    d = nearest_neighbour_distances(np.array([[0.0, 0, 0], [1.5, 0, 0], [5.0, 0, 0]]))
    np.testing.assert_allclose(d, [1.5, 1.5, 3.5])
    assert len(nearest_neighbour_distances(np.zeros((1, 3)))) == 0


def test_analysis_writes_draw_statistics_and_realism(tmp_path, perovskite, rock_salt):
    ids = [f"t-{i}" for i in range(200) if split_of(f"t-{i}") == "test"][:2]
    csv = tmp_path / "test.csv"
    pd.DataFrame({"material_id": ids, "cif": [str(CifWriter(s)) for s in (perovskite, rock_salt)]}).to_csv(csv, index=False)
    out = tmp_path / "out"
    assert main(["--checkpoint", str(CHECKPOINT), "--data", str(csv), "--n", "4", "--n-real", "2", "--out", str(out)]) == 0
    result = json.loads((out / "samples.json").read_text())
    assert result["n_real"] == 2
    assert result["mean_elements_real_true"] == 2.5  # SrTiO3 and NaCl
    assert result["mean_elements_real_decoded"] >= 1
    assert set(result["random_draws"]) == {"standard", "aggregate"}
    for draws in result["random_draws"].values():
        assert draws["n"] == 4 and 0 <= draws["valid_fraction_min_distance_0.5A"] <= draws["with_atoms_fraction"] <= 1
    realism = result["realism"]
    assert realism["real"]["auc_real_above"] is None and 0 <= realism["out_of_distribution"]["auc_real_above"] <= 1
    assert all(0 <= r["mean"] <= 1 for r in realism.values())
    assert (out / "nearest_neighbours.png").stat().st_size > 1000
    cells = result["predicted_cells"]  # the shipped single-cell model has a cell head
    assert cells["real"]["n"] == 2 and 0 <= cells["real"]["valid_fraction"] <= 1
    assert 0 < cells["random_aggregate_prior"]["sites_kept_fraction_mean"] <= 1


def test_steering_reports_each_target():
    from crystal_explorer.latent import CrystalModel
    from train.sample_analysis import steering

    model = CrystalModel.from_checkpoint(CHECKPOINT.parent / "lattice_conditional", device="cpu")
    report = steering(model, [20, 56], n=2, seed=0)
    assert set(report) == {"20", "56"}
    for row in report.values():
        assert row["n"] == 2 and 0 <= row["draws_with_atoms"] <= 2 and row["median_peak_density_z_units"] > 0
