"""Tests for synapse matching, partner rule and cleft distances."""

import itertools

import numpy as np
import pandas as pd
import pytest

from connectomix.errors import TableFormatError, VolumeError
from connectomix.evaluate import cleft_distances, map_segments_to_gt, match_points, synapse_scores


def syn(points, pre=None, post=None, ids=None):
    p = np.asarray(points, float).reshape(-1, 3)
    n = len(p)
    return pd.DataFrame(
        {
            "synapse_id": np.arange(1, n + 1) if ids is None else ids,
            "pre_id": np.ones(n, np.int64) if pre is None else np.asarray(pre, np.int64),
            "post_id": np.full(n, 2, np.int64) if post is None else np.asarray(post, np.int64),
            "z": p[:, 0], "y": p[:, 1], "x": p[:, 2],
        }
    )


def test_one_to_one():
    gt = syn([[0, 0, 0]])
    pred = syn([[0, 0, 50], [0, 0, -80]])  # found twice
    s = synapse_scores(pred, gt)
    assert (s.n_matched, s.precision, s.recall) == (1, 0.5, 1.0)
    assert s.f1 == pytest.approx(2 / 3)
    assert s.matches["distance_nm"].tolist() == [50.0]
    assert s.mean_pred_to_gt_nm == pytest.approx(65.0)
    assert s.mean_gt_to_pred_nm == pytest.approx(50.0)


def test_hungarian_beats_greedy():
    # greedy nearest-first matches P1-A and leaves P2 alone; the optimum matches both
    gt = syn([[0, 0, 0], [0, 0, 350]])
    pred = syn([[0, 0, 100], [0, 0, -300]])
    s = synapse_scores(pred, gt)
    assert s.n_matched == 2
    assert s.matches.set_index("pred_synapse_id")["gt_synapse_id"].to_dict() == {1: 2, 2: 1}


def test_distance_threshold_is_configurable():
    gt = syn([[0, 0, 0]])
    pred = syn([[0, 0, 500]])
    assert synapse_scores(pred, gt).n_matched == 0
    assert synapse_scores(pred, gt, max_distance_nm=600).n_matched == 1
    assert synapse_scores(syn([[0, 0, 400]]), gt).n_matched == 1  # the bound is inclusive
    with pytest.raises(ValueError, match="max_distance_nm"):
        synapse_scores(pred, gt, max_distance_nm=-1)


def test_partners_must_agree():
    gt = syn([[0, 0, 0], [0, 1000, 0]], pre=[1, 1], post=[2, 3])
    pred = syn([[0, 0, 10], [0, 1000, 10]], pre=[1, 3], post=[2, 1])  # the second is reversed
    s = synapse_scores(pred, gt)
    assert s.n_matched == 1
    d = synapse_scores(pred, gt, require_partners=False)
    assert d.n_matched == 2


def test_partners_through_segment_map():
    gt_labels = np.array([1, 1, 2, 2, 3, 3])
    pred_labels = np.array([10, 10, 20, 20, 30, 31])
    m = map_segments_to_gt(pred_labels, gt_labels)
    gt = syn([[0, 0, 0], [0, 1000, 0]], pre=[1, 2], post=[2, 3])
    pred = syn([[0, 0, 0], [0, 1000, 0]], pre=[10, 20], post=[20, 31])
    assert synapse_scores(pred, gt, segment_map=m).n_matched == 2
    assert synapse_scores(pred, gt).n_matched == 0  # ids not mapped
    unmapped = syn([[0, 0, 0]], pre=[99], post=[20])
    assert synapse_scores(unmapped, gt, segment_map=m).n_matched == 0


def test_zero_partner_never_matches():
    gt = syn([[0, 0, 0]], pre=[0], post=[2])
    assert synapse_scores(gt, gt).n_matched == 0
    assert synapse_scores(gt, gt, require_partners=False).n_matched == 1


