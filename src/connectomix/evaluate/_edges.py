"""Connectome edge scores: precision/recall of (pre, post) edges after mapping
predicted segments to ground-truth neurons, and agreement of edge weights.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import TableFormatError
from ._inputs import table
from ._segmentation import apply_segment_map

__all__ = ["EdgeScores", "edge_scores", "edges_from_synapses", "EDGE_COLUMNS"]

#: Columns every edge table needs here (DESIGN.md contract).
EDGE_COLUMNS = ("pre_id", "post_id")


class EdgeScores(NamedTuple):
    """Edge-set agreement and weight correlations (NaN where undefined)."""

    precision: float
    recall: float
    f1: float
    n_pred: int
    n_gt: int
    n_matched: int
    weight_pearson: float
    """Pearson r of weights over the union of edges (missing edges weigh 0)."""
    weight_spearman: float
    strong_precision: float
    """The same scores restricted to strong edges (weight >= ``strong_threshold``)."""
    strong_recall: float
    strong_f1: float
    strong_n_pred: int
    strong_n_gt: int
    strong_weight_pearson: float
    strong_weight_spearman: float


def edges_from_synapses(synapses, *, weight: str = "n_synapses"):
    """Build an edge table (``pre_id, post_id, n_synapses``) from a synapse table.

    Parameters
    ----------
    synapses : DataFrame
        With at least ``pre_id`` and ``post_id``.
    weight : str
        Name of the count column in the result.

    Returns
    -------
    DataFrame
        One row per (pre_id, post_id) pair, sorted.
    """
    syn = table(synapses, "synapses", EDGE_COLUMNS)
    out = syn.groupby(["pre_id", "post_id"], sort=True).size().rename(weight).reset_index()
    out[weight] = out[weight].astype(np.int64)
    return out


def _keyed(edges, name, weight, segment_map):
    import pandas as pd

    df = table(edges, name, EDGE_COLUMNS)
    if weight not in df.columns:
        raise TableFormatError(f"{name} lacks the weight column {weight!r}; it has {list(df.columns)}")
    w = df[weight].to_numpy(np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise TableFormatError(f"{name}.{weight} must hold finite, non-negative weights")
    pre = df["pre_id"].to_numpy().astype(np.uint64)
    post = df["post_id"].to_numpy().astype(np.uint64)
    if segment_map is not None:
        pre, post = apply_segment_map(pre, segment_map), apply_segment_map(post, segment_map)
    # several predicted segments may map to one neuron: their edges add up
    s = pd.Series(w, index=pd.MultiIndex.from_arrays([pre, post], names=["pre_id", "post_id"]))
    return s.groupby(level=[0, 1], sort=True).sum()


def _prf(pred_keys, gt_keys):
    k = len(pred_keys.intersection(gt_keys))
    p = k / len(pred_keys) if len(pred_keys) else float("nan")
    r = k / len(gt_keys) if len(gt_keys) else float("nan")
    f = float("nan") if np.isnan(p) or np.isnan(r) else (0.0 if p + r == 0 else 2 * p * r / (p + r))
    return p, r, f, k


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import pearsonr, spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    return float(pearsonr(a, b)[0]), float(spearmanr(a, b)[0])


def edge_scores(
    pred_edges, gt_edges, *, segment_map=None, weight: str = "n_synapses", strong_threshold: float = 3,
) -> EdgeScores:
    """Score a predicted wiring diagram against the true one.

    Parameters
    ----------
    pred_edges, gt_edges : DataFrame
        Edge tables with ``pre_id``, ``post_id`` and the ``weight`` column.
    segment_map : pandas.Series, optional
        Predicted segment id -> ground-truth id (:func:`map_segments_to_gt`); None
        means the predicted ids already are ground-truth ids. Unmapped ids become 0
        and their edges can only be false positives.
    weight : str
        Column holding edge weights (default ``n_synapses``).
    strong_threshold : float
        Edges of at least this weight are strong.

    Returns
    -------
    EdgeScores
        Precision and recall of the edge sets; Pearson and Spearman correlation of
        weights over the union of both edge sets, an edge missing on one side
        counting 0. The ``strong_*`` fields repeat this on the strong edges of each
        side; their correlations use the full weights of the union of strong edges.

    Raises
    ------
    TableFormatError
        If a table lacks a column or holds bad values.

    Examples
    --------
    >>> import pandas as pd
    >>> gt = pd.DataFrame({"pre_id": [1, 1, 2], "post_id": [2, 3, 3], "n_synapses": [5, 1, 3]})
    >>> pred = pd.DataFrame({"pre_id": [1, 2], "post_id": [2, 1], "n_synapses": [4, 1]})
    >>> s = edge_scores(pred, gt)
    >>> s.precision, s.recall
    (0.5, 0.3333333333333333)
    """
    pw = _keyed(pred_edges, "pred_edges", weight, segment_map)
    gw = _keyed(gt_edges, "gt_edges", weight, None)
    pk, gk = pw.index, gw.index
    p, r, f, k = _prf(pk, gk)
    union = pk.union(gk)
    a = pw.reindex(union, fill_value=0.0).to_numpy()
    b = gw.reindex(union, fill_value=0.0).to_numpy()
    pearson, spearman = _correlations(a, b)

    spk, sgk = pw.index[pw.to_numpy() >= strong_threshold], gw.index[gw.to_numpy() >= strong_threshold]
    sp, sr, sf, _ = _prf(spk, sgk)
    sunion = spk.union(sgk)
    s_pearson, s_spearman = _correlations(
        pw.reindex(sunion, fill_value=0.0).to_numpy(), gw.reindex(sunion, fill_value=0.0).to_numpy()
    )
    return EdgeScores(
        precision=p, recall=r, f1=f, n_pred=len(pk), n_gt=len(gk), n_matched=k,
        weight_pearson=pearson, weight_spearman=spearman,
        strong_precision=sp, strong_recall=sr, strong_f1=sf, strong_n_pred=len(spk), strong_n_gt=len(sgk),
        strong_weight_pearson=s_pearson, strong_weight_spearman=s_spearman,
    )
