"""Tests of crystal_explorer.structures: parsing, validation, the id split and dataset loading."""

from __future__ import annotations

import collections
import gzip

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.structures import (
    check_cif_text,
    closest_approach,
    crystal_arrays,
    example_structures,
    load_dataset,
    read_sources,
    read_structure,
    split_of,
    structure_from_text,
    validate_structure,
)


def _cif(structure: Structure) -> str:
    return str(CifWriter(structure))


@pytest.fixture
def disordered() -> Structure:
    return Structure(Lattice.cubic(4.2), [{"Fe": 0.6, "Ni": 0.4}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_round_trip_of_a_valid_cif(perovskite):
    structure, _ = structure_from_text(_cif(perovskite))
    assert structure.composition.reduced_formula == "SrTiO3"
    assert structure.lattice.a == pytest.approx(3.905, abs=1e-6)


def test_bytes_input_is_accepted(rock_salt):
    structure, _ = structure_from_text(_cif(rock_salt).encode())
    assert len(structure) == len(rock_salt)


@pytest.mark.parametrize("text", ["", "   \n\t", b""])
def test_empty_file(text):
    with pytest.raises(CrystalExplorerError, match="empty"):
        structure_from_text(text)


def test_not_a_cif():
    with pytest.raises(CrystalExplorerError, match="not a CIF"):
        structure_from_text("Hello, I am a text file about crystals.\n")


def test_garbage_after_a_data_block():
    with pytest.raises(CrystalExplorerError, match="could not parse"):
        structure_from_text("data_broken\n_cell_length_a 3.0\n#### ??? loop_ ;;;\n")


def test_invalid_format_option(rock_salt):
    with pytest.raises(CrystalExplorerError, match="Invalid fmt"):
        structure_from_text(_cif(rock_salt), fmt="xyz")


def test_partial_occupancy_says_so_and_offers_majority_species(disordered):
    with pytest.raises(CrystalExplorerError, match="partial occupanc.*majority species"):
        structure_from_text(_cif(disordered))
    structure, _ = structure_from_text(_cif(disordered), majority_species=True)
    assert structure.is_ordered
    assert [site.specie.symbol for site in structure] == ["Fe", "O"]


def test_element_beyond_max_z(rock_salt):
    structure_from_text(_cif(rock_salt), max_z=17)  # Cl is Z = 17: allowed
    with pytest.raises(CrystalExplorerError, match=r"Cl is not supported \(atomic numbers 1 to 16\)"):
        structure_from_text(_cif(rock_salt), max_z=16)


def test_nan_coordinates_are_rejected():
    structure = Structure(Lattice.cubic(4.0), ["Fe", "O"], [[0, 0, 0], [np.nan, 0.5, 0.5]])
    with pytest.raises(CrystalExplorerError, match="NaN"):
        validate_structure(structure)


def test_nan_coordinates_in_cif_text_are_named():
    cif = _cif(Structure(Lattice.cubic(4.0), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    cif = cif.replace("0.50000000  0.50000000  0.50000000", "nan  0.50000000  0.50000000")
    with pytest.raises(CrystalExplorerError, match="NaN"):
        structure_from_text(cif)


def test_no_sites():
    with pytest.raises(CrystalExplorerError, match="no sites"):
        validate_structure(Structure(Lattice.cubic(4.0), [], []))


def test_read_structure_missing_file(tmp_path):
    with pytest.raises(CrystalExplorerError, match="no such file"):
        read_structure(tmp_path / "absent.cif")


def test_read_structure_poscar(tmp_path, hexagonal):
    path = tmp_path / "POSCAR"
    hexagonal.to(filename=str(path), fmt="poscar")
    structure, _ = read_structure(path)
    assert structure.composition.reduced_formula == "ZnO"


def test_crystal_arrays_of_a_niggli_cell(rock_salt):
    arrays = crystal_arrays(rock_salt, "mp-22862")
    assert arrays.n_atoms == len(rock_salt)  # Niggli reduces the basis, not the cell content
    assert sorted(arrays.atomic_numbers.tolist()) == [11] * 4 + [17] * 4
    assert ((arrays.frac_coords >= 0) & (arrays.frac_coords < 1)).all()
    assert abs(np.linalg.det(arrays.lattice)) == pytest.approx(rock_salt.volume, rel=1e-6)
    assert arrays.material_id == "mp-22862"
    back = arrays.to_structure()
    assert back.composition.reduced_formula == "NaCl"


def test_split_is_deterministic_and_roughly_80_10_10():
    ids = [f"mp-{i}" for i in range(10_000)]
    parts = [split_of(i) for i in ids]
    assert parts == [split_of(i) for i in ids]
    counts = collections.Counter(parts)
    assert counts["train"] / 10_000 == pytest.approx(0.8, abs=0.02)
    assert counts["val"] / 10_000 == pytest.approx(0.1, abs=0.015)
    assert counts["test"] / 10_000 == pytest.approx(0.1, abs=0.015)


def test_split_fractions_are_configurable():
    parts = collections.Counter(split_of(f"x{i}", val_fraction=0.3, test_fraction=0.0) for i in range(4000))
    assert parts["test"] == 0
    assert parts["val"] / 4000 == pytest.approx(0.3, abs=0.03)


def test_load_dataset_from_a_folder(tmp_path, rock_salt, perovskite, hexagonal, monoclinic):
    for name, s in {"a": rock_salt, "b": perovskite, "c": hexagonal, "d": monoclinic}.items():
        (tmp_path / f"{name}.cif").write_text(_cif(s))
    (tmp_path / "e.cif").write_text("data_bad\n_cell_length_a 1\n")
    (tmp_path / "notes.txt").write_text("not a structure")
    data = load_dataset(tmp_path, progress=False)
    assert data.ids == ["a", "b", "c", "d"]
    assert len(data) == 4
    assert sum(data.skipped.values()) == 1


def test_load_dataset_from_a_csv_reports_skipped_rows(tmp_path, rock_salt, perovskite, hexagonal, disordered):
    frame = pd.DataFrame({
        "material_id": ["mp-1", "mp-2", "mp-3", "mp-4", "mp-5"],
        "cif": [_cif(rock_salt), "this is not a cif", _cif(perovskite), _cif(disordered), _cif(hexagonal)],
    })
    path = tmp_path / "data.csv.gz"
    with gzip.open(path, "wt") as handle:
        frame.to_csv(handle, index=False)
    data = load_dataset(path, progress=False)
    assert data.ids == ["mp-1", "mp-3", "mp-5"]
    assert data.skipped["this is not a CIF"] == 1
    assert sum(data.skipped.values()) == 2
    assert len(data.skipped) == 2  # two different reasons, counted apart
    limited = load_dataset(path, limit=2, progress=False)
    assert limited.ids == ["mp-1", "mp-3"]
    majority = load_dataset(path, majority_species=True, progress=False)
    assert len(majority) == 4


def test_load_dataset_split_filter(tmp_path, rock_salt):
    ids = [f"id-{i}" for i in range(40)]
    pd.DataFrame({"material_id": ids, "cif": [_cif(rock_salt)] * 40}).to_csv(tmp_path / "d.csv", index=False)
    data = load_dataset(tmp_path / "d.csv", split="val", progress=False)
    assert data.ids == [i for i in ids if split_of(i) == "val"]


def test_load_dataset_errors(tmp_path):
    with pytest.raises(CrystalExplorerError, match="no such dataset"):
        load_dataset(tmp_path / "absent.csv", progress=False)
    pd.DataFrame({"structure": ["x"]}).to_csv(tmp_path / "nocif.csv", index=False)
    with pytest.raises(CrystalExplorerError, match="no 'cif' column"):
        load_dataset(tmp_path / "nocif.csv", progress=False)


def test_example_structures_are_valid():
    examples = example_structures()
    assert len(examples) >= 5
    for name, structure in examples.items():
        assert validate_structure(structure) is not None, name


def test_shared_data_loads(shared_data):
    data = load_dataset(shared_data / "mp_ground_states.csv.gz", limit=20, progress=False)
    assert len(data) == 20


def _never_parse(*args, **kwargs):
    raise AssertionError("pymatgen parsed a file that the cheap checks should have refused")


def test_every_refused_input_gives_one_clear_line(refused_inputs):
    for name, (data, reason) in refused_inputs.items():
        with pytest.raises(CrystalExplorerError, match=reason) as info:
            structure_from_text(data)
        assert "\n" not in str(info.value), name


@pytest.mark.parametrize("name", ["15,625 sites in a 40 Å cell", "10 rows × 192 operations", "300 symmetry operations",
                                  "10 rows in 'F m -3 m', no operations listed", "6 MB file", "negative cell length",
                                  "NaN coordinate", "binary garbage"])
def test_hostile_files_are_refused_before_pymatgen_reads_them(name, refused_inputs, monkeypatch):
    data, reason = refused_inputs[name]
    monkeypatch.setattr(Structure, "from_str", _never_parse)
    with pytest.raises(CrystalExplorerError, match=reason):
        structure_from_text(data)


def test_unusual_but_valid_inputs_are_read(accepted_inputs, tmp_path):
    for name, (data, formula, n_sites) in accepted_inputs.items():
        structure, _ = structure_from_text(data)
        assert (structure.composition.reduced_formula, len(structure)) == (formula, n_sites), name
        path = tmp_path / "input.cif"
        path.write_bytes(data)
        assert len(read_structure(path)[0]) == n_sites, name


def test_a_large_file_is_refused_without_reading_it(tmp_path, monkeypatch):
    path = tmp_path / "huge.cif"
    path.write_bytes(b"data_x\n" + b"#" * 6_000_000)
    monkeypatch.setattr(type(path), "read_bytes", _never_parse)
    with pytest.raises(CrystalExplorerError, match="larger than 5 MB"):
        read_structure(path)


def test_overlap_counts_periodic_images_and_names_the_sites():
    with pytest.raises(CrystalExplorerError, match=r"site 1 \(H\) and its own periodic image are 0.40 Å apart"):
        validate_structure(Structure(Lattice.cubic(0.4), ["H"], [[0, 0, 0]]))
    # 0.6 Å apart: allowed
    assert len(validate_structure(Structure(Lattice.cubic(6.0), ["O", "H"], [[0, 0, 0], [0.1, 0, 0]]))) == 2
    with pytest.raises(CrystalExplorerError, match="cannot all be 0.5 Å apart"):
        validate_structure(Structure(Lattice.cubic(1.0), ["H"] * 20, np.random.default_rng(0).random((20, 3))))


def test_closest_approach_includes_a_site_and_its_image():
    structure = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0.02, 0, 0], [0.98, 0, 0]])
    d, i, j = closest_approach(structure, cutoff=1.0)
    assert d == pytest.approx(0.16) and {i, j} == {0, 1}
    assert closest_approach(structure, cutoff=0.1) is None


def test_expanded_site_count_is_exact_for_special_positions(accepted_inputs):
    data, _, n_sites = accepted_inputs["symmetry with special positions"]
    # 6 rows in a group of 192 operations: the bound (1,152) would refuse it; the count must be exact
    assert len(check_cif_text(data.decode())) > 0
    assert len(structure_from_text(data)[0]) == n_sites


def test_read_sources_expands_files_folders_and_csvs(tmp_path, perovskite, rock_salt):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.cif").write_text(_cif(perovskite))
    (tmp_path / "folder" / "notes.txt").write_text("not a structure")
    (tmp_path / "empty").mkdir()
    pd.DataFrame({"cif": [_cif(rock_salt), "not a cif"]}).to_csv(tmp_path / "rows.csv", index=False)
    pd.DataFrame({"structure": ["x"]}).to_csv(tmp_path / "nocif.csv", index=False)
    (tmp_path / "b.cif").write_text(_cif(rock_salt))
    sources = read_sources([tmp_path / "b.cif", tmp_path / "folder", tmp_path / "rows.csv", tmp_path / "nocif.csv",
                            tmp_path / "empty", tmp_path / "absent.cif"])
    assert [s.id for s in sources] == ["b", "a", "rows-0", "rows-1", "nocif", "empty", "absent"]
    assert [bool(s.refusal) for s in sources] == [False, False, False, False, True, True, False]
    assert "no 'cif' column" in sources[4].refusal and "no CIF or POSCAR files" in sources[5].refusal
    assert sources[0].read()[0].composition.reduced_formula == "NaCl"
    assert sources[2].read()[0].composition.reduced_formula == "NaCl"
    for bad in (sources[3], sources[4], sources[6]):
        with pytest.raises(CrystalExplorerError):
            bad.read()
