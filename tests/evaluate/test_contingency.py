"""Tests for the streamed sparse contingency table."""

from collections import Counter

import numpy as np
import pytest

from connectomix.errors import ConnectomixError, VolumeError
from connectomix.evaluate import ContingencyTable, contingency_table, pair_counts
from connectomix.testing import blobs, stored_volume
from connectomix.volume import Volume


def brute_force(pred, gt):
    c = Counter(zip(gt.ravel().tolist(), pred.ravel().tolist()))
    rows = sorted((g, s, n) for (g, s), n in c.items() if g != 0)
    ignored = sum(n for (g, _), n in c.items() if g == 0)
    return rows, ignored


def as_rows(t: ContingencyTable):
    return list(zip(t.gt_ids.tolist(), t.segment_ids.tolist(), t.counts.tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_table_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 5, size=(6, 7, 8))
    pred = rng.integers(0, 9, size=(6, 7, 8))
    t = contingency_table(pred, gt)
    rows, ignored = brute_force(pred, gt)
    assert as_rows(t) == rows
    assert t.n_ignored == ignored
    assert t.n_voxels + t.n_ignored == gt.size
    assert t.shape == (6, 7, 8)


@pytest.mark.parametrize("chunk_voxels", [1, 7, 64, 1000, 2**24])
def test_streaming_does_not_change_the_table(chunk_voxels):
    gt = blobs((8, 20, 24), n=15, seed=3)
    pred = blobs((8, 20, 24), n=25, seed=4)
    gt[:, :, :3] = 0
    ref = contingency_table(pred, gt, chunk_voxels=2**30)
    t = contingency_table(pred, gt, chunk_voxels=chunk_voxels)
    assert as_rows(t) == as_rows(ref)
    assert t.n_ignored == ref.n_ignored


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.uint64])
def test_integer_dtypes(dtype):
    rng = np.random.default_rng(5)
    gt = rng.integers(0, 4, size=(5, 9)).astype(dtype)
    pred = rng.integers(0, 6, size=(5, 9)).astype(dtype)
    assert as_rows(contingency_table(pred, gt)) == brute_force(pred, gt)[0]


def test_bool_labels():
    gt = np.array([True, True, False, True])
    pred = np.array([1, 2, 2, 2], np.uint32)
    t = contingency_table(pred, gt)
    assert as_rows(t) == [(1, 1, 1), (1, 2, 2)]
    assert t.n_ignored == 1


def test_labels_near_two_to_the_64():
    top = np.iinfo(np.uint64).max
    gt = np.array([top, top, top - 1, 5, 0], np.uint64)
    pred = np.array([top - 2, top - 2, top, top, 1], np.uint64)
    t = contingency_table(pred, gt)
    assert t.gt_ids.dtype == np.uint64
    assert as_rows(t) == [(5, int(top), 1), (int(top - 1), int(top), 1), (int(top), int(top - 2), 2)]


def test_one_and_two_dimensional_inputs():
    gt = np.array([1, 1, 2, 2, 2])
    pred = np.array([3, 4, 4, 4, 4])
    assert as_rows(contingency_table(pred, gt, chunk_voxels=2)) == [(1, 3, 1), (1, 4, 1), (2, 4, 3)]
    gt2 = np.arange(12).reshape(1, 12) % 3
    t = contingency_table(gt2, gt2, chunk_voxels=5)  # one row longer than a chunk
    assert as_rows(t) == [(1, 1, 4), (2, 2, 4)]


def test_pair_counts_with_weights():
    g = np.array([2, 1, 2, 1], np.uint64)
    s = np.array([9, 9, 9, 8], np.uint64)
    gi, si, c = pair_counts(g, s, weights=np.array([3, 1, 2, 5]))
    assert list(zip(gi.tolist(), si.tolist(), c.tolist())) == [(1, 8, 5), (1, 9, 1), (2, 9, 5)]


def test_zarr_volume_input(tmp_path):
    gt = blobs((6, 16, 16), n=10, seed=1)
    pred = blobs((6, 16, 16), n=12, seed=2)
    vg = stored_volume(tmp_path / "gt", gt, chunks=(2, 8, 8))
    vp = stored_volume(tmp_path / "pred", pred, chunks=(2, 8, 8))
    assert as_rows(contingency_table(vp, vg, chunk_voxels=300)) == as_rows(contingency_table(pred, gt))
    # a bare zarr array works too
    assert as_rows(contingency_table(vp.data, gt)) == as_rows(contingency_table(pred, gt))


