"""Sparse contingency tables of two label volumes, streamed slab by slab.

The table lists every (ground-truth id, predicted id) pair that shares a voxel and
how many voxels it shares. It is all that VOI, adapted Rand, split/merge counts and
the segment-to-neuron map need, and it is tiny next to the volumes: a 10^8-voxel
pair of realistic segmentations has some 10^4 to 10^5 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._inputs import DEFAULT_CHUNK_VOXELS, as_uint64, label_pair, read_flat, slabs

__all__ = ["ContingencyTable", "contingency_table"]


@dataclass(frozen=True, eq=False)
class ContingencyTable:
    """Voxel overlaps between a predicted and a ground-truth segmentation.

    Rows are sorted by ``gt_ids`` then ``segment_ids``; ground-truth label 0 is left
    out (it means "unlabelled" and every metric ignores it).

    Attributes
    ----------
    gt_ids : (K,) uint64
        Ground-truth object of each pair (never 0).
    segment_ids : (K,) uint64
        Predicted segment of each pair (0 is a segment like any other here).
    counts : (K,) int64
        Voxels the pair shares, all > 0.
    n_ignored : int
        Voxels with ground-truth label 0.
    shape : tuple of int
        Shape of the two volumes.
    """

    gt_ids: np.ndarray
    segment_ids: np.ndarray
    counts: np.ndarray
    n_ignored: int
    shape: tuple[int, ...]

    @property
    def n_voxels(self) -> int:
        """Voxels that are scored (ground-truth label not 0)."""
        return int(self.counts.sum())

    def __len__(self) -> int:
        return int(self.counts.size)

    def __repr__(self) -> str:
        return (
            f"ContingencyTable({len(self)} pairs, {np.unique(self.gt_ids).size} gt objects, "
            f"{np.unique(self.segment_ids).size} segments, {self.n_voxels} voxels scored, "
            f"{self.n_ignored} ignored, shape={self.shape})"
        )


def pair_counts(gt: np.ndarray, seg: np.ndarray, weights: np.ndarray | None = None):
    """Count the distinct (gt, seg) pairs of two flat label arrays.

    Parameters
    ----------
    gt, seg : (N,) integer ndarray
        Labels of the same voxels; any integer dtypes, values >= 0.
    weights : (N,) int64 ndarray, optional
        How many voxels each entry stands for; None means one each, in which case
        runs of equal consecutive pairs are collapsed first.

    Returns
    -------
    gt_ids, seg_ids : (K,) uint64
        The distinct pairs, sorted by gt then seg.
    counts : (K,) int64

    Notes
    -----
    Label volumes are piecewise constant, so consecutive voxels in C order mostly
    repeat the previous pair: collapsing those runs (O(N), vectorised) leaves
    R << N entries (about N / 13 on realistic EM segmentations). Each side of the
    R entries gets compact ids (:func:`compact_ids`), the two combine
    into one int64 key ``gt_index * n_seg + seg_index``, and the keys are sorted
    with their weights packed into the low bits (one SIMD ``np.sort``; a stable
    argsort when key and weight do not fit 63 bits together), then summed per key.
    O(N + R log R) time, O(R) memory. Ids anywhere in the uint64 range work
    because only compact indices are combined.
    """
    n = gt.size
    if n == 0:
        empty = np.zeros(0, np.uint64)
        return empty, empty.copy(), np.zeros(0, np.int64)
    if weights is None:
        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(gt[1:], gt[:-1], out=change[1:])
        change[1:] |= seg[1:] != seg[:-1]
        starts = np.flatnonzero(change)
        del change
        weights = np.diff(starts, append=n)
        gt, seg = gt[starts], seg[starts]
        del starts
    weights = np.asarray(weights, dtype=np.int64)
    ug, ig = compact_ids(gt)
    us, js = compact_ids(seg)
    key = ig * np.int64(us.size) + js
    del ig, js
    key_bits = max(1, int(ug.size * us.size - 1).bit_length())
    weight_bits = max(1, int(weights.max()).bit_length())
    if key_bits + weight_bits <= 63:
        # sort keys and weights together: one fast value sort instead of an argsort
        packed = (key << np.int64(weight_bits)) | weights
        del key
        packed.sort()
        key = packed >> np.int64(weight_bits)
        weights = packed & np.int64((1 << weight_bits) - 1)
        del packed
    else:
        order = np.argsort(key, kind="stable")
        key, weights = key[order], weights[order]
        del order
    first = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    counts = np.add.reduceat(weights, first)
    key = key[first]
    return ug[key // us.size], us[key % us.size], counts


def compact_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values (uint64) and each entry's index among them (int64).

    Notes
    -----
    ``np.unique(return_inverse=True)`` argsorts, which is slow; instead a narrow
    value range uses a dense lookup table (O(N + range)), and a wide one a SIMD
    value sort for the distinct values, then a binary search into them while
    they fit in cache (few distinct values, the usual case) or one argsort.
    """
    values = as_uint64(values.reshape(-1))
    if values.size == 0:
        return values.copy(), np.zeros(0, np.int64)
    lo, hi = int(values.min()), int(values.max())
    if hi - lo < 4 * values.size + (1 << 16):
        shifted = values - np.uint64(lo)
        present = np.zeros(hi - lo + 1, dtype=bool)
        present[shifted] = True
        lut = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present).astype(np.uint64) + np.uint64(lo), lut[shifted]
    ordered = np.sort(values)
    first = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    uniq = ordered[first]
    if uniq.size <= 1 << 17:
        return uniq, np.searchsorted(uniq, values).astype(np.int64, copy=False)
    del ordered
    order = np.argsort(values, kind="stable")
    inverse = np.empty(values.size, np.int64)
    inverse[order] = np.cumsum(first, dtype=np.int64) - 1
    return uniq, inverse


