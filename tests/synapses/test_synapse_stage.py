"""The block-wise ``synapses`` stage on a run, end to end with the ``graph`` stage."""

import numpy as np
import pandas as pd
import pytest
from synapse_testdata import SEG_CHUNKS, synth_run

from connectomix.config import ClusterConfig
from connectomix.errors import BlockError, ConfigError, VolumeError, VolumeNotFoundError
from connectomix.evaluate import edge_scores, synapse_scores
from connectomix.graph import Connectome, graph_stage
from connectomix.run import Run
from connectomix.synapses import SYNAPSE_TABLE_COLUMNS, synapses_stage
from connectomix.volume import create_volume

SYNC = ClusterConfig(scheduler="synchronous")


def quiet(_):
    pass


@pytest.fixture
def run_path(tmp_path):
    return synth_run(tmp_path / "run")


def test_stage_recovers_ground_truth_and_builds_the_graph(run_path):
    res = synapses_stage(run_path, cluster=SYNC, say=quiet)
    run = Run(run_path)
    syn = run.read_table("synapses")
    assert list(syn.columns) == list(SYNAPSE_TABLE_COLUMNS)
    assert res.n_synapses == len(syn) and res.n_unassigned == 0
    assert synapse_scores(syn, run.read_table("gt_synapses")).f1 == 1.0
    assert "cleft_labels" in run.arrays()
    assert run.read_config()["synapses"]["threshold"] == 0.5
    # a second call with the same configuration is skipped
    assert synapses_stage(run_path, cluster=SYNC, say=quiet) is None

    graph_stage(run_path, say=quiet)
    assert edge_scores(run.read_table("edges"), run.read_table("gt_edges")).f1 == 1.0
    c = Connectome.from_run(run_path)
    assert c.synapses is not None and len(c.synapses) == len(syn)
    gt_n = run.read_table("gt_neurons").set_index("segment_id")
    n = c.neurons.set_index("segment_id")
    for col in ("size_vx", "n_pre", "n_post", "centroid_z", "centroid_y", "centroid_x", "bbox_x0", "bbox_z1"):
        assert np.allclose(n[col].to_numpy(float), gt_n.loc[n.index, col].to_numpy(float)), col


def test_one_block_equals_many_blocks(run_path):
    run = Run(run_path)
    synapses_stage(run_path, cluster=SYNC, say=quiet, block_shape=(24, 256, 256))
    one = run.read_table("synapses"), run.open("cleft_labels").to_numpy()
    res = synapses_stage(run_path, cluster=SYNC, say=quiet, block_shape=SEG_CHUNKS)
    assert res.n_blocks == 3 * 4 * 4
    many = run.read_table("synapses"), run.open("cleft_labels").to_numpy()
    pd.testing.assert_frame_equal(one[0], many[0])
    assert np.array_equal(one[1], many[1])
    assert not (run.path / ".scratch").exists()


def test_stage_on_dask_threads(run_path):
    res = synapses_stage(run_path, cluster=ClusterConfig(scheduler="threads", workers=2), say=quiet,
                         block_shape=(8, 128, 128))
    assert res.n_blocks == 12 and res.n_synapses > 0


def test_separate_uint8_probability_and_vector_arrays(run_path):
    run = Run(run_path)
    pred = run.open("synapse_pred")
    data = pred.to_numpy()
    layout = dict(voxel_size=pred.voxel_size, offset=pred.offset, chunks=SEG_CHUNKS)
    p = create_volume(run.volume_path("clefts"), shape=data.shape[1:], dtype=np.uint8, **layout)
    p[p.roi] = np.round(data[0] * 255).astype(np.uint8)
    # vectors stored in units of 100 nm as float16, as a network trained on scaled targets writes them
    v = create_volume(run.volume_path("partners"), shape=(3,) + data.shape[1:], dtype=np.float16,
                      voxel_size=pred.voxel_size, offset=pred.offset, chunks=(3,) + SEG_CHUNKS,
                      attrs={"vector_scale_nm": 100.0})
    v[v.roi] = (data[1:] / 100.0).astype(np.float16)
    synapses_stage(run_path, cluster=SYNC, say=quiet, cleft="clefts", vectors="partners")
    a = run.read_table("synapses")
    assert run.read_config()["synapses"]["vector_scale_nm"] == 100.0
    synapses_stage(run_path, cluster=SYNC, say=quiet, force=True)
    b = run.read_table("synapses")
    pd.testing.assert_frame_equal(a.drop(columns="score"), b.drop(columns="score"))
    assert np.allclose(a["score"], b["score"], atol=1 / 255)
    with pytest.raises(ConfigError, match="vector_scale_nm"):
        synapses_stage(run_path, cluster=SYNC, say=quiet, vector_scale_nm=-1.0)


def test_missing_segmentation_names_the_stage(run_path):
    import shutil

    shutil.rmtree(Run(run_path).volume_path("segmentation"))
    with pytest.raises(VolumeNotFoundError, match="`segment` stage"):
        synapses_stage(run_path, cluster=SYNC, say=quiet)


def test_missing_prediction(run_path):
    with pytest.raises(VolumeNotFoundError, match="'nope'.*predict synapses first"):
        synapses_stage(run_path, cluster=SYNC, say=quiet, cleft="nope")


def test_mismatched_or_malformed_inputs(run_path):
    run = Run(run_path)
    small = create_volume(run.volume_path("small"), shape=(4, 24, 64, 64), dtype=np.float32, voxel_size=(40, 8, 8))
    with pytest.raises(VolumeError, match="same voxels"):
        synapses_stage(run_path, cluster=SYNC, say=quiet, cleft="small")
    with pytest.raises(VolumeError, match="'raw' must be channel-first"):
        synapses_stage(run_path, cluster=SYNC, say=quiet, cleft="raw")
    create_volume(run.volume_path("three"), shape=(3, 24, 256, 256), dtype=np.float32, voxel_size=(40, 8, 8))
    with pytest.raises(VolumeError, match="4 channels"):
        synapses_stage(run_path, cluster=SYNC, say=quiet, cleft="three")
    with pytest.raises(ConfigError, match="block_shape"):
        synapses_stage(run_path, cluster=SYNC, say=quiet, block_shape=(5, 64, 64))
    del small


def test_nan_prediction_fails_with_block_id(run_path):
    run = Run(run_path)
    pred = run.open("synapse_pred", mode="r+")
    data = pred.to_numpy()
    data[0, 3, 3, 3] = np.nan
    pred[pred.roi] = data
    with pytest.raises(BlockError, match="NaN"):
        synapses_stage(run_path, cluster=SYNC, say=quiet)
    assert "cleft_labels" not in run.arrays()
