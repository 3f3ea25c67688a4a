"""Tests of the `python -m train` command line: two steps from a CSV, checkpoints, export, resume.

Training runs call `train.__main__.main(argv)` (what `python -m train` runs) in this process: on a shared
2-core machine each extra interpreter start with torch, Lightning and pymatgen costs 15-20 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from crystal_explorer.checkpoint import load_model
from crystal_explorer.structures import split_of
from train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
N_CRYSTALS = 14


def _tiny_structures() -> list[Structure]:
    """Rock-salt and CsCl-type binaries of light elements (Z ≤ 20, so max_z = 20 suffices)."""
    pairs = [("Li", "F"), ("Na", "Cl"), ("K", "Cl"), ("Mg", "O"), ("Ca", "O"), ("Li", "H"), ("Na", "F"),
             ("K", "F"), ("Mg", "S"), ("Ca", "S"), ("Be", "O"), ("Al", "N"), ("Na", "H"), ("Li", "Cl")]
    out = []
    for i, (a, b) in enumerate(pairs[:N_CRYSTALS]):
        if i % 2:
            out.append(Structure(Lattice.cubic(3.0 + 0.1 * i), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]]))
        else:
            out.append(Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.2 + 0.05 * i), [a, b],
                                                 [[0, 0, 0], [0.5, 0.5, 0.5]]))
    return out


@pytest.fixture(scope="module")
def run_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    ids = [f"tiny-{i}" for i in range(N_CRYSTALS)]
    assert sum(split_of(i) == "train" for i in ids) >= 2  # the train split is not empty
    csv = tmp / "tiny.csv"
    pd.DataFrame({"material_id": ids, "cif": [str(CifWriter(s)) for s in _tiny_structures()]}).to_csv(csv, index=False)
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"architecture": "compact", "latent_size": 17, "max_z": 20, "unet_channels": 4},
        "train": {"name": "tiny", "representation": "single", "data": [str(csv)], "batch_size": 2,
                  "max_steps": 2, "warmup_steps": 1, "kl_warmup_steps": 2, "num_workers": 0,
                  "val_every_steps": 100, "val_batches": 1, "checkpoint_every_steps": 1},
    }))
    return tmp, csv, config


def _train(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_command_line_entry_point():
    result = _train("--help")
    assert result.returncode == 0
    assert "--resume" in result.stdout and "--max-steps" in result.stdout


def test_missing_config_argument_exits_non_zero():
    assert _train().returncode != 0


@pytest.fixture(scope="module")
def first_run(run_setup):
    tmp, csv, config = run_setup
    runs = tmp / "runs"
    code = _main_in_process("--config", str(config), "--data", str(csv), "--max-steps", "2", "--batch-size", "2",
                            "--runs", str(runs), "--accelerator", "cpu")
    return code, runs / "tiny"


def test_two_steps_write_a_checkpoint_and_an_export(first_run):
    code, run_dir = first_run
    assert code == 0
    assert (run_dir / "last.ckpt").is_file()
    assert (run_dir / "export" / "model.safetensors").is_file()
    model, meta = load_model(run_dir / "export")
    assert meta["steps"] == 2
    assert model.config.latent_size == 17 and model.config.max_z == 20
    assert meta["data"]["n_train"] >= 2


def _main_in_process(*args: str) -> int:
    """`train.__main__.main`, the CLI's own entry, run in this process to spare a second interpreter start."""
    import torch

    from train.__main__ import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(list(args))
    finally:
        torch.set_num_threads(threads)


def test_resume_continues_from_the_last_checkpoint(first_run, run_setup):
    code, run_dir = first_run
    assert code == 0
    tmp, csv, config = run_setup
    code = _main_in_process("--config", str(config), "--data", str(csv), "--max-steps", "3", "--batch-size", "2",
                            "--runs", str(tmp / "runs"), "--accelerator", "cpu", "--resume")
    assert code == 0
    _, meta = load_model(run_dir / "export")
    assert meta["steps"] == 3  # one more step, not three from scratch


