"""Edge error sources on a hand-made run: one split neuron, one merge, one missed and one
false synapse, one partner error, each with a known effect on the edges."""

import numpy as np
import pandas as pd
import pytest

from connectomix.errors import TableNotFoundError, VolumeNotFoundError
from connectomix.evaluate import edge_error_sources, evaluate_run
from connectomix.run import Run
from connectomix.volume import create_volume

VS = (40, 8, 8)
SHAPE = (2, 128, 256)  # 80 x 1024 x 2048 nm


def labels():
    """Truth: neurons 1..4 as slabs along x. Prediction: 1 split at y = 64 into 11 and 12,
    2 intact as 20, 3 and 4 merged into 34 (which maps to 3: equal overlaps, smaller id)."""
    gt = np.zeros(SHAPE, np.uint64)
    for i in range(4):
        gt[:, :, 64 * i:64 * (i + 1)] = i + 1
    pred = np.zeros(SHAPE, np.uint64)
    pred[:, :64, :64], pred[:, 64:, :64] = 11, 12
    pred[:, :, 64:128] = 20
    pred[:, :, 128:] = 34
    return pred, gt


def synapses(rows):
    return pd.DataFrame(rows, columns=["synapse_id", "pre_id", "post_id", "z", "y", "x"]).astype(
        {"synapse_id": np.int64, "pre_id": np.int64, "post_id": np.int64, "z": float, "y": float, "x": float})


# true synapses (z, y, x in nm); every pair of them is > 400 nm apart or matched exactly
GT = synapses([
    (1, 1, 2, 40, 32, 504),     # edge 1->2, on fragment 11 ...
    (2, 1, 2, 40, 960, 504),    # ... and on fragment 12: found, but split over two segment pairs
    (3, 2, 4, 40, 512, 1600),   # 2->4, post on the merged segment: lost to the merge
    (4, 3, 2, 40, 512, 1024),   # 3->2: found
    (5, 4, 1, 40, 100, 1900),   # 4->1: never detected, lost to a missed synapse
    (6, 2, 1, 40, 700, 504),    # 2->1: detected with the wrong partners
])
PRED = synapses([
    (1, 11, 20, 40, 32, 504),
    (2, 12, 20, 40, 960, 504),
    (3, 20, 34, 40, 512, 1600),  # maps to 2->3: a false edge from the merge
    (4, 34, 20, 40, 512, 1024),
    (5, 34, 11, 40, 960, 2000),  # no true synapse near: maps to 3->1, a false edge from a false detection
    (6, 11, 12, 40, 700, 504),   # wrong partners: maps to 1->1, a false edge from a partner error
])


def make_run(tmp_path, pred_syn=PRED, *, edges=None):
    run = Run.create(tmp_path / "run")
    pred, gt = labels()
    for name, data in (("segmentation", pred), ("gt_segmentation", gt)):
        v = create_volume(run.volume_path(name), shape=SHAPE, dtype=np.uint64, voxel_size=VS, chunks=(2, 64, 64))
        v[v.roi] = data
    run.write_table("gt_synapses", GT)
    if pred_syn is not None:
        run.write_table("synapses", pred_syn)
    if edges is not None:
        run.write_table("edges", edges)
    return run


def test_edge_error_sources_counts(tmp_path):
    run = make_run(tmp_path)
    out = edge_error_sources(run.path)
    assert out == {
        "n_true_edges": 5, "n_pred_edges": 5, "n_matched_edges": 2,
        "true_edges_lost_to_missed_synapses": 1, "true_edges_lost_to_merges": 1,
        "true_edges_lost_to_partner_errors": 1, "true_edges_lost_to_splits": 1, "extra_edges_from_splits": 1,
        "false_edges_from_false_synapses": 1, "false_edges_from_merges": 1, "false_edges_from_partner_errors": 1,
        "n_split_neurons": 1, "n_merged_segments": 1, "n_true_synapses": 6, "n_detected_synapses": 5,
        "n_pred_synapses": 6, "n_false_detections": 1,
    }
    # the causes add up to the terms of the edge scores
    scores = evaluate_run(run.path, compute_erl=False)
    assert scores["edge_n_matched"] == out["n_matched_edges"]
    assert scores["edge_n_gt"] == out["n_true_edges"] and scores["edge_n_pred"] == out["n_pred_edges"]
    lost = sum(v for k, v in out.items() if k.startswith("true_edges_lost_to") and k != "true_edges_lost_to_splits")
    false = sum(v for k, v in out.items() if k.startswith("false_edges_from"))
    assert lost == out["n_true_edges"] - out["n_matched_edges"]
    assert false == out["n_pred_edges"] - out["n_matched_edges"]


def test_edge_error_sources_uses_the_edge_table(tmp_path):
    # the graph kept only some segment pairs (e.g. min_synapses): the others' synapses do not count
    edges = pd.DataFrame({"pre_id": [11, 12, 34, 20], "post_id": [20, 20, 20, 34], "n_synapses": [1, 1, 1, 1]})
    out = edge_error_sources(make_run(tmp_path, edges=edges).path)
    assert out["n_pred_edges"] == 3 and out["n_matched_edges"] == 2
    assert out["false_edges_from_false_synapses"] == 0 and out["false_edges_from_partner_errors"] == 0
    assert out["false_edges_from_merges"] == 1
    # the wrongly assigned synapse is still a detection, its edge just is not in the graph
    assert out["true_edges_lost_to_partner_errors"] == 1
    assert out["true_edges_lost_to_splits"] == 1


def test_edge_error_sources_without_errors(tmp_path):
    # perfect synapses on the true segmentation: nothing lost, nothing false
    run = make_run(tmp_path, pred_syn=GT)
    _, gt = labels()
    seg = run.open("segmentation", mode="r+")
    seg[seg.roi] = gt
    out = edge_error_sources(run.path)
    assert out["n_matched_edges"] == out["n_true_edges"] == out["n_pred_edges"] == 5
    assert all(v == 0 for k, v in out.items() if k.startswith(("true_edges_lost", "false_edges", "extra")))
    assert out["n_split_neurons"] == out["n_merged_segments"] == 0


def test_edge_error_sources_names_missing_inputs(tmp_path):
    run = Run.create(tmp_path / "empty")
    with pytest.raises(VolumeNotFoundError, match="segmentation"):
        edge_error_sources(run.path)
    run = make_run(tmp_path, pred_syn=None)
    with pytest.raises(TableNotFoundError, match="'synapses'"):
        edge_error_sources(run.path)
