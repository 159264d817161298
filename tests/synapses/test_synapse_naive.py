"""The naive synapse detector: dark spots near boundaries, nearest other segment as partner."""

import numpy as np
import pytest

from connectomix.errors import VolumeError
from connectomix.synapses import detect_synapses, naive_predictions

VS = (40, 8, 8)
#: The dark spots are about 4 % of the voxels near boundaries; the threshold matches.
PCT = 4.0


def toy_volume(seed=0):
    """Four segments in a 2 x 2 grid (y, x); plain membranes at every boundary and
    two much darker spots: one on the 1|2 boundary, one on the 3|4 boundary."""
    rng = np.random.default_rng(seed)
    shape = (8, 64, 64)
    seg = np.zeros(shape, np.uint64)
    seg[:, :32, :32], seg[:, :32, 32:], seg[:, 32:, :32], seg[:, 32:, 32:] = 1, 2, 3, 4
    raw = np.full(shape, 190.0) + rng.normal(0, 8, shape)
    raw[:, 31:33, :] = 110.0 + rng.normal(0, 8, (shape[0], 2, shape[2]))  # membranes
    raw[:, :, 31:33] = 110.0 + rng.normal(0, 8, (shape[0], shape[1], 2))
    spots = np.zeros(shape, bool)
    spots[2:6, 10:20, 30:34] = True  # between 1 and 2
    spots[2:6, 44:54, 30:34] = True  # between 3 and 4
    raw[spots] = 25.0 + rng.normal(0, 5, int(spots.sum()))
    return np.clip(raw, 0, 255).astype(np.uint8), seg, spots


def test_naive_predictions_are_well_formed():
    raw, seg, _ = toy_volume()
    pred = naive_predictions(raw, seg, VS)
    assert pred.shape == (4,) + seg.shape and pred.dtype == np.float32
    assert np.isfinite(pred).all()
    assert pred[0].min() >= 0 and pred[0].max() <= 1
    # no vector where there is no probability; every vector is a whole number of voxels
    assert not pred[1:, pred[0] == 0].any()
    assert np.allclose(pred[1:] / np.asarray(VS, np.float32)[:, None, None, None],
                       np.round(pred[1:] / np.asarray(VS, np.float32)[:, None, None, None]))


def test_naive_finds_dark_spots_on_boundaries():
    raw, seg, spots = toy_volume()
    pred = naive_predictions(raw, seg, VS, percentile=PCT)
    cleft = pred[0] >= 0.5
    assert cleft.any()
    # the dark spots are found, and (almost) all that is found lies on them
    assert cleft[spots].mean() > 0.9
    assert (cleft & spots).sum() / cleft.sum() > 0.9
    # every cleft voxel points to another segment, across the boundary
    z, y, x = np.nonzero(cleft)
    tip = np.stack([z, y, x], 1) + np.round(pred[1:, z, y, x].T / np.asarray(VS)).astype(int)
    assert np.all(seg[tuple(tip.T)] != seg[z, y, x])
    # far from every boundary nothing is cleft, however dark
    dark_inside = raw.copy()
    dark_inside[4, 10:14, 10:14] = 0
    assert naive_predictions(dark_inside, seg, VS, percentile=PCT)[0, 4, 10:14, 10:14].max() == 0


def test_naive_partners_are_two_touching_segments():
    raw, seg, spots = toy_volume()
    pred = naive_predictions(raw, seg, VS, percentile=PCT)
    syn, clefts = detect_synapses(pred[0], pred[1:], seg, voxel_size=VS, min_size_vx=20, min_partner_weight=1)
    assert len(syn) == 2
    touching = {frozenset((1, 2)), frozenset((3, 4)), frozenset((1, 3)), frozenset((2, 4))}
    pairs = {frozenset((int(a), int(b))) for a, b in zip(syn["pre_id"], syn["post_id"])}
    assert all(len(p) == 2 and p in touching for p in pairs)
    assert pairs == {frozenset((1, 2)), frozenset((3, 4))}
    # each synapse sits on its spot
    assert set(np.unique(clefts[spots])) - {0} == set(syn["cleft_id"])


def test_naive_edge_cases_and_bad_input():
    seg = np.ones((2, 8, 8), np.uint64)  # one segment: no boundary, no cleft
    assert not naive_predictions(np.zeros(seg.shape, np.uint8), seg, VS).any()
    with pytest.raises(VolumeError, match="equal"):
        naive_predictions(np.zeros((2, 8, 9)), seg, VS)
    with pytest.raises(VolumeError, match="integer"):
        naive_predictions(np.zeros(seg.shape), seg.astype(float), VS)
    with pytest.raises(VolumeError, match="percentile"):
        naive_predictions(np.zeros(seg.shape), seg, VS, percentile=60)
