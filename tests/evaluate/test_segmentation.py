"""Tests for VOI, adapted Rand, split/merge counts and the segment -> gt map."""

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error as sk_rand
from skimage.metrics import variation_of_information as sk_voi

from connectomix.errors import VolumeError
from connectomix.evaluate import (
    adapted_rand_error,
    apply_segment_map,
    BoundaryIgnored,
    contingency_table,
    ignore_boundaries,
    map_segments_to_gt,
    oracle_agglomeration,
    split_merge_errors,
    variation_of_information,
)
from connectomix.testing import blobs


def compact(labels):
    """Relabel to 0..K-1 keeping 0 as 0, so that scikit-image can take any ids."""
    u, inv = np.unique(labels, return_inverse=True)
    out = inv.reshape(labels.shape).astype(np.int64)
    if u[0] != 0:
        out += 1
    return out


def assert_matches_skimage(pred, gt):
    """Our VOI and Rand equal scikit-image's (label ids compacted for it)."""
    g, p = compact(gt), compact(pred)
    voi = variation_of_information(pred, gt)
    split, merge = sk_voi(g, p, ignore_labels=[0])
    np.testing.assert_allclose([voi.split, voi.merge], [split, merge], rtol=1e-9, atol=1e-12)
    assert voi.total == pytest.approx(voi.split + voi.merge)
    ours = adapted_rand_error(pred, gt)
    with np.errstate(invalid="ignore", divide="ignore"):
        err, sk_prec, sk_rec = sk_rand(g, p)
    # scikit-image 0.26 returns precision and recall swapped (its issue #6485)
    np.testing.assert_allclose(
        [ours.error, ours.precision, ours.recall], [err, sk_rec, sk_prec], rtol=1e-9, atol=1e-12
    )