def _continue(first_run, run_setup, name: str, steps: int, *sets: str):
    """A stage started with --init-from the first run's export: (weights before, weights after, its model.json)."""
    code, run_dir = first_run
    assert code == 0
    tmp, csv, config = run_setup
    before, _ = load_model(run_dir / "export")
    code = _main_in_process("--config", str(config), "--data", str(csv), "--max-steps", str(steps), "--batch-size", "2",
                            "--runs", str(tmp / f"runs_{name}"), "--accelerator", "cpu", "--init-from", str(run_dir / "export"),
                            "--export", str(tmp / name), "--set", "warmup_steps=1", *sets)
    assert code == 0
    after, meta = load_model(tmp / name)
    return before.state_dict(), after.state_dict(), meta


def test_init_from_continues_the_exported_weights_and_extends_the_ledger(first_run, run_setup):
    before, after, meta = _continue(first_run, run_setup, "continued", 1, "lr=1e-9")
    # a near-zero learning rate: the continued weights are the exported ones, not a fresh initialisation
    for name, tensor in before.items():
        if tensor.is_floating_point() and "running" not in name:
            assert (after[name] - tensor).abs().max() < 1e-3, name
    ledger = meta["training_stages"]
    assert [s["initialised_from_previous_stage"] for s in ledger] == [False, True]  # the first run, then this one
    assert ledger[-1]["samples"] == 2 and ledger[-1]["lr"] == pytest.approx(1e-9)


def test_init_from_keeps_how_the_model_is_decoded(first_run, run_setup):
    import shutil

    code, run_dir = first_run
    assert code == 0
    tmp, csv, config = run_setup
    start = tmp / "start_with_refinement"
    shutil.copytree(run_dir / "export", start, dirs_exist_ok=True)
    meta = json.loads((start / "model.json").read_text())
    meta["refinement"] = {"steps": 0, "lr": 0.1}  # decode the posterior mean itself
    meta["segmentation"] = {"background_logit_offset": 1.5}  # as train.calibrate chose for the lattice
    meta["consensus"] = {"orientations": 5}
    (start / "model.json").write_text(json.dumps(meta))
    code = _main_in_process("--config", str(config), "--data", str(csv), "--max-steps", "1", "--batch-size", "2",
                            "--runs", str(tmp / "runs_refinement"), "--accelerator", "cpu", "--init-from", str(start),
                            "--export", str(tmp / "continued_refinement"))
    assert code == 0
    _, meta = load_model(tmp / "continued_refinement")
    # evaluating the export decodes it as the starting checkpoint was, not with the default refinement
    assert meta["refinement"] == {"steps": 0, "lr": 0.1}
    assert meta["segmentation"] == {"background_logit_offset": 1.5}
    assert meta["consensus"] == {"orientations": 5}


def test_accumulated_batches_count_every_sample_in_the_ledger(first_run, run_setup):
    _, _, meta = _continue(first_run, run_setup, "accumulated", 2, "accumulate_batches=3")
    stage = meta["training_stages"][-1]
    # 2 optimizer steps of 3 accumulated batches of 2 crystals: 12 samples, an effective batch of 6
    assert stage["steps"] == 2 and stage["samples"] == 12 and stage["batch_size"] == 6
    assert stage["accumulated"] == "3 batches of 2"


def test_a_stop_file_ends_the_stage_and_is_consumed(tmp_path):
    from types import SimpleNamespace

    from train.module import StopFile

    stop = tmp_path / "STOP"
    stop.touch()
    callback = StopFile(stop)
    assert not stop.exists()  # a file left by an earlier run does not end this one at its first step
    trainer = SimpleNamespace(global_step=7, should_stop=False)
    callback.on_train_batch_end(trainer)
    assert not trainer.should_stop
    stop.touch()
    callback.on_train_batch_end(trainer)
    assert trainer.should_stop and not stop.exists()


def test_accumulate_batches_below_one_is_refused():
    with pytest.raises(ValueError, match="accumulate_batches"):
        TrainConfig(accumulate_batches=0)


