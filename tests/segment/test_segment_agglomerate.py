import heapq

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


def _reference(n_fragments, u, v, aff_sum, area, *, threshold, sizes=None, min_size=0, scale=LEVELS):
    """The merging loop in plain Python (heapq and dicts): what the compiled kernel must reproduce."""
    n = int(n_fragments)
    parent = list(range(n + 1))
    adj: list = [{} for _ in range(n + 1)]
    heap = []
    scale = float(scale)
    for a, b, s, c in zip(np.asarray(u).tolist(), np.asarray(v).tolist(), np.asarray(aff_sum).tolist(), np.asarray(area).tolist()):
        e = [s, c]
        adj[a][b] = e
        adj[b][a] = e  # one list shared by both ends: updates show on both sides
        heap.append((-(s / (c * scale)), a, b))
    heapq.heapify(heap)
    size = None if sizes is None else [int(x) for x in np.asarray(sizes).tolist()]

    def merge(a: int, b: int) -> int:
        """Join b's region into a's (or a's into b's, whichever is cheaper)."""
        if len(adj[a]) < len(adj[b]):
            a, b = b, a
        ea, eb = adj[a], adj[b]
        del ea[b]
        for nb, e in eb.items():
            if nb == a:
                continue
            en = adj[nb]
            del en[b]
            f = ea.get(nb)
            if f is None:
                ea[nb] = e
                en[a] = e
                f = e
            else:
                f[0] += e[0]
                f[1] += e[1]
            lo, hi = (a, nb) if a < nb else (nb, a)
            heapq.heappush(heap, (-(f[0] / (f[1] * scale)), lo, hi))
        adj[b] = None
        parent[b] = a
        if size is not None:
            size[a] += size[b]
        return a

    threshold = float(threshold)
    while heap:
        neg, a, b = heapq.heappop(heap)
        if -neg < threshold:
            break
        ea = adj[a]
        if ea is None or adj[b] is None:
            continue
        e = ea.get(b)
        if e is None or -(e[0] / (e[1] * scale)) != neg:
            continue  # stale: the pair changed since this entry was pushed
        merge(a, b)

    if min_size > 0:
        if size is None:
            raise ValueError("min_size needs fragment sizes")
        small = [(size[r], r) for r in range(1, n + 1) if adj[r] is not None and size[r] < min_size]
        heapq.heapify(small)
        while small:
            sz, r = heapq.heappop(small)
            if adj[r] is None or size[r] != sz or not adj[r]:
                continue
            # the neighbour with the highest mean affinity; ties to the smallest id
            best = max(adj[r].items(), key=lambda kv: (kv[1][0] / kv[1][1], -kv[0]))[0]
            s = merge(best, r)
            if size[s] < min_size:
                heapq.heappush(small, (size[s], s))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    return np.array([0] + [root(i) for i in range(1, n + 1)], np.int64)



@pytest.mark.parametrize("seed", range(40))
def test_compiled_kernel_equals_the_reference_loop(seed):
    # random graphs with coarse scores (many exact ties), sizes and small-segment cleanup
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    u = rng.integers(1, n + 1, 6 * n)
    v = rng.integers(1, n + 1, 6 * n)
    keep = u < v
    pairs = rng.permutation(np.unique(np.stack([u[keep], v[keep]], 1), axis=0))
    area = rng.integers(1, 20, len(pairs))
    aff_sum = rng.integers(0, 8, len(pairs)) * (LEVELS // 7) * area
    sizes = rng.integers(1, 500, n + 1)
    sizes[0] = 0
    threshold = float(rng.choice([0.2, 0.5, 0.8]))
    min_size = int(rng.choice([0, 100, 400]))
    ref = _reference(n, pairs[:, 0], pairs[:, 1], aff_sum, area, threshold=threshold, sizes=sizes,
                     min_size=min_size)
    # the kernel takes each pair in either order (the reference breaks ties by the order given)
    flip = rng.random(len(pairs)) < 0.5
    u, v = np.where(flip, pairs[:, 1], pairs[:, 0]), np.where(flip, pairs[:, 0], pairs[:, 1])
    got = agglomerate_graph(n, u, v, aff_sum, area, threshold=threshold, sizes=sizes, min_size=min_size)
    np.testing.assert_array_equal(got, ref)
    assert len(np.unique(ref[1:])) < n  # something merged


@pytest.mark.parametrize("u, v, area, match", [
    ([1, 1], [2, 2], [1, 1], "one edge only"),
    ([1, 2], [2, 1], [1, 1], "one edge only"),
    ([1], [1], [1], "distinct"),
    ([0], [2], [1], "distinct fragment ids in 1..3"),
    ([1], [4], [1], "distinct fragment ids in 1..3"),
    ([1], [2], [0], "positive area"),
])
def test_bad_graphs_are_refused(u, v, area, match):
    with pytest.raises(ValueError, match=match):
        agglomerate_graph(3, u, v, [1] * len(u), area, threshold=0.5)


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="finite"):
        agglomerate(_edges([(1, 2, float("nan"), 3)]), threshold=0.5)
