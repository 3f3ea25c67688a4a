"""One dataset row by its number: bounds are checked at once, the row is parsed alone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pymatgen.io.cif import CifWriter

from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.rows import read_table, row_structure


def test_a_row_past_the_end_is_refused_without_parsing(tmp_path: Path, perovskite) -> None:
    path = tmp_path / "t.csv.gz"
    pd.DataFrame({"material_id": ["x", "broken"], "cif": [str(CifWriter(perovskite)), "garbage"]}).to_csv(path)
    table = read_table(path)
    material_id, structure, _ = row_structure(table, 0)
    assert material_id == "x" and structure.composition.reduced_formula == "SrTiO3"
    with pytest.raises(CrystalExplorerError, match="has 2 rows"):
        row_structure(table, 2)
    with pytest.raises(CrystalExplorerError):
        row_structure(table, 1)  # the broken row fails alone


def test_missing_file_or_column(tmp_path: Path) -> None:
    with pytest.raises(CrystalExplorerError, match="no such"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CrystalExplorerError, match="no 'cif' column"):
        read_table(tmp_path / "x.csv")
