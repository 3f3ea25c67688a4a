"""Reading model.json's small decoding settings from dicts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from crystal_explorer.settings import settings_from_dict


@dataclass(frozen=True)
class _Steps:
    steps: int = 3


def test_known_keys_are_read_and_none_gives_the_defaults():
    assert settings_from_dict(_Steps, {"steps": 5}, "x") == _Steps(5)
    assert settings_from_dict(_Steps, None, "x") == settings_from_dict(_Steps, {}, "x") == _Steps()


def test_unknown_keys_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown refinement keys: \['lr'\]"):
        settings_from_dict(_Steps, {"steps": 1, "lr": 0.1}, "refinement")
