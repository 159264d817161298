"""Tests for evaluate_arrays, evaluate_tables and evaluate_run."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from connectomix.errors import RunDirectoryError, VolumeError
from connectomix.evaluate import (
    adapted_rand_error,
    evaluate_arrays,
    evaluate_run,
    evaluate_tables,
    expected_run_length,
    ignore_boundaries,
    skeletonize,
    synapse_scores,
    variation_of_information,
)
from connectomix.run import Run
from connectomix.testing import random_volume, stored_volume

VOXEL = (40, 8, 8)


def neurites():
    """Rods along x, y and z: small, elongated, skeletonizable objects."""
    a = np.zeros((16, 48, 64), np.uint64)
    a[:, :, :] = 1  # a background cell that fills the rest
    a[5:9, 8:14, 2:62] = 11
    a[5:9, 30:36, 2:62] = 12
    a[1:15, 16:28, 40:48] = 13
    a[:, 38:44, 10:16] = 14
    return a


def predicted(gt):
    pred = gt.copy()
    pred[:, :, 32:][pred[:, :, 32:] == 11] = 21  # split
    pred[pred == 14] = 12  # merge
    return pred


def test_evaluate_arrays_agrees_with_the_metrics():
    gt = neurites()
    gt[:, 0, :] = 0
    pred = predicted(gt)
    stack = random_volume((3, 32, 32), dtype=np.float32, seed=0)
    out = evaluate_arrays(
        pred_labels=pred, gt_labels=gt, voxel_size=VOXEL, min_overlap_vx=10,
        pred_clefts=gt == 13, gt_clefts=gt == 13, aligned=stack,
        estimated_points=np.ones((4, 2)), true_points=np.zeros((4, 2)),
    )
    voi = variation_of_information(pred, gt)
    rand = adapted_rand_error(pred, gt)
    assert (out["voi_split"], out["voi_merge"], out["voi"]) == tuple(voi)
    assert (out["rand_error"], out["rand_precision"], out["rand_recall"]) == tuple(rand)
    assert out["n_split_objects"] == 1 and out["n_merged_segments"] == 1
    assert out["n_voxels_ignored"] == 16 * 64
    erl = expected_run_length(skeletonize(gt, voxel_size=VOXEL), pred, voxel_size=VOXEL)
    assert out["erl_nm"] == pytest.approx(erl.erl_nm)
    assert 0 < out["erl_fraction"] < 1
    assert out["cleft_score_nm"] == 0.0
    assert out["alignment_median_nm"] == pytest.approx(math.sqrt(2))
    assert out["ncc_n_chunks"] == 2
    assert all(isinstance(v, (int, float)) for v in out.values())
    json.dumps(out)


@pytest.mark.parametrize("chunk_voxels", [2**23, 700])
def test_evaluate_arrays_scores_without_the_boundary_band_too(chunk_voxels):
    gt = neurites()
    pred = gt.copy()
    rod = pred[5:9, 8:14, 2:62]  # object 11: its outermost voxels given to the background around it,
    rod[:, [0, -1], :] = 1  # so only voxels of the band (one voxel each side of a boundary) are wrong
    rod[:, :, [0, -1]] = 1
    out = evaluate_arrays(pred_labels=pred, gt_labels=gt, voxel_size=VOXEL, compute_erl=False,
                          chunk_voxels=chunk_voxels)  # 700: slabs of ~10 rows of one section
    band = ignore_boundaries(gt)
    want = variation_of_information(pred, band)
    assert out["voi"] > 0.01
    assert (out["voi_boundary_ignored_split"], out["voi_boundary_ignored_merge"]) == pytest.approx(
        (want.split, want.merge), abs=1e-12)
    assert out["voi_boundary_ignored"] == pytest.approx(0.0, abs=1e-12)
    assert out["rand_error_boundary_ignored"] == pytest.approx(adapted_rand_error(pred, band).error, abs=1e-12)
    # a real error stays an error
    merged = evaluate_arrays(pred_labels=predicted(gt), gt_labels=gt, compute_erl=False)
    assert merged["voi_boundary_ignored_merge"] > 0.01


def test_evaluate_arrays_scores_boolean_ground_truth():
    gt = neurites() > 11  # a mask of objects 12-14: two labels, True and False
    out = evaluate_arrays(pred_labels=gt.astype(np.uint8), gt_labels=gt, compute_erl=False)
    assert out["voi"] == pytest.approx(0.0, abs=1e-12)
    assert out["voi_boundary_ignored"] == pytest.approx(0.0, abs=1e-12)


def test_evaluate_arrays_with_given_skeletons_and_no_erl():
    gt = neurites()
    pred = predicted(gt)
    sk = skeletonize(gt, voxel_size=VOXEL)
    a = evaluate_arrays(pred_labels=pred, gt_labels=gt, voxel_size=VOXEL, gt_skeletons=sk)
    assert a["erl_nm"] > 0
    b = evaluate_arrays(pred_labels=pred, gt_labels=gt, compute_erl=False)
    assert "erl_nm" not in b and b["voi"] == a["voi"]
    assert evaluate_arrays() == {}


def test_evaluate_arrays_bad_input():
    gt = neurites()
    with pytest.raises(VolumeError, match="pred_labels was given without gt_labels"):
        evaluate_arrays(pred_labels=gt)
    with pytest.raises(VolumeError, match="same shape"):
        evaluate_arrays(pred_labels=gt[1:], gt_labels=gt, voxel_size=VOXEL)
    with pytest.raises(VolumeError, match="float"):
        evaluate_arrays(pred_labels=gt.astype(float), gt_labels=gt, voxel_size=VOXEL)
    with pytest.raises(VolumeError, match="voxel_size is required"):
        evaluate_arrays(pred_labels=gt, gt_labels=gt)  # ERL needs nm


def synapses(rows):
    return pd.DataFrame(rows, columns=["synapse_id", "pre_id", "post_id", "z", "y", "x"]).astype(
        {"synapse_id": np.int64, "pre_id": np.int64, "post_id": np.int64, "z": float, "y": float, "x": float}
    )


GT_SYN = synapses([(1, 11, 12, 200, 100, 100), (2, 11, 12, 200, 100, 300), (3, 11, 12, 200, 100, 500),
                   (4, 13, 11, 400, 200, 350), (5, 12, 13, 0, 0, 0)])
PRED_SYN = synapses([(1, 11, 12, 200, 120, 100), (2, 11, 12, 200, 100, 320), (3, 21, 12, 200, 100, 500),
                     (4, 13, 11, 3000, 200, 350)])


def test_evaluate_tables():
    out = evaluate_tables(pred_synapses=PRED_SYN, gt_synapses=GT_SYN)
    s = synapse_scores(PRED_SYN, GT_SYN)
    assert out["synapse_n_matched"] == s.n_matched == 2
    assert out["synapse_detection_f1"] >= out["synapse_f1"]
    # edges come from the synapse tables when no edge tables are given
    assert out["edge_n_gt"] == 3 and out["edge_n_pred"] == 3
    assert out["edge_strong_n_gt"] == 1
    json.dumps(out)
    with pytest.raises(VolumeError, match="gt_edges was given without pred_edges"):
        evaluate_tables(gt_edges=pd.DataFrame())


def make_run(tmp_path, *, with_gt=True):
    run = Run.create(tmp_path / "run")
    gt = neurites()
    pred = predicted(gt)
    stored_volume(run.volume_path("segmentation"), pred, voxel_size=VOXEL, chunks=(8, 24, 32))
    if with_gt:
        # the ground truth covers a larger region; evaluation uses the common part
        big = np.zeros((20, 48, 64), np.uint64)
        big[2:18] = gt
        stored_volume(run.volume_path("gt_segmentation"), big, voxel_size=VOXEL, offset=(-80, 0, 0))
        run.write_table("gt_synapses", GT_SYN)
    stored_volume(run.volume_path("aligned"), random_volume((3, 32, 32), seed=1), voxel_size=VOXEL)
    run.write_table("synapses", PRED_SYN)
    return run


def test_evaluate_run(tmp_path):
    run = make_run(tmp_path)
    out = evaluate_run(run.path)
    gt, pred = neurites(), predicted(neurites())
    assert out["voi"] == pytest.approx(variation_of_information(pred, gt).total)
    assert out["erl_nm"] > 0
    # predicted id 21 maps to gt 11 by overlap, so the third synapse's partners are right
    assert out["synapse_n_matched"] == 3
    assert "ncc_mean" in out
    json.dumps(out)


def test_evaluate_run_without_ground_truth(tmp_path):
    run = make_run(tmp_path, with_gt=False)
    with pytest.raises(RunDirectoryError, match="has no ground truth"):
        evaluate_run(run.path)
    with pytest.raises(RunDirectoryError):
        evaluate_run(tmp_path / "nowhere")
