"""The Streamlit app driven headless by streamlit.testing (no browser, no JavaScript): every page and control runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.io.cif import CifWriter
from streamlit.testing.v1 import AppTest

from crystal_explorer import report

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_page(url_path: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    if url_path is not None:
        # AppTest.switch_page only knows file pages; st.navigation callables are found by their url path
        at._page_hash = next(h for h, info in at._registered_pages.items() if info.get("url_pathname") == url_path)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plotly_specs(at: AppTest) -> list[dict]:
    """Every Plotly figure on the page: the live 3-D scenes' first (components whose data hold a figure; each page
    draws its scene above its other charts), then st.plotly_chart's."""
    live = [json.loads(e.proto.json) for e in at.get("bidi_component") if e.proto.component_name == "crystal_explorer_live_scene"]
    return [json.loads(d["figure"]) for d in live] + [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def live_scene_data(at: AppTest) -> dict:
    """What the latent page's live scene (one component) receives: figure JSON, camera revision, plotly.js URL."""
    (element,) = [e for e in at.get("bidi_component") if e.proto.component_name == "crystal_explorer_live_scene"]
    data = json.loads(element.proto.json)
    assert data["uirevision"] and "/app/static/plotly.min.js?v=" in data["src"]
    return data


def live_scene_spec(at: AppTest) -> dict:
    return json.loads(live_scene_data(at)["figure"])


def plotly_array(value) -> list:
    """A figure spec's array, decoded when plotly sent it as a base64 typed array (plotly 6+)."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).tolist()
    return list(value)


def surfaces(spec: dict) -> list[str]:
    """Names of a figure's density surfaces ("<panel>: <level> Z units")."""
    return [t["name"] for t in spec["data"] if t["type"] == "mesh3d" and t.get("name", "").endswith("Z units")]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_reconstruct_page_shows_density_atoms_cell_and_table() -> None:
    at = open_page()
    assert not at.error
    assert at.title[0].value == "Reconstruct a crystal"
    assert metric(at, "Input") == "SrTiO3"  # conventional formula, not Sr1Ti1O3
    scene = plotly_specs(at)[0]
    assert len(surfaces(scene)) == 6  # three nested levels for the input and for the decoding, in one scene
    assert "scene2" not in scene["layout"]  # one scene: one camera for both
    assert any(t["name"] == "input atoms" for t in scene["data"])
    cells = next(f for f in at.get("iframe") if "sites in the cell" in f.proto.srcdoc)
    assert "Sr" in cells.proto.srcdoc and cells.proto.srcdoc.count('"color": "black"') >= 12  # the input's cell edges
    table = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    n_true, n_decoded = (int(v) for v in metric(at, "Atoms (true → decoded)").split(" → "))
    assert (table["true atom"] != "—").sum() == n_true
    assert set(table["verdict"]) <= {"ok", "wrong element", "missing", "extra"}


@pytest.mark.parametrize("model", ["Single unit cell", "Repeating lattice"])
def test_a_decoded_formula_that_differs_is_a_warning(model: str) -> None:
    at = open_page()
    at.selectbox(key="model").set_value(model).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    differs = metric(at, "Input") != metric(at, "Decoded")
    warned = any("The decoding is" in w.value for w in at.warning)
    assert differs == warned


def test_deep_link_to_reconstruct() -> None:
    at = open_page("reconstruct")
    assert at.title[0].value == "Reconstruct a crystal"


def test_level_and_z_slice_controls() -> None:
    at = open_page()
    at.slider(key="rec_level").set_value(10.0).run()
    assert not at.exception
    assert surfaces(plotly_specs(at)[0])[:3] == ["input: 3.0 Z units", "input: 6.0 Z units", "input: 10.0 Z units"]
    at.select_slider(key="rec_z").set_value(3).run()
    slices = next(s for s in plotly_specs(at) if s["data"][0]["type"] == "heatmap")
    assert "z = 1.17 Å" in slices["layout"]["annotations"][0]["text"]
    assert "density" in slices["data"][-1]["colorbar"]["title"]["text"]


def test_malformed_upload_shows_an_error_not_a_traceback() -> None:
    at = open_page()
    at.radio(key="rec_source").set_value("Upload").run()
    at.file_uploader[0].set_value(("broken.cif", b"not a cif", "chemical/x-cif")).run()
    assert not at.exception
    assert at.error and "CIF" in at.error[0].value


def test_dataset_rows_are_bounded_and_read_alone(tmp_path: Path, perovskite, rock_salt) -> None:
    table = tmp_path / "two.csv"
    pd.DataFrame({"material_id": ["a", "b"], "cif": [str(CifWriter(perovskite)), str(CifWriter(rock_salt))]}).to_csv(table)
    at = open_page()
    at.radio(key="rec_source").set_value("Dataset row").run()
    at.text_input(key="rec_path").set_value(str(table)).run()
    row = at.number_input(key="rec_row")
    assert row.label == "Row (0 to 1)" and row.max == 1
    row.set_value(1).run()
    assert not at.exception and not at.error
    assert metric(at, "Input") == "NaCl"


def test_latent_direction_slider_redecodes_the_moved_crystal() -> None:
    at = open_page("latent")
    assert not at.error, [e.value for e in at.error]
    sliders = [s for s in at.slider if s.key.startswith("dir_")]
    assert len(sliders) == 8
    caption = next(c.value for c in at.caption if c.value.startswith("Start: "))
    assert "moved 0.0 σ" in caption and "changed by 0 %" in caption
    before, camera = live_scene_spec(at), live_scene_data(at)["uirevision"]
    sliders[0].set_value(3.9).run()
    assert not at.exception
    after = live_scene_spec(at)
    assert after["layout"]["scene"]["annotations"][-1]["text"] == "<b>difference</b>"
    moved_before = [t for t in before["data"] if t.get("name", "").startswith("moved:")]
    moved_after = [t for t in after["data"] if t.get("name", "").startswith("moved:")]
    assert moved_before[0]["x"] != moved_after[0]["x"]
    def surfaces(spec: dict) -> list:  # the difference surfaces that draw something
        return [t for t in spec["data"] if t.get("name", "").startswith(("more density", "less density")) and plotly_array(t["x"])]

    assert not surfaces(before) and surfaces(after)
    # the same traces in the same order (Plotly.react updates them in place) and the same camera revision
    assert [t["type"] for t in before["data"]] == [t["type"] for t in after["data"]]
    assert live_scene_data(at)["uirevision"] == camera
    at.button(key="latent_reset").click().run()
    assert at.slider(key=sliders[0].key).value != 3.9


def test_latent_sliders_say_what_each_direction_changes() -> None:
    from crystal_explorer.directions import DirectionEffects

    stored = DirectionEffects.load(Path(APP).parent / "checkpoints" / "single_cell")
    assert stored is not None  # python -m crystal_explorer.directions --checkpoint checkpoints/single_cell
    at = open_page("latent")
    labels = [at.slider(key=f"dir_{k}").label for k in range(8)]
    assert labels[0].startswith("PC 1 (") and "% of variance): " in labels[0]
    assert all(label.endswith(f": {text}") for label, text in zip(labels, stored.labels, strict=False))


@pytest.mark.parametrize("name", ["absent.json", "model.json"])  # no file; a file that is not direction effects
def test_latent_sliders_without_readable_direction_effects_keep_plain_labels(name: str, monkeypatch) -> None:
    import crystal_explorer.directions

    monkeypatch.setattr(crystal_explorer.directions, "DESCRIPTIONS_FILE", name)
    at = open_page("latent")
    assert not at.error
    assert [at.slider(key=f"dir_{k}").label for k in range(8)] == [f"Direction {k + 1} (σ)" for k in range(8)]


def test_orientations_slider_merges_several_decodings() -> None:
    at = open_page()
    slider = at.slider(key="orientations")
    assert slider.value == 7  # the checkpoint's consensus
    assert any("majority of 7 orientations" in c.value for c in at.caption)
    slider.set_value(1).run()
    assert not at.exception and not any("orientations agree" in c.value for c in at.caption)


def test_refine_switch_decodes_the_posterior_mean_when_off() -> None:
    at = open_page()
    switch = next(t for t in at.toggle if t.key == "refine")
    assert switch.value is True and "20 steps" in switch.label
    refined = [m.value for m in at.metric] + [d.value.to_csv() for d in at.dataframe]
    switch.set_value(False).run()
    assert not at.exception
    # the plain reconstruction of SrTiO3 is a different decoding: since stage 6 both find its five atoms and
    # species, so the per-atom table (positions to 0.01 Å) tells them apart
    assert [m.value for m in at.metric] + [d.value.to_csv() for d in at.dataframe] != refined


def test_latent_start_is_the_reconstruction() -> None:
    # the sliders count from the encoded crystal, so the start decoding is its reconstruction in one orientation
    reconstructed = open_page()
    reconstructed.slider(key="orientations").set_value(1).run()
    decoded = metric(reconstructed, "Decoded")
    n_decoded = metric(reconstructed, "Atoms (true → decoded)").split(" → ")[1]
    explorer = open_page("latent")
    caption = next(c.value for c in explorer.caption if c.value.startswith("Start: "))
    assert caption.startswith(f"Start: {n_decoded} atoms, {decoded} ·")


def test_latent_traversal_along_a_direction() -> None:
    at = open_page("latent")
    at.selectbox(key="traverse_dir").set_value(2).run()
    assert not at.exception and not at.error
    # the shipped model's directions.json names what each direction changes
    assert at.selectbox(key="traverse_dir").options[0].startswith("PC 1 (")
    traversal = next(s for s in plotly_specs(at) if s["data"][0]["type"] == "heatmap")
    assert len(traversal["data"]) == 5


def test_interpolation_animates_density_and_atoms_beside_the_true_ends() -> None:
    at = open_page("interpolation")
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["interpolation_frames"] == 10
    animated = next(spec for spec in plotly_specs(at) if spec.get("frames"))
    assert len(animated["frames"]) == 10
    titles = [a["text"] for a in animated["layout"]["scene"]["annotations"]]
    assert titles == ["<b>Si (input)</b>", "<b>decoded frame</b>", "<b>CsCl (input)</b>"]
    # each frame redraws the middle panel's surfaces and atoms: one control for both
    assert any(t.get("name", "").endswith("atoms") for t in animated["frames"][3]["data"])
    menu, slider = animated["layout"]["updatemenus"][0], animated["layout"]["sliders"][0]
    assert menu["x"] + 0.15 <= slider["x"]  # the play/pause buttons sit left of the slider


def test_interpolation_frame_gets_a_predicted_cell() -> None:
    at = open_page("interpolation")
    at.toggle(key="int_cell_toggle").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(b.proto.label == "Decoding as a crystal (CIF)" for b in at.get("download_button"))


@pytest.mark.parametrize("model", ["Lattice, conditioned on max Z"])
def test_random_draws_with_the_conditional_model(model: str) -> None:
    at = open_page("samples")
    at.selectbox(key="model").set_value(model).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.number_input(key="max_z").value == 30
    assert len(at.dataframe[0].value) == 6


def test_random_draws_flag_close_atoms_and_rank_realism() -> None:
    at = open_page("samples")
    table = at.dataframe[0].value
    percentiles = table["realism (percentile of real decodings)"].astype(float)
    assert percentiles.between(0, 100).all()
    n_close = int((table["atoms too close"] != "—").sum())
    assert n_close == 0 or any(f"{n_close} of 6 draws" in w.value for w in at.warning)
    scene = next(s for s in plotly_specs(at) if s["layout"].get("scene"))
    assert any(t["name"] == "sample 0 atoms" for t in scene["data"])


def test_random_draws_warn_when_the_models_realism_score_is_no_better_than_chance() -> None:
    at = open_page("samples")
    assert not any("realism score does not tell" in w.value for w in at.warning)  # single cell: AUC 0.91
    at.selectbox(key="model").set_value("Repeating lattice").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    auc = json.loads((Path(APP).parent / "checkpoints/lattice/samples.json").read_text())["realism"][
        "out_of_distribution"]["auc_real_above"]
    assert any("realism score does not tell" in w.value for w in at.warning) == (auc < report.REALISM_AUC_USEFUL)


def test_a_single_cell_draw_gets_a_predicted_cell_as_cif() -> None:
    at = open_page("samples")
    assert not at.get("download_button")
    at.toggle(key="sample_cell").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    buttons = at.get("download_button")
    assert buttons and buttons[0].proto.label == "Decoding as a crystal (CIF)"
    assert any("α, β, γ" in m.value for m in at.markdown)
    assert any("predicted cell" in f.proto.srcdoc for f in at.get("iframe"))


def test_model_page_shows_loss_curves() -> None:
    at = open_page("model")
    assert not at.error
    curves = [spec for spec in plotly_specs(at) if any(t.get("name") == "val/reconstruction" for t in spec["data"])]
    assert curves and curves[0]["layout"]["yaxis"]["title"]["text"]


def test_model_page_states_held_out_quality_and_tabulates_it() -> None:
    at = open_page("model")
    assert any("under-trained" in w.value for w in at.warning)
    metrics = json.loads((Path(APP).parent / "checkpoints" / "single_cell" / "metrics.json").read_text())
    table = at.dataframe[0].value
    row = table[table["metric"] == "exact atom count"].iloc[0]
    assert row["all"] == f"{100 * metrics['count_exact']:.1f} %" and row["paper"] == "90 %"
    assert {"Materials Project", "Perov-5", "Carbon-24"} <= set(table.columns)
    every = at.dataframe[1].value
    assert list(every.columns) == ["metric", "value", "unit"] and "%" in set(every["unit"])


def open_map(data: Path, monkeypatch, tmp_path: Path) -> AppTest:
    """The latent map page reading the dataset CSVs in `data`, with its disk cache in a temporary folder."""
    monkeypatch.setenv("CRYSTAL_EXPLORER_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["map_data"] = str(data)
    at.run()
    at._page_hash = next(h for h, info in at._registered_pages.items() if info.get("url_pathname") == "map")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_latent_map_without_data_says_so(tmp_path: Path, monkeypatch) -> None:
    at = open_map(tmp_path / "no data here", monkeypatch, tmp_path)
    assert at.title[0].value == "Latent map"
    assert not at.error and any("needs the dataset CSVs" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_latent_map_draws_held_out_crystals_and_sends_two_to_interpolation(tmp_path: Path, monkeypatch, perovskite,
                                                                          rock_salt, hexagonal) -> None:
    from crystal_explorer.structures import split_of

    data = tmp_path / "data"
    data.mkdir()
    ids = [m for m in (f"m{i}" for i in range(200)) if split_of(m) != "train"][:3] + ["m0" if split_of("m0") == "train" else "m2"]
    structures = [perovskite, rock_salt, hexagonal, perovskite]
    pd.DataFrame({"material_id": ids, "cif": [str(CifWriter(s)) for s in structures],
                  "heat_ref": [0.5, 1.0, 1.5, 2.0]}).to_csv(data / "tiny.csv", index=False)
    at = open_map(data, monkeypatch, tmp_path)
    assert not at.error, [e.value for e in at.error]
    spec = plotly_specs(at)[0]
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("t-SNE 1")  # the default layout
    at.radio(key="map_layout").set_value("PCA").run()
    spec = plotly_specs(at)[0]
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("PC1 (")
    assert spec["layout"]["yaxis"]["title"]["text"].endswith("% of variance)")
    crystals = sorted(i for t in spec["data"] if t["type"] == "scattergl" for i in plotly_array(t["customdata"]))
    assert crystals == [0, 1, 2]  # three held-out rows; the training row is left out
    assert any(t["name"].startswith("your crystal") for t in spec["data"])  # the default page encoded SrTiO3
    at.selectbox(key="map_colour").set_value("property:heat_ref").run()
    spec = plotly_specs(at)[0]
    assert spec["data"][0]["marker"]["colorbar"]["title"]["text"] == "heat_ref (eV/atom)"
    at.session_state["map_ends"] = [0, 2]
    at.run()
    spec = plotly_specs(at)[0]
    assert any(t["name"] == "interpolation path" for t in spec["data"])
    chosen = next(m.value for m in at.markdown if m.value.startswith("**A: "))
    formula_b = chosen.split("**B: ")[1].split(" ")[0]
    at.button(key="map_reconstruct").click().run()  # the latest end, B, on the reconstruct page
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Reconstruct a crystal" and at.radio(key="rec_source").value == "Dataset row"
    assert metric(at, "Input") == formula_b
    at._page_hash = next(h for h, info in at._registered_pages.items() if info.get("url_pathname") == "map")
    at.run()
    at.button(key="map_interpolate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Interpolate between two crystals"
    assert at.radio(key="int_a_source").value == "Dataset row" and at.text_input(key="int_b_path").value.endswith("tiny.csv")
    assert not at.error, [e.value for e in at.error]


def test_scenes_fall_back_to_plotly_chart_without_the_live_scene(monkeypatch) -> None:
    # where static/ cannot hold plotly.js (or CRYSTAL_EXPLORER_LIVE_SCENE=0) the scene is an ordinary st.plotly_chart
    import streamlit as st

    monkeypatch.setenv("CRYSTAL_EXPLORER_LIVE_SCENE", "0")
    st.cache_resource.clear()  # the component (or its absence) is cached once per process
    try:
        at = open_page("latent")
        assert not at.error and not at.get("bidi_component")
        scene = next(s for s in plotly_specs(at) if s["layout"].get("scene"))
        assert scene["layout"]["scene"]["annotations"][-1]["text"] == "<b>difference</b>"
    finally:
        monkeypatch.delenv("CRYSTAL_EXPLORER_LIVE_SCENE")
        st.cache_resource.clear()


def test_model_page_lists_the_training_ledger_and_counts_samples_across_stages() -> None:
    at = open_page("model")
    meta = json.loads((Path(APP).parent / "checkpoints" / "single_cell" / "model.json").read_text())
    seen = next(m for m in at.metric if m.label == "Samples seen in training")
    assert seen.value == f"{meta['samples_seen'] / 1000:,.0f} k"
    ledger = at.dataframe[2].value
    assert len(ledger) == len(meta["training_stages"])
    assert ledger["samples seen"].iloc[-1] == f"{meta['samples_seen']:,}"
    assert len(at.get("image")) == 5  # the four metric figures and the learning curve
