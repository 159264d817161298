"""Segmentation metrics from a contingency table: VOI, adapted Rand, split/merge
counts, and the map from predicted segments to ground-truth objects.

Each metric takes either the two label volumes or a precomputed
:class:`~connectomix.evaluate.ContingencyTable` (``table=``), so that a caller
scoring several metrics streams the volumes once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import VolumeError
from ._contingency import ContingencyTable, contingency_table
from ._inputs import DEFAULT_CHUNK_VOXELS

__all__ = [
    "VariationOfInformation",
    "AdaptedRand",
    "SplitMergeErrors",
    "variation_of_information",
    "adapted_rand_error",
    "split_merge_errors",
    "map_segments_to_gt",
    "apply_segment_map",
    "ignore_boundaries",
    "BoundaryIgnored",
    "oracle_agglomeration",
]


class VariationOfInformation(NamedTuple):
    """Variation of information in bits: ``total = split + merge``."""

    split: float
    """H(prediction | ground truth): grows when objects are cut into pieces."""
    merge: float
    """H(ground truth | prediction): grows when objects are fused."""
    total: float


class AdaptedRand(NamedTuple):
    """Adapted Rand error (1 - F-score of voxel pairs) with its precision and recall."""

    error: float
    precision: float
    """Pairs together in both / pairs together in the prediction (merges lower it)."""
    recall: float
    """Pairs together in both / pairs together in the ground truth (splits lower it)."""


@dataclass(frozen=True, eq=False)
class SplitMergeErrors:
    """Per-object split and merge errors.

    Attributes
    ----------
    n_split_objects : int
        Ground-truth objects cut into two or more significant pieces.
    n_split_errors : int
        Cuts: the sum over objects of (pieces - 1).
    n_merged_segments : int
        Predicted segments that cover two or more ground-truth objects significantly.
    n_merge_errors : int
        Fusions: the sum over segments of (objects - 1).
    gt_objects : DataFrame
        ``gt_id, size_vx, n_pieces, split, largest_piece_vx`` for every ground-truth
        object (``largest_piece_vx``: voxels of its largest piece, 0 without one).
    segments : DataFrame
        ``segment_id, size_vx, n_gt, merged`` for every predicted segment other than 0.
    """

    n_split_objects: int
    n_split_errors: int
    n_merged_segments: int
    n_merge_errors: int
    gt_objects: object
    segments: object


def _table(pred_labels, gt_labels, table, chunk_voxels) -> ContingencyTable:
    if table is not None:
        if pred_labels is not None or gt_labels is not None:
            raise TypeError("give either the two label volumes or table=, not both")
        if not isinstance(table, ContingencyTable):
            raise TypeError(f"table must be a ContingencyTable, got {type(table).__name__}")
        return table
    if pred_labels is None or gt_labels is None:
        raise TypeError("give pred_labels and gt_labels, or a precomputed table=")
    return contingency_table(pred_labels, gt_labels, chunk_voxels=chunk_voxels)


def _require_voxels(t: ContingencyTable) -> int:
    n = t.n_voxels
    if n == 0:
        raise VolumeError(
            f"gt_labels has no labelled voxel: all {t.n_ignored} voxels are 0, which every "
            "metric ignores, so there is nothing to score"
        )
    return n


def _group_sums(ids: np.ndarray, counts: np.ndarray):
    """Distinct ids, their summed counts, and each row's index into them."""
    uniq, inv = np.unique(ids, return_inverse=True)
    inv = inv.reshape(-1)
    return uniq, np.bincount(inv, weights=counts, minlength=uniq.size).astype(np.int64), inv


