"""Synapse detection scores: one-to-one matching of predicted to true synapses by
distance and synaptic partners, and cleft distance scores.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._inputs import DEFAULT_CHUNK_VOXELS, check_voxel_size, label_pair, read_flat, slabs, table
from ._segmentation import apply_segment_map

__all__ = [
    "SynapseScores",
    "CleftDistances",
    "match_points",
    "synapse_scores",
    "cleft_distances",
    "SYNAPSE_COLUMNS",
]

#: Columns every synapse table needs here (DESIGN.md contract; z, y, x in nm).
SYNAPSE_COLUMNS = ("synapse_id", "pre_id", "post_id", "z", "y", "x")


class SynapseScores(NamedTuple):
    """Precision, recall and F1 of synapse detection (NaN where undefined)."""

    precision: float
    recall: float
    f1: float
    n_matched: int
    n_pred: int
    n_gt: int
    mean_match_distance_nm: float
    """Mean distance of the matched pairs."""
    mean_pred_to_gt_nm: float
    """Mean distance from each predicted synapse to the nearest true one."""
    mean_gt_to_pred_nm: float
    """Mean distance from each true synapse to the nearest predicted one."""
    matches: object
    """DataFrame ``pred_synapse_id, gt_synapse_id, distance_nm``."""


class CleftDistances(NamedTuple):
    """CREMI-style cleft scores from two cleft masks, distances in nm."""

    mean_pred_to_gt_nm: float
    """Mean distance of predicted cleft voxels to the nearest true cleft voxel (false positives)."""
    mean_gt_to_pred_nm: float
    """Mean distance of true cleft voxels to the nearest predicted one (false negatives)."""
    score_nm: float
    """Mean of the two."""
    n_pred_far: int
    """Predicted cleft voxels farther than the tolerance from any true one."""
    n_gt_far: int
    """True cleft voxels farther than the tolerance from any predicted one."""


def match_points(pred_points, gt_points, *, max_distance_nm: float = 400.0, allowed=None):
    """Match two point sets one-to-one, as many pairs as possible, then closest.

    Parameters
    ----------
    pred_points, gt_points : (N, D) and (M, D) arrays, nm
    max_distance_nm : float
        Pairs farther apart never match.
    allowed : callable, optional
        ``allowed(i, j) -> bool array`` for candidate index arrays ``i`` (pred) and
        ``j`` (gt); pairs it rejects never match (e.g. wrong partners).

    Returns
    -------
    pred_index, gt_index : (K,) int64
        Matched pairs.
    distance : (K,) float64

    Notes
    -----
    Candidate pairs within ``max_distance_nm`` come from a k-d tree; the bipartite
    candidate graph is split into connected components and each solved with the
    Hungarian method (``scipy.optimize.linear_sum_assignment``) on a cost that
    puts the number of matches first and the summed distance second. Memory is
    O(candidates + largest component squared).
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    p = np.asarray(pred_points, float)
    g = np.asarray(gt_points, float)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if len(p) == 0 or len(g) == 0:
        return empty
    cand = cKDTree(p).sparse_distance_matrix(cKDTree(g), max_distance_nm, output_type="ndarray")
    i, j, d = cand["i"].astype(np.int64), cand["j"].astype(np.int64), cand["v"].astype(np.float64)
    if allowed is not None and len(i):
        ok = np.asarray(allowed(i, j), bool)
        i, j, d = i[ok], j[ok], d[ok]
    if len(i) == 0:
        return empty
    n_p, n_g = len(p), len(g)
    graph = coo_array((np.ones(len(i)), (i, j + n_p)), shape=(n_p + n_g, n_p + n_g))
    _, comp = connected_components(graph, directed=False)
    comp_of_pair = comp[i]
    order = np.argsort(comp_of_pair, kind="stable")
    i, j, d, comp_of_pair = i[order], j[order], d[order], comp_of_pair[order]
    bounds = np.flatnonzero(np.diff(comp_of_pair)) + 1
    out_i, out_j, out_d = [], [], []
    scale = max(float(max_distance_nm), 1e-9)
    for a, b in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [len(i)]))):
        ci, cj, cd = i[a:b], j[a:b], d[a:b]
        ri, li = np.unique(ci, return_inverse=True)
        rj, lj = np.unique(cj, return_inverse=True)
        if len(ci) == 1:
            out_i.append(ci), out_j.append(cj), out_d.append(cd)
            continue
        m = min(len(ri), len(rj))
        # each allowed pair costs < 1, a forbidden one more than all allowed together
        cost = np.full((len(ri), len(rj)), float(m + 2))
        cost[li.reshape(-1), lj.reshape(-1)] = cd / (scale * 1.000001)
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] < 1.0
        rows, cols = rows[ok], cols[ok]
        out_i.append(ri[rows]), out_j.append(rj[cols])
        out_d.append(np.linalg.norm(p[ri[rows]] - g[rj[cols]], axis=1))
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