def max_matching_size(p, g, r):
    """Exhaustive maximum one-to-one matching within distance r (tiny inputs only)."""
    d = np.linalg.norm(p[:, None] - g[None], axis=2) <= r
    best = 0
    for k in range(min(len(p), len(g)), 0, -1):
        for rows in itertools.combinations(range(len(p)), k):
            for cols in itertools.permutations(range(len(g)), k):
                if all(d[i, j] for i, j in zip(rows, cols)):
                    return k
    return best


@pytest.mark.parametrize("seed", range(6))
def test_matching_is_maximum(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1000, size=(5, 3))
    g = rng.uniform(0, 1000, size=(4, 3))
    i, j, d = match_points(p, g, max_distance_nm=400)
    assert len(set(i.tolist())) == len(i) and len(set(j.tolist())) == len(j)
    assert np.all(d <= 400)
    np.testing.assert_allclose(d, np.linalg.norm(p[i] - g[j], axis=1))
    assert len(i) == max_matching_size(p, g, 400)


def test_empty_tables():
    gt = syn([[0, 0, 0]])
    empty = syn(np.zeros((0, 3)))
    s = synapse_scores(empty, gt)
    assert np.isnan(s.precision) and s.recall == 0.0 and np.isnan(s.f1)
    s = synapse_scores(gt, empty)
    assert s.precision == 0.0 and np.isnan(s.recall)
    assert np.isnan(s.mean_pred_to_gt_nm)


def test_malformed_tables():
    gt = syn([[0, 0, 0]])
    with pytest.raises(TableFormatError, match=r"pred_synapses lacks column\(s\) \['post_id'\]"):
        synapse_scores(gt.drop(columns="post_id"), gt)
    with pytest.raises(TableFormatError, match="gt_synapses.z must hold finite"):
        synapse_scores(gt, gt.assign(z=np.nan))
    with pytest.raises(TableFormatError, match="gt_synapses.pre_id must be an integer column"):
        synapse_scores(gt, gt.assign(pre_id=1.5))
    with pytest.raises(TableFormatError, match="negative"):
        synapse_scores(gt.assign(post_id=-1), gt)
    with pytest.raises(TableFormatError, match="must be a pandas DataFrame"):
        synapse_scores(gt.to_dict(), gt)


def test_cleft_distances():
    gt = np.zeros((10, 8, 8), np.uint8)
    gt[4, 2:6, 2:6] = 1
    pred = np.zeros_like(gt)
    pred[5, 2:6, 2:6] = 7  # one section off: 40 nm
    c = cleft_distances(pred, gt, voxel_size=(40, 8, 8))
    assert c.mean_pred_to_gt_nm == pytest.approx(40.0)
    assert c.mean_gt_to_pred_nm == pytest.approx(40.0)
    assert c.score_nm == pytest.approx(40.0)
    assert (c.n_pred_far, c.n_gt_far) == (0, 0)
    pred[9, 7, 7] = 1  # a far false positive
    c = cleft_distances(pred, gt, voxel_size=(40, 8, 8), tolerance_nm=100)
    assert c.n_pred_far == 1 and c.n_gt_far == 0
    assert c.mean_pred_to_gt_nm > 40.0
    assert c.mean_gt_to_pred_nm == pytest.approx(40.0)


def test_cleft_distances_empty_and_bad():
    gt = np.zeros((4, 4, 4), bool)
    gt[1, 1, 1] = True
    c = cleft_distances(np.zeros((4, 4, 4), bool), gt, voxel_size=(40, 8, 8))
    assert np.isnan(c.score_nm) and c.n_gt_far == 1
    with pytest.raises(VolumeError, match="same shape"):
        cleft_distances(np.zeros((4, 4, 5), bool), gt, voxel_size=(40, 8, 8))
    with pytest.raises(VolumeError, match="voxel_size must be 3 positive"):
        cleft_distances(gt, gt, voxel_size=(40, 8))
