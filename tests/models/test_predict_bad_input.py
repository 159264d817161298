import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from connectomix.errors import ConfigError, ModelError, VolumeError
from connectomix.models import predict_affinities
from connectomix.run import Run
from connectomix.testing import stored_volume

EXE = str(Path(sys.executable).parent / "connectomix")


def _run(tmp_path, data, voxel_size=(40, 8, 8)):
    run = Run.create(tmp_path / "run")
    stored_volume(run.volume_path("raw"), data, voxel_size=voxel_size, chunks=(8, 64, 64))
    return run


def test_raw_of_the_wrong_dtype_is_refused_with_its_name(tmp_path):
    run = _run(tmp_path, np.zeros((8, 64, 64), np.uint16))
    with pytest.raises(VolumeError, match=r"raw.*uint16.*uint8"):
        predict_affinities(run)
    assert "affinities" not in run.arrays()


def test_a_volume_too_far_from_the_models_voxel_size_to_resample_is_refused(tmp_path):
    run = _run(tmp_path, np.zeros((8, 64, 64), np.uint8), voxel_size=(400, 8, 8))
    with pytest.raises(ModelError, match=r"\(400, 8, 8\) nm.*trained on \(40, 8, 8\) nm.*too far to resample"):
        predict_affinities(run)
    assert "affinities" not in run.arrays()


def test_a_volume_at_another_voxel_size_is_resampled_to_the_models(tmp_path):
    """The same tissue imaged at 4 nm pixels gives the affinities of the 8 nm image."""
    from connectomix.models import load_model, predict_array
    from connectomix.synth import generate, resolve_settings

    settings = resolve_settings(preset="demo", seed=3, shape=(8, 136, 136))
    raw = generate(settings, 3, preset="demo")["raw"]
    fine = np.repeat(np.repeat(raw, 2, axis=1), 2, axis=2)  # (8, 272, 272) at 40 x 4 x 4 nm
    run = _run(tmp_path, fine, voxel_size=(40, 4, 4))
    predict_affinities(run, block_shape_vx=(8, 128, 128))
    got = run.open("affinities").to_numpy().astype(np.float32) / 255
    assert got.shape == (8,) + fine.shape
    model, _ = load_model(None)
    want = predict_array(raw, model, model.factor)
    # in-plane nearest-neighbour and long-range channels, sampled back at 8 nm
    back = got[:, :, ::2, ::2]
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    err = np.abs(back - want)[inner]
    # measured: 0.018-0.026 per channel
    assert err[[0, 3]].mean() < 0.06 and err[[1, 2, 4, 5, 6, 7]].mean() < 0.1
    # a boundary stays a boundary: where the 8 nm prediction is sure, so is the resampled one
    sure = want[1:3][inner] < 0.1
    assert sure.sum() > 1000 and (back[1:3][inner][sure] < 0.5).mean() > 0.9


def test_cuda_asked_for_without_a_gpu_is_a_clear_error(tmp_path, monkeypatch):
    import os

    run = _run(tmp_path, np.zeros((8, 64, 64), np.uint8))
    # hide any GPU, in this process and in the CLI's, so the test means the same everywhere
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        predict_affinities(run, device="cuda")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([EXE, "segment", str(run.path), "--device", "cuda"], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode != 0 and "no CUDA GPU" in r.stderr and "Traceback" not in r.stderr


def test_an_unknown_precision_stops_before_the_affinities_are_replaced(tmp_path, monkeypatch):
    from connectomix.volume import open_volume

    raw = (np.random.default_rng(0).random((8, 64, 64)) * 255).astype(np.uint8)
    run = _run(tmp_path, raw)
    predict_affinities(run)
    before = open_volume(run.volume_path("affinities")).to_numpy()
    import json

    attrs = json.loads((run.volume_path("affinities") / "zarr.json").read_text())["attributes"]
    assert attrs["precision"] in ("float32", "bfloat16")
    monkeypatch.setenv("CONNECTOMIX_PRECISION", "fp8")
    with pytest.raises(ConfigError, match=r"CONNECTOMIX_PRECISION.*'fp8'"):
        predict_affinities(run)
    assert np.array_equal(open_volume(run.volume_path("affinities")).to_numpy(), before)


def test_an_unknown_device_is_a_clear_error(tmp_path):
    run = _run(tmp_path, np.zeros((8, 64, 64), np.uint8))
    with pytest.raises(ConfigError, match=r"device must be 'cpu' or 'cuda'.*'gpu'"):
        predict_affinities(run, device="gpu")
    assert "affinities" not in run.arrays()
    r = subprocess.run([EXE, "segment", str(run.path), "--device", "gpu"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "device must be 'cpu' or 'cuda'" in r.stderr and "Traceback" not in r.stderr


def test_synapse_prediction_takes_the_device_and_refuses_an_unknown_one(tmp_path):
    from connectomix.pipeline import segment_stage, synapses_pipeline_stage

    run = _run(tmp_path, np.zeros((8, 64, 64), np.uint8))
    stored_volume(run.volume_path("segmentation"), np.ones((8, 64, 64), np.uint64), voxel_size=(40, 8, 8),
                  chunks=(8, 64, 64))
    with pytest.raises(ConfigError, match=r"device must be 'cpu' or 'cuda'.*'gpu'"):
        synapses_pipeline_stage(run.path, device="gpu", say=lambda m: None)
    if not torch.cuda.is_available():  # refused before the stage is recorded as started
        with pytest.raises(ConfigError, match=r"'cuda'.*no CUDA GPU"):
            synapses_pipeline_stage(run.path, device="cuda", say=lambda m: None)
        with pytest.raises(ConfigError, match=r"'cuda:0'.*no CUDA GPU"):
            segment_stage(run.path, device="cuda:0", say=lambda m: None)
    assert "synapse_pred" not in run.arrays() and "affinities" not in run.arrays()
    assert len(run.stages()) == 0
    r = subprocess.run([EXE, "synapses", str(run.path), "--device", "gpu"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and "device must be 'cpu' or 'cuda'" in r.stderr and "Traceback" not in r.stderr