def test_a_design_change_keeps_the_tensors_that_fit_with_init_partial(first_run, run_setup, capsys):
    code, run_dir = first_run
    assert code == 0
    tmp, csv, config = run_setup
    raw = yaml.safe_load(config.read_text())
    raw["model"]["decoder_head"] = "shuffle"
    shuffle = tmp / "tiny_shuffle.yaml"
    shuffle.write_text(yaml.safe_dump(raw))
    args = ("--config", str(shuffle), "--data", str(csv), "--max-steps", "1", "--batch-size", "2", "--accelerator", "cpu",
            "--init-from", str(run_dir / "export"), "--set", "lr=1e-9", "warmup_steps=1")
    assert _main_in_process(*args, "--runs", str(tmp / "runs_refused"), "--export", str(tmp / "refused")) != 0
    assert "--init-partial" in capsys.readouterr().err  # a design change is refused unless asked for
    assert _main_in_process(*args, "--init-partial", "--runs", str(tmp / "runs_partial"), "--export", str(tmp / "partial")) == 0
    before, _ = load_model(run_dir / "export")
    after, meta = load_model(tmp / "partial")
    assert after.config.decoder_head == "shuffle"
    old, new = before.state_dict(), after.state_dict()
    for name in ("encoder.net.0.0.weight", "to_stats.weight", "decoder.fc.weight", "decoder.net.5.0.weight", "unet.head.weight"):
        assert (new[name] - old[name]).abs().max() < 1e-3, name  # kept (lr ≈ 0)
    assert new["decoder.net.6.weight"].shape == (8, 48, 3, 3, 3) and "decoder.net.6.weight" not in old  # the new head
    assert meta["training_stages"][-1]["initialised_from_previous_stage"].startswith("partial")


def test_vae_only_stage_leaves_the_unet_untouched(first_run, run_setup):
    import torch

    before, after, _ = _continue(first_run, run_setup, "vae_only", 2, "gamma=0", "seg_on_target=0", "lr=1e-2")
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("unet."))
    assert not all(torch.equal(after[k], before[k]) for k in before if k.startswith("decoder."))


def test_unet_only_stage_leaves_the_vae_untouched(first_run, run_setup):
    import torch

    before, after, meta = _continue(first_run, run_setup, "unet_only", 2, "unet_only=true", "lr=1e-2")
    assert meta["train"]["unet_only"] is True
    assert all(torch.equal(after[k], before[k]) for k in before if not k.startswith("unet."))  # running stats too
    assert not all(torch.equal(after[k], before[k]) for k in before if k.startswith("unet.") and "running_" not in k)


def test_frozen_batchnorm_keeps_the_running_statistics_and_trains_the_rest(first_run, run_setup):
    import torch

    before, after, meta = _continue(first_run, run_setup, "frozen_bn", 2, "freeze_batchnorm=true", "lr=1e-2")
    assert meta["train"]["freeze_batchnorm"] is True
    running = [k for k in before if "running_" in k]
    assert running and all(torch.equal(after[k], before[k]) for k in running)
    assert not all(torch.equal(after[k], before[k]) for k in before if k.startswith("decoder.") and "running_" not in k)


def test_frozen_batchnorm_survives_lightnings_train_calls():
    from crystal_explorer.models import ModelConfig
    from train.module import CrystalVAEModule

    run = {"model": ModelConfig(latent_size=8, max_z=20, unet_channels=4).to_dict(),
           "train": {"freeze_batchnorm": True}}
    module = CrystalVAEModule(run).train()
    norms = [m for m in module.modules() if isinstance(m, torch_batchnorm())]
    assert norms and not any(m.training for m in norms)
    assert module.model.decoder.training  # everything else trains
    plain = CrystalVAEModule({**run, "train": {}}).train()
    assert all(m.training for m in plain.modules() if isinstance(m, torch_batchnorm()))


def torch_batchnorm():
    import torch

    return torch.nn.modules.batchnorm._BatchNorm


def test_a_channels_last_stage_trains_and_exports_loadable_weights(first_run, run_setup):
    import torch

    before, after, meta = _continue(first_run, run_setup, "channels_last", 1, "channels_last=true", "lr=1e-2")
    assert meta["train"]["channels_last"] is True
    assert not all(torch.equal(after[k], before[k]) for k in before if k.startswith("decoder."))


def test_a_malformed_set_override_is_one_clear_line(run_setup, capsys):
    tmp, csv, config = run_setup
    code = _main_in_process("--config", str(config), "--data", str(csv), "--runs", str(tmp / "bad_set"),
                            "--set", "no_equals_sign", "--accelerator", "cpu")
    assert code == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_resume_without_a_checkpoint_fails_clearly(run_setup, capsys):
    tmp, csv, config = run_setup
    code = _main_in_process("--config", str(config), "--data", str(csv), "--runs", str(tmp / "empty_runs"),
                            "--resume", "--accelerator", "cpu")
    assert code != 0
    assert "nothing to resume" in capsys.readouterr().err


