"""Agglomeration: hierarchical merging of fragments by mean affinity, then cleanup.

The region adjacency graph holds, for each pair of touching fragments, the sum of the
affinities across their contact and its area. Merging repeatedly takes the pair with
the highest mean affinity, joins it, and adds up the statistics of the joined
region's edges (so a big contact's mean is not swamped by a small strong one), until
no pair reaches ``threshold``. Then segments smaller than ``min_size`` voxels join the
neighbour they share the highest mean affinity with.

Statistics are integers and ties are broken by ids, so the result depends only on
the graph: the same graph, however it was collected, gives the same segments.
"""

from __future__ import annotations

import heapq

import numpy as np

from ._affinities import LEVELS

__all__ = ["agglomerate_graph", "canonical_segments"]


def agglomerate_graph(
    n_fragments: int,
    u,
    v,
    aff_sum,
    area,
    *,
    threshold: float,
    sizes=None,
    min_size: int = 0,
    scale: float = LEVELS,
) -> np.ndarray:
    """Merge fragments ``1..n_fragments`` of a region graph; return each one's representative.

    Parameters
    ----------
    n_fragments : int
        Fragment ids are ``1..n_fragments``.
    u, v : array of int
        Edge endpoints (``u != v``), each pair once.
    aff_sum, area : array of int
        Sum of quantised affinities (1.0 = ``scale``) across the contact, and its area
        in voxel faces. Integer sums make every score exact, whatever order they were
        added in.
    threshold : float
        Merge while the best mean affinity is at least this.
    sizes : array of int, optional
        Voxels per fragment, indexed by id (length ``n_fragments + 1``); needed for
        ``min_size``.
    min_size : int
        Afterwards, merge segments smaller than this into their best neighbour.
    scale : float
        What an affinity of 1.0 adds to ``aff_sum``.

    Returns
    -------
    ndarray int64, length ``n_fragments + 1``
        The representative fragment of each fragment's segment (0 for 0).

    Notes
    -----
    A lazy max-heap of edge scores, merging the smaller adjacency into the larger:
    O(E log E) heap operations for E edges.
    """
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

    out = np.zeros(n + 1, np.int64)
    for i in range(1, n + 1):
        r = i
        while parent[r] != r:
            r = parent[r]
        # path compression keeps later look-ups short
        j = i
        while parent[j] != r:
            parent[j], j = r, parent[j]
        out[i] = r
    return out


def canonical_segments(representative: np.ndarray) -> np.ndarray:
    """Number segments 1, 2, ... in the order of their smallest fragment id (0 stays 0)."""
    rep = np.asarray(representative, np.int64)
    out = np.zeros(len(rep), np.uint64)
    if len(rep) <= 1:
        return out
    uniq, first = np.unique(rep[1:], return_index=True)
    rank = np.empty(len(uniq), np.uint64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(uniq) + 1, dtype=np.uint64)
    out[1:] = rank[np.searchsorted(uniq, rep[1:])]
    return out
