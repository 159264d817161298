"""Align stage inputs and interruptions: bad tile CSVs through the CLI, a warp that resumes.

(The API-level messages for a missing column, a missing image and non-numeric
positions are tested in test_align_montage.py; here the CLI's exit, message and
the absence of a half-written run are checked.)
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import connectomix.align._warp as warp_module
from connectomix.align import align_stage
from connectomix.errors import IncompleteVolumeError
from connectomix.run import Run
from connectomix.synth import SynthSettings, synthesize
from connectomix.volume import open_volume

EXE = str(Path(sys.executable).parent / "connectomix")


# ----------------------------------------------------------------------- bad tiles CSV
def _image(shape, seed, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 200, size=shape).astype(dtype)


def _tiles_csv(tmp_path, images):
    """Write ``images`` {(section, tile): array} as TIFFs and a CSV listing them in a row of tiles."""
    rows = []
    for (z, t), img in images.items():
        name = f"s{z}_t{t}.tif"
        tifffile.imwrite(tmp_path / name, img)
        rows.append(dict(section=z, tile=t, stage_y=0.0, stage_x=t * 96 * 8.0, path=name))
    p = tmp_path / "tiles.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


def _import(tmp_path, csv):
    return subprocess.run([EXE, "import", "--tiles", str(csv), "--voxel-size", "40", "8", "8",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120, cwd=tmp_path)


def _good(shape=(128, 128)):
    return {(z, t): _image(shape, 10 * z + t) for z in (0, 1) for t in (0, 1)}


def test_cli_imports_good_tiles(tmp_path):
    # tiles of different sections may differ in shape; only a section's own tiles must agree
    images = _good()
    images[(1, 0)] = _image((140, 120), 7)
    images[(1, 1)] = _image((140, 120), 8)
    r = _import(tmp_path, _tiles_csv(tmp_path, images))
    assert r.returncode == 0, r.stderr
    df = Run(tmp_path / "run").read_table("tiles")
    assert len(df) == 4 and sorted(df["height_vx"]) == [128, 128, 140, 140]


def _bad_shape(tmp_path):
    images = _good()
    images[(1, 1)] = _image((128, 100), 11)
    return _tiles_csv(tmp_path, images), ["tiles.csv", "section 1", "different image shapes", "tile 1",
                                          "s1_t1.tif", "128 x 100 px", "128 x 128 px"]


def _bad_dtype(tmp_path):
    images = _good()
    images[(0, 1)] = _image((128, 128), 1, np.uint16)
    return _tiles_csv(tmp_path, images), ["tiles.csv", "different dtypes", "section 0 tile 1", "s0_t1.tif", "uint16"]


def _no_column(tmp_path):
    p = _tiles_csv(tmp_path, _good())
    pd.read_csv(p).drop(columns="stage_x").to_csv(p, index=False)
    return p, ["tiles.csv", "lacks the column(s) ['stage_x']"]


def _no_image(tmp_path):
    p = _tiles_csv(tmp_path, _good())
    os.remove(tmp_path / "s1_t0.tif")
    return p, ["s1_t0.tif", "does not exist"]


@pytest.mark.parametrize("make", [_bad_shape, _bad_dtype, _no_column, _no_image],
                         ids=["tile-shapes-differ", "tile-dtypes-differ", "missing-column", "missing-image"])
def test_cli_rejects_bad_tiles_without_leaving_a_run(tmp_path, make):
    csv, expected = make(tmp_path)
    r = _import(tmp_path, csv)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: "), r.stderr
    for part in expected:
        assert part in r.stderr, (part, r.stderr)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------- interrupted warp
BLOCK = (2, 128, 128)  # 4 x 2 x 2 = 16 warp blocks on an 8 x 256 x 256 stack
N_BLOCKS = 16


class _Interrupt:
    """A progress callback that presses Ctrl-C once ``after`` blocks are done (``after=None``: never)."""

    def __init__(self, after=None):
        self.after = after
        self.calls = []

    def __call__(self, n_done, n_total):
        self.calls.append((n_done, n_total))
        if self.after is not None and n_done >= self.after:
            raise KeyboardInterrupt


@pytest.fixture
def computed(monkeypatch):
    """Ids of the warp blocks computed (the real kernel, recorded)."""
    ids = []
    real = warp_module.warp_kernel

    def recording(block, inputs, **kw):
        ids.append(block.id)
        return real(block, inputs, **kw)

    monkeypatch.setattr(warp_module, "warp_kernel", recording)
    return ids


def _stack(path, seed):
    s = SynthSettings(shape=(8, 256, 256), misalign=True, max_translation_px=20, max_rotation_deg=1.0,
                      elastic_amplitude_px=0)
    synthesize(path, settings=s, preset="demo", seed=seed)
    return path


def _interrupt(path, computed, after=6):
    with pytest.raises(KeyboardInterrupt):
        align_stage(path, elastic=False, say=lambda m: None, block_shape=BLOCK, progress=_Interrupt(after))
    done_dir = path / ".blocks" / "align-warp" / "done"
    done = {int(p) for p in os.listdir(done_dir)}
    assert done == set(computed) and len(done) == after, (done, computed)
    with pytest.raises(IncompleteVolumeError):  # the partial output is not readable as complete
        open_volume(Run(path).volume_path("aligned"))
    return done


def test_interrupted_warp_resumes_with_only_missing_blocks(tmp_path, computed):
    a = _stack(tmp_path / "a", seed=5)
    shutil.copytree(a, tmp_path / "b")
    full = align_stage(tmp_path / "b", elastic=False, say=lambda m: None)  # uninterrupted, default blocks
    expected = Run(tmp_path / "b").open("aligned").to_numpy()
    computed.clear()

    done = _interrupt(a, computed)
    computed.clear()
    progress = _Interrupt()
    out = align_stage(a, elastic=False, say=lambda m: None, block_shape=BLOCK, progress=progress)
    assert out["blocks"] == N_BLOCKS
    assert progress.calls[0] == (len(done), N_BLOCKS)  # resumed: the done blocks are counted, not run
    assert sorted(computed) == sorted(set(range(N_BLOCKS)) - done)
    aligned = Run(a).open("aligned").to_numpy()
    np.testing.assert_array_equal(aligned, expected)
    assert out["min_jacobian"] == full["min_jacobian"]
    assert Run(a).stages().set_index("stage").loc["align", "status"] == "finished"


def test_interrupted_warp_restarts_when_the_transforms_changed(tmp_path, computed):
    a = _stack(tmp_path / "a", seed=5)
    _interrupt(a, computed)
    # the raw stack is replaced (same shape, same align settings): the done blocks are stale
    other = _stack(tmp_path / "c", seed=6)
    shutil.rmtree(Run(a).volume_path("raw"))
    shutil.copytree(Run(other).volume_path("raw"), Run(a).volume_path("raw"))
    computed.clear()
    align_stage(a, elastic=False, say=lambda m: None, block_shape=BLOCK)
    assert sorted(computed) == list(range(N_BLOCKS))
    align_stage(other, elastic=False, say=lambda m: None, block_shape=BLOCK)
    np.testing.assert_array_equal(Run(a).open("aligned").to_numpy(), Run(other).open("aligned").to_numpy())


# ----------------------------------------------------------------------- device of the defect network
def test_an_unknown_or_absent_device_stops_align_before_anything_is_written(tmp_path):
    pytest.importorskip("torch")
    import torch

    from connectomix.errors import ConfigError
    from connectomix.testing import stored_volume

    run = Run.create(tmp_path / "run")
    stored_volume(run.volume_path("raw"), _image((3, 64, 64), 0), voxel_size=(40, 8, 8))
    with pytest.raises(ConfigError, match=r"device must be 'cpu' or 'cuda'.*'gpu'"):
        align_stage(run.path, device="gpu", say=lambda m: None)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"'cuda'.*no CUDA GPU"):
            align_stage(run.path, device="cuda", say=lambda m: None)
    assert "aligned" not in run.arrays() and "transforms" not in run.tables()
    r = subprocess.run([EXE, "align", str(run.path), "--device", "gpu"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "device must be 'cpu' or 'cuda'" in r.stderr and "Traceback" not in r.stderr
    assert "aligned" not in run.arrays()
