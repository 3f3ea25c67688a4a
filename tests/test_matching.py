"""The CDVAE reconstruction benchmark: match rate, RMS of the matches and validity."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from crystal_explorer.matching import is_valid, match_metrics


def test_match_metrics_counts_matches_none_and_invalid(rock_salt, perovskite, hexagonal):
    rattled = perovskite.copy()
    rattled.translate_sites([0], [0.01, 0, 0])
    too_close = Structure(Lattice.cubic(3.0), ["Na", "Cl"], [[0, 0, 0], [0.1, 0, 0]])  # 0.3 Å apart
    metrics = match_metrics(
        [(rock_salt, rock_salt.get_primitive_structure()), (perovskite, rattled), (hexagonal, None), (hexagonal, too_close)]
    )
    assert metrics["n"] == 4
    assert metrics["match_rate"] == pytest.approx(0.5)
    assert 0 <= metrics["match_rms"] < 0.05
    assert metrics["valid_fraction"] == pytest.approx(0.5)


def test_match_metrics_of_nothing():
    assert match_metrics([]) == {"n": 0, "match_rate": None, "match_rms": None, "valid_fraction": None}
    assert match_metrics([(Structure(Lattice.cubic(3), ["C"], [[0, 0, 0]]), None)])["match_rms"] is None


def test_validity_includes_periodic_images():
    assert is_valid(Structure(Lattice.cubic(2.0), ["C"], [[0, 0, 0]]))
    assert not is_valid(Structure(Lattice.cubic(0.4), ["C"], [[0, 0, 0]]))  # an atom 0.4 Å from its image
    assert not is_valid(None)
