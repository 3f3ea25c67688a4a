"""Decoding settings stored in model.json ("refinement", "segmentation": "species_rule", "consensus") as small
frozen dataclasses: reading one from its dict, refusing keys it does not know."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

T = TypeVar("T")

# model.json's keys for how a model's decodings are refined, segmented and merged: chosen on val after training,
# so they belong to the model folder rather than to a training stage (train's --init-from carries them into an
# export, train.ship keeps the folder's)
DECODING_SETTINGS = ("refinement", "refinement_note", "segmentation", "consensus")


def settings_from_dict(cls: type[T], data: dict | None, what: str) -> T:
    """`cls(**data)` (defaults for None or {}); ValueError naming `what` for keys that `cls` has no field for."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data or {}) - known
    if unknown:
        raise ValueError(f"unknown {what} keys: {sorted(unknown)}")
    return cls(**(data or {}))
