import numpy as np
import pandas as pd
import pytest

from connectomix.segment import agglomerate
from connectomix.segment._affinities import LEVELS
from connectomix.segment._agglomerate import agglomerate_graph, canonical_segments


def _edges(rows):
    return pd.DataFrame(rows, columns=["u", "v", "score", "area_vx"])


def test_merging_uses_the_mean_of_the_joined_contact():
    # 1-2 merge first (0.9); then (1,2)-3 has mean (0.6 * 1 + 0.1 * 10) / 11 < 0.5,
    # although the 1-3 contact alone (0.6) is above the threshold
    edges = _edges([(1, 2, 0.9, 1), (1, 3, 0.6, 1), (2, 3, 0.1, 10)])
    np.testing.assert_array_equal(agglomerate(edges, threshold=0.5), [0, 1, 1, 2])
    np.testing.assert_array_equal(agglomerate(edges, threshold=0.05), [0, 1, 1, 1])
    np.testing.assert_array_equal(agglomerate(edges, threshold=0.95), [0, 1, 2, 3])


def test_threshold_is_inclusive():
    edges = _edges([(1, 2, 0.5, 3)])
    np.testing.assert_array_equal(agglomerate(edges, threshold=0.5), [0, 1, 1])


def test_segments_are_numbered_by_their_smallest_fragment():
    edges = _edges([(2, 4, 0.9, 1), (1, 3, 0.2, 1), (3, 5, 0.8, 1)])
    np.testing.assert_array_equal(agglomerate(edges, threshold=0.5), [0, 1, 2, 3, 2, 3])
    np.testing.assert_array_equal(canonical_segments(np.array([0, 4, 4, 1, 2])), [0, 1, 1, 2, 3])


def test_result_does_not_depend_on_the_order_of_edges():
    rng = np.random.default_rng(0)
    n = 200
    u = rng.integers(1, n, 800)
    v = rng.integers(1, n, 800)
    keep = u < v
    pairs = np.unique(np.stack([u[keep], v[keep]], 1), axis=0)
    area = rng.integers(1, 20, len(pairs))
    aff_sum = rng.integers(0, LEVELS + 1, len(pairs)) * area
    aff_sum[::7] = aff_sum[3] // area[3] * area[::7]  # many exact ties
    ref = canonical_segments(agglomerate_graph(n, pairs[:, 0], pairs[:, 1], aff_sum, area, threshold=0.5))
    assert 1 < ref.max() < n
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(pairs))
        got = canonical_segments(
            agglomerate_graph(n, pairs[order, 0], pairs[order, 1], aff_sum[order], area[order], threshold=0.5)
        )
        np.testing.assert_array_equal(got, ref)


def test_small_segments_join_their_best_neighbour():
    edges = _edges([(1, 2, 0.3, 5), (2, 3, 0.2, 5), (3, 4, 0.1, 1)])
    sizes = np.array([0, 100, 3, 100, 2])
    np.testing.assert_array_equal(agglomerate(edges, threshold=0.5), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(agglomerate(edges, threshold=0.5, sizes=sizes, min_size=10), [0, 1, 1, 2, 2])


def test_min_size_needs_sizes():
    with pytest.raises(ValueError, match="sizes"):
        agglomerate(_edges([(1, 2, 0.3, 5)]), threshold=0.5, min_size=10)


def test_fragments_without_edges_stay_alone():
    np.testing.assert_array_equal(agglomerate(_edges([]), threshold=0.5, sizes=np.array([0, 4, 4])), [0, 1, 2])
