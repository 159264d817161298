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


def test_a_volume_at_another_voxel_size_than_the_model_is_refused(tmp_path):
    run = _run(tmp_path, np.zeros((8, 64, 64), np.uint8), voxel_size=(30, 4, 4))
    with pytest.raises(ModelError, match=r"\(30, 4, 4\) nm.*trained on \(40, 8, 8\) nm"):
        predict_affinities(run)
    assert "affinities" not in run.arrays()


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
