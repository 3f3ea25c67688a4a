"""Tests of train.designs: every design of the §2 comparison builds a valid model and training config."""

from __future__ import annotations

import yaml

from crystal_explorer.models import ModelConfig
from train.config import RunConfig
from train.designs import DESIGNS


def test_every_design_is_a_valid_run_config(tmp_path):
    assert "compact" in DESIGNS and len(DESIGNS) >= 3  # today's design and at least two alternatives
    configs = []
    for design in DESIGNS.values():
        path = tmp_path / f"{design.name}.yaml"
        path.write_text(yaml.safe_dump({"model": {"architecture": "compact", **design.model},
                                        "train": {"name": design.name, **design.train}}))
        run = RunConfig.from_yaml(path)
        assert run.model == ModelConfig(**design.model) and run.train.name == design.name
        configs.append((run.model, run.train.seg_on_target, run.train.atom_weight))
    assert len(set(configs)) == len(configs)  # no two designs are the same experiment
