"""Tests for skeletonization and expected run length."""

import numpy as np
import pytest

from connectomix.errors import VolumeError
from connectomix.evaluate import Skeletons, expected_run_length, run_length_from_ids, sample_labels, skeletonize
from connectomix.testing import stored_volume
from connectomix.volume import Volume

VOXEL = (40, 8, 8)


def chain(n, *, start=0.0, step=10.0, skeleton_id=1, axis=2):
    nodes = np.zeros((n, 3))
    nodes[:, axis] = start + step * np.arange(n)
    edges = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    return Skeletons(nodes, edges, np.full(n, skeleton_id, np.uint64))


def join(*sks):
    nodes, edges, ids, base = [], [], [], 0
    for s in sks:
        nodes.append(s.nodes), edges.append(s.edges + base), ids.append(s.skeleton_ids)
        base += len(s.nodes)
    return Skeletons(np.concatenate(nodes), np.concatenate(edges), np.concatenate(ids))


def test_erl_by_hand():
    a = chain(5, skeleton_id=1)  # 4 edges of 10 nm
    b = chain(3, skeleton_id=2, start=1000)  # 2 edges of 10 nm
    sk = join(a, b)
    perfect = run_length_from_ids(sk, np.array([1, 1, 1, 1, 1, 2, 2, 2]))
    assert perfect.total_length_nm == 60
    assert perfect.erl_nm == pytest.approx((40**2 + 20**2) / 60)
    assert perfect.max_erl_nm == perfect.erl_nm
    assert (perfect.n_split_edges, perfect.n_merge_edges, perfect.n_merged_segments) == (0, 0, 0)
    # a split in the middle of skeleton 1: runs of 20 + 20, skeleton 2 intact
    split = run_length_from_ids(sk, np.array([1, 1, 1, 3, 3, 2, 2, 2]))
    assert split.erl_nm == pytest.approx((20**2 + 10**2 + 20**2) / 60)
    assert split.n_split_edges == 1
    # segment 0 under a node breaks both its edges
    hole = run_length_from_ids(sk, np.array([1, 1, 0, 1, 1, 2, 2, 2]))
    assert hole.erl_nm == pytest.approx((10**2 + 10**2 + 20**2) / 60)
    assert hole.n_split_edges == 2


def test_merger_zeroes_both_skeletons():
    sk = join(chain(5, skeleton_id=1), chain(3, skeleton_id=2, start=1000))
    merged = run_length_from_ids(sk, np.array([7, 7, 7, 7, 7, 7, 7, 7]))
    assert merged.erl_nm == 0.0
    assert merged.n_merged_segments == 1 and merged.n_merge_edges == 6
    # one stray node of skeleton 2 in segment 1 makes 1 a merger ...
    ids = np.array([1, 1, 1, 1, 1, 1, 2, 2])
    stray = run_length_from_ids(sk, ids)
    assert stray.erl_nm == pytest.approx(10**2 / 60)
    # ... unless a merger needs two nodes of each skeleton
    lenient = run_length_from_ids(sk, ids, min_merge_nodes=2)
    assert lenient.erl_nm == pytest.approx((40**2 + 10**2) / 60)


def test_nodes_in_nm_and_branches():
    nodes = np.array([[0, 0, 0], [0, 30, 40], [0, 60, 80], [0, 60, 0]], float)  # edges of 50 nm
    sk = Skeletons(nodes, np.array([[0, 1], [1, 2], [1, 3]]), np.ones(4, np.uint64))
    r = run_length_from_ids(sk, np.array([1, 1, 1, 2]))
    assert r.total_length_nm == pytest.approx(150)
    assert r.erl_nm == pytest.approx(100**2 / 150)


def test_empty_skeletons():
    sk = Skeletons(np.zeros((0, 3)), np.zeros((0, 2), np.int64), np.zeros(0, np.uint64))
    r = run_length_from_ids(sk, np.zeros(0, np.uint64))
    assert r.erl_nm == 0.0 and r.n_skeletons == 0


