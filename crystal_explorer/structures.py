"""Reading and validating crystal structures (CIF, POSCAR, datasets) and turning them into plain arrays.

pymatgen stays here, at the edge: everything downstream works on `CrystalArrays`.
"""

from __future__ import annotations

import collections
import functools
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
MAX_SITES = 1000  # too many atoms for the 10 Å cube: at real densities (≤ 0.3 atoms/Å³) it shows a few hundred
MAX_SYMMETRY_OPERATIONS = 192  # the most any space group has (Fm-3m, conventional setting)
MIN_DISTANCE_ANGSTROM = 0.5  # closest allowed approach of two atoms, periodic images included
_MAX_ATOMS_PER_CUBIC_ANGSTROM = 11.3  # 0.5 Å apart at most packs 0.74 / (4/3 π 0.25³) atoms per Å³
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


def guess_format(name: str) -> Literal["cif", "poscar"]:
    """A file's format from its name: POSCAR/CONTCAR/.vasp are VASP files, everything else is read as CIF."""
    lower = name.lower()
    if lower.endswith(".cif"):
        return "cif"
    if "poscar" in lower or "contcar" in lower or lower.endswith(".vasp"):
        return "poscar"
    return "cif"


def _decode(data: bytes) -> str:
    """Text of a file's bytes: UTF-8 (a byte-order mark dropped) or UTF-16 with its byte-order mark."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


_CIF_TOKEN = re.compile(r"""'[^'\n]*'|"[^"\n]*"|#[^\n]*|\S+""")
_COORDINATE_TAGS = (("_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z"),
                    ("_atom_site_cartn_x", "_atom_site_cartn_y", "_atom_site_cartn_z"))
_SYMOP_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz",
               "_space_group_symop.operation_xyz", "_symmetry_equiv.pos_as_xyz")
_SYMBOL_TAGS = ("_symmetry_space_group_name_h-m", "_space_group_name_h-m_alt", "_space_group.name_h-m_alt")
_NUMBER_TAGS = ("_symmetry_int_tables_number", "_space_group_it_number", "_space_group.it_number")


def _cif_values(block: str) -> dict[str, list[str]]:
    """Tag (lower case) → its values in one CIF data block: one value outside a loop, a column inside one.

    A small tokenizer (quotes, comments, semicolon text fields) that reads no number and expands nothing,
    so that it costs milliseconds whatever the file.
    """
    tokens: list[str] = []
    lines = block.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith(";"):  # a text field runs to the next line that starts with ';'
            i += 1
            while i < len(lines) and not lines[i].startswith(";"):
                i += 1
            tokens.append("?")
        else:
            tokens += [t for t in _CIF_TOKEN.findall(lines[i]) if not t.startswith("#")]
        i += 1
    values: dict[str, list[str]] = {}
    k = 0
    while k < len(tokens):
        token = tokens[k].lower()
        if token == "loop_":
            k += 1
            tags = []
            while k < len(tokens) and tokens[k].startswith("_"):
                tags.append(tokens[k].lower())
                k += 1
            start = k
            while k < len(tokens) and not tokens[k].startswith("_") and tokens[k].lower() != "loop_":
                k += 1
            cells = tokens[start:k]
            if tags and len(cells) % len(tags):
                raise CrystalExplorerError(
                    f"could not parse the CIF: a loop has {len(cells)} values for {len(tags)} columns ({tags[0]}, ...)")
            for j, tag in enumerate(tags):
                values[tag] = [c.strip("'\"") for c in cells[j :: len(tags)]]
        elif token.startswith("_"):
            values[token] = [tokens[k + 1].strip("'\"")] if k + 1 < len(tokens) else []
            k += 2
        else:
            k += 1
    return values


def _number(value: str) -> float:
    """A CIF number, its standard uncertainty '(n)' dropped; NaN when it is not a number ('?', '.')."""
    try:
        return float(value.split("(")[0])
    except ValueError:
        return float("nan")


