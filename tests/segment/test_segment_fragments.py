import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import variation_of_information

from connectomix.segment import SegmentConfig, affinities_from_labels, watershed
from connectomix.segment._affinities import LEVELS, quantize
from connectomix.segment._fragments import (
    grow,
    label_leftovers,
    label_seeds,
    mean_affinity,
    seed_components,
    seed_context_vx,
    seed_mask,
)
from connectomix.testing import blobs


def _q(values, shape):
    """Quantised affinities with every nearest-neighbour edge set to ``values``."""
    return np.full((3,) + shape, round(values * LEVELS), np.uint16)


def test_clean_affinities_give_the_truth():
    truth = blobs((12, 40, 40), n=12, seed=1)
    frags = watershed(affinities_from_labels(truth))
    assert frags.dtype == np.uint64
    split, merge = variation_of_information(truth, frags)
    assert split < 1e-9 and merge < 1e-9
    assert set(np.unique(frags)) == set(range(1, 13))


def test_fragments_are_numbered_in_raster_order_of_their_seeds():
    cfg = SegmentConfig()
    truth = blobs((8, 24, 24), n=5, seed=2)
    aff = affinities_from_labels(truth)
    frags = watershed(aff, config=cfg)
    seeds = label_seeds(seed_mask(quantize(aff), sigma=cfg.seed_sigma, radius=cfg.seed_radius,
                                  delta=cfg.seed_delta, threshold=cfg.seed_threshold))
    first_seed = [seeds[(frags == k) & (seeds > 0)].min() for k in range(1, int(frags.max()) + 1)]
    assert first_seed == sorted(first_seed)


def test_mean_affinity_counts_only_edges_inside_the_array():
    q = _q(1.0, (2, 2, 2))
    q[2, :, :, 1] = 0  # cut every x edge
    mean = mean_affinity(q)
    # every voxel has one x edge (cut) and one y and one z edge (full)
    np.testing.assert_allclose(mean, 2 / 3, rtol=1e-6)
    assert mean_affinity(_q(0.3, (1, 1, 1)))[0, 0, 0] == 1.0  # a lone voxel


def test_seed_mask_avoids_faint_boundaries():
    labels = np.zeros((6, 12, 12), np.uint32)
    labels[:, :, :6], labels[:, :, 6:] = 1, 2
    aff = affinities_from_labels(labels)
    aff[2][:, :, 6] = 0.5  # faint: the mean affinity next to it is still 0.92
    mask = seed_mask(quantize(aff), sigma=(0.5, 1, 1), radius=(1, 2, 2), delta=0.03, threshold=0.5)
    assert mask[:, :, 2].all() and mask[:, :, 9].all()
    assert not mask[:, :, 5:7].any()


def test_label_seeds_names_components_by_their_first_global_voxel():
    mask = np.zeros((2, 3, 4), bool)
    mask[0, 1, 1:3] = True
    mask[1, 2, 3] = True
    ids = label_seeds(mask, origin_vx=(5, 0, 2), total_shape=(10, 3, 8))
    assert ids.dtype == np.uint64
    # global index of (5, 1, 3) in a (10, 3, 8) volume, plus one
    assert ids[0, 1, 1] == ids[0, 1, 2] == (5 * 3 + 1) * 8 + 3 + 1
    assert ids[1, 2, 3] == (6 * 3 + 2) * 8 + 5 + 1
    assert (ids[~mask] == 0).all()


@pytest.mark.parametrize("left, right", [(7, 100), (100, 7)])
def test_growth_ties_go_by_direction_never_by_label(left, right):
    labels = np.array([[[left, 0, right]]], np.uint64)
    grow(labels, _q(0.9, (1, 1, 3)), levels=[0.5], rounds=1)
    assert labels[0, 0, 1] == left  # -x comes before +x


def test_growth_takes_the_strongest_edge_and_respects_levels():
    labels = np.array([[[5, 0, 9, 0, 0]]], np.uint64)
    q = _q(0.9, (1, 1, 5))
    q[2, 0, 0, 1] = round(0.6 * LEVELS)  # edge 0-1 weaker than edge 1-2
    q[2, 0, 0, 3] = round(0.4 * LEVELS)  # edge 2-3 below the level
    grow(labels, q, levels=[0.5], rounds=5)
    np.testing.assert_array_equal(labels[0, 0], [5, 9, 9, 0, 0])
    grow(labels, q, levels=[0.0], rounds=5)  # a lower level lets it through
    np.testing.assert_array_equal(labels[0, 0], [5, 9, 9, 9, 9])


def test_growth_never_crosses_zero_affinity():
    labels = np.array([[[3, 0, 0]]], np.uint64)
    q = _q(1.0, (1, 1, 3))
    q[2, 0, 0, 1] = 0
    grow(labels, q, levels=[0.0], rounds=3)
    np.testing.assert_array_equal(labels[0, 0], [3, 0, 0])


