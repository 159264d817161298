"""synthesize() writes a complete run."""

import numpy as np

from connectomix.run import Run
from connectomix.synth import synthesize


def test_synthesize_writes_arrays_tables_and_config(tmp_path):
    run = synthesize(tmp_path / "run", shape=(8, 160, 160), seed=1, preset="demo")
    assert isinstance(run, Run)
    raw, gt, clefts = run.open("raw"), run.open("gt_segmentation"), run.open("gt_clefts")
    assert raw.dtype == np.uint8 and gt.dtype == np.uint64 and clefts.dtype == np.uint64
    assert raw.shape == gt.shape == (8, 160, 160)
    assert tuple(raw.voxel_size) == tuple(gt.voxel_size) == (40, 8, 8)
    tables = set(run.tables())
    assert {"gt_neurons", "gt_synapses", "gt_edges", "gt_transforms", "gt_section_quality"} <= tables
    syn = run.read_table("gt_synapses")
    assert list(syn.columns) == ["synapse_id", "pre_id", "post_id", "z", "y", "x", "score", "size_vx", "kind"]
    assert list(run.read_table("gt_edges").columns) == ["pre_id", "post_id", "kind", "n_synapses", "weight"]
    neurons = run.read_table("gt_neurons")
    ids = set(np.unique(gt.to_numpy()).tolist()) - {0}
    assert set(neurons.segment_id) == ids
    t = run.read_table("gt_transforms")
    assert len(t) == 8 and t.reference.sum() == 1 and (t.rotation_deg == 0).all()
    cfg = run.read_config()["synth"]
    assert cfg["preset"] == "demo" and cfg["seed"] == 1 and len(cfg["settings_hash"]) == 16
    # the same call again gives the same data
    again = synthesize(tmp_path / "again", shape=(8, 160, 160), seed=1, preset="demo")
    assert np.array_equal(again.open("raw").to_numpy(), raw.to_numpy())