def _symmetry_operations(values: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray] | None:
    """Rotations (O, 3, 3) and translations (O, 3) the CIF lists or names; None when they cannot be told cheaply."""
    from pymatgen.core.operations import SymmOp

    for tag in _SYMOP_TAGS:
        if tag in values:
            ops = values[tag]
            if len(ops) > MAX_SYMMETRY_OPERATIONS:
                raise CrystalExplorerError(
                    f"the CIF lists {len(ops)} symmetry operations; no space group has more than {MAX_SYMMETRY_OPERATIONS}")
            try:
                parsed = [SymmOp.from_xyz_str(op) for op in ops]
            except Exception:  # noqa: BLE001 - an unreadable operation: pymatgen will say what is wrong
                return None
            return np.array([op.rotation_matrix for op in parsed]), np.array([op.translation_vector for op in parsed])
    symbol = next((values[t][0] for t in _SYMBOL_TAGS if values.get(t)), None)
    number = next((values[t][0] for t in _NUMBER_TAGS if values.get(t)), None)
    if (symbol is None or symbol.replace(" ", "").upper() == "P1") and number in (None, "1", "?", "."):
        return np.eye(3)[None], np.zeros((1, 3))
    return None


@functools.lru_cache(maxsize=1)
def _hall_numbers() -> dict[str, int]:
    """Space-group symbol (upper case, no spaces or underscores) or number → a Hall number of spglib's tables
    (pymatgen's `SpaceGroup` takes seconds to load its own)."""
    import spglib

    table: dict[str, int] = {}
    for hall in range(1, 531):
        group = spglib.get_spacegroup_type(hall)
        for key in (group.international_short, group.international_full, group.international, str(group.number)):
            table.setdefault(key.replace(" ", "").replace("_", "").upper(), hall)
    return table


def _expanded_site_count(values: dict[str, list[str]], frac: np.ndarray) -> int:
    """How many sites pymatgen will make of the rows `frac` (R, 3): each row's distinct images under the
    CIF's symmetry operations (to 10⁻³ of the cell); R when the operations cannot be told (pymatgen then
    decides, or fails on, what the CIF means)."""
    ops = _symmetry_operations(values)
    if ops is None:
        if len(frac) * MAX_SYMMETRY_OPERATIONS <= MAX_SITES:
            return len(frac)  # within the limit whatever the group
        symbol = next((values[t][0] for t in _SYMBOL_TAGS + _NUMBER_TAGS if values.get(t)), "")
        hall = _hall_numbers().get(symbol.replace(" ", "").replace("_", "").upper())
        if hall is None:  # a symbol only pymatgen's CIF parser knows
            return len(frac)
        import spglib

        database = spglib.get_symmetry_from_database(hall)
        ops = (np.asarray(database["rotations"], float), np.asarray(database["translations"], float))
    rotations, translations = ops
    images = np.einsum("oij,rj->roi", rotations, np.nan_to_num(frac)) + translations[None]  # (R, O, 3)
    keys = np.round(images * 1000).astype(np.int64) % 1000
    keys = ((np.arange(len(frac))[:, None] * 1000 + keys[..., 0]) * 1000 + keys[..., 1]) * 1000 + keys[..., 2]
    return len(np.unique(keys))


