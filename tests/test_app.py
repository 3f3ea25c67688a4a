"""The Streamlit app driven headless by streamlit.testing (no browser, no JavaScript): every page runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_page(url_path: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    if url_path is not None:
        # AppTest.switch_page only knows file pages; st.navigation callables are found by their url path
        at._page_hash = next(h for h, info in at._registered_pages.items() if info.get("url_pathname") == url_path)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def test_reconstruct_page_shows_an_example() -> None:
    at = open_page()
    assert not at.error
    assert at.title[0].value == "Reconstruct a crystal"
    assert {m.label for m in at.metric} >= {"True atoms in cube", "Decoded atoms"}
    specs = plotly_specs(at)
    assert any(trace["type"] == "mesh3d" for spec in specs for trace in spec["data"])
    iframes = at.get("iframe")
    assert iframes and "Sr" in iframes[0].proto.srcdoc


def test_malformed_upload_shows_an_error_not_a_traceback() -> None:
    at = open_page()
    at.radio(key="rec_source").set_value("Upload").run()
    at.file_uploader[0].set_value(("broken.cif", b"not a cif", "chemical/x-cif")).run()
    assert not at.exception
    assert at.error and "CIF" in at.error[0].value


def test_latent_slider_redecodes() -> None:
    at = open_page("latent")
    assert not at.error, [e.value for e in at.error]
    sliders = [s for s in at.slider if s.label.startswith("z[")]
    assert len(sliders) == 8
    before = [spec for spec in plotly_specs(at) if spec["data"][0]["type"] == "mesh3d"]
    sliders[0].set_value(3.95).run()
    assert not at.exception
    after = [spec for spec in plotly_specs(at) if spec["data"][0]["type"] == "mesh3d"]
    assert before and after and before[0]["data"][0]["x"] != after[0]["data"][0]["x"]
    at.button(key="latent_reset").click().run()
    assert at.slider(key=sliders[0].key).value != 3.95


def test_latent_sliders_start_at_the_encoded_crystal() -> None:
    # the sliders count in prior σ and widen to hold the encoding, so the start decoding is the reconstruction
    reconstructed = open_page()
    decoded = next(m.value for m in reconstructed.metric if m.label == "Decoded atoms")
    formula = next(c.value for c in reconstructed.caption if "decoded: " in c.value).split("decoded: ")[1].split(" ")[0]
    explorer = open_page("latent")
    caption = next(c.value for c in explorer.caption if c.value.startswith("Decoded "))
    assert caption.startswith(f"Decoded {decoded} atoms: {formula} ")


def test_interpolation_produces_frames() -> None:
    at = open_page("interpolation")
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["interpolation_frames"] == 10
    animated = [spec for spec in plotly_specs(at) if spec.get("frames")]
    assert animated and len(animated[0]["frames"]) == 10


@pytest.mark.parametrize("model", ["Lattice, conditioned on max Z"])
def test_random_draws_with_the_conditional_model(model: str) -> None:
    at = open_page("samples")
    at.selectbox(key="model").set_value(model).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.number_input(key="max_z").value == 30
    assert len(at.dataframe[0].value) == 6


def test_a_single_cell_draw_gets_a_predicted_cell_as_cif() -> None:
    at = open_page("samples")
    assert not at.get("download_button")
    at.toggle(key="sample_cell").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    buttons = at.get("download_button")
    assert buttons and buttons[0].proto.label == "Decoding as a crystal (CIF)"
    assert any("α, β, γ" in m.value for m in at.markdown)


def test_model_page_shows_loss_curves() -> None:
    at = open_page("model")
    assert not at.error
    assert any(trace.get("name") == "val/reconstruction" for spec in plotly_specs(at) for trace in spec["data"])


def test_model_page_tabulates_the_held_out_metrics() -> None:
    at = open_page("model")
    metrics = json.loads((Path(APP).parent / "checkpoints" / "single_cell" / "metrics.json").read_text())
    table = at.dataframe[0].value
    row = table[table["metric"] == "exact atom count"].iloc[0]
    assert row["all"] == f"{100 * metrics['count_exact']:.1f} %" and row["paper"] == "90 %"
    assert {"mp_ground_states", "perov_5_val", "carbon_24_val"} <= set(table.columns)