def perturb(gt, seed):
    """A plausible prediction: a few objects split by a plane, a few merged, noisy boundaries."""
    rng = np.random.default_rng(seed)
    pred = gt.copy()
    ids = np.unique(gt)
    for i in rng.choice(ids, size=max(1, len(ids) // 4), replace=False):
        m = (gt == i) & (np.indices(gt.shape)[-1] > gt.shape[-1] // 2)
        pred[m] = gt.max() + 100 + i
    a, b = rng.choice(ids, size=2, replace=False)
    pred[pred == a] = b
    return np.roll(pred, 1, axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_volumes_match_skimage(seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(1, 6, size=(5, 6, 7))
    pred = rng.integers(0, 8, size=(5, 6, 7))
    assert_matches_skimage(pred, gt)


@pytest.mark.parametrize("seed", [0, 1])
def test_realistic_volumes_match_skimage(seed):
    gt = blobs((8, 32, 32), n=30, seed=seed)
    pred = perturb(gt, seed)
    assert_matches_skimage(pred, gt)


def test_ground_truth_zero_is_ignored_like_skimage():
    gt = blobs((6, 24, 24), n=20, seed=7)
    gt[:, ::5, :] = 0  # extracellular space
    pred = perturb(gt, 7)
    assert_matches_skimage(pred, gt)
    # changing the prediction where gt is 0 changes nothing
    pred2 = pred.copy()
    pred2[gt == 0] = 12345
    assert variation_of_information(pred2, gt) == variation_of_information(pred, gt)
    assert adapted_rand_error(pred2, gt) == adapted_rand_error(pred, gt)


def test_perfect_and_permuted_labels():
    gt = blobs((6, 20, 20), n=12, seed=1)
    perm = np.random.default_rng(0).permutation(1000)[: int(gt.max()) + 1] + 1
    pred = perm[gt]
    voi = variation_of_information(pred, gt)
    assert voi.split == 0.0 and voi.merge == 0.0
    rand = adapted_rand_error(pred, gt)
    assert rand == (0.0, 1.0, 1.0)
    assert_matches_skimage(pred, gt)


def test_all_one_label():
    gt = blobs((4, 16, 16), n=8, seed=2)
    one = np.ones_like(gt)
    assert_matches_skimage(one, gt)  # everything merged
    assert_matches_skimage(gt, one)  # everything split
    voi = variation_of_information(one, gt)
    assert voi.split == 0.0 and voi.merge > 0
    rand = adapted_rand_error(one, gt)
    assert rand.recall == 1.0 and rand.precision < 1.0  # merges cost precision
    rand = adapted_rand_error(gt, one)
    assert rand.precision == 1.0 and rand.recall < 1.0  # splits cost recall
    assert_matches_skimage(one, one)


def test_all_distinct_labels():
    n = 5 * 6 * 7
    distinct = np.arange(1, n + 1).reshape(5, 6, 7)
    gt = blobs((5, 6, 7), n=4, seed=0)
    assert_matches_skimage(distinct, gt)
    assert_matches_skimage(gt, distinct)
    assert_matches_skimage(distinct, distinct)  # no pairs at all: NaN like scikit-image
    voi = variation_of_information(distinct, gt)
    assert voi.merge == 0.0
    assert voi.split > 0


def test_uint64_labels_near_two_to_the_64():
    gt = blobs((6, 20, 20), n=15, seed=3)
    pred = perturb(gt, 3)
    top = np.uint64(np.iinfo(np.uint64).max)
    gt_big = np.where(gt > 0, top - gt, 0).astype(np.uint64)
    pred_big = (top - pred.astype(np.uint64)).astype(np.uint64)
    assert variation_of_information(pred_big, gt_big) == pytest.approx(variation_of_information(pred, gt))
    assert adapted_rand_error(pred_big, gt_big) == pytest.approx(adapted_rand_error(pred, gt))
    assert_matches_skimage(pred_big, gt_big)


def test_voi_in_bits_by_hand():
    gt = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    pred = np.array([1, 1, 2, 2, 3, 3, 3, 3])  # object 1 halved: 0.5 bits of split
    assert variation_of_information(pred, gt) == (0.5, 0.0, 0.5)
    assert variation_of_information(gt, pred) == (0.0, 0.5, 0.5)


def test_rand_alpha():
    gt = blobs((4, 16, 16), n=6, seed=4)
    pred = perturb(gt, 4)
    r = adapted_rand_error(pred, gt)
    assert adapted_rand_error(pred, gt, alpha=1.0).error == pytest.approx(1 - r.precision)
    assert adapted_rand_error(pred, gt, alpha=0.0).error == pytest.approx(1 - r.recall)
    with np.errstate(invalid="ignore", divide="ignore"):
        assert adapted_rand_error(pred, gt, alpha=0.3).error == pytest.approx(
            sk_rand(compact(gt), compact(pred), alpha=0.7)[0]
        )
    with pytest.raises(ValueError, match="alpha"):
        adapted_rand_error(pred, gt, alpha=1.5)


def test_table_argument():
    gt = blobs((4, 16, 16), n=6, seed=5)
    pred = perturb(gt, 5)
    t = contingency_table(pred, gt)
    assert variation_of_information(table=t) == variation_of_information(pred, gt)
    assert adapted_rand_error(table=t) == adapted_rand_error(pred, gt)
    with pytest.raises(TypeError, match="not both"):
        variation_of_information(pred, gt, table=t)
    with pytest.raises(TypeError, match="give pred_labels and gt_labels"):
        variation_of_information(pred)
    with pytest.raises(TypeError, match="ContingencyTable"):
        adapted_rand_error(table={"a": 1})


def test_all_ignored_ground_truth_is_an_error():
    with pytest.raises(VolumeError, match="gt_labels has no labelled voxel"):
        variation_of_information(np.ones((3, 3), np.uint8), np.zeros((3, 3), np.uint8))
    with pytest.raises(VolumeError, match="gt_labels has no labelled voxel"):
        adapted_rand_error(np.ones((3, 3), np.uint8), np.zeros((3, 3), np.uint8))


def test_split_merge_counts():
    gt = np.repeat(np.array([1, 2, 3, 4]), 10)
    pred = np.concatenate([
        [10] * 5 + [11] * 5,  # object 1 split in two
        [12] * 8 + [13] * 2,  # object 2: a 2-voxel sliver, below the threshold
        [14] * 10,            # objects 3 and 4 merged
        [14] * 6 + [0] * 4,   # part of object 4 unassigned: not a piece
    ])
    e = split_merge_errors(pred, gt, min_overlap_vx=3)
    assert (e.n_split_objects, e.n_split_errors, e.n_merged_segments, e.n_merge_errors) == (1, 1, 1, 1)
    assert e.gt_objects.set_index("gt_id")["n_pieces"].to_dict() == {1: 2, 2: 1, 3: 1, 4: 1}
    seg = e.segments.set_index("segment_id")
    assert seg.loc[14, "n_gt"] == 2 and bool(seg.loc[14, "merged"])
    assert 0 not in seg.index
    e1 = split_merge_errors(pred, gt, min_overlap_vx=1)
    assert (e1.n_split_objects, e1.n_split_errors) == (2, 2)  # the sliver now counts
    with pytest.raises(ValueError, match="min_overlap_vx"):
        split_merge_errors(pred, gt, min_overlap_vx=0)


def test_split_merge_counts_three_way():
    gt = np.repeat(np.array([1, 2, 3]), 4)
    pred = np.array([5, 5, 6, 6, 7, 7, 7, 7, 7, 7, 7, 8])
    e = split_merge_errors(pred, gt, min_overlap_vx=1)
    assert (e.n_split_objects, e.n_split_errors) == (2, 2)
    assert (e.n_merged_segments, e.n_merge_errors) == (1, 1)


def test_map_segments_to_gt():
    gt = np.array([1, 1, 1, 2, 2, 0, 0, 3, 3, 0])
    pred = np.array([7, 7, 8, 8, 8, 9, 9, 0, 0, 10])
    m = map_segments_to_gt(pred, gt)
    assert m.to_dict() == {7: 1, 8: 2}  # 9 and 10 only cover gt 0; segment 0 is never mapped
    assert m.index.dtype == np.uint64 and m.dtype == np.uint64
    tie = map_segments_to_gt(np.array([4, 4, 4, 4]), np.array([9, 9, 3, 3]))
    assert tie.to_dict() == {4: 3}  # a tie goes to the smaller gt id
    out = apply_segment_map(np.array([7, 8, 9, 0, 123]), m)
    assert out.tolist() == [1, 2, 0, 0, 0]
    assert out.dtype == np.uint64
    assert apply_segment_map([5], map_segments_to_gt(np.array([0]), np.array([0]))).tolist() == [0]


def test_map_large_ids():
    top = np.iinfo(np.uint64).max
    gt = np.array([top, top, 1], np.uint64)
    pred = np.array([top - 1, top - 1, top - 1], np.uint64)
    m = map_segments_to_gt(pred, gt)
    assert m.to_dict() == {int(top - 1): int(top)}


def _band_by_hand(gt):
    """Voxels with an in-plane 4-neighbour of another label, one voxel at a time."""
    z, y, x = gt.shape
    band = np.zeros(gt.shape, bool)
    for k in range(z):
        for i in range(y):
            for j in range(x):
                for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    ii, jj = i + di, j + dj
                    if 0 <= ii < y and 0 <= jj < x and gt[k, ii, jj] != gt[k, i, j]:
                        band[k, i, j] = True
    return band


@pytest.mark.parametrize("seed", [0, 1])
def test_ignore_boundaries_is_the_in_plane_band(seed):
    gt = blobs((3, 20, 24), n=7, seed=seed).astype(np.uint32)
    before = gt.copy()
    band = _band_by_hand(gt)
    assert 0 < band.mean() < 0.6
    out = ignore_boundaries(gt)
    np.testing.assert_array_equal(out, np.where(band, 0, gt))
    np.testing.assert_array_equal(gt, before)  # the input is not modified
    # one voxel wider: the band and its in-plane 4-neighbours (diagonals are 1.41 away)
    from scipy import ndimage

    cross = np.zeros((1, 3, 3), bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    wide = ndimage.binary_dilation(band, structure=cross)
    np.testing.assert_array_equal(ignore_boundaries(gt, 1.0), np.where(wide, 0, gt))


def test_ignore_boundaries_looks_only_within_sections():
    gt = np.stack([np.full((6, 6), k + 1, np.uint16) for k in range(4)])  # every section one object
    np.testing.assert_array_equal(ignore_boundaries(gt, 2.0), gt)


def test_ignore_boundaries_lowers_voi_of_boundary_errors_only():
    gt = np.ones((2, 16, 16), np.uint32)
    gt[:, :, 8:] = 2
    shifted = np.ones_like(gt)
    shifted[:, :, 9:] = 2  # the boundary one voxel off: only band voxels are wrong
    merged = np.ones_like(gt)  # a real error
    assert variation_of_information(shifted, gt).total > 0.1
    assert variation_of_information(shifted, ignore_boundaries(gt)).total == pytest.approx(0.0, abs=1e-12)
    assert variation_of_information(merged, ignore_boundaries(gt)).merge == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((2, 4, 4), np.float32)])
def test_ignore_boundaries_bad_labels(bad):
    with pytest.raises(VolumeError, match="gt_labels must be a 3D integer array"):
        ignore_boundaries(bad)


@pytest.mark.parametrize("d", [-1.0, float("nan")])
def test_ignore_boundaries_bad_distance(d):
    with pytest.raises(VolumeError, match="distance_px"):
        ignore_boundaries(np.ones((1, 3, 3), np.uint8), d)


def test_oracle_agglomeration_of_an_oversegmentation_is_the_truth():
    gt = blobs((4, 24, 24), n=6, seed=3).astype(np.uint64)
    pieces = gt * 100 + (np.arange(24, dtype=np.uint64)[None, None, :] // 5)  # every object cut into stripes
    out = oracle_agglomeration(pieces, gt)
    np.testing.assert_array_equal(out, gt)
    assert out.dtype == np.uint64


def test_oracle_agglomeration_gives_each_fragment_its_majority_object():
    rng = np.random.default_rng(4)
    gt = rng.integers(0, 4, (3, 8, 8))
    frags = rng.integers(1, 12, (3, 8, 8))
    out = oracle_agglomeration(frags, gt)
    for f in np.unique(frags):
        counts = np.bincount(gt[frags == f], minlength=4)
        counts[0] = 0  # gt 0 is ignored
        want = int(np.argmax(counts)) if counts.any() else 0  # ties go to the smaller id
        assert set(out[frags == f].tolist()) == {want}


@pytest.mark.parametrize("distance_px", [0.0, 1.0, 2.5])
def test_boundary_ignored_reads_any_region_as_the_whole_volume_has_it(distance_px):
    import zarr

    gt = blobs((5, 40, 44), n=9, seed=1).astype(np.uint32)
    store = zarr.create_array(store={}, shape=gt.shape, chunks=(2, 16, 16), dtype=gt.dtype)
    store[...] = gt
    lazy = BoundaryIgnored(store, distance_px)
    full = ignore_boundaries(gt, distance_px)
    assert lazy.shape == gt.shape and lazy.dtype == gt.dtype
    for key in [(slice(1, 3),), (slice(0, 5), slice(7, 19), slice(3, 30)), (slice(None), slice(0, 1)),
                (slice(2, 3), slice(39, 40), slice(43, 44)), (slice(4, 2),), (3,), (1, slice(5, 9)),
                (-1, 4, slice(None))]:
        np.testing.assert_array_equal(lazy[key], full[key])
    with pytest.raises(IndexError, match="step 1"):
        lazy[::2]
    with pytest.raises(IndexError, match="out of bounds"):
        lazy[5]
    with pytest.raises(IndexError, match="integers or slices"):
        lazy[True]
    with pytest.raises(VolumeError, match="3D"):
        BoundaryIgnored(np.zeros((4, 4), np.uint8))
