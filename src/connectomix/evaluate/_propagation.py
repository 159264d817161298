"""Where connectome edge errors come from: missed or false synapses, splits and merges.

:func:`edge_error_sources` explains the terms of the edge F1 of
:func:`connectomix.evaluate.edge_scores`. Predicted segments are mapped to
ground-truth neurons by largest overlap (:func:`map_segments_to_gt`), as the edge
scores do, and every true edge the prediction lacks and every predicted edge the
truth lacks gets one cause.

Definitions (all counts are of edges, i.e. distinct ``(pre, post)`` pairs):

- A predicted segment is **merged** when it overlaps two or more ground-truth neurons
  by at least ``min_overlap_vx`` voxels each; a neuron is **split** when two or more
  segments overlap it that much (:func:`split_merge_errors`).
- A true synapse is **detected** when a predicted synapse lies within
  ``max_distance_nm`` (one-to-one matching by distance alone, partners ignored,
  :func:`synapse_scores` with ``require_partners=False``); a predicted synapse with
  no true one matched to it is a **false detection**.
- A true edge ``(a, b)`` is **found** when some predicted synapse counted in the
  predicted edges maps to ``(a, b)``. A true edge not found is lost

  1. ``true_edges_lost_to_missed_synapses``: to missed synapses, when none of its
     true synapses was detected; else
  2. ``true_edges_lost_to_merges``: to merges, when a detection of one of its
     synapses lies on a merged pre- or postsynaptic segment (it was counted for the
     neuron that dominates the merged segment); else
  3. ``true_edges_lost_to_partner_errors``: its synapses were detected on clean
     segments but given wrong or unknown partners (or the edge fell below the graph's
     ``min_synapses``).

- A predicted edge (after mapping) absent from the truth is false

  1. ``false_edges_from_false_synapses``: when all its synapses are false
     detections; else
  2. ``false_edges_from_merges``: when one of its synapses lies on a merged pre- or
     postsynaptic segment; else
  3. ``false_edges_from_partner_errors``: real synapses on clean segments, wrong
     partners (or a segment that overlaps no neuron, mapped to 0).

- ``true_edges_lost_to_splits``: found true edges whose synapses lie on two or more
  different predicted segment pairs, because the pre- or postsynaptic neuron is cut
  into fragments. The unproofread connectome (segment ids) does not hold such an edge
  as one edge but as several weaker ones between fragments; mapping fragments to
  neurons adds them up again, so edge F1 counts them as found. Under largest-overlap
  mapping a split on its own never loses an edge of the mapped connectome (every
  fragment maps to its neuron), which is why splits are counted in the raw view.
  ``extra_edges_from_splits`` is the number of additional segment pairs.

So ``found + lost_* = n_true_edges`` and ``n_matched_edges + false_* =
n_pred_edges``, the numbers behind edge precision and recall.
"""

from __future__ import annotations

import numpy as np

from ..errors import TableNotFoundError, VolumeNotFoundError
from ._contingency import contingency_table
from ._edges import edges_from_synapses
from ._segmentation import apply_segment_map, map_segments_to_gt, split_merge_errors
from ._synapses import SYNAPSE_COLUMNS, synapse_scores

__all__ = ["edge_error_sources", "edge_error_sources_tables"]


def edge_error_sources(run_path, *, max_distance_nm: float = 400.0, min_overlap_vx: int = 100,
                       synapses: str = "synapses", edges: str | None = "edges") -> dict:
    """Count the causes of connectome edge errors in a run with ground truth.

    Parameters
    ----------
    run_path : str or Path
        A run with arrays ``segmentation`` and ``gt_segmentation`` and tables
        ``synapses`` (or the name given) and ``gt_synapses``.
    max_distance_nm : float
        Synapse matching distance (as in :func:`evaluate_run`).
    min_overlap_vx : int
        Smallest overlap that makes a segment part of a neuron (split/merge).
    synapses : str
        The predicted synapse table.
    edges : str or None
        The predicted edge table: when the run has it, only synapses on its
        ``(pre_id, post_id)`` pairs count (the graph's thresholds apply); otherwise
        (or with None) every synapse counts, as :func:`evaluate_tables` does.

    Returns
    -------
    dict
        Counts, see the module documentation: ``n_true_edges``, ``n_pred_edges``,
        ``n_matched_edges``, ``true_edges_lost_to_missed_synapses``,
        ``true_edges_lost_to_merges``, ``true_edges_lost_to_partner_errors``,
        ``true_edges_lost_to_splits``, ``extra_edges_from_splits``,
        ``false_edges_from_false_synapses``, ``false_edges_from_merges``,
        ``false_edges_from_partner_errors``, and ``n_split_neurons``,
        ``n_merged_segments``, ``n_true_synapses``, ``n_detected_synapses``,
        ``n_pred_synapses``, ``n_false_detections``.

    Raises
    ------
    RunDirectoryError, VolumeNotFoundError, TableNotFoundError
        If the run lacks an input (the message names it).
    """
    from ..run import Run
    from ._evaluate import _common, ground_truth_synapses, ground_truth_volume

    run = Run(run_path)
    arrays, tables = set(run.arrays()), set(run.tables())
    for name in ("segmentation", "gt_segmentation"):
        if name not in arrays:
            raise VolumeNotFoundError(f"run {run.path} has no '{name}' array; edge error sources need the "
                                      "predicted and the true segmentation")
    for name in (synapses, "gt_synapses"):
        if name not in tables:
            raise TableNotFoundError(f"run {run.path} has no '{name}' table; edge error sources need the "
                                     "predicted and the true synapses")
    # in an aligned synthetic run, the ground truth of what the aligned volume shows (as evaluate_run)
    pred, gt = _common(run.open("segmentation"), ground_truth_volume(run))
    table = contingency_table(pred, gt)
    pred_edges = run.read_table(edges) if edges is not None and edges in tables else None
    return edge_error_sources_tables(run.read_table(synapses), ground_truth_synapses(run), table=table,
                                     pred_edges=pred_edges, max_distance_nm=max_distance_nm,
                                     min_overlap_vx=min_overlap_vx)


