"""The training ledger: validation metrics recorded on the newest stage, and the learning curve drawn from it."""

from __future__ import annotations

import json
import math

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


def test_the_ledger_table_has_a_row_per_stage_with_cumulative_samples_and_validation(folder, capsys):
    record_validation(folder, _metrics(0.5))
    assert main(["--checkpoint", str(folder), "--table"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("| stage | device | minutes") and "what" not in lines[0]
    stage0 = [c.strip() for c in lines[2].strip("|").split("|")]
    stage1 = [c.strip() for c in lines[3].strip("|").split("|")]
    assert stage0[3:5] == ["640", "640"] and stage0[6:] == ["", "", ""]  # no validation recorded on stage 0
    assert stage1[3:5] == ["100", "740"] and stage1[6:] == ["50.0", "25.0", "16.7"]


def test_a_folder_without_a_ledger_has_no_table(tmp_path, capsys):
    (tmp_path / "model.json").write_text(json.dumps({"model_config": {}}))
    assert main(["--checkpoint", str(tmp_path), "--table"]) == 2
    assert "no training ledger" in capsys.readouterr().err


def test_extrapolation_inverts_a_log_linear_curve_and_says_never_when_it_does_not_rise():
    from train.ledger import extrapolate, extrapolation_table

    stages, seen = [], 0
    for i, samples in enumerate([1000, 1000, 1000, 2000, 4000]):
        seen += samples
        gain = 0.1 + 0.05 * math.log2(seen / 1000)  # 5 points per doubling of samples seen
        stages.append({"stage": i, "samples": samples, "validation": {
            "atoms_within_0.5A": gain, "count_exact": 0.3, "species_exact": 0.2 + gain}})
    rows = {r["metric"]: r for r in extrapolate({"training_stages": stages}, from_stage=1)}
    assert rows["atoms_within_0.5A"]["stages_fitted"] == 4
    assert rows["atoms_within_0.5A"]["per_doubling"] == pytest.approx(0.05)
    # 0.1 + 0.05·log2(n/1000) = 0.6 at n = 1000·2^10
    assert extrapolate({"training_stages": stages}, {"atoms_within_0.5A": 0.6})[0]["samples_needed"] == \
        pytest.approx(1000 * 2 ** 10, rel=1e-6)
    assert rows["count_exact"]["samples_needed"] is None
    table = extrapolation_table(list(rows.values()), rates=(1.0,))
    assert "never on this trend" in table and "hours at 1 samples/s" in table


def test_extrapolation_needs_three_validated_stages():
    from train.ledger import extrapolate

    stages = [{"stage": 2, "samples": 10, "validation": {"atoms_within_0.5A": 0.1}}] * 2
    with pytest.raises(ValueError, match="need 3"):
        extrapolate({"training_stages": stages})