def test_repr_and_len():
    t = contingency_table(np.array([1, 2, 2]), np.array([1, 1, 0]))
    assert len(t) == 2
    assert "2 pairs" in repr(t)


def test_shape_mismatch_is_named():
    with pytest.raises(VolumeError, match=r"pred_labels and gt_labels .* \(4, 5\) and \(4, 6\)"):
        contingency_table(np.zeros((4, 5), np.uint8), np.zeros((4, 6), np.uint8))


@pytest.mark.parametrize("which", ["pred_labels", "gt_labels"])
def test_float_labels_rejected(which):
    good = np.ones((3, 3), np.uint32)
    bad = np.ones((3, 3), np.float32)
    args = (bad, good) if which == "pred_labels" else (good, bad)
    with pytest.raises(VolumeError, match=f"{which} must hold integer labels, got dtype float32"):
        contingency_table(*args)


@pytest.mark.parametrize("which", ["pred_labels", "gt_labels"])
def test_negative_labels_rejected(which):
    good = np.ones((3, 3), np.int64)
    bad = good.copy()
    bad[2, 1] = -4
    args = (bad, good) if which == "pred_labels" else (good, bad)
    with pytest.raises(VolumeError, match=f"{which} holds negative labels \\(minimum -4"):
        contingency_table(*args)


def test_empty_and_zero_dimensional_rejected():
    with pytest.raises(VolumeError, match="pred_labels is empty"):
        contingency_table(np.zeros((0, 4), np.uint8), np.zeros((0, 4), np.uint8))
    with pytest.raises(VolumeError, match="at least one axis"):
        contingency_table(np.array(3), np.array(3))


def test_errors_are_connectomix_and_builtin():
    with pytest.raises(ConnectomixError):
        contingency_table(np.zeros(3, float), np.zeros(3, np.uint8))
    with pytest.raises(ValueError):
        contingency_table(np.zeros(3, float), np.zeros(3, np.uint8))


def test_not_an_array():
    with pytest.raises(TypeError, match="gt_labels must be a numpy array"):
        contingency_table(np.zeros(3, np.uint8), [1, 2, 3])


def test_volumes_on_different_grids():
    a = Volume(np.ones((2, 4, 4), np.uint32), voxel_size=(40, 8, 8))
    b = Volume(np.ones((2, 4, 4), np.uint32), voxel_size=(40, 4, 4))
    with pytest.raises(VolumeError, match="not on the same grid"):
        contingency_table(a, b)
    c = Volume(np.ones((2, 4, 4), np.uint32), voxel_size=(40, 8, 8), offset=(40, 0, 0))
    with pytest.raises(VolumeError, match="not on the same grid"):
        contingency_table(a, c)


def test_channel_volume_rejected():
    v = Volume(np.ones((2, 2, 4, 4), np.uint32), voxel_size=(40, 8, 8))
    with pytest.raises(VolumeError, match="without channel axes"):
        contingency_table(v, np.ones((2, 2, 4, 4), np.uint32))


def test_pair_counts_with_huge_weights_uses_the_fallback_sort():
    g = np.array([2, 1, 2, 1, 3], np.uint64)
    s = np.array([9, 9, 9, 8, 7], np.uint64)
    w = np.array([2**60, 1, 2**60, 5, 3], np.int64)  # key and weight need > 63 bits together
    gi, si, c = pair_counts(g, s, weights=w)
    assert list(zip(gi.tolist(), si.tolist(), c.tolist())) == [(1, 8, 5), (1, 9, 1), (2, 9, 2**61), (3, 7, 3)]


@pytest.mark.parametrize(
    "values",
    [
        np.array([5, 3, 5, 9, 3], np.uint16),  # narrow range: dense lookup
        np.array([2**63, 7, 2**63, 2**64 - 1], np.uint64),  # wide range, few values: binary search
        np.random.default_rng(0).integers(0, 2**64 - 1, 300_000, dtype=np.uint64, endpoint=True),  # many
    ],
    ids=["narrow", "wide-few", "wide-many"],
)
def test_compact_ids(values):
    from connectomix.evaluate._contingency import compact_ids

    uniq, inv = compact_ids(values)
    ref_u, ref_inv = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(uniq, ref_u.astype(np.uint64))
    np.testing.assert_array_equal(inv, ref_inv)
    assert uniq.dtype == np.uint64 and inv.dtype == np.int64