def contingency_table(pred_labels, gt_labels, *, chunk_voxels: int = DEFAULT_CHUNK_VOXELS) -> ContingencyTable:
    """Count the voxels every (ground-truth object, predicted segment) pair shares.

    Parameters
    ----------
    pred_labels : ndarray, Volume or array-like, any shape, integer
        Predicted segmentation. Zarr, h5py and dask arrays are read slab by slab.
    gt_labels : ndarray, Volume or array-like, same shape, integer
        Ground truth; label 0 is ignored.
    chunk_voxels : int
        Voxels read per step; bounds the working memory (about 40 bytes a voxel).

    Returns
    -------
    ContingencyTable

    Raises
    ------
    VolumeError
        If the volumes differ in shape or grid, are empty, are not integer, or hold
        negative labels.

    Notes
    -----
    Memory is O(chunk_voxels + K) for K distinct pairs, whatever the volume size;
    time is linear in the voxels for realistic segmentations (see
    :func:`pair_counts`).

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([[1, 1, 2, 2], [0, 0, 2, 2]])
    >>> seg = np.array([[5, 5, 5, 7], [5, 5, 7, 7]])
    >>> t = contingency_table(seg, gt)
    >>> t.gt_ids.tolist(), t.segment_ids.tolist(), t.counts.tolist()
    ([1, 2, 2], [5, 5, 7], [2, 1, 3])
    >>> t.n_ignored
    2
    """
    pred, gt = label_pair(pred_labels, gt_labels)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pending = 0
    for index in slabs(gt.shape, chunk_voxels):
        g = read_flat(gt, index)
        s = read_flat(pred, index)
        parts.append(pair_counts(g, s))
        pending += parts[-1][2].size
        if len(parts) > 1 and pending > chunk_voxels:  # keep the partial tables small
            parts = [_merge(parts)]
            pending = parts[0][2].size
    gt_ids, seg_ids, counts = _merge(parts)
    ignored = gt_ids == 0
    n_ignored = int(counts[ignored].sum())
    keep = ~ignored
    return ContingencyTable(gt_ids[keep], seg_ids[keep], counts[keep], n_ignored, gt.shape)


def _merge(parts):
    if len(parts) == 1:
        return parts[0]
    g = np.concatenate([p[0] for p in parts])
    s = np.concatenate([p[1] for p in parts])
    c = np.concatenate([p[2] for p in parts])
    return pair_counts(g, s, weights=c)
