"""The training ledger: validation metrics recorded on the newest stage, and the learning curve drawn from it."""

from __future__ import annotations

import json

import pytest

from train.ledger import curve_series, main, plot_learning_curve, record_validation, stage_samples


def _metrics(value: float, split: str = "val") -> dict:
    per = {"atoms_within_0.5A": value, "count_exact": value / 2, "species_exact": value / 3, "n_structures": 10}
    return {"split": split, "seed": 0, "data": ["x.csv"], **per, "per_source": {"x.csv": per, "y.csv": per}}


@pytest.fixture
def folder(tmp_path):
    meta = {"model_config": {}, "training_stages": [{"stage": 0, "steps": 10}, {"stage": 1, "samples": 100}]}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    return tmp_path


def test_samples_of_stages_that_only_logged_steps_count_batches_of_64():
    assert stage_samples({"steps": 10}) == 640 and stage_samples({"samples": 7, "steps": 10}) == 7


def test_validation_goes_on_the_newest_stage_and_the_curve_is_drawn(folder):
    record_validation(folder, _metrics(0.5))
    meta = json.loads((folder / "model.json").read_text())
    assert "validation" not in meta["training_stages"][0]
    assert meta["training_stages"][1]["validation"]["per_source"]["y.csv"]["atoms_within_0.5A"] == 0.5
    assert meta["samples_seen"] == 740
    path = plot_learning_curve(folder)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_test_split_metrics_are_refused(folder, capsys):
    with pytest.raises(ValueError, match="validation"):
        record_validation(folder, _metrics(0.5, split="test"))
    (folder / "m.json").write_text(json.dumps(_metrics(0.5, split="test")))
    assert main(["--checkpoint", str(folder), "--metrics", str(folder / "m.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_curve_without_validation_points_is_a_clear_error(folder, capsys):
    assert main(["--checkpoint", str(folder), "--plot"]) == 2
    assert "no stage has validation metrics" in capsys.readouterr().err


def test_a_source_scored_from_csv_and_from_its_npz_cache_is_one_line():
    per = {"atoms_within_0.5A": 0.5}
    meta = {"training_stages": [
        {"samples": 100, "validation": {"per_source": {"mp_bulk.csv.gz": per}}},
        {"samples": 50},
        {"samples": 10, "validation": {"per_source": {"mp_bulk.npz": per, "perov_5_val.npz": per}}},
    ]}
    series = curve_series(meta)
    assert list(series) == ["mp_bulk", "perov_5_val"]
    assert [x for x, _ in series["mp_bulk"]] == [100, 160]
