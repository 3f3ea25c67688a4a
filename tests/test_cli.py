"""`python -m crystal_explorer`: files a pymatgen reader accepts, and one clear line on bad input."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from crystal_explorer import report
from crystal_explorer.__main__ import SUMMARY_COLUMNS, main

ROOT = Path(__file__).resolve().parents[1]


def test_reconstruct_writes_readable_cif_png_and_summary(tmp_path, perovskite):
    cif = tmp_path / "srtio3.cif"
    perovskite.to(filename=str(cif))
    assert main(["reconstruct", str(cif), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    written = tmp_path / "out" / summary["decoded"]["file"]
    # a single cell carries no periodicity: the decoded atoms are wrapped into the input's own cell
    assert written.suffix == ".cif" and summary["decoded"]["lattice"] == "the input's cell"
    # the CIF is symmetrised: a space group found in the decoded atoms (e.g. Cm) may write a centred conventional
    # cell, whose primitive cell is the input's
    primitive = Structure.from_file(str(written)).get_primitive_structure()
    assert sorted(primitive.lattice.abc) == pytest.approx((3.905,) * 3, abs=1e-3)
    assert 0 < len(primitive) <= summary["decoded"]["n_atoms"]
    assert (tmp_path / "out" / "reconstruction.png").stat().st_size > 1000
    assert summary["metrics"]["n_true_atoms"] == 5


def test_lattice_reconstruct_always_writes_a_cif(tmp_path, rock_salt):
    cif = tmp_path / "nacl.cif"
    rock_salt.to(filename=str(cif))
    out = tmp_path / "out"
    assert main(["reconstruct", str(cif), "--checkpoint", str(ROOT / "checkpoints" / "lattice"), "--out", str(out),
                 "--device", "cpu"]) == 0
    decoded = json.loads((out / "summary.json").read_text())["decoded"]
    assert decoded["file"].endswith(".cif")
    # the lattice recovered from the decoded atoms, or else the input's own cell
    assert decoded["lattice"] in ("recovered from the decoded atoms", "the input's cell (none recovered)")
    assert len(Structure.from_file(str(out / decoded["file"]))) > 0


def test_sample_is_reproducible(tmp_path):
    for name in ("a", "b"):
        assert main(["sample", "--n", "2", "--seed", "3", "--out", str(tmp_path / name), "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())["samples"][1]
    assert (tmp_path / "a" / summary["file"]).read_text() == (tmp_path / "b" / summary["file"]).read_text()
    if summary["file"].endswith(".cif"):  # the single-cell model's cell head gave the draw a periodic cell
        assert summary["lattice"].startswith("predicted by the cell head")
        structure = Structure.from_file(tmp_path / "a" / summary["file"])
        assert len(structure) >= 1 and structure.volume > 1


@pytest.mark.parametrize("name", ["single_cell", "lattice"])
def test_sample_summary_carries_the_realism_caveat_where_the_score_is_near_chance(tmp_path, name):
    checkpoint = Path(__file__).resolve().parents[1] / "checkpoints" / name
    assert main(["sample", "--checkpoint", str(checkpoint), "--n", "1", "--out", str(tmp_path), "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    auc = json.loads((checkpoint / "samples.json").read_text())["realism"]["out_of_distribution"]["auc_real_above"]
    assert ("realism_caveat" in summary) == (auc < report.REALISM_AUC_USEFUL)


def test_traverse_and_interpolate_write_the_requested_frames(tmp_path, perovskite, rock_salt):
    a, b = tmp_path / "a.cif", tmp_path / "b.cif"
    perovskite.to(filename=str(a))
    rock_salt.to(filename=str(b))
    assert main(["interpolate", str(a), str(b), "--steps", "3", "--out", str(tmp_path / "i"), "--device", "cpu"]) == 0
    assert len(json.loads((tmp_path / "i" / "summary.json").read_text())["frames"]) == 3
    assert main(["traverse", str(a), "--dim", "4", "--frames", "5", "--out", str(tmp_path / "t"), "--device", "cpu"]) == 0
    assert len(json.loads((tmp_path / "t" / "summary.json").read_text())["frames"]) == 5


def test_malformed_cif_exits_nonzero_with_one_line(tmp_path):
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 3\nloop_\n_atom_site_label\n")
    result = subprocess.run([sys.executable, "-m", "crystal_explorer", "reconstruct", str(bad), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_refine_steps_are_recorded_and_a_negative_count_is_refused(tmp_path, perovskite, capsys):
    cif = tmp_path / "srtio3.cif"
    perovskite.to(filename=str(cif))
    for steps in ("0", "3"):
        out = tmp_path / f"out{steps}"
        assert main(["reconstruct", str(cif), "--out", str(out), "--device", "cpu", "--no-png", "--refine-steps", steps]) == 0
        assert json.loads((out / "summary.json").read_text())["refine_steps"] == int(steps)
    capsys.readouterr()
    assert main(["reconstruct", str(cif), "--out", str(tmp_path / "bad"), "--refine-steps", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--refine-steps" in err
    assert not (tmp_path / "bad" / "summary.json").exists()


def test_orientations_are_recorded_and_zero_is_refused(tmp_path, perovskite, capsys):
    cif = tmp_path / "srtio3.cif"
    perovskite.to(filename=str(cif))
    out = tmp_path / "out3"
    assert main(["reconstruct", str(cif), "--out", str(out), "--device", "cpu", "--no-png", "--refine-steps", "0",
                 "--orientations", "3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["orientations"] == 3 and summary["decoded"]["n_atoms"] == 5
    capsys.readouterr()
    assert main(["reconstruct", str(cif), "--out", str(tmp_path / "bad"), "--orientations", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--orientations" in err


def test_missing_checkpoint_exits_nonzero(tmp_path, perovskite):
    cif = tmp_path / "x.cif"
    perovskite.to(filename=str(cif))
    assert main(["reconstruct", str(cif), "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2


def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded for an input that should have been refused first")


def test_every_refused_input_exits_2_with_one_line_and_writes_nothing(tmp_path, refused_inputs, capsys, monkeypatch):
    from crystal_explorer.latent import CrystalModel

    monkeypatch.setattr(CrystalModel, "from_checkpoint", _no_model)  # refusals come before the model loads
    for i, (name, (data, reason)) in enumerate(refused_inputs.items()):
        cif = tmp_path / f"input{i}.cif"
        cif.write_bytes(data)
        out = tmp_path / f"out{i}"
        assert main(["reconstruct", str(cif), "--out", str(out), "--device", "cpu"]) == 2, name
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, lines)
        assert re.search(reason, lines[0]), (name, lines[0])
        assert not out.exists(), name


def test_a_cell_too_large_for_the_cube_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    from crystal_explorer.latent import CrystalModel

    monkeypatch.setattr(CrystalModel, "from_checkpoint", _no_model)
    sites = [[i / 3, j / 3, k / 3] for i in range(3) for j in range(3) for k in range(3)]
    cif = tmp_path / "large.cif"
    Structure(Lattice.cubic(20.0), ["Si"] * 27, sites).to(filename=str(cif))
    assert main(["reconstruct", str(cif), "--out", str(tmp_path / "out")]) == 2
    assert "does not fit the 10 Å cube" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batch_of_files_folders_and_csvs_writes_a_folder_per_crystal_and_summary_csv(tmp_path, perovskite, rock_salt,
                                                                                     hexagonal, refused_inputs):
    perovskite.to(filename=str(tmp_path / "srtio3.cif"))
    folder = tmp_path / "folder"
    folder.mkdir()
    hexagonal.to(filename=str(folder / "zno.cif"))
    (folder / "negative.cif").write_bytes(refused_inputs["negative cell length"][0])
    (tmp_path / "empty").mkdir()
    pd.DataFrame({"material_id": ["nacl", "sites-15625"],
                  "cif": [str(CifWriter(rock_salt)), refused_inputs["15,625 sites in a 40 Å cell"][0].decode()]}
                 ).to_csv(tmp_path / "rows.csv", index=False)
    pd.DataFrame({"structure": ["x"]}).to_csv(tmp_path / "nocif.csv", index=False)
    out = tmp_path / "out"
    inputs = ["srtio3.cif", "folder", "rows.csv", "nocif.csv", "empty", "absent.cif"]
    assert main(["reconstruct", *[str(tmp_path / i) for i in inputs], "--out", str(out), "--device", "cpu"]) == 0
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    assert [r["id"] for r in rows] == ["srtio3", "negative", "zno", "nacl", "sites-15625", "nocif", "empty", "absent"]
    good = {r["id"]: r for r in rows if not r["refusal"]}
    assert set(good) == {"srtio3", "zno", "nacl"}
    assert good["srtio3"]["formula_in"] == "SrTiO3" and int(good["srtio3"]["atoms_in"]) == 5
    assert good["nacl"]["formula_in"] == "NaCl" and int(good["nacl"]["atoms_in"]) == 8
    for name, row in good.items():
        assert 0 <= float(row["atoms_within_0.5A"]) <= 1 and float(row["seconds"]) > 0
        assert row["match"] in ("True", "False") and int(row["atoms_out"]) >= 0
        files = {p.name for p in (out / name).iterdir()}
        assert {"summary.json", "reconstruction.png"} <= files and files & {"reconstruction.cif", "reconstruction.xyz"}
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["id"] == name and summary["metrics"]["n_true_atoms"] == int(row["atoms_in"])
    refused = {r["id"]: r["refusal"] for r in rows if r["refusal"]}
    assert "cell length a" in refused["negative"] and "too many atoms for the cube" in refused["sites-15625"]
    assert "no 'cif' column" in refused["nocif"] and "no CIF or POSCAR" in refused["empty"]
    assert "no such file" in refused["absent"]
    assert all(r["formula_out"] == r["match"] == "" for r in rows if r["refusal"])
    # nothing is written for a refused crystal: only the good ones have folders
    assert {p.name for p in out.iterdir()} == {"summary.csv", *good}


def test_batch_with_nothing_usable_exits_2_with_one_line(tmp_path, refused_inputs, capsys):
    for name in ("empty", "binary garbage"):
        (tmp_path / f"{name}.cif").write_bytes(refused_inputs[name][0])
    out = tmp_path / "out"
    assert main(["reconstruct", str(tmp_path / "empty.cif"), str(tmp_path / "binary garbage.cif"), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # the progress bar's, then one error line
    assert lines[-1].startswith("error: none of the 2 inputs") and sum(line.startswith("error") for line in lines) == 1
    with open(out / "summary.csv", newline="") as handle:
        assert [r["id"] for r in csv.DictReader(handle)] == ["empty", "binary garbage"]
    assert {p.name for p in out.iterdir()} == {"summary.csv"}