METRIC_KEYS = {"n_structures", "n_skipped", "skipped_reasons", "representation", "atoms_within_0.5A",
               "pred_atoms_within_0.5A", "distance_percentiles_true_to_pred", "distance_percentiles_pred_to_true",
               "count_exact", "count_within_2", "species_exact", "species_within_2", "voxel_mse"}


@pytest.mark.parametrize("representation", ["single", "lattice"])
def test_oracle_evaluation_recovers_every_crystal(run_setup, tmp_path, representation):
    from train.evaluate import main

    _, csv, _ = run_setup
    out = tmp_path / representation
    assert main(["--oracle", "--representation", representation, "--data", str(csv), "--split", "all",
                 "--limit", "6", "--match", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= metrics.keys()
    assert metrics["n_structures"] == 6 and metrics["atoms_within_0.5A"] == 1.0 and metrics["species_exact"] == 1.0
    # rock salt and CsCl cells: the periodic crystal comes back from the true grid (lattice: recovered;
    # single cell: the input's cell), so every one matches its original
    assert metrics["match_rate"] == 1.0 and metrics["per_source"]["tiny.csv"]["match_rate"] == 1.0


def test_model_evaluation_writes_metrics_and_figures(first_run, run_setup, tmp_path):
    from train.evaluate import main

    code, run_dir = first_run
    assert code == 0
    _, csv, _ = run_setup
    assert main(["--checkpoint", str(run_dir / "export"), "--data", str(csv), "--split", "all", "--limit", "4",
                 "--device", "cpu", "--figures", "--match", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert METRIC_KEYS <= metrics.keys() and metrics["mode"] == "model" and metrics["n_structures"] == 4
    assert 0.0 <= metrics["match_rate"] <= 1.0
    for figure in ("atom_counts", "distance_percentiles", "species", "voxel_parity"):
        assert (tmp_path / f"{figure}.png").stat().st_size > 1000


def test_evaluation_of_a_missing_checkpoint_exits_with_one_line(run_setup, tmp_path, capsys):
    from train.evaluate import main

    _, csv, _ = run_setup
    assert main(["--checkpoint", str(tmp_path / "nothing"), "--data", str(csv), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_calibration_sweeps_offsets_and_stores_the_choice(first_run, run_setup, tmp_path, capsys):
    import shutil

    from crystal_explorer.density_fit import SpeciesRule
    from crystal_explorer.latent import CrystalModel
    from train.calibrate import OFFSETS, main, species_rules

    code, run_dir = first_run
    assert code == 0
    _, csv, _ = run_setup
    folder = tmp_path / "model"
    shutil.copytree(run_dir / "export", folder)
    assert main(["--checkpoint", str(folder), "--data", str(csv), "--split", "all", "--limit", "3", "--refine-steps", "2",
                 "--species-rules", "--write"]) == 0
    segmentation = json.loads((folder / "model.json").read_text())["segmentation"]
    assert set(segmentation["sweep"]) == {str(b) for b in OFFSETS}
    assert segmentation["background_logit_offset"] in OFFSETS and segmentation["n_structures"] == 3
    assert segmentation["refinement_steps"] == 2
    model = CrystalModel.from_checkpoint(folder, device="cpu")
    assert model.background_offset == segmentation["background_logit_offset"]
    # the chosen rule is one of the grid's (or the default kept), and the model decodes with it
    rule = SpeciesRule.from_dict(segmentation["species_rule"])
    assert rule in species_rules() or rule == SpeciesRule()
    assert model.segmentation["species_rule"] == segmentation["species_rule"]
    assert segmentation["species_rule_score"]["chosen"] >= segmentation["species_rule_score"]["before"]
    out = capsys.readouterr().out
    assert "chosen background offset" in out and "chosen species rule" in out
    assert "per source:" in out and f"  {csv.name}: count_exact" in out
    assert model.segmentation["split_angstrom"] == 1.0  # a single-cell model's default, stored as it was
    # --split-angstrom overrides the split for the sweep and is stored; 0 is one atom per component
    assert main(["--checkpoint", str(folder), "--data", str(csv), "--split", "all", "--limit", "2", "--refine-steps", "0",
                 "--offsets", "0", "--split-angstrom", "0", "--write"]) == 0
    assert CrystalModel.from_checkpoint(folder, device="cpu").segmentation["split_angstrom"] is None


def test_calibration_of_a_consensus_scores_what_evaluation_decodes(first_run, run_setup, tmp_path):
    """`--orientations K` decodes each crystal as a consensus reconstruction does: at the checkpoint's offset
    and rule its metrics are those of `train.evaluate --orientations K` on the same crystals."""
    from crystal_explorer.latent import CrystalModel
    from train.calibrate import decode_all, segmented, summary_for
    from train.calibrate import main as calibrate
    from train.evaluate import main as evaluate

    code, run_dir = first_run
    assert code == 0
    _, csv, _ = run_setup
    model = CrystalModel.from_checkpoint(run_dir / "export", device="cpu")
    offset = model.background_offset
    decodings = decode_all(model, [str(csv)], 3, 0, "all", 0, orientations=3, offsets=(offset,))
    assert len(decodings) == 3 and all(d.logits is None and len(d.views[offset]) == 3 for d in decodings)
    mine = summary_for(model, decodings, segmented(model, decodings, offset))
    assert evaluate(["--checkpoint", str(run_dir / "export"), "--data", str(csv), "--split", "all", "--limit", "3",
                     "--refine-steps", "0", "--orientations", "3", "--out", str(tmp_path / "ev")]) == 0
    theirs = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    for key in ("n_true_atoms", "n_pred_atoms", "count_exact", "atoms_within_0.5A", "species_exact", "formula_exact"):
        assert mine[key] == theirs[key], key
    assert calibrate(["--checkpoint", str(run_dir / "export"), "--data", str(csv), "--orientations", "0"]) == 2


def test_calibration_in_one_orientation_of_a_consensus_model_chooses_for_single_decodings(first_run, run_setup, tmp_path):
    """A checkpoint whose reconstructions decode a consensus keeps its segmentation; `--orientations 1` stores
    the choice for single decodings (draws, interpolations) apart, and the model decodes with it."""
    import shutil

    from crystal_explorer.latent import CrystalModel
    from train.calibrate import main

    code, run_dir = first_run
    assert code == 0
    _, csv, _ = run_setup
    folder = tmp_path / "model"
    shutil.copytree(run_dir / "export", folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["consensus"] = {"orientations": 3}
    meta["segmentation"] = {"background_logit_offset": 2.0, "species_rule": {"sigma_z": 3.0, "max_elements": 5},
                            "orientations": 3}
    (folder / "model.json").write_text(json.dumps(meta))
    for offset, rules in (("0.5", ["--species-rules"]), ("-1", [])):  # a second calibration replaces the first
        assert main(["--checkpoint", str(folder), "--data", str(csv), "--split", "all", "--limit", "2",
                     "--refine-steps", "0", "--offsets", offset, *rules, "--write"]) == 0
    segmentation = json.loads((folder / "model.json").read_text())["segmentation"]
    single = segmentation.pop("single_decoding")
    assert segmentation == meta["segmentation"]  # the consensus's choice is untouched
    assert single["background_logit_offset"] == -1.0 and single["orientations"] == 1 and single["n_structures"] == 2
    assert "single_decoding" not in single
    model = CrystalModel.from_checkpoint(folder, device="cpu")
    assert model.background_offset == 2.0 and model.background_offset_for(False) == -1.0
    # the rule chosen by the first calibration, kept by the second; the elements' cap is the model's, not the grid's
    assert model.segmentation_for(False)["species_rule"] == single["species_rule"]
    assert single["species_rule"]["max_elements"] == 5 and single["species_rule_score"]["n_rules"] == 360


def test_calibration_chooses_an_element_penalty_on_the_current_rule(first_run, run_setup, tmp_path):
    """`--element-penalties` sweeps SpeciesRule.element_penalty on the rule kept, records the sweep, and stores
    the choice only with --write."""
    import shutil

    from crystal_explorer.density_fit import SpeciesRule
    from crystal_explorer.latent import CrystalModel
    from train.calibrate import main

    code, run_dir = first_run
    assert code == 0
    _, csv, _ = run_setup
    folder = tmp_path / "model"
    shutil.copytree(run_dir / "export", folder)
    before = (folder / "model.json").read_text()
    args = ["--checkpoint", str(folder), "--data", str(csv), "--split", "all", "--limit", "2", "--refine-steps", "0",
            "--offsets", "0", "--element-penalties", "0", "3"]
    assert main(args) == 0 and (folder / "model.json").read_text() == before
    assert main([*args, "--write"]) == 0
    segmentation = json.loads((folder / "model.json").read_text())["segmentation"]
    assert set(segmentation["element_penalty_sweep"]) == {"0.0", "3.0"}
    chosen = SpeciesRule.from_dict(segmentation["species_rule"])
    assert chosen.element_penalty in (0.0, 3.0)
    old = SpeciesRule.from_dict(json.loads(before).get("segmentation", {}).get("species_rule"))
    assert {**vars(chosen), "element_penalty": 0.0} == {**vars(old), "element_penalty": 0.0}  # only the penalty swept
    assert CrystalModel.from_checkpoint(folder, device="cpu").segmentation_for(False)["species_rule"] == segmentation["species_rule"]
    assert main([*args[:-3], "--element-penalties", "-1"]) == 2  # a negative penalty: one line, exit 2


def test_species_rule_grid_is_every_combination():
    from train.calibrate import SPECIES_GRID, species_rules

    rules = species_rules()
    assert len(set(rules)) == len(rules) == int(np.prod([len(v) for v in SPECIES_GRID.values()]))


def test_a_species_rule_must_beat_the_current_one_by_more_than_the_tie():
    from crystal_explorer.density_fit import SpeciesRule
    from train.calibrate import choose_rule

    current, other = SpeciesRule(), SpeciesRule(heavy_sigma_z=1.5)
    now = {"species_exact": 0.692, "formula_exact": 0.458}
    # the one-orientation sweep of stage 16: the grid's best beat the current rule by 2e-6
    assert choose_rule({other: {"species_exact": 0.692002, "formula_exact": 0.458}}, current, now) == current
    assert choose_rule({other: {"species_exact": 0.70, "formula_exact": 0.458}}, current, now) == other
    assert choose_rule({other: {"species_exact": 0.692002, "formula_exact": 0.458}}, current, now, tie=0.0) == other
    assert choose_rule({}, current, now) == current


def test_offsets_within_a_point_of_the_best_are_tied():
    from train.calibrate import choose_offset

    # the consensus sweep of single_cell stage 15 (val, 371 crystals): 2.0 scores 0.003 above 1.0, which has the
    # better species and formula
    at_1 = {"count_exact": 0.774, "atoms_within_0.5A": 0.883, "pred_atoms_within_0.5A": 0.958,
            "species_exact": 0.749, "formula_exact": 0.563}
    at_2 = {"count_exact": 0.776, "atoms_within_0.5A": 0.895, "pred_atoms_within_0.5A": 0.947,
            "species_exact": 0.737, "formula_exact": 0.528}
    at_0 = {"count_exact": 0.717, "atoms_within_0.5A": 0.852, "pred_atoms_within_0.5A": 0.952,
            "species_exact": 0.9, "formula_exact": 0.9}
    assert choose_offset({0.0: at_0, 1.0: at_1, 2.0: at_2}) == 1.0
    assert choose_offset({0.0: at_0, 1.0: at_1, 2.0: at_2}, tie=0.0) == 2.0
    assert choose_offset({-0.5: at_1, 1.0: at_1}) == -0.5  # then the smaller shift


def test_lattice_offsets_weigh_recall_against_precision():
    from train.calibrate import score

    few = {"count_exact": 0.0, "atoms_within_0.5A": 0.12, "pred_atoms_within_0.5A": 0.94, "species_exact": 0.18}
    more = {"count_exact": 0.0, "atoms_within_0.5A": 0.23, "pred_atoms_within_0.5A": 0.59, "species_exact": 0.29}
    assert score(few) > score(more)  # a single cell's score rewards the precise, sparse segmentation
    assert score(more, "lattice") > score(few, "lattice")  # the lattice's F1 + species does not