def test_slack_keeps_a_voxel_for_its_own_front():
    # voxel 1 touches seed 4 by a noisy 0.6 edge, but its strongest edge (0.95) leads
    # to voxel 2, which seed 8 reaches one round later
    labels = np.array([[[4, 0, 0, 8]]], np.uint64)
    q = _q(0.95, (1, 1, 4))
    q[2, 0, 0, 1] = round(0.6 * LEVELS)
    grow(labels, q, levels=[0.5, 0.0], rounds=2, slack=0.1)
    np.testing.assert_array_equal(labels[0, 0], [4, 8, 8, 8])
    labels = np.array([[[4, 0, 0, 8]]], np.uint64)
    grow(labels, q, levels=[0.5, 0.0], rounds=2)  # without slack the noisy edge wins
    np.testing.assert_array_equal(labels[0, 0], [4, 4, 8, 8])


def test_leftovers_get_their_own_index_and_all_zero_voxels_stay_background():
    labels = np.zeros((1, 1, 4), np.uint64)
    q = _q(0.8, (1, 1, 4))
    q[2, 0, 0, 3] = 0  # voxel 3 has no edge left
    label_leftovers(labels, q, origin_vx=(2, 0, 0), total_shape=(4, 1, 4))
    np.testing.assert_array_equal(labels[0, 0], [9, 10, 11, 0])


def _smooth_random_affinities(seed, shape):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.random((3,) + shape, dtype=np.float32), (0, 1, 1.5, 1.5))
    a = (a - a.min()) / (a.max() - a.min())
    return quantize(np.clip(1.3 * a - 0.1, 0, 1))


@given(seed=st.integers(0, 10_000), corner=st.tuples(st.integers(0, 6), st.integers(0, 10), st.integers(0, 10)))
@settings(max_examples=12, deadline=None)
def test_seed_map_and_growth_are_local(seed, corner):
    """The heart of seamlessness: a crop with enough context gives the same result."""
    cfg = SegmentConfig()
    shape = (14, 24, 24)
    q = _smooth_random_affinities(seed, shape)
    kw = dict(sigma=cfg.seed_sigma, radius=cfg.seed_radius, delta=cfg.seed_delta, threshold=cfg.seed_threshold)
    whole_mask = seed_mask(q, **kw)
    size = (5, 8, 8)
    write = tuple(slice(c, c + s) for c, s in zip(corner, size))
    ctx = seed_context_vx(cfg.seed_sigma, cfg.seed_radius)
    read = tuple(slice(max(0, w.start - c), min(n, w.stop + c)) for w, c, n in zip(write, ctx, shape))
    inner = tuple(slice(w.start - r.start, w.stop - r.start) for w, r in zip(write, read))
    np.testing.assert_array_equal(seed_mask(q[(slice(None),) + read], **kw)[inner], whole_mask[write])

    grow_kw = dict(levels=cfg.grow_levels, rounds=cfg.grow_rounds, slack=cfg.grow_slack)
    seeds = label_seeds(whole_mask)
    whole = grow(seeds.copy(), q, **grow_kw)
    ctx = cfg.grow_steps + 1
    read = tuple(slice(max(0, w.start - ctx), min(n, w.stop + ctx)) for w, n in zip(write, shape))
    inner = tuple(slice(w.start - r.start, w.stop - r.start) for w, r in zip(write, read))
    part = grow(np.ascontiguousarray(seeds[read]), q[(slice(None),) + read], **grow_kw)
    np.testing.assert_array_equal(part[inner], whole[write])


@pytest.mark.parametrize("in_xy", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 5), (1, 4, 1), (3, 1, 1), (2, 3, 4), (5, 7, 6)])
def test_mean_affinity_is_the_sum_over_the_count_of_edges(shape, in_xy):
    q = np.random.default_rng(3).integers(0, LEVELS + 1, (3,) + shape).astype(np.uint16)
    total = np.zeros(shape, np.int64)
    count = np.zeros(shape, np.int64)
    for d in ((1, 2) if in_xy else (0, 1, 2)):
        hi = (slice(None),) * d + (slice(1, None),)
        lo = (slice(None),) * d + (slice(None, -1),)
        for side in (hi, lo):
            total[side] += q[d][hi]
            count[side] += 1
    if not count.all():  # no edge at all (a 1-voxel plane): 1, as for a lone voxel
        assert in_xy and count.max() == 0
        np.testing.assert_array_equal(mean_affinity(q, in_xy=True), np.ones(shape, np.float32))
        return
    expected = total.astype(np.float32) / (count.astype(np.float32) * np.float32(LEVELS))
    np.testing.assert_array_equal(mean_affinity(q, in_xy=in_xy), expected)


