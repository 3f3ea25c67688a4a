"""What a decoding got wrong, in words and tables: formulas, atom-by-atom verdicts, close contacts, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crystal_explorer import report
from crystal_explorer.arrays import CrystalArrays
from crystal_explorer.lattice import placed_lattice, structure_in_cell
from crystal_explorer.placement import compact_cluster, fit_rotation, lattice_positions, single_cell_positions
from crystal_explorer.representation import Placement

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def test_formulas_are_conventional() -> None:
    assert report.formula(np.array([57, 26, 8, 8, 8])) == "LaFeO3"
    assert report.formula(np.array([38, 38, 44, 8, 8, 8, 8])) == "Sr2RuO4"
    assert report.formula(np.zeros(0, int)) == "—"
    assert report.same_composition(np.array([57, 26, 8, 8, 8]), np.array([57, 57, 26, 26, 8, 8, 8, 8, 8, 8]))


def test_atom_by_atom_verdicts() -> None:
    true = np.array([[1.0, 1, 1], [3.0, 1, 1], [6.0, 1, 1]])
    decoded = np.array([[1.1, 1, 1], [3.0, 1.2, 1], [9.0, 9, 9]])
    result = report.compare_atoms(true, np.array([57, 26, 8]), decoded, np.array([57, 24, 8]))
    assert result.table["verdict"].tolist() == ["ok", "wrong element", "missing", "extra"]
    assert result.table["distance (Å)"].iloc[1] == pytest.approx(0.2)
    assert result.decoded_wrong.tolist() == [False, True, False]
    assert result.decoded_extra.tolist() == [False, False, True]
    assert result.true_missing.tolist() == [False, False, True]
    assert result.decoded_notes == ["", "Cr, true Fe", "extra O"]
    assert result.n_problems == 3
    assert result.problems() == ["1 decoded atom has the wrong element", "1 true atom has no decoded atom within 0.5 Å",
                                 "1 decoded atom matches no true atom"]
    two_wrong = report.compare_atoms(true[:2], np.array([57, 26]), decoded[:2], np.array([26, 24]))
    assert two_wrong.problems() == ["2 decoded atoms have the wrong element"]
    assert report.compare_atoms(true, np.array([57, 26, 8]), true, np.array([57, 26, 8])).problems() == []
    styled = report.highlight_problems(result.table).to_html()
    assert "#f8d0d0" in styled  # the wrong species row is shaded


def test_close_contacts_use_covalent_radii() -> None:
    positions = np.array([[0.0, 0, 0], [0.6, 0, 0], [3.0, 0, 0]])  # O–O 0.6 Å: under 0.7 × 1.32 Å
    pairs, distances = report.close_contacts(positions, np.array([8, 8, 26]))
    assert pairs.tolist() == [[0, 1]] and distances == pytest.approx([0.6])
    assert report.describe_contacts(pairs, distances, np.array([8, 8, 26])) == "O–O 0.60 Å"
    assert report.contact_notes(pairs, distances, np.array([8, 8, 26])) == ["O–O 0.60 Å", "O–O 0.60 Å", ""]


def test_percentile_among_reference_scores() -> None:
    np.testing.assert_allclose(report.percentile_among(np.array([0.5, 0.95, 2.0]), np.array([0.9, 0.95, 0.99, 1.0])),
                               [0, 50, 100])


def test_realism_caveat_only_when_the_score_does_not_separate_real_from_random_gas() -> None:
    def samples(auc):
        return {"realism": {"out_of_distribution": {"auc_real_above": auc}}}

    assert report.realism_caveat(samples(0.91)) is None
    assert report.realism_caveat(samples(None)) is None and report.realism_caveat({}) is None
    caveat = report.realism_caveat(samples(0.40))
    assert "ROC AUC 0.40" in caveat and "60 %" in caveat


def test_read_samples_gives_an_empty_dict_for_a_missing_corrupt_or_non_object_file(tmp_path) -> None:
    assert report.read_samples(tmp_path) == {}
    (tmp_path / "samples.json").write_text("{not json")
    assert report.read_samples(tmp_path) == {}
    (tmp_path / "samples.json").write_text("[1, 2]")
    assert report.read_samples(tmp_path) == {}
    (tmp_path / "samples.json").write_text('{"realism": {"out_of_distribution": {"auc_real_above": 0.4}}}')
    assert report.realism_caveat(report.read_samples(tmp_path)) is not None


@pytest.mark.parametrize("representation", ["single", "lattice"])
def test_cell_frame_shift_brings_placed_sites_back_to_the_input_cell(perovskite_arrays: CrystalArrays, rng, representation) -> None:
    a = perovskite_arrays
    if representation == "single":
        rotation = fit_rotation(compact_cluster(a.lattice, a.frac_coords), rng)
        placement = Placement(single_cell_positions(compact_cluster(a.lattice, a.frac_coords), rotation), a.atomic_numbers,
                              rotation, np.zeros(3))
    else:
        rotation, shift = fit_rotation(np.zeros((1, 3)), rng), rng.random(3)
        positions, numbers = lattice_positions(a.lattice, a.frac_coords, a.atomic_numbers, rotation, shift)
        placement = Placement(positions, numbers, rotation, shift)
    placed = structure_in_cell(placement.positions, placement.atomic_numbers, placed_lattice(a.lattice, rotation))
    back = report.in_input_cell(placed, a.lattice, report.cell_frame_shift(a.lattice, a.frac_coords, placement, representation))
    assert len(back) == 5
    assert not report.site_mismatches(a.to_structure(), back).any()


def test_metrics_tables_and_sentence_from_a_shipped_checkpoint() -> None:
    path = CHECKPOINTS / "single_cell" / "metrics.json"
    if not path.is_file():
        pytest.skip("no shipped metrics.json")
    metrics = json.loads(path.read_text())
    table = report.metrics_table(metrics, "single")
    assert {"Materials Project", "Perov-5", "Carbon-24"} <= set(table.columns)
    flat = report.flat_metrics_table(metrics)
    row = flat[flat["metric"] == "atoms within 0.5 Å"].iloc[0]
    assert row["value"] == f"{100 * metrics['atoms_within_0.5A']:.1f}" and row["unit"] == "%"
    sentence = report.held_out_sentence(metrics, "single")
    assert sentence.startswith(f"On {metrics['n_structures']} held-out crystals") and sentence.count(".") >= 1
    assert ("under-trained" in sentence) == (metrics["atoms_within_0.5A"] < 0.891)


def test_metrics_table_gives_distance_percentiles_per_source_and_unmatched_as_infinite() -> None:
    per = {"atoms_within_0.5A": 0.5, "distance_percentiles_true_to_pred": {"50": 0.3, "90": float("inf")}}
    metrics = {"atoms_within_0.5A": 0.5, "distance_percentiles_true_to_pred": {"50": 0.25, "90": 1.5},
               "per_source": {"perov_5_val.csv.gz": per, "mp_bulk.npz": {"atoms_within_0.5A": 0.5}}}
    table = report.metrics_table(metrics, "lattice").set_index("metric")
    assert table.loc["median true → decoded distance", "Perov-5"] == "0.30 Å"
    assert table.loc["median true → decoded distance", "all"] == "0.25 Å"
    assert table.loc["90th percentile true → decoded distance", "Perov-5"].startswith("∞")
    assert table.loc["90th percentile true → decoded distance", "Materials Project (bulk)"] == "—"
    assert table.loc["90th percentile true → decoded distance", "paper"] == "2 Å"
    # metrics.json writes a percentile the decoded atoms cannot reach as null: infinite, not missing
    metrics["per_source"]["perov_5_val.csv.gz"]["distance_percentiles_true_to_pred"]["90"] = None
    metrics["distance_percentiles_true_to_pred"]["90"] = None
    table = report.metrics_table(metrics, "lattice").set_index("metric")
    assert table.loc["90th percentile true → decoded distance", "all"].startswith("∞")
    assert table.loc["90th percentile true → decoded distance", "Perov-5"].startswith("∞")


def test_ledger_table_counts_samples_across_stages_and_shows_validation_where_recorded():
    meta = {"training_stages": [
        {"stage": 0, "steps": 10, "device": "NVIDIA H100 80GB HBM3"},  # an old entry: steps only, batch 64
        {"stage": 1, "samples": 100, "minutes": 12.4, "lr": 3e-5, "device": "cpu (1 threads)", "what": "decoder",
         "validation": {"atoms_within_0.5A": 0.5, "count_exact": 0.25, "species_exact": 0.125}},
    ]}
    table = report.ledger_table(meta)
    assert list(table["samples seen"]) == ["640", "740"] and list(table["device"]) == ["H100", "cpu (1 threads)"]
    assert table["val atoms within 0.5 Å (%)"].tolist() == ["", "50.0"] and table["lr"].iloc[1] == "3e-05"
    assert report.training_summary(meta) == {"stages": 2, "gpu_stages": 1, "cpu_stages": 1, "samples": 740,
                                             "minutes": 12.4}


def test_decoding_description_says_how_the_metrics_were_decoded():
    from crystal_explorer.report import decoding_description

    assert decoding_description({}) == "posterior means decoded as they are (not refined); one orientation per crystal"
    text = decoding_description({"refinement": {"steps": 20}, "consensus": {"orientations": 7, "min_support": None}})
    assert "refined for 20 steps" in text and "7 orientations" in text and "4 of them" in text