def check_cif_text(text: str) -> str:
    """Cheap checks of a CIF before pymatgen reads it (which expands symmetry in time that grows with the
    square of the site count: minutes for 15,625 sites); returns the first data block that has atom sites.

    Raises:
        CrystalExplorerError: no atom sites, a malformed loop, NaN or infinite numbers, a cell length that is
            not positive or angles that do not close a cell, or more sites than `MAX_SITES` after symmetry.
    """
    blocks = [b for b in re.split(r"(?im)^[ \t]*(?=data_)", text) if b.lstrip().lower().startswith("data_")]
    for block in blocks:
        values = _cif_values(block)
        columns = next((c for c in _COORDINATE_TAGS if all(t in values for t in c)), None)
        if columns is not None:
            break
    else:
        raise CrystalExplorerError("could not parse the CIF: it has no atom sites (_atom_site_fract_x, _y, _z)")
    rows = len(values[columns[0]])
    if rows > MAX_SITES:
        raise CrystalExplorerError(f"too many atoms for the cube: the CIF lists {rows} sites; at most {MAX_SITES} are supported")
    cell_tags = [f"_cell_{n}" for n in ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")]
    texts = [v for tag in (*columns, *cell_tags) for v in values.get(tag, [])[:rows or 1]]
    if any(v.strip().lower().lstrip("+-") in ("nan", "inf", "infinity") for v in texts):
        raise CrystalExplorerError("the CIF has NaN or infinite coordinates or cell parameters")
    cell = [_number(values[tag][0]) if values.get(tag) else float("nan") for tag in cell_tags]
    for name, length in zip("abc", cell[:3], strict=True):
        if length <= 0:
            raise CrystalExplorerError(f"the cell length {name} is {length:g} Å; cell lengths must be positive")
    angles = cell[3:]
    if all(np.isfinite(angles)):  # an unreadable parameter ('?') is left for pymatgen to report
        if not all(0 < a < 180 for a in angles):
            raise CrystalExplorerError(f"the cell angles {angles[0]:g}, {angles[1]:g}, {angles[2]:g}° are not all between 0 and 180°")
        c = np.cos(np.radians(angles))
        if 1 - (c**2).sum() + 2 * c.prod() <= 1e-6:
            raise CrystalExplorerError(f"the cell angles {angles[0]:g}, {angles[1]:g}, {angles[2]:g}° do not close a cell")
    coords = np.array([[_number(v) for v in values[tag]] for tag in columns]).T.reshape(-1, 3)
    if columns is _COORDINATE_TAGS[0] and rows > 0:
        n_sites = _expanded_site_count(values, coords)
        if n_sites > MAX_SITES:
            raise CrystalExplorerError(
                f"too many atoms for the cube: the CIF's {rows} sites expand by symmetry to {n_sites}; "
                f"at most {MAX_SITES} are supported")
    return block


def structure_from_text(
    text: str | bytes,
    fmt: Literal["cif", "poscar"] = "cif",
    *,
    majority_species: bool = False,
    max_z: int = MAX_Z,
) -> tuple[Structure, list[str]]:
    """Parse and validate one structure; returns it with pymatgen's warnings as strings.

    Text may carry a byte-order mark and CRLF or CR line ends. A CIF is checked cheaply first
    (`check_cif_text`) and only its first data block with atom sites is parsed.

    Raises:
        CrystalExplorerError: empty, binary, too large, unparsable, or failing `validate_structure`.
    """
    if fmt not in ("cif", "poscar"):
        raise CrystalExplorerError(f"Invalid {fmt=}, valid options are 'cif', 'poscar'")
    if len(text) > MAX_UPLOAD_BYTES:
        raise CrystalExplorerError(f"file is {len(text) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    if isinstance(text, bytes):
        text = _decode(text)
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise CrystalExplorerError("the file is empty")
    if "\x00" in text:
        raise CrystalExplorerError(f"this is a binary file, not a {fmt.upper()}")
    if fmt == "cif":
        if "_cell_length_a" not in text and "data_" not in text:
            raise CrystalExplorerError("this is not a CIF: no 'data_' block and no '_cell_length_a'")
        text = check_cif_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = Structure.from_str(text, fmt=fmt)
        except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for malformed files
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CrystalExplorerError(f"could not parse the {fmt.upper()}: {detail}") from None
    messages = [str(w.message).splitlines()[0] for w in caught]
    return validate_structure(structure, majority_species=majority_species, max_z=max_z), messages


def closest_approach(structure: Structure, cutoff: float = MIN_DISTANCE_ANGSTROM) -> tuple[float, int, int] | None:
    """The shortest distance in Å between two sites (periodic images included, a site and its own image
    too) with the two site indices, when it is below `cutoff` Å; else None."""
    centres, points, images, distances = structure.get_neighbor_list(cutoff, exclude_self=False)
    real = ~((centres == points) & (np.abs(images).sum(1) == 0))  # a site is no neighbour of itself
    if not real.any():
        return None
    k = int(np.argmin(np.where(real, distances, np.inf)))
    return float(distances[k]), int(centres[k]), int(points[k])


def validate_structure(structure: Structure, *, majority_species: bool = False, max_z: int = MAX_Z) -> Structure:
    """Check a structure can be represented; with `majority_species`, disordered sites take their majority species.

    Raises:
        CrystalExplorerError: no sites, too many sites, NaN coordinates, degenerate lattice, partial
            occupancy (without `majority_species`), an element the model does not know, or atoms closer
            than `MIN_DISTANCE_ANGSTROM` (periodic images included).
    """
    from pymatgen.core.periodic_table import DummySpecies

    if len(structure) == 0:
        raise CrystalExplorerError("the structure has no sites")
    if len(structure) > MAX_SITES:
        raise CrystalExplorerError(f"too many atoms for the cube: the structure has {len(structure)} sites; at most {MAX_SITES} are supported")
    matrix = np.asarray(structure.lattice.matrix, float)
    if not np.isfinite(matrix).all() or not np.isfinite(structure.frac_coords).all():
        raise CrystalExplorerError("the structure has NaN or infinite lattice parameters or coordinates")
    if abs(np.linalg.det(matrix)) < 1e-3:
        raise CrystalExplorerError("the lattice has zero volume")
    for site in structure:
        for species in site.species:
            if isinstance(species, DummySpecies):
                raise CrystalExplorerError(f"unknown element {species.symbol!r}")
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
    # overlap is certain above this density, and the neighbour search below would grow with its square
    if len(structure) > 1 and len(structure) / structure.volume > _MAX_ATOMS_PER_CUBIC_ANGSTROM:
        raise CrystalExplorerError(
            f"atoms overlap: {len(structure)} atoms in {structure.volume:.3g} Å³ cannot all be "
            f"{MIN_DISTANCE_ANGSTROM} Å apart (periodic images included)")
    close = closest_approach(structure)
    if close is not None:
        d, i, j = close
        what = f"site {i + 1} ({structure[i].species_string}) and its own periodic image" if i == j else (
            f"sites {i + 1} ({structure[i].species_string}) and {j + 1} ({structure[j].species_string})")
        raise CrystalExplorerError(
            f"atoms overlap: {what} are {d:.2f} Å apart (periodic images included); at least {MIN_DISTANCE_ANGSTROM} Å is required")
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
        path.read_bytes(), guess_format(path.name), majority_species=majority_species, max_z=max_z
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


def _is_structure_file(path: Path) -> bool:
    return path.suffix.lower() == ".cif" or "poscar" in path.name.lower() or "contcar" in path.name.lower()


def _is_table(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz"))


def _dataset_rows(path: Path, index_prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """(material_id, text, format) for each row of a CSV(.gz) with a `cif` column or file of a folder;
    rows with no `material_id` column are named `index_prefix` + their row number."""
    if path.is_dir():
        for file in sorted(path.iterdir()):
            if file.is_file() and _is_structure_file(file):
                yield file.stem, file.read_text(errors="replace"), guess_format(file.name)
        return
    import pandas as pd

    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt") as handle:
            frame = pd.read_csv(io.StringIO(handle.read()))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CrystalExplorerError(f"could not read {path.name} as a CSV: {detail}") from None
    if "cif" not in frame.columns:
        raise CrystalExplorerError(f"{path.name} has no 'cif' column (columns: {', '.join(map(str, frame.columns))})")
    ids = frame["material_id"].astype(str) if "material_id" in frame.columns else index_prefix + frame.index.astype(str)
    for material_id, cif in zip(ids, frame["cif"], strict=True):
        yield str(material_id), str(cif), "cif"


@dataclass(frozen=True)
class Source:
    """One crystal named on a command line: a file (read when needed) or a CSV row's text, or a refusal."""

    id: str
    fmt: Literal["cif", "poscar"] = "cif"
    path: Path | None = None
    text: str | None = None
    refusal: str = ""  # why the input was refused before any structure was read

    def read(self, *, majority_species: bool = False, max_z: int = MAX_Z) -> tuple[Structure, list[str]]:
        """The validated structure and pymatgen's warnings (`read_structure`, `structure_from_text`)."""
        if self.refusal:
            raise CrystalExplorerError(self.refusal)
        if self.path is not None:
            return read_structure(self.path, majority_species=majority_species, max_z=max_z)
        return structure_from_text(self.text or "", self.fmt, majority_species=majority_species, max_z=max_z)


def read_sources(paths: list[str | Path]) -> list[Source]:
    """One `Source` per crystal in CIF or POSCAR files, folders of them and CSV(.gz) files with a `cif` column.

    A path that gives no crystal (missing, a CSV with no `cif` column, a folder with no CIF) becomes one
    refused Source named after it, so that one bad input does not stop the others.
    """
    sources: list[Source] = []
    for path in map(Path, paths):
        name = path.name.removesuffix(".gz").removesuffix(".csv") if _is_table(path) else path.stem
        try:
            if path.is_dir():
                files = [f for f in sorted(path.iterdir()) if f.is_file() and _is_structure_file(f)]
                if not files:
                    raise CrystalExplorerError(f"no CIF or POSCAR files in {path}")
                sources += [Source(f.stem, guess_format(f.name), path=f) for f in files]
            elif _is_table(path) and path.is_file():
                sources += [Source(i, "cif", text=text) for i, text, _ in _dataset_rows(path, index_prefix=f"{name}-")]
            else:
                sources.append(Source(name or str(path), guess_format(path.name), path=path))
        except CrystalExplorerError as exc:
            sources.append(Source(name or str(path), refusal=str(exc)))
    return sources


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
