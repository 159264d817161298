"""Precomputed export of a run, and the neuroglancer viewer in headless Chromium."""

import io
import json
import time

import numpy as np
import pytest

from connectomix.errors import ConfigError
from connectomix.testing._runs import docs_dir, need_browser, tiny_run
from connectomix.viewer import export_precomputed, view

EXPECTED_LAYERS = {"raw", "segmentation", "ground truth", "skeletons", "synapses"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("viewer") / "run", seed=2, analyze=False, evaluate=False)


def test_export_precomputed_writes_every_layer(run, tmp_path):
    out = export_precomputed(run.path, tmp_path / "export", base_url="http://example.test:9")
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["image"] == "raw" and manifest["labels"] == ["segmentation", "gt_segmentation"]
    assert manifest["synapses"] == "synapses"
    n_segments = len(run.read_table("neurons"))
    assert 0 < manifest["n_meshes"] <= n_segments and 0 < manifest["n_skeletons"] <= n_segments
    seg_info = json.loads((out / "segmentation" / "info").read_text())
    assert seg_info["mesh"] == "mesh" and seg_info["skeletons"] == "skeletons"
    assert seg_info["scales"][0]["resolution"] == [8, 8, 40]
    props = json.loads((out / "segmentation" / "segment_properties" / "info").read_text())
    assert len(props["inline"]["ids"]) == n_segments
    assert (out / "synapses" / "info").exists() and any((out / "synapses" / "rel_pre").iterdir())
    state = json.loads((out / "state.json").read_text())
    assert {layer["name"] for layer in state["layers"]} == EXPECTED_LAYERS
    assert all(layer["source"].startswith("precomputed://http://example.test:9/") for layer in state["layers"])
    # a subset of neurons: only theirs are meshed and selected
    some = sorted(int(s) for s in run.read_table("neurons")["segment_id"])[:2]
    sub = export_precomputed(run.path, tmp_path / "export", neurons=some)
    manifests = [p for p in (sub / "segmentation" / "mesh").iterdir() if p.name.count(":") == 1]
    assert sorted(int(p.name.split(":")[0]) for p in manifests) == some
    assert json.loads((sub / "state.json").read_text())["layers"][1]["segments"] == [str(s) for s in some]


def test_export_refuses_unknown_neurons(run, tmp_path):
    with pytest.raises(ConfigError, match="not segments"):
        export_precomputed(run.path, tmp_path / "e", neurons=[10**12])


def test_export_refuses_a_foreign_folder(run, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a connectomix export"):
        export_precomputed(run.path, tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").exists()


def _colourful_fraction(png: bytes) -> tuple[float, float]:
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    chroma = rgb.max(axis=-1) - rgb.min(axis=-1)  # grey EM has ~0 chroma, segment colours a lot
    return float(rgb.std()), float((chroma > 60).mean())


def test_viewer_in_headless_chromium(run, tmp_path):
    need_browser()
    from connectomix.viewer._browser import Browser

    session = view(run.path, export_dir=tmp_path / "precomputed")
    try:
        assert session.url.startswith("http://127.0.0.1:") and session.data_url.startswith("http://127.0.0.1:")
        with Browser(width=1200, height=800) as browser:
            browser.goto(session.url)
            names = browser.wait_for(
                "window.viewer && window.viewer.layerManager.managedLayers.length >= 5 && "
                "window.viewer.layerManager.managedLayers.map(l => l.name)", timeout=30)
            assert set(names) == EXPECTED_LAYERS
            state = browser.evaluate("JSON.stringify(window.viewer.state.toJSON())")
            state = json.loads(state)
            types = {layer["name"]: layer["type"] for layer in state["layers"]}
            assert types["segmentation"] == "segmentation" and types["synapses"] == "annotation"
            assert types["raw"] == "image"
            assert state["dimensions"]["z"] == [4e-8, "m"] and state["dimensions"]["x"] == [8e-9, "m"]
            browser.wait_for("window.viewer.isReady()", timeout=40)
            deadline = time.monotonic() + 20
            while True:  # meshes arrive after the chunks; wait until some were fetched
                browser.pump(0.5)
                if any(":0:0" in p for p, _ in session.server.requested) or time.monotonic() > deadline:
                    break
            browser.pump(1.0)
            png = browser.screenshot()
        spread, colourful = _colourful_fraction(png)
        out = docs_dir()
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "viewer.png").write_bytes(png)
        assert spread > 10, "the screenshot is blank"
        assert colourful > 0.02, f"segmentation colours cover only {colourful:.1%} of the screenshot"
        served = [p for p, status in session.server.requested if status == 200]
        assert any(p.startswith("/segmentation/8_8_40/") for p in served), "no segmentation chunk was loaded"
        assert any(p.startswith("/raw/") for p in served), "no image chunk was loaded"
        assert any(":0:0" in p for p in served), "no mesh fragment was loaded"
        assert not [p for p, status in session.server.requested if status != 200 and "favicon" not in p]
    finally:
        session.close()