@pytest.mark.parametrize("in_xy", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("levels", [(0.9, 0.7, 0.5, 0.0), (0.6,)])  # (0.6,) leaves leftovers
def test_compact_fragments_equal_the_renumbered_provisional_ids(seed, levels, in_xy):
    # segment() keeps compact ids through growth; the chain of public kernels is the reference
    from connectomix.segment._segment import _fragments, _provisional, _renumber

    q = quantize(np.random.default_rng(seed).random((3, 6, 20, 23)).astype(np.float32) ** 0.5)
    cfg = SegmentConfig(grow_levels=levels, grow_rounds=1 + seed, fragments_in_xy=in_xy)
    fragments, sizes = _fragments(q, cfg)
    expected, expected_sizes = _renumber(_provisional(q, cfg))
    np.testing.assert_array_equal(fragments, expected)
    np.testing.assert_array_equal(sizes, expected_sizes)


# ------------------------------------------------------------------ fragments in xy
XY = SegmentConfig(fragments_in_xy=True, seed_sigma=(0, 1, 1), seed_radius=(0, 2, 2))


def test_seed_components_in_xy_never_join_sections():
    mask = np.zeros((3, 6, 6), bool)
    mask[:, 1:4, 1:4] = True  # one column through all sections
    mask[1, 5, 5] = True
    assert seed_components(mask).max() == 2
    cc = seed_components(mask, in_xy=True)
    assert cc.max() == 4
    # numbered 1.. in raster order, one per section for the column
    assert [int(cc[z, 1, 1]) for z in range(3)] == [1, 2, 4]
    assert int(cc[1, 5, 5]) == 3
    labels = label_seeds(mask, in_xy=True)
    assert int(labels[2, 1, 1]) == 1 + np.ravel_multi_index((2, 1, 1), mask.shape)


def test_fragments_in_xy_lie_in_one_section_and_the_agglomeration_joins_them():
    from connectomix.segment import segment

    truth = blobs((12, 40, 40), n=12, seed=1)
    aff = affinities_from_labels(truth)
    frags = watershed(aff, config=XY)
    z_of = {}
    for z in range(frags.shape[0]):
        for f in np.unique(frags[z]):
            assert z_of.setdefault(int(f), z) == z, "a fragment spans two sections"
    assert len(z_of) >= 12 * 2
    # a fragment is one object's cross-section: nothing to undo
    split, merge = variation_of_information(truth, frags)
    assert merge < 1e-9
    seg = segment(aff, threshold=0.5, config=XY).segmentation
    split, merge = variation_of_information(truth, seg)
    assert split < 1e-9 and merge < 1e-9


def test_fragments_in_xy_do_not_leak_through_a_weak_z_boundary():
    # Two objects stacked in z; the upper one is faint in-plane (no seed of its own) and
    # the z-boundary between them looks joined: a 3D fragment grows through it, an xy
    # fragment cannot.
    truth = np.ones((4, 24, 24), np.uint32)
    truth[3:] = 2
    aff = affinities_from_labels(truth).astype(np.float32)
    aff[1:3, 3] = 0.45  # faint in-plane
    aff[0, 3] = 0.6  # the boundary between sections 2 and 3
    assert len(np.unique(watershed(aff)[2:4])) == 1
    frags = watershed(aff, config=XY)
    assert not set(np.unique(frags[:3])) & set(np.unique(frags[3:]))


@given(seed=st.integers(0, 10_000), corner=st.tuples(st.integers(0, 6), st.integers(0, 10), st.integers(0, 10)))
@settings(max_examples=8, deadline=None)
def test_growth_in_xy_is_local_in_plane_and_needs_no_other_section(seed, corner):
    cfg = XY
    shape = (14, 24, 24)
    q = _smooth_random_affinities(seed, shape)
    kw = dict(sigma=cfg.seed_sigma, radius=cfg.seed_radius, delta=cfg.seed_delta, threshold=cfg.seed_threshold,
              in_xy=True)
    whole_mask = seed_mask(q, **kw)
    grow_kw = dict(levels=cfg.grow_levels, rounds=cfg.grow_rounds, slack=cfg.grow_slack, in_xy=True)
    seeds = label_seeds(whole_mask, in_xy=True)
    whole = grow(seeds.copy(), q, **grow_kw)
    size = (5, 8, 8)
    write = tuple(slice(c, c + s) for c, s in zip(corner, size))
    ctx = (0,) + (cfg.grow_steps + 1,) * 2
    read = tuple(slice(max(0, w.start - c), min(n, w.stop + c)) for w, c, n in zip(write, ctx, shape))
    inner = tuple(slice(w.start - r.start, w.stop - r.start) for w, r in zip(write, read))
    part = grow(np.ascontiguousarray(seeds[read]), q[(slice(None),) + read], **grow_kw)
    np.testing.assert_array_equal(part[inner], whole[write])