def variation_of_information(
    pred_labels=None, gt_labels=None, *, table: ContingencyTable | None = None,
    chunk_voxels: int = DEFAULT_CHUNK_VOXELS,
) -> VariationOfInformation:
    """Score a segmentation by the variation of information, split and merge parts.

    Parameters
    ----------
    pred_labels, gt_labels : ndarray, Volume or array-like, integer, same shape
        Predicted and ground-truth labels; voxels with ground-truth label 0 are ignored.
    table : ContingencyTable, optional
        A precomputed table, instead of the two volumes.
    chunk_voxels : int
        Voxels read per step when the table is computed here.

    Returns
    -------
    VariationOfInformation
        ``split`` = H(pred | gt) and ``merge`` = H(gt | pred), in bits.

    Raises
    ------
    VolumeError
        For invalid or mismatched volumes, or a ground truth that is all 0.

    Notes
    -----
    With ``n_ij`` the voxels shared by object i and segment j, ``n_i`` and ``n_j``
    the object and segment sizes and ``n`` their sum,
    ``split = -sum n_ij/n log2(n_ij/n_i)`` and ``merge = -sum n_ij/n log2(n_ij/n_j)``.
    Equal to ``skimage.metrics.variation_of_information(gt, pred,
    ignore_labels=[0])`` (which returns ``[split, merge]``), in O(K) for K pairs.

    References
    ----------
    .. [1] Meilă M. (2007) Comparing clusterings — an information based distance.
       J. Multivariate Anal. 98(5):873-895. :doi:`10.1016/j.jmva.2006.11.013`

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([1, 1, 1, 1])
    >>> variation_of_information(np.array([1, 1, 2, 2]), gt)
    VariationOfInformation(split=1.0, merge=0.0, total=1.0)
    """
    t = _table(pred_labels, gt_labels, table, chunk_voxels)
    n = float(_require_voxels(t))
    _, gt_sizes, gi = _group_sums(t.gt_ids, t.counts)
    _, seg_sizes, si = _group_sums(t.segment_ids, t.counts)
    c = t.counts.astype(np.float64)
    split = -float(np.sum(c * np.log2(c / gt_sizes[gi]))) / n
    merge = -float(np.sum(c * np.log2(c / seg_sizes[si]))) / n
    split, merge = max(split, 0.0) + 0.0, max(merge, 0.0) + 0.0  # no -0.0 or tiny negatives
    return VariationOfInformation(split, merge, split + merge)


