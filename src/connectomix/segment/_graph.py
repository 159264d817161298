"""The region adjacency graph of fragments, and joining ids across block faces.

Edge statistics are kept as exact integers (the sum of quantised affinities and the
number of voxel faces), so block-wise contributions add up to the whole-volume graph
bit for bit, in any order.
"""

from __future__ import annotations

import numpy as np

from ._affinities import LEVELS

__all__ = ["compact_ids", "edge_contributions", "reduce_edges", "union_ids", "face_pairs", "scores", "EDGE_COLUMNS"]

#: Columns of the integer edge statistics that blocks emit.
EDGE_COLUMNS = ("u", "v", "aff_sum", "area_vx")


def compact_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber labels to 0..n (0 stays 0) for fast local work.

    Returns
    -------
    lut : ndarray uint64, (n + 1,)
        ``lut[local] == labels``; ``lut[0] == 0``.
    local : ndarray uint32, same shape as ``labels``
    """
    import fastremap

    local, mapping = fastremap.renumber(np.ascontiguousarray(labels), preserve_zero=True)
    old = np.fromiter(mapping.keys(), np.uint64, len(mapping))
    new = np.fromiter(mapping.values(), np.int64, len(mapping))
    lut = np.zeros(int(new.max(initial=0)) + 1, np.uint64)
    lut[new] = old
    return lut, np.ascontiguousarray(local, dtype=np.uint32)


def edge_contributions(labels: np.ndarray, q: np.ndarray, region: tuple | None = None) -> dict:
    """Edge statistics between differently labelled face-adjacent voxels.

    Parameters
    ----------
    labels : ndarray, (Z, Y, X) uint64 or uint32
        Fragment ids; 0 (background) takes part in no edge.
    q : ndarray, (3, Z, Y, X) uint16
        Quantised nearest-neighbour affinities, same grid as ``labels``.
    region : tuple of slices, optional
        Count only the voxel faces whose higher voxel (the one that stores the edge)
        lies in ``region``; the lower one may lie just before it. Defaults to all.

    Returns
    -------
    dict of ndarrays ``u < v`` (uint64), ``aff_sum`` and ``area_vx`` (int64)
        One row per fragment pair, sorted by ``(u, v)``.
    """
    # compact local ids make one small integer key per pair
    top = int(labels.max()) if labels.size else 0
    renamed = top >= 4 * labels.size + 1024
    if renamed:
        ids, local = compact_ids(labels)
    else:  # already small: ids are their own compact ids
        ids, local = np.arange(top + 1, dtype=np.uint64), labels
    n = len(ids)
    keys, sums = [], []
    for a, b, s in _differing_faces(local, q, region):
        # background is rare: test it on the few differing faces only (order is kept)
        fg = (a != 0) & (b != 0)
        if not fg.all():
            a, b, s = a[fg], b[fg], s[fg]
        a, b = a.astype(np.int64), b.astype(np.int64)
        keys.append(np.minimum(a, b) * n + np.maximum(a, b))
        sums.append(s)
    key = np.concatenate(keys)
    s = np.concatenate(sums).astype(np.float64)
    if n * n <= 8 * key.size + (1 << 20):
        area = np.bincount(key, minlength=n * n)
        total = np.bincount(key, weights=s, minlength=n * n)  # exact: integer sums < 2**53
        pair = np.flatnonzero(area)
        area, total = area[pair], total[pair]
    else:
        order = np.argsort(key, kind="stable")
        key, s = key[order], s[order]
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        pair = key[first]
        area = np.diff(np.r_[first, key.size])
        total = np.add.reduceat(s, first) if key.size else s
    u, v = ids[pair // n].astype(np.uint64), ids[pair % n].astype(np.uint64)
    aff_sum, area = np.rint(total).astype(np.int64), area.astype(np.int64)
    if not renamed:
        return {"u": u, "v": v, "aff_sum": aff_sum, "area_vx": area}
    # compact ids follow first appearance, not value: restore u < v and the row order
    u, v = np.minimum(u, v), np.maximum(u, v)
    order = np.lexsort((v, u))
    return {"u": u[order], "v": v[order], "aff_sum": aff_sum[order], "area_vx": area[order]}


def _differing_faces(local: np.ndarray, q: np.ndarray, region: tuple | None) -> list:
    """``(higher id, lower id, affinity)`` of every voxel face between different ids.

    One triple of 1-d arrays per axis, in the raster order of the higher voxel (the
    one that stores the edge), counting the faces whose higher voxel lies in
    ``region`` (default: the whole array).
    """
    out = []
    if region is None and local.size:
        # Whole array: compare the flat array with itself shifted by one stride (one
        # contiguous pass per axis), then drop the pairs that wrap to the next row or
        # plane. Only the few differing faces are gathered.
        flat = np.ascontiguousarray(local).reshape(-1)
        shape = local.shape
        for d in range(3):
            stride = int(np.prod(shape[d + 1:], dtype=np.int64))
            hi = np.flatnonzero(flat[stride:] != flat[:-stride]) + stride
            if d > 0:
                hi = hi[(hi // stride) % shape[d] != 0]
            qd = np.ascontiguousarray(q[d]).reshape(-1)
            out.append((flat.take(hi), flat.take(hi - stride), qd.take(hi)))
        return out
    if region is None:
        region = tuple(slice(0, n) for n in local.shape)
    for d in range(3):
        start = region[d].start or 0
        hi = list(region)
        lo = list(region)
        if start == 0:  # no voxel before the region along d: skip its first layer
            hi[d] = slice(1, region[d].stop)
            lo[d] = slice(0, region[d].stop - 1)
        else:
            lo[d] = slice(start - 1, region[d].stop - 1)
        a, b = local[tuple(hi)], local[tuple(lo)]
        diff = a != b
        out.append((a[diff], b[diff], q[d][tuple(hi)][diff]))
    return out


def reduce_edges(u, v, aff_sum, area) -> dict:
    """Sum edge statistics over equal ``(u, v)`` pairs; rows come out sorted."""
    u = np.asarray(u, np.uint64)
    v = np.asarray(v, np.uint64)
    aff_sum = np.asarray(aff_sum, np.int64)
    area = np.asarray(area, np.int64)
    if len(u) == 0:
        return {"u": u, "v": v, "aff_sum": aff_sum, "area_vx": area}
    order = np.lexsort((v, u))
    u, v, aff_sum, area = u[order], v[order], aff_sum[order], area[order]
    start = np.flatnonzero(np.r_[True, (u[1:] != u[:-1]) | (v[1:] != v[:-1])])
    return {
        "u": u[start],
        "v": v[start],
        "aff_sum": np.add.reduceat(aff_sum, start),
        "area_vx": np.add.reduceat(area, start),
    }


def face_pairs(labels: np.ndarray, region: tuple, axes=(0, 1, 2)) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of non-zero ids facing each other across the lower faces of ``region``.

    Used for seeds: two seed voxels that touch belong to one seed, so each pair is a
    union to make across a block face. ``axes``: the faces to look across (``(1, 2)``
    for seeds that never join across sections).
    """
    a_all, b_all = [], []
    for d in axes:
        start = region[d].start or 0
        if start == 0:
            continue
        inner = list(region)
        outer = list(region)
        inner[d] = slice(start, start + 1)
        outer[d] = slice(start - 1, start)
        a, b = labels[tuple(inner)].ravel(), labels[tuple(outer)].ravel()
        keep = (a != 0) & (b != 0) & (a != b)
        a_all.append(a[keep])
        b_all.append(b[keep])
    if not a_all:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    a, b = np.concatenate(a_all), np.concatenate(b_all)
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def union_ids(ids: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Join ids by the pairs ``(a, b)``; each id's representative is the smallest id of its set.

    Parameters
    ----------
    ids : ndarray uint64
        Every id, sorted and unique (pairs may only name these).
    a, b : ndarray uint64
        Pairs to join.

    Returns
    -------
    ndarray uint64, same length as ``ids``
        The smallest id joined to each.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = np.asarray(ids, np.uint64)
    if len(a) == 0:
        return ids.copy()
    ia = np.searchsorted(ids, np.asarray(a, np.uint64))
    ib = np.searchsorted(ids, np.asarray(b, np.uint64))
    n = len(ids)
    graph = coo_matrix((np.ones(len(ia), np.int8), (ia, ib)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    # ids are sorted, so the first member of each component is its smallest id
    _, first = np.unique(comp, return_index=True)
    return ids[first[comp]]


def scores(aff_sum, area) -> np.ndarray:
    """Mean affinity of edges from their integer statistics."""
    return np.asarray(aff_sum, np.float64) / (np.asarray(area, np.float64) * LEVELS)
