"""Tests of crystal_explorer.checkpoint: safetensors + JSON round trip and clear errors for bad folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from crystal_explorer.checkpoint import META_FILE, WEIGHTS_FILE, load_model, read_metadata, save_model
from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.models import CrystalVAE, ModelConfig

CONFIG = ModelConfig(architecture="compact", latent_size=13, max_z=20, unet_channels=4, conditional=True)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread for this module


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(3)
    model = CrystalVAE(CONFIG)
    # a few training-mode passes give BatchNorm non-trivial running statistics to save
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(2, 1, 30, 30, 30))
    folder = tmp_path_factory.mktemp("ckpt") / "model"
    save_model(model, folder, {"steps": 7, "representation": "single"})
    return model.eval(), folder


def test_round_trip_gives_the_same_outputs(saved):
    model, folder = saved
    loaded, meta = load_model(folder)
    assert loaded.config == CONFIG
    assert not loaded.training
    assert meta["steps"] == 7 and meta["representation"] == "single"
    assert meta["model_config"] == CONFIG.to_dict()
    x = torch.rand(1, 1, 30, 30, 30, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(x, sample=False), loaded(x, sample=False)
    # large tensors are stored as float16: agreement to fp16 precision
    for name in ("mean", "density", "scores"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=2e-2, atol=2e-2)


def test_small_tensors_are_exact_and_running_stats_survive(saved):
    model, folder = saved
    loaded, _ = load_model(folder)
    ref = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert tensor.dtype == ref[name].dtype, name
        if tensor.numel() <= 4096:
            torch.testing.assert_close(tensor, ref[name], rtol=0, atol=0)
    assert any("running_mean" in k and ref[k].abs().sum() > 0 for k in ref)


def test_missing_folder(tmp_path):
    with pytest.raises(CrystalExplorerError, match="no checkpoint"):
        load_model(tmp_path / "nowhere")


def _copy(folder, tmp_path):
    out = tmp_path / "copy"
    out.mkdir()
    for name in (WEIGHTS_FILE, META_FILE):
        (out / name).write_bytes((folder / name).read_bytes())
    return out


def test_corrupt_weights(saved, tmp_path):
    _, folder = saved
    copy = _copy(folder, tmp_path)
    data = (copy / WEIGHTS_FILE).read_bytes()
    (copy / WEIGHTS_FILE).write_bytes(data[: len(data) // 3])
    with pytest.raises(CrystalExplorerError, match="corrupt"):
        load_model(copy)
    (copy / WEIGHTS_FILE).write_bytes(b"\x00" * 64)
    with pytest.raises(CrystalExplorerError, match="corrupt"):
        load_model(copy)


def test_missing_weights(saved, tmp_path):
    _, folder = saved
    copy = _copy(folder, tmp_path)
    (copy / WEIGHTS_FILE).unlink()
    with pytest.raises(CrystalExplorerError, match="no checkpoint weights"):
        load_model(copy)


def test_corrupt_metadata(saved, tmp_path):
    _, folder = saved
    copy = _copy(folder, tmp_path)
    (copy / META_FILE).write_text("{not json")
    with pytest.raises(CrystalExplorerError, match="not valid JSON"):
        read_metadata(copy)


def _with_config(folder: Path, tmp_path: Path, change: dict) -> Path:
    """A copy of a saved model whose model.json config has `change` applied."""
    copy = _copy(folder, tmp_path)
    meta = json.loads((copy / META_FILE).read_text())
    meta["model_config"].update(change)
    (copy / META_FILE).write_text(json.dumps(meta))
    return copy


@pytest.mark.parametrize("change", [{"latent_size": 14}, {"max_z": 30}, {"architecture": "paper"}])
def test_config_that_does_not_fit_the_weights(saved, tmp_path, change):
    with pytest.raises(CrystalExplorerError, match="does not fit its config"):
        load_model(_with_config(saved[1], tmp_path, change))


@pytest.mark.parametrize("change", [{"latent": 3}, {"architecture": "resnet"}, {"representation": "powder"}])
def test_invalid_config(saved, tmp_path, change):
    with pytest.raises(CrystalExplorerError, match="invalid model config"):
        load_model(_with_config(saved[1], tmp_path, change))


def test_save_leaves_no_temporary_files(saved):
    _, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == sorted([WEIGHTS_FILE, META_FILE])


def test_the_representation_is_part_of_the_config_and_older_files_give_it_beside(saved, tmp_path):
    _, folder = saved
    copy = _copy(folder, tmp_path)
    meta = json.loads((copy / META_FILE).read_text())
    assert load_model(copy)[0].config.representation == "single"
    del meta["model_config"]["representation"]
    (copy / META_FILE).write_text(json.dumps({**meta, "representation": "lattice"}))
    assert load_model(copy)[0].config.representation == "lattice"
    (copy / META_FILE).write_text(json.dumps({k: v for k, v in meta.items() if k != "representation"}))
    with pytest.raises(CrystalExplorerError, match="which representation"):
        load_model(copy)
