"""Shipping a stage: only an export that continues the shipped ledger replaces it; the log is appended in step."""

from __future__ import annotations

import csv
import json

import pytest

from train.ship import main, ship

HEADER = ["epoch", "step", "train/loss", "val/loss", "stage"]


def _folder(path, stages, weights=b"old", note=None):
    path.mkdir()
    meta = {"model_config": {"latent": 8}, "training_stages": stages, **({"note": note} if note else {})}
    (path / "model.json").write_text(json.dumps(meta))
    (path / "model.safetensors").write_bytes(weights)
    return path


@pytest.fixture
def shipped(tmp_path):
    folder = _folder(tmp_path / "shipped", [{"stage": 0, "steps": 10, "what": "first", "validation": {"x": 1}}],
                     note="trained on two machines")
    (folder / "train_log.csv").write_text(",".join(HEADER) + "\n0,9,1.0,,0\n")
    (folder / "latent_prior.safetensors").write_bytes(b"prior")
    return folder


@pytest.fixture
def export(tmp_path):
    stages = [{"stage": 0, "steps": 10, "what": "first", "validation": {"x": 1}},
              {"stage": 1, "steps": 4, "samples": 64, "initialised_from_previous_stage": True}]
    folder = _folder(tmp_path / "export", stages, weights=b"new")
    log = tmp_path / "metrics.csv"
    log.write_text("epoch,step,train/loss,val/loss,lr\n0,1,0.5,,1e-4\n0,3,0.4,,1e-4\n0,3,,0.6,\n")
    return folder, log


def test_a_continuation_replaces_weights_and_ledger_and_appends_its_training_rows(shipped, export):
    folder, log = export
    stage = ship(folder, shipped, log, what="second")
    meta = json.loads((shipped / "model.json").read_text())
    assert (shipped / "model.safetensors").read_bytes() == b"new"
    assert (shipped / "latent_prior.safetensors").read_bytes() == b"prior"  # kept until refitted
    assert stage["what"] == "second" and meta["training_stages"][1]["what"] == "second"
    assert meta["note"] == "trained on two machines"
    with open(shipped / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["step"], r["stage"], r["train/loss"]) for r in rows] == [("9", "0", "1.0"), ("11", "1", "0.5"),
                                                                        ("13", "1", "0.4")]


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(model_config={"latent": 16}), "model config"),
    (lambda m: m["training_stages"].pop(), "exactly one new stage"),
    (lambda m: m["training_stages"][0].update(steps=11), "stage 0"),
    (lambda m: m["training_stages"][1].update(initialised_from_previous_stage=False), "did not start"),
])
def test_an_export_that_does_not_continue_the_folder_is_refused_and_nothing_changes(shipped, export, change, message,
                                                                                    capsys):
    folder, log = export
    meta = json.loads((folder / "model.json").read_text())
    change(meta)
    (folder / "model.json").write_text(json.dumps(meta))
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    with pytest.raises(ValueError, match=message):
        ship(folder, shipped, log)
    assert main(["--export", str(folder), "--into", str(shipped), "--log", str(log)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before


def test_labels_the_folder_gave_earlier_stages_after_the_run_began_are_kept(shipped, export):
    """Two stages shipped in turn: the second run began before the first was labelled and validated."""
    folder, log = export
    meta = json.loads((shipped / "model.json").read_text())
    meta["training_stages"][0].update(what="relabelled", validation={"x": 2})
    (shipped / "model.json").write_text(json.dumps(meta))
    ship(folder, shipped, log, what="second")
    stages = json.loads((shipped / "model.json").read_text())["training_stages"]
    assert stages[0]["what"] == "relabelled" and stages[0]["validation"] == {"x": 2}
    assert stages[1]["what"] == "second" and stages[1]["samples"] == 64


def test_the_folders_decoding_settings_are_kept_unless_the_exports_are_asked_for(shipped, export):
    """A segmentation calibrated on the folder while the stage trained is newer than the one the export inherited."""
    folder, log = export
    for where, offset in ((shipped, 0.5), (folder, 1.0)):
        meta = json.loads((where / "model.json").read_text())
        meta.update(segmentation={"background_logit_offset": offset}, consensus={"orientations": 7})
        (where / "model.json").write_text(json.dumps(meta))
    meta = json.loads((folder / "model.json").read_text())
    meta["refinement"] = {"steps": 3}  # the folder has none: the export's is taken
    (folder / "model.json").write_text(json.dumps(meta))
    ship(folder, shipped, log)
    meta = json.loads((shipped / "model.json").read_text())
    assert meta["segmentation"] == {"background_logit_offset": 0.5} and meta["refinement"] == {"steps": 3}
    assert len(meta["training_stages"]) == 2


def test_settings_from_export_takes_the_exports_decoding_settings(shipped, export):
    folder, log = export
    meta = json.loads((shipped / "model.json").read_text())
    meta["segmentation"] = {"background_logit_offset": 0.5}
    (shipped / "model.json").write_text(json.dumps(meta))
    meta = json.loads((folder / "model.json").read_text())
    meta["segmentation"] = {"background_logit_offset": 1.0}
    (folder / "model.json").write_text(json.dumps(meta))
    assert main(["--export", str(folder), "--into", str(shipped), "--settings-from-export"]) == 0
    assert json.loads((shipped / "model.json").read_text())["segmentation"] == {"background_logit_offset": 1.0}