def edge_error_sources_tables(pred_synapses, gt_synapses, *, table, pred_edges=None, max_distance_nm: float = 400.0,
                              min_overlap_vx: int = 100) -> dict:
    """:func:`edge_error_sources` on tables and a :class:`ContingencyTable` (predicted vs true labels)."""
    import pandas as pd

    segment_map = map_segments_to_gt(table=table)
    sm = split_merge_errors(table=table, min_overlap_vx=min_overlap_vx)
    merged = set(np.asarray(sm.segments.loc[sm.segments["merged"], "segment_id"], np.uint64).tolist())

    ps = pred_synapses[list(SYNAPSE_COLUMNS)].reset_index(drop=True)
    gs = gt_synapses[list(SYNAPSE_COLUMNS)].reset_index(drop=True)
    # detections by location alone, over every predicted synapse
    match = synapse_scores(ps, gs, max_distance_nm=max_distance_nm, require_partners=False).matches
    pred_of_gt = dict(zip(match["gt_synapse_id"].tolist(), match["pred_synapse_id"].tolist()))
    matched_pred = set(match["pred_synapse_id"].tolist())

    pre = ps["pre_id"].to_numpy().astype(np.uint64)
    post = ps["post_id"].to_numpy().astype(np.uint64)
    ps = ps.assign(raw_pre=pre, raw_post=post, mpre=apply_segment_map(pre, segment_map),
                   mpost=apply_segment_map(post, segment_map),
                   on_merged=[(a in merged) or (b in merged) for a, b in zip(pre.tolist(), post.tolist())],
                   true_detection=ps["synapse_id"].isin(matched_pred).to_numpy())
    # the synapses the predicted edges count
    if pred_edges is not None:
        keys = pd.MultiIndex.from_arrays([pred_edges["pre_id"].to_numpy().astype(np.uint64),
                                          pred_edges["post_id"].to_numpy().astype(np.uint64)])
        used = ps[pd.MultiIndex.from_arrays([pre, post]).isin(keys)]
    else:
        used = ps
    pred_pairs = used.groupby(["mpre", "mpost"], sort=True)
    pred_set = set(pred_pairs.groups.keys())
    gt_edges = edges_from_synapses(gs)
    gt_set = {(int(a), int(b)) for a, b in zip(gt_edges["pre_id"].to_numpy().astype(np.uint64),
                                                 gt_edges["post_id"].to_numpy().astype(np.uint64))}
    pred_set = {(int(a), int(b)) for a, b in pred_set}
    found = pred_set & gt_set

    by_sid = ps.set_index("synapse_id")
    out = dict(true_edges_lost_to_missed_synapses=0, true_edges_lost_to_merges=0,
               true_edges_lost_to_partner_errors=0, true_edges_lost_to_splits=0, extra_edges_from_splits=0,
               false_edges_from_false_synapses=0, false_edges_from_merges=0, false_edges_from_partner_errors=0)
    gpre = gs["pre_id"].to_numpy().astype(np.uint64)
    gpost = gs["post_id"].to_numpy().astype(np.uint64)
    gid = gs["synapse_id"].to_numpy()
    for a, b in sorted(gt_set - found):
        sids = gid[(gpre == a) & (gpost == b)]
        dets = [pred_of_gt[s] for s in sids.tolist() if s in pred_of_gt]
        if not dets:
            out["true_edges_lost_to_missed_synapses"] += 1
        elif bool(by_sid.loc[dets, "on_merged"].any()):
            out["true_edges_lost_to_merges"] += 1
        else:
            out["true_edges_lost_to_partner_errors"] += 1
    for (a, b), rows in pred_pairs:
        key = (int(a), int(b))
        if key in gt_set:
            n_raw = len(set(zip(rows["raw_pre"].tolist(), rows["raw_post"].tolist())))
            if n_raw > 1:
                out["true_edges_lost_to_splits"] += 1
                out["extra_edges_from_splits"] += n_raw - 1
        elif not rows["true_detection"].any():
            out["false_edges_from_false_synapses"] += 1
        elif rows["on_merged"].any():
            out["false_edges_from_merges"] += 1
        else:
            out["false_edges_from_partner_errors"] += 1
    return dict(
        n_true_edges=len(gt_set), n_pred_edges=len(pred_set), n_matched_edges=len(found), **out,
        n_split_neurons=int(sm.n_split_objects), n_merged_segments=int(sm.n_merged_segments),
        n_true_synapses=len(gs), n_detected_synapses=len(pred_of_gt), n_pred_synapses=len(ps),
        n_false_detections=int((~ps["true_detection"]).sum()),
    )
