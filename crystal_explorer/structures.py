"""Reading and validating crystal structures (CIF, POSCAR, datasets) and turning them into plain arrays.

pymatgen stays here, at the edge: everything downstream works on `CrystalArrays`.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import importlib.resources
import io
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pymatgen.core import Structure

from crystal_explorer.arrays import CrystalArrays
from crystal_explorer.errors import CrystalExplorerError

MAX_Z = 94
MAX_UPLOAD_BYTES = 5_000_000
MAX_SITES = 1000
EXAMPLE_NAMES = ("Si", "CsCl", "SrTiO3", "Graphite", "TiO2", "Li2O", "VO2", "LiFePO4", "BaNiO3", "SiO2")

Split = Literal["train", "val", "test"]


def crystal_arrays(structure: Structure, material_id: str = "", reduce: bool = True) -> CrystalArrays:
    """Arrays of an ordered structure, on its Niggli-reduced cell when `reduce` (the most compact cell)."""
    if reduce:
        try:
            structure = structure.get_reduced_structure("niggli")
        except Exception:  # noqa: BLE001 - a degenerate cell keeps its own basis
            pass
    return CrystalArrays(
        lattice=np.array(structure.lattice.matrix, dtype=float),
        frac_coords=np.array(structure.frac_coords, dtype=float) % 1.0,
        atomic_numbers=np.array([site.specie.Z for site in structure], dtype=np.int64),
        material_id=material_id,
    )


def _guess_format(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".cif"):
        return "cif"
    if "poscar" in lower or "contcar" in lower or lower.endswith(".vasp"):
        return "poscar"
    return "cif"


def structure_from_text(
    text: str | bytes,
    fmt: Literal["cif", "poscar"] = "cif",
    *,
    majority_species: bool = False,
    max_z: int = MAX_Z,
) -> tuple[Structure, list[str]]:
    """Parse and validate one structure; returns it with pymatgen's warnings as strings.

    Raises:
        CrystalExplorerError: empty, too large, unparsable, or failing `validate_structure`.
    """
    if fmt not in ("cif", "poscar"):
        raise CrystalExplorerError(f"Invalid {fmt=}, valid options are 'cif', 'poscar'")
    if isinstance(text, bytes):
        if len(text) > MAX_UPLOAD_BYTES:
            raise CrystalExplorerError(f"file is {len(text) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
        text = text.decode("utf-8", errors="replace")
    if len(text) > MAX_UPLOAD_BYTES:
        raise CrystalExplorerError(f"file is {len(text) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    if not text.strip():
        raise CrystalExplorerError("the file is empty")
    if fmt == "cif" and "_cell_length_a" not in text and "data_" not in text:
        raise CrystalExplorerError("this is not a CIF: no 'data_' block and no '_cell_length_a'")
    if fmt == "cif" and re.search(r"(?im)^\s*\S+(\s+\S+)*\s+[-+]?(nan|inf)\b", text):
        raise CrystalExplorerError("the CIF has NaN or infinite coordinates or cell parameters")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = Structure.from_str(text, fmt=fmt)
        except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for malformed files
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CrystalExplorerError(f"could not parse the {fmt.upper()}: {detail}") from None
    messages = [str(w.message).splitlines()[0] for w in caught]
    return validate_structure(structure, majority_species=majority_species, max_z=max_z), messages


def validate_structure(structure: Structure, *, majority_species: bool = False, max_z: int = MAX_Z) -> Structure:
    """Check a structure can be represented; with `majority_species`, disordered sites take their majority species.

    Raises:
        CrystalExplorerError: no sites, too many sites, NaN coordinates, degenerate lattice, partial
            occupancy (without `majority_species`), or an element the model does not know.
    """
    if len(structure) == 0:
        raise CrystalExplorerError("the structure has no sites")
    if len(structure) > MAX_SITES:
        raise CrystalExplorerError(f"the structure has {len(structure)} sites; at most {MAX_SITES} are supported")
    matrix = np.asarray(structure.lattice.matrix, float)
    if not np.isfinite(matrix).all() or not np.isfinite(structure.frac_coords).all():
        raise CrystalExplorerError("the structure has NaN or infinite lattice parameters or coordinates")
    if abs(np.linalg.det(matrix)) < 1e-3:
        raise CrystalExplorerError("the lattice has zero volume")
    if not structure.is_ordered:
        if not majority_species:
            raise CrystalExplorerError(
                "the structure has partial occupancies; enable 'majority species' to keep the most "
                "occupied species of each site"
            )
        species = [max(site.species.items(), key=lambda kv: kv[1])[0] for site in structure]
        structure = Structure(structure.lattice, species, structure.frac_coords)
    for site in structure:
        z = getattr(site.specie, "Z", 0)
        if not 1 <= z <= max_z:
            raise CrystalExplorerError(f"element {site.specie} is not supported (atomic numbers 1 to {max_z})")
    return structure


def read_structure(
    path: str | Path, *, majority_species: bool = False, max_z: int = MAX_Z
) -> tuple[Structure, list[str]]:
    """Read and validate one structure from a CIF or POSCAR file (format from the file name)."""
    path = Path(path)
    if not path.is_file():
        raise CrystalExplorerError(f"no such file: {path}")
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise CrystalExplorerError(f"{path.name} is larger than {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    return structure_from_text(
        path.read_bytes(), _guess_format(path.name), majority_species=majority_species, max_z=max_z
    )


def split_of(material_id: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> Split:
    """Deterministic split from a SHA-256 hash of the material id: the same id always lands in the same part."""
    u = int(hashlib.sha256(str(material_id).encode()).hexdigest()[:12], 16) / 16**12
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


@dataclass
class Dataset:
    """Structures loaded from a CSV or folder, with what was skipped and why."""

    ids: list[str] = field(default_factory=list)
    structures: list[Structure] = field(default_factory=list)
    skipped: collections.Counter = field(default_factory=collections.Counter)

    def __len__(self) -> int:
        return len(self.structures)


def _dataset_rows(path: Path) -> Iterator[tuple[str, str, str]]:
    """(material_id, text, format) for each row of a CSV(.gz) with a `cif` column or file of a folder."""
    if path.is_dir():
        for file in sorted(path.iterdir()):
            if file.is_file() and (file.suffix.lower() == ".cif" or "poscar" in file.name.lower()):
                yield file.stem, file.read_text(errors="replace"), _guess_format(file.name)
        return
    import pandas as pd

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        frame = pd.read_csv(io.StringIO(handle.read()))
    if "cif" not in frame.columns:
        raise CrystalExplorerError(f"{path.name} has no 'cif' column (columns: {', '.join(map(str, frame.columns))})")
    ids = frame["material_id"].astype(str) if "material_id" in frame.columns else frame.index.astype(str)
    for material_id, cif in zip(ids, frame["cif"], strict=True):
        yield str(material_id), str(cif), "cif"


def load_dataset(
    path: str | Path,
    *,
    limit: int | None = None,
    split: Split | None = None,
    majority_species: bool = False,
    max_z: int = MAX_Z,
    progress: bool = True,
) -> Dataset:
    """Load structures from a CSV/CSV.gz with a `cif` column (and `material_id`) or a folder of CIFs.

    Args:
        limit: stop after this many structures are kept.
        split: keep only rows whose `split_of(material_id)` is this part.
    """
    path = Path(path)
    if not path.exists():
        raise CrystalExplorerError(f"no such dataset: {path}")
    from tqdm import tqdm

    data = Dataset()
    rows = _dataset_rows(path)
    for material_id, text, fmt in tqdm(rows, desc=f"reading {path.name}", disable=not progress, unit=" rows"):
        if split is not None and split_of(material_id) != split:
            continue
        try:
            structure, _ = structure_from_text(text, fmt, majority_species=majority_species, max_z=max_z)
        except CrystalExplorerError as exc:
            data.skipped[str(exc).split(":")[0]] += 1
            continue
        data.ids.append(material_id)
        data.structures.append(structure)
        if limit is not None and len(data) >= limit:
            break
    return data


def example_structures() -> dict[str, Structure]:
    """A few well-known crystals shipped with pymatgen (pymatgen/util/structures), by name."""
    folder = importlib.resources.files("pymatgen.util") / "structures"
    out = {}
    for name in EXAMPLE_NAMES:
        resource = folder / f"{name}.json"
        if resource.is_file():
            out[name] = Structure.from_dict(json.loads(resource.read_text()))
    return out
