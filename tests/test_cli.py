"""`python -m crystal_explorer`: files a pymatgen reader accepts, and one clear line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pymatgen.core import Structure

from crystal_explorer.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_reconstruct_writes_readable_cif_png_and_summary(tmp_path, perovskite):
    cif = tmp_path / "srtio3.cif"
    perovskite.to(filename=str(cif))
    assert main(["reconstruct", str(cif), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    written = tmp_path / "out" / summary["decoded"]["file"]
    # a single cell carries no periodicity: the decoded atoms are wrapped into the input's own cell
    assert written.suffix == ".cif" and summary["decoded"]["lattice"] == "the input's cell"
    structure = Structure.from_file(str(written))
    assert structure.lattice.abc == pytest.approx((3.905,) * 3, abs=1e-3)
    assert 0 < len(structure) <= summary["decoded"]["n_atoms"]
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


def test_missing_checkpoint_exits_nonzero(tmp_path, perovskite):
    cif = tmp_path / "x.cif"
    perovskite.to(filename=str(cif))
    assert main(["reconstruct", str(cif), "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
