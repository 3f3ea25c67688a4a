"""One row of a dataset table (CSV or CSV.gz with a `cif` column) by its number, parsed alone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pymatgen.core import Structure

from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.structures import structure_from_text


def read_table(path: str | Path) -> pd.DataFrame:
    """The table's rows (unparsed CIF text and whatever else it holds); raises when it is missing or has no 'cif'."""
    path = Path(path)
    if not path.is_file():
        raise CrystalExplorerError(f"no such dataset file: {path}")
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a file the user must fix
        raise CrystalExplorerError(f"{path.name} is not a readable CSV ({exc})") from exc
    if "cif" not in frame.columns:
        raise CrystalExplorerError(f"{path.name} has no 'cif' column (columns: {', '.join(map(str, frame.columns))})")
    return frame


def material_ids(frame: pd.DataFrame) -> list[str]:
    """Each row's id as the training split reads it: the `material_id` column, else the row number."""
    if "material_id" in frame.columns:
        return [str(m) for m in frame["material_id"]]
    return [str(i) for i in range(len(frame))]


def row_structure(frame: pd.DataFrame, row: int, name: str = "the table") -> tuple[str, Structure, list[str]]:
    """(material id, structure, pymatgen's warnings) of row `row` (0-based); a row past the end raises at once."""
    if not 0 <= row < len(frame):
        raise CrystalExplorerError(f"{name} has {len(frame)} rows: choose a row from 0 to {len(frame) - 1}")
    material_id = str(frame["material_id"].iloc[row]) if "material_id" in frame.columns else str(row)  # material_ids' rule, one row
    structure, warnings = structure_from_text(str(frame["cif"].iloc[row]), "cif")
    return material_id, structure, warnings