def adapted_rand_error(
    pred_labels=None, gt_labels=None, *, table: ContingencyTable | None = None,
    alpha: float = 0.5, chunk_voxels: int = DEFAULT_CHUNK_VOXELS,
) -> AdaptedRand:
    """Score a segmentation by the adapted Rand error of SNEMI3D.

    Parameters
    ----------
    pred_labels, gt_labels : ndarray, Volume or array-like, integer, same shape
        Predicted and ground-truth labels; voxels with ground-truth label 0 are ignored.
    table : ContingencyTable, optional
        A precomputed table, instead of the two volumes.
    alpha : float
        Weight of precision against recall in the F-score, in [0, 1].
    chunk_voxels : int
        Voxels read per step when the table is computed here.

    Returns
    -------
    AdaptedRand
        ``error`` = 1 - F-score of voxel pairs, with ``precision`` and ``recall``
        (see Notes). A ratio whose denominator has no pairs (all singletons) is NaN.

    Raises
    ------
    VolumeError
        For invalid or mismatched volumes, or a ground truth that is all 0.
    ValueError
        If ``alpha`` is outside [0, 1].

    Notes
    -----
    ``P = sum n_ij^2 - n`` pairs are together in both, ``S = sum n_j^2 - n`` in the
    prediction, ``T = sum n_i^2 - n`` in the ground truth: precision ``P/S``, recall
    ``P/T``, error ``1 - P / (alpha S + (1 - alpha) T)``. The error equals
    ``skimage.metrics.adapted_rand_error(gt, pred)[0]``; scikit-image (0.26)
    returns precision and recall the other way round (its issue #6485), so its
    ``prec`` is our ``recall``. Here a merge lowers precision and a split recall.

    References
    ----------
    .. [1] Arganda-Carreras I. et al. (2015) Crowdsourcing the creation of image
       segmentation algorithms for connectomics. Front. Neuroanat. 9:142.
       :doi:`10.3389/fnana.2015.00142`

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([1, 1, 2, 2])
    >>> adapted_rand_error(np.array([1, 1, 1, 1]), gt)  # one merge
    AdaptedRand(error=0.5, precision=0.3333333333333333, recall=1.0)
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    t = _table(pred_labels, gt_labels, table, chunk_voxels)
    n = _require_voxels(t)
    _, gt_sizes, _ = _group_sums(t.gt_ids, t.counts)
    _, seg_sizes, _ = _group_sums(t.segment_ids, t.counts)
    # Python ints: sums of squares of 10^9-voxel objects overflow int64.
    both = _sum_squares(t.counts) - n
    in_seg = _sum_squares(seg_sizes) - n
    in_gt = _sum_squares(gt_sizes) - n
    precision = _ratio(both, in_seg)
    recall = _ratio(both, in_gt)
    error = 1.0 - _ratio(both, alpha * in_seg + (1.0 - alpha) * in_gt)
    return AdaptedRand(error, precision, recall)


def _sum_squares(values: np.ndarray) -> int:
    """Exact sum of squares of non-negative counts, as a Python int."""
    if values.size == 0:
        return 0
    if int(values.sum()) < 3_000_000_000:  # sum of squares <= (sum)^2 < 2^63
        return int(np.sum(values.astype(np.int64) ** 2))
    return sum(int(v) * int(v) for v in values)


def _ratio(a, b) -> float:
    return float(a) / float(b) if b else float("nan")


def split_merge_errors(
    pred_labels=None, gt_labels=None, *, table: ContingencyTable | None = None,
    min_overlap_vx: int = 100, chunk_voxels: int = DEFAULT_CHUNK_VOXELS,
) -> SplitMergeErrors:
    """Count ground-truth objects cut into pieces and segments that fuse objects.

    Parameters
    ----------
    pred_labels, gt_labels : ndarray, Volume or array-like, integer, same shape
        Predicted and ground-truth labels; ground-truth label 0 is ignored.
    table : ContingencyTable, optional
        A precomputed table, instead of the two volumes.
    min_overlap_vx : int
        Overlaps smaller than this many voxels are boundary noise, not pieces.
    chunk_voxels : int
        Voxels read per step when the table is computed here.

    Returns
    -------
    SplitMergeErrors

    Raises
    ------
    VolumeError
        For invalid or mismatched volumes, or a ground truth that is all 0.

    Notes
    -----
    Predicted label 0 ("no segment") is never a piece nor a merger: voxels a
    segmentation leaves unassigned lower VOI and Rand, not these counts.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([1, 1, 1, 1, 2, 2, 3, 3])
    >>> seg = np.array([4, 4, 5, 5, 6, 6, 6, 6])
    >>> e = split_merge_errors(seg, gt, min_overlap_vx=1)
    >>> e.n_split_objects, e.n_merged_segments
    (1, 1)
    """
    import pandas as pd

    if min_overlap_vx < 1:
        raise ValueError(f"min_overlap_vx must be >= 1, got {min_overlap_vx}")
    t = _table(pred_labels, gt_labels, table, chunk_voxels)
    _require_voxels(t)
    gt_u, gt_sizes, gi = _group_sums(t.gt_ids, t.counts)
    seg_u, seg_sizes, si = _group_sums(t.segment_ids, t.counts)
    strong = (t.counts >= min_overlap_vx) & (t.segment_ids != 0)
    n_pieces = np.bincount(gi[strong], minlength=gt_u.size)
    n_gt = np.bincount(si[strong], minlength=seg_u.size)
    largest = np.zeros(gt_u.size, np.int64)
    np.maximum.at(largest, gi[strong], t.counts[strong].astype(np.int64))
    gt_df = pd.DataFrame({"gt_id": gt_u, "size_vx": gt_sizes, "n_pieces": n_pieces, "split": n_pieces >= 2,
                          "largest_piece_vx": largest})
    nonzero = seg_u != 0
    seg_df = pd.DataFrame(
        {"segment_id": seg_u[nonzero], "size_vx": seg_sizes[nonzero], "n_gt": n_gt[nonzero],
         "merged": n_gt[nonzero] >= 2}
    )
    return SplitMergeErrors(
        n_split_objects=int((n_pieces >= 2).sum()),
        n_split_errors=int(np.maximum(n_pieces - 1, 0).sum()),
        n_merged_segments=int((n_gt >= 2).sum()),
        n_merge_errors=int(np.maximum(n_gt - 1, 0).sum()),
        gt_objects=gt_df,
        segments=seg_df,
    )


def map_segments_to_gt(
    pred_labels=None, gt_labels=None, *, table: ContingencyTable | None = None,
    chunk_voxels: int = DEFAULT_CHUNK_VOXELS,
):
    """Map every predicted segment to the ground-truth object it overlaps most.

    Parameters
    ----------
    pred_labels, gt_labels : ndarray, Volume or array-like, integer, same shape
        Predicted and ground-truth labels; ground-truth label 0 is ignored.
    table : ContingencyTable, optional
        A precomputed table, instead of the two volumes.
    chunk_voxels : int
        Voxels read per step when the table is computed here.

    Returns
    -------
    pandas.Series
        Index ``segment_id`` (uint64), values ``gt_id`` (uint64). Ties go to the
        smaller ground-truth id. Segment 0 and segments that only overlap
        ground-truth 0 are absent; :func:`apply_segment_map` sends them to 0.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([1, 1, 1, 2, 2, 0])
    >>> seg = np.array([7, 7, 8, 8, 8, 9])
    >>> map_segments_to_gt(seg, gt).to_dict()
    {7: 1, 8: 2}
    """
    import pandas as pd

    t = _table(pred_labels, gt_labels, table, chunk_voxels)
    keep = t.segment_ids != 0
    seg, gt, c = t.segment_ids[keep], t.gt_ids[keep], t.counts[keep]
    order = np.lexsort((gt, -c, seg))  # by segment, then largest overlap, then smallest gt id
    seg, gt = seg[order], gt[order]
    first = np.concatenate(([True], seg[1:] != seg[:-1])) if seg.size else np.zeros(0, bool)
    return pd.Series(gt[first], index=pd.Index(seg[first], name="segment_id"), name="gt_id")


def apply_segment_map(segment_ids, segment_map) -> np.ndarray:
    """Translate predicted segment ids into ground-truth ids.

    Parameters
    ----------
    segment_ids : array-like of int
        Predicted ids (e.g. a synapse table's ``pre_id`` column).
    segment_map : pandas.Series
        From :func:`map_segments_to_gt`: index ``segment_id``, values ``gt_id``.

    Returns
    -------
    ndarray of uint64
        The ground-truth id of each input id; 0 for ids the map does not know.
    """
    ids = np.asarray(segment_ids).astype(np.uint64, copy=False).reshape(-1)
    keys = np.asarray(segment_map.index, dtype=np.uint64)
    values = np.asarray(segment_map.to_numpy(), dtype=np.uint64)
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    out = np.zeros(ids.shape, np.uint64)
    if keys.size:
        pos = np.minimum(np.searchsorted(keys, ids), keys.size - 1)
        hit = keys[pos] == ids
        out[hit] = values[pos[hit]]
    return out


def ignore_boundaries(gt_labels, distance_px: float = 0.0) -> np.ndarray:
    """Ground truth with the voxels at in-plane object boundaries set to 0 (ignored).

    A voxel is a boundary voxel when one of its four in-plane neighbours carries
    another label, so every boundary gets a band two voxels wide, one on each side;
    ``distance_px`` widens it to the voxels within that in-plane distance of the band.
    This is the CREMI challenge's way of scoring VOI and adapted Rand without the
    voxels whose side of a membrane is ambiguous; scores with it are not comparable
    to scores without, so name it wherever such a score is reported. Objects no wider
    than the band vanish from the score.

    Parameters
    ----------
    gt_labels : ndarray (Z, Y, X) integer
        Ground truth (0 = unlabelled).
    distance_px : float
        Extra width, in voxels, around the two-voxel band; 0 for the band alone.

    Returns
    -------
    ndarray
        A copy of ``gt_labels`` with the band set to 0.

    Raises
    ------
    VolumeError
        If ``gt_labels`` is not a 3D integer array or ``distance_px`` is negative.

    Examples
    --------
    >>> gt = np.zeros((1, 1, 6), np.uint32); gt[..., 3:] = 1; gt += 1
    >>> ignore_boundaries(gt)[0, 0].tolist()
    [1, 1, 0, 0, 2, 2]
    """
    from scipy import ndimage

    gt = np.asarray(gt_labels)
    if gt.ndim != 3 or not (np.issubdtype(gt.dtype, np.integer) or gt.dtype == np.bool_):
        raise VolumeError(f"gt_labels must be a 3D integer array (Z, Y, X), got {gt.ndim}D {gt.dtype}")
    if not np.isfinite(distance_px) or distance_px < 0:
        raise VolumeError(f"distance_px must be a finite number >= 0, got {distance_px}")
    band = np.zeros(gt.shape, bool)
    dy = gt[:, 1:] != gt[:, :-1]
    band[:, 1:] |= dy
    band[:, :-1] |= dy
    dx = gt[:, :, 1:] != gt[:, :, :-1]
    band[:, :, 1:] |= dx
    band[:, :, :-1] |= dx
    if distance_px > 0:
        for z in range(gt.shape[0]):
            if band[z].any():
                band[z] = ndimage.distance_transform_edt(~band[z]) <= distance_px
    out = gt.copy()
    out[band] = 0
    return out


class BoundaryIgnored:
    """``gt_labels`` as :func:`ignore_boundaries` returns it, computed slab by slab on reading.

    An array-like (``shape``, ``dtype``, numpy indexing by integers and slices with
    unit steps) over a 3D
    label array-like (numpy, zarr, a :class:`~connectomix.volume.Volume`'s data), so
    that the streamed metrics (:func:`contingency_table`) can score a volume too large
    to copy: each read takes a margin of ``ceil(distance_px) + 1`` voxels in y and x
    around the asked region, which makes it equal to the same region of
    ``ignore_boundaries(whole volume)``.
    """

    def __init__(self, gt_labels, distance_px: float = 0.0):
        self.data = gt_labels
        self.shape = tuple(int(n) for n in gt_labels.shape)
        self.dtype = np.dtype(gt_labels.dtype)
        if len(self.shape) != 3:
            raise VolumeError(f"gt_labels must be a 3D array (Z, Y, X), got shape {self.shape}")
        ignore_boundaries(np.zeros((1, 1, 1), np.uint8), distance_px)  # checks distance_px
        self.distance_px = float(distance_px)
        self.ndim = 3

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3 or not all(isinstance(k, slice) or (isinstance(k, (int, np.integer)) and
                                                         not isinstance(k, (bool, np.bool_))) for k in key):
            raise IndexError("BoundaryIgnored takes up to three integers or slices")
        for k, n in zip(key, self.shape):
            if not isinstance(k, slice) and not -n <= int(k) < n:
                raise IndexError(f"index {int(k)} is out of bounds for an axis of size {n}")
        drop = tuple(0 if not isinstance(k, slice) else slice(None) for k in key)  # integer axes go
        key = [k if isinstance(k, slice) else slice(int(k) % n, int(k) % n + 1) for k, n in zip(key, self.shape)]
        box = [k.indices(n) for k, n in zip(key, self.shape)]
        if any(step != 1 for _, _, step in box):
            raise IndexError("BoundaryIgnored reads slices with step 1 only")
        m = int(np.ceil(self.distance_px)) + 1
        (z0, z1, _), (y0, y1, _), (x0, x1, _) = box
        ya, yb, xa, xb = max(0, y0 - m), min(self.shape[1], y1 + m), max(0, x0 - m), min(self.shape[2], x1 + m)
        block = np.asarray(self.data[z0:z1, ya:yb, xa:xb])
        if block.size:
            block = ignore_boundaries(block, self.distance_px)
        return block[:, y0 - ya : y1 - ya, x0 - xa : x1 - xa][drop]


def oracle_agglomeration(fragments, gt_labels) -> np.ndarray:
    """A perfect merging of ``fragments`` by majority: each joins the true object it overlaps most.

    Scoring it (e.g. with :func:`variation_of_information`) tells apart the errors
    of the fragments (a fragment across a boundary, which no merging undoes) from
    those of the agglomeration (fragments of one object left apart, or of two
    objects joined). It is a reference, not a strict bound: another assignment of
    fragments that straddle boundaries can score a lower VOI. Fragments that overlap
    only ground-truth 0 become 0.

    Parameters
    ----------
    fragments, gt_labels : ndarray (Z, Y, X) integer, same shape

    Returns
    -------
    ndarray of uint64
        The ground-truth id each voxel's fragment is mapped to.

    Examples
    --------
    >>> frags = np.array([[[1, 1, 2, 2, 3, 3]]])
    >>> gt = np.array([[[5, 5, 5, 7, 7, 7]]])
    >>> oracle_agglomeration(frags, gt)[0, 0].tolist()
    [5, 5, 5, 5, 7, 7]
    """
    import fastremap

    frags = np.asarray(fragments)
    segment_map = map_segments_to_gt(frags, gt_labels)
    ids = np.asarray(fastremap.unique(frags), dtype=np.uint64)
    table = dict(zip(ids.tolist(), apply_segment_map(ids, segment_map).tolist()))
    return fastremap.remap(frags.astype(np.uint64, copy=False), table, preserve_missing_labels=True)