def test_bad_skeletons():
    sk = chain(3)
    with pytest.raises(VolumeError, match="one integer per skeleton node"):
        run_length_from_ids(sk, np.array([1, 1]))
    with pytest.raises(VolumeError, match="different skeletons"):
        run_length_from_ids(Skeletons(sk.nodes, sk.edges, np.array([1, 1, 2], np.uint64)), np.ones(3, int))
    with pytest.raises(VolumeError, match="outside"):
        run_length_from_ids(Skeletons(sk.nodes, np.array([[0, 3]]), sk.skeleton_ids), np.ones(3, int))
    with pytest.raises(VolumeError, match="NaN"):
        run_length_from_ids(Skeletons(sk.nodes * np.nan, sk.edges, sk.skeleton_ids), np.ones(3, int))
    with pytest.raises(TypeError, match="Skeletons"):
        run_length_from_ids((sk.nodes, sk.edges, sk.skeleton_ids), np.ones(3, int))


def rods():
    """Two straight neurites along x and one along y, in a (12, 48, 64) volume."""
    a = np.zeros((12, 48, 64), np.uint32)
    a[4:8, 8:14, 2:62] = 11
    a[4:8, 30:36, 2:62] = 12
    a[1:11, 16:28, 40:48] = 13
    return a


def test_skeletonize_rods():
    labels = rods()
    sk = skeletonize(labels, voxel_size=VOXEL, offset=(400, 80, 0), dust_vx=10)
    assert set(np.unique(sk.skeleton_ids).tolist()) == {11, 12, 13}
    ids = sample_labels(labels, sk.nodes, voxel_size=VOXEL, offset=(400, 80, 0))
    np.testing.assert_array_equal(ids, sk.skeleton_ids)  # every node lies in its own object
    r = run_length_from_ids(sk, sk.skeleton_ids)
    # the rods along x span about 60 voxels of 8 nm
    per = {i: sk.nodes[sk.skeleton_ids == i] for i in (11, 12)}
    for nodes in per.values():
        assert np.ptp(nodes[:, 2]) > 50 * 8
    assert r.erl_nm == pytest.approx(r.max_erl_nm)


def test_erl_of_a_cut_prediction():
    labels = rods()
    sk = skeletonize(labels, voxel_size=VOXEL, dust_vx=10)
    perfect = expected_run_length(sk, labels, voxel_size=VOXEL)
    cut = labels.copy()
    cut[:, :, 32:][cut[:, :, 32:] == 11] = 21
    halved = expected_run_length(sk, cut, voxel_size=VOXEL)
    assert halved.erl_nm < perfect.erl_nm
    assert halved.n_split_edges == 1
    fused = labels.copy()
    fused[fused == 12] = 11
    merged = expected_run_length(sk, fused, voxel_size=VOXEL)
    assert merged.n_merged_segments == 1
    assert merged.erl_nm < halved.erl_nm


def test_sample_labels_from_volumes(tmp_path):
    labels = rods()
    sk = skeletonize(labels, voxel_size=VOXEL, dust_vx=10)
    vol = stored_volume(tmp_path / "seg", labels, voxel_size=VOXEL, chunks=(4, 16, 16))
    ref = sample_labels(labels, sk.nodes, voxel_size=VOXEL)
    np.testing.assert_array_equal(sample_labels(vol, sk.nodes), ref)
    mem = Volume(labels, voxel_size=VOXEL, offset=(0, 0, 0))
    np.testing.assert_array_equal(sample_labels(mem, sk.nodes), ref)
    sk_v = skeletonize(mem, dust_vx=10)  # voxel size taken from the Volume
    np.testing.assert_allclose(sk_v.nodes, sk.nodes)


def test_points_outside_and_missing_voxel_size():
    labels = rods()
    with pytest.raises(VolumeError, match="1 of 2 skeleton nodes lie outside"):
        sample_labels(labels, np.array([[0.0, 0, 0], [0, 0, 64 * 8]]), voxel_size=VOXEL)
    with pytest.raises(VolumeError, match="voxel_size is required"):
        sample_labels(labels, np.zeros((1, 3)))
    with pytest.raises(VolumeError, match="voxel_size must be 3 positive"):
        skeletonize(labels, voxel_size=(40, 0, 8))
    with pytest.raises(VolumeError, match="must be 3-D"):
        skeletonize(labels[0], voxel_size=VOXEL)