def _f1(precision: float, recall: float) -> float:
    if np.isnan(precision) or np.isnan(recall):
        return float("nan")
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _nearest_mean(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    if len(a) == 0 or len(b) == 0:
        return float("nan")
    d, _ = cKDTree(b).query(a)
    return float(np.mean(d))


def synapse_scores(
    pred_synapses, gt_synapses, *, segment_map=None, max_distance_nm: float = 400.0,
    require_partners: bool = True,
) -> SynapseScores:
    """Score detected synapses against the true ones, CREMI synaptic-partner style.

    Parameters
    ----------
    pred_synapses, gt_synapses : DataFrame
        Synapse tables with at least ``synapse_id, pre_id, post_id, z, y, x`` (nm).
    segment_map : pandas.Series, optional
        Predicted segment id -> ground-truth id, from :func:`map_segments_to_gt`.
        None means the predicted ``pre_id``/``post_id`` already are ground-truth ids.
    max_distance_nm : float
        A detection farther than this from a true synapse cannot match it.
    require_partners : bool
        Also require the mapped pre- and postsynaptic ids to equal the true ones;
        False scores detection by distance alone.

    Returns
    -------
    SynapseScores
        ``precision = matched / predicted``, ``recall = matched / true``; NaN when
        the denominator is 0.

    Raises
    ------
    TableFormatError
        If a table lacks a column or holds bad values.

    Notes
    -----
    Matching is one-to-one (Hungarian, see :func:`match_points`): a true synapse
    found twice yields one match and one false positive.

    Examples
    --------
    >>> import pandas as pd
    >>> gt = pd.DataFrame({"synapse_id": [1, 2], "pre_id": [1, 1], "post_id": [2, 3],
    ...                    "z": [0.0, 0.0], "y": [0.0, 1000.0], "x": [0.0, 0.0]})
    >>> pred = gt.assign(y=gt["y"] + 100.0, post_id=[2, 4])  # the second partner is wrong
    >>> s = synapse_scores(pred, gt)
    >>> s.precision, s.recall, s.n_matched
    (0.5, 0.5, 1)
    """
    import pandas as pd

    if max_distance_nm < 0 or not np.isfinite(max_distance_nm):
        raise ValueError(f"max_distance_nm must be a non-negative number, got {max_distance_nm}")
    pred = table(pred_synapses, "pred_synapses", SYNAPSE_COLUMNS)
    gt = table(gt_synapses, "gt_synapses", SYNAPSE_COLUMNS)
    p = pred[["z", "y", "x"]].to_numpy(np.float64)
    g = gt[["z", "y", "x"]].to_numpy(np.float64)
    pre = pred["pre_id"].to_numpy().astype(np.uint64)
    post = pred["post_id"].to_numpy().astype(np.uint64)
    if segment_map is not None:
        pre, post = apply_segment_map(pre, segment_map), apply_segment_map(post, segment_map)
    gpre = gt["pre_id"].to_numpy().astype(np.uint64)
    gpost = gt["post_id"].to_numpy().astype(np.uint64)

    def partners_agree(i, j):
        return (pre[i] == gpre[j]) & (post[i] == gpost[j]) & (pre[i] != 0) & (post[i] != 0)

    mi, mj, md = match_points(
        p, g, max_distance_nm=max_distance_nm, allowed=partners_agree if require_partners else None
    )
    n_pred, n_gt, k = len(p), len(g), len(mi)
    precision = k / n_pred if n_pred else float("nan")
    recall = k / n_gt if n_gt else float("nan")
    order = np.argsort(mi, kind="stable")
    matches = pd.DataFrame(
        {
            "pred_synapse_id": pred["synapse_id"].to_numpy()[mi[order]],
            "gt_synapse_id": gt["synapse_id"].to_numpy()[mj[order]],
            "distance_nm": md[order],
        }
    )
    return SynapseScores(
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        n_matched=k,
        n_pred=n_pred,
        n_gt=n_gt,
        mean_match_distance_nm=float(md.mean()) if k else float("nan"),
        mean_pred_to_gt_nm=_nearest_mean(p, g),
        mean_gt_to_pred_nm=_nearest_mean(g, p),
        matches=matches,
    )


def cleft_distances(pred_clefts, gt_clefts, *, voxel_size, tolerance_nm: float = 200.0) -> CleftDistances:
    """Score a cleft mask by distances to the true clefts, in nm (CREMI cleft score).

    Parameters
    ----------
    pred_clefts, gt_clefts : ndarray, Volume or array-like, integer or bool, same shape
        Cleft masks or cleft labels: every non-zero voxel is cleft.
    voxel_size : sequence of numbers
        nm per voxel along each axis.
    tolerance_nm : float
        Voxels farther than this from the other mask are counted as far.

    Returns
    -------
    CleftDistances
        Means are NaN when one of the masks is empty.

    Raises
    ------
    VolumeError
        For mismatched or non-integer masks, or a bad voxel size.

    Notes
    -----
    Two exact Euclidean distance transforms (``edt``, anisotropic), one per mask;
    memory is about 8 bytes a voxel beyond the inputs.
    """
    import edt

    a, b = label_pair(pred_clefts, gt_clefts)
    vs = check_voxel_size(voxel_size, len(a.shape))
    pm = _mask(a)
    gm = _mask(b)
    n_p, n_g = int(pm.sum()), int(gm.sum())
    if n_p == 0 or n_g == 0:
        nan = float("nan")
        return CleftDistances(nan, nan, nan, n_p if n_g == 0 else 0, n_g if n_p == 0 else 0)
    # edt measures each non-zero voxel's distance to the nearest zero voxel
    to_gt = edt.edt((~gm).view(np.uint8), anisotropy=tuple(vs), black_border=False)[pm]
    to_pred = edt.edt((~pm).view(np.uint8), anisotropy=tuple(vs), black_border=False)[gm]
    fp, fn = float(to_gt.mean()), float(to_pred.mean())
    return CleftDistances(
        fp, fn, (fp + fn) / 2, int(np.sum(to_gt > tolerance_nm)), int(np.sum(to_pred > tolerance_nm))
    )


def _mask(src) -> np.ndarray:
    out = np.empty(int(np.prod(src.shape)), dtype=bool)
    pos = 0
    for index in slabs(src.shape, DEFAULT_CHUNK_VOXELS):
        flat = read_flat(src, index)
        out[pos : pos + flat.size] = flat != 0
        pos += flat.size
    assert pos == out.size  # slabs cover the volume exactly once
    return out.reshape(src.shape)
