"""Makers for the synapse tests: a small synthetic run (made once per process) and toy arrays."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

SYNTH_SHAPE = (24, 256, 256)
SYNTH_SEED = 1
SEG_CHUNKS = (8, 64, 64)


@functools.lru_cache(maxsize=1)
def _template() -> Path:
    from connectomix.run import Run
    from connectomix.synapses import write_ideal_predictions
    from connectomix.synth import synthesize
    from connectomix.volume import create_volume

    root = Path(tempfile.mkdtemp(prefix="cx_synapse_tests_"))
    atexit.register(shutil.rmtree, root, True)
    path = root / "run"
    synthesize(path, shape=SYNTH_SHAPE, seed=SYNTH_SEED, preset="demo")
    run = Run(path)
    gt = run.open("gt_segmentation")
    # the true segmentation stands in for the segment stage's output
    seg = create_volume(run.volume_path("segmentation"), shape=gt.shape, dtype=np.uint64,
                        voxel_size=gt.voxel_size, chunks=SEG_CHUNKS)
    seg[seg.roi] = gt.to_numpy()
    write_ideal_predictions(path, chunks=SEG_CHUNKS)
    return path


def synth_run(dest) -> Path:
    """A copy of the synthetic run (raw, ground truth, ``segmentation`` = truth, ideal ``synapse_pred``)."""
    dest = Path(dest)
    shutil.copytree(_template(), dest)
    return dest


def toy_pair(shape=(6, 16, 16), *, offset_vx=0):
    """Two segments split along x (1 left, 2 right), a cleft slab across the contact,
    vectors on it pointing into segment 1 (post 2 -> pre 1)."""
    seg = np.zeros(shape, np.uint64)
    mid = shape[2] // 2
    seg[:, :, :mid] = 1
    seg[:, :, mid:] = 2
    prob = np.zeros(shape, np.float32)
    prob[1:4, 4:10, mid - 1:mid + 1] = 0.9
    vec = np.zeros((3,) + shape, np.float32)
    vec[2][:, :, mid - 1:mid + 1] = -24.0  # 3 voxels of 8 nm towards -x
    return prob, vec, seg
