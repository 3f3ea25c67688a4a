"""The Markdown table of a metrics.json: one column per source, percentages, 'old → new' against a baseline."""

from __future__ import annotations

from train.tables import main, markdown_table


def _metrics(atoms: float, median: float | None) -> dict:
    source = {"n_structures": 3, "atoms_within_0.5A": atoms, "count_exact": 0.5,
              "distance_percentiles_true_to_pred": {"50": median, "75": 1.0, "90": None}}
    return {**source, "n_structures": 6, "per_source": {"perov_5_val.csv.gz": source, "mp_bulk.npz": dict(source)}}


def test_columns_rows_and_the_change_against_a_baseline():
    lines = markdown_table(_metrics(0.75, 0.1), before=_metrics(0.5, 0.1)).splitlines()
    assert lines[0] == "| metric | all (6) | Perov-5 (3) | Materials Project (bulk) (3) |"
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in lines[2:]}
    assert set(rows) == {"true atoms within 0.5 Å", "exact atom count", "true→decoded 50/75/90 % (Å)"}
    assert "50.0 % → 75.0 %" in rows["true atoms within 0.5 Å"]
    assert rows["exact atom count"].count("→") == 0  # unchanged cells show the value once
    assert "0.10 / 1.00 / ∞" in rows["true→decoded 50/75/90 % (Å)"]


def test_a_file_that_is_not_json_is_one_line(tmp_path, capsys):
    (tmp_path / "m.json").write_text("{not json")
    assert main([str(tmp_path / "m.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
