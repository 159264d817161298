"""One call that scores everything the given inputs allow, as a flat dict.

Keys are stable and JSON-friendly (floats, ints; NaN where a score is undefined),
so ``RUN/evaluation.json`` and benchmark tables can be written straight from them.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import RunDirectoryError, VolumeError
from ._alignment import alignment_residuals, section_ncc
from ._contingency import contingency_table
from ._edges import edge_scores, edges_from_synapses
from ._erl import Skeletons, expected_run_length, skeletonize
from ._inputs import DEFAULT_CHUNK_VOXELS, label_pair
from ._segmentation import (
    BoundaryIgnored,
    adapted_rand_error,
    map_segments_to_gt,
    split_merge_errors,
    variation_of_information,
)
from ._synapses import cleft_distances, synapse_scores

__all__ = ["evaluate_arrays", "evaluate_tables", "evaluate_run"]


def evaluate_arrays(
    *,
    pred_labels=None,
    gt_labels=None,
    voxel_size=None,
    offset=None,
    gt_skeletons: Skeletons | None = None,
    compute_erl: bool = True,
    min_overlap_vx: int = 100,
    teasar_params: dict | None = None,
    pred_clefts=None,
    gt_clefts=None,
    aligned=None,
    estimated_points=None,
    true_points=None,
    chunk_voxels: int = DEFAULT_CHUNK_VOXELS,
) -> dict:
    """Score every array-based metric the given inputs allow.

    Parameters
    ----------
    pred_labels, gt_labels : ndarray, Volume or array-like, (Z, Y, X) integer, optional
        Predicted and true segmentations: VOI, adapted Rand, split/merge counts
        and (with ``compute_erl``) ERL.
    voxel_size : sequence of 3 numbers, optional
        nm per voxel; needed for ERL, clefts and NCC unless the inputs are Volumes.
    offset : sequence of 3 numbers, optional
        World position of the first voxel in nm, for ERL.
    gt_skeletons : Skeletons, optional
        Ground-truth skeletons for ERL; skeletonized from ``gt_labels`` when None.
    compute_erl : bool
        Compute ERL (skeletonizing the ground truth takes seconds to minutes).
    min_overlap_vx : int
        Smallest overlap that counts as a piece in split/merge counts.
    teasar_params : dict, optional
        kimimaro TEASAR overrides for skeletonization.
    pred_clefts, gt_clefts : ndarray, Volume or array-like, optional
        Cleft masks: CREMI-style cleft distances.
    aligned : ndarray, Volume or array-like, (Z, Y, X), optional
        An aligned image stack: NCC of adjacent sections.
    estimated_points, true_points : (N, D) arrays, nm, optional
        Point correspondences through the estimated and the true alignment.
    chunk_voxels : int
        Voxels read per step when streaming label volumes.

    Returns
    -------
    dict
        Flat ``name -> number``: ``voi_split``, ``voi_merge``, ``voi``,
        ``rand_error``, ``rand_precision``, ``rand_recall``; the same without the
        voxels at true in-plane boundaries as CREMI scores (``voi_boundary_ignored``
        with ``_split`` and ``_merge``, ``rand_error_boundary_ignored``; see
        :func:`ignore_boundaries`; 3D volumes only, and absent where every labelled
        voxel lies at a boundary), ``n_split_objects``,
        ``n_split_errors``, ``n_merged_segments``, ``n_merge_errors``,
        ``error_split``, ``error_merge``, ``error_size_unit_vx`` (the split and
        merge rates of :func:`connectomix.analysis.perturb` and their unit),
        ``n_pieces_mean``, ``n_pieces_median``, ``n_pieces_p90``, ``n_pieces_max``
        (pieces per true neuron), ``largest_piece_fraction_median``,
        ``erl_nm``, ``max_erl_nm``, ``erl_fraction``, ``skeleton_length_nm``,
        ``cleft_*``, ``ncc_*``, ``alignment_*``, for the inputs given.

    Raises
    ------
    VolumeError
        For bad inputs (see the individual metrics), or only one of a pair given.
    """
    out: dict = {}
    _pair_given(pred_labels, gt_labels, "pred_labels", "gt_labels")
    _pair_given(pred_clefts, gt_clefts, "pred_clefts", "gt_clefts")
    _pair_given(estimated_points, true_points, "estimated_points", "true_points")
    if pred_labels is not None:
        fields, _ = _score_segmentation(
            pred_labels, gt_labels, voxel_size=voxel_size, offset=offset, gt_skeletons=gt_skeletons,
            compute_erl=compute_erl, min_overlap_vx=min_overlap_vx, teasar_params=teasar_params,
            chunk_voxels=chunk_voxels,
        )
        out.update(fields)
    if pred_clefts is not None:
        c = cleft_distances(pred_clefts, gt_clefts, voxel_size=_voxel_size(voxel_size, pred_clefts))
        out.update(
            cleft_pred_to_gt_nm=c.mean_pred_to_gt_nm, cleft_gt_to_pred_nm=c.mean_gt_to_pred_nm,
            cleft_score_nm=c.score_nm, cleft_n_pred_far=c.n_pred_far, cleft_n_gt_far=c.n_gt_far,
        )
    if aligned is not None:
        n = section_ncc(aligned, voxel_size=voxel_size)
        out.update(_ncc_fields(n))
    if estimated_points is not None:
        r = alignment_residuals(estimated_points, true_points)
        out.update(
            alignment_median_nm=r.median_nm, alignment_p95_nm=r.p95_nm,
            alignment_mean_nm=r.mean_nm, alignment_max_nm=r.max_nm, alignment_n_points=r.n_points,
        )
    return out


def _score_segmentation(
    pred_labels, gt_labels, *, voxel_size, offset, gt_skeletons, compute_erl, min_overlap_vx, teasar_params,
    chunk_voxels,
):
    """Segmentation fields of :func:`evaluate_arrays`, and the contingency table."""
    _, gt_source = label_pair(pred_labels, gt_labels)  # fail early, before any slow step
    table = contingency_table(pred_labels, gt_labels, chunk_voxels=chunk_voxels)
    voi = variation_of_information(table=table)
    rand = adapted_rand_error(table=table)
    band = _boundary_ignored_fields(pred_labels, gt_source, chunk_voxels) if len(gt_source.shape) == 3 else {}
    sm = split_merge_errors(table=table, min_overlap_vx=min_overlap_vx)
    out = dict(
        voi_split=voi.split, voi_merge=voi.merge, voi=voi.total,
        rand_error=rand.error, rand_precision=rand.precision, rand_recall=rand.recall,
        n_gt_objects=int(len(sm.gt_objects)), n_segments=int(len(sm.segments)),
        n_split_objects=sm.n_split_objects, n_split_errors=sm.n_split_errors,
        n_merged_segments=sm.n_merged_segments, n_merge_errors=sm.n_merge_errors,
        n_voxels_scored=table.n_voxels, n_voxels_ignored=table.n_ignored,
        **band,
    )
    out.update(_error_model_fields(sm, table.n_voxels))
    if compute_erl:
        skel = gt_skeletons
        if skel is None:
            skel = skeletonize(gt_labels, voxel_size=voxel_size, offset=offset, teasar_params=teasar_params)
        erl = expected_run_length(skel, pred_labels, voxel_size=voxel_size, offset=offset)
        out.update(
            erl_nm=erl.erl_nm, max_erl_nm=erl.max_erl_nm,
            erl_fraction=erl.erl_nm / erl.max_erl_nm if erl.max_erl_nm > 0 else math.nan,
            skeleton_length_nm=erl.total_length_nm, n_skeletons=erl.n_skeletons,
            erl_n_split_edges=erl.n_split_edges, erl_n_merge_edges=erl.n_merge_edges,
            erl_n_merged_segments=erl.n_merged_segments,
        )
    return out, table


def _boundary_ignored_fields(pred_labels, gt_source, chunk_voxels) -> dict:
    """VOI and adapted Rand without the two-voxel band at true in-plane boundaries
    (:func:`ignore_boundaries`, the CREMI convention), streamed like the strict scores."""
    from ..errors import VolumeError

    table = contingency_table(pred_labels, BoundaryIgnored(gt_source.data), chunk_voxels=chunk_voxels)
    try:
        voi = variation_of_information(table=table)
        rand = adapted_rand_error(table=table)
    except VolumeError:  # every labelled voxel lies on a boundary (tiny objects): nothing left to score
        return {}
    return dict(voi_boundary_ignored_split=voi.split, voi_boundary_ignored_merge=voi.merge,
                voi_boundary_ignored=voi.total, rand_error_boundary_ignored=rand.error)


def _error_model_fields(sm, n_voxels: int) -> dict:
    """Split and merge rates as :func:`connectomix.analysis.perturb` defines them.

    ``error_split``: extra pieces per true neuron (cuts), ``n_split_errors /
    n_gt_objects``; ``error_merge``: merge events per true neuron, ``n_merge_errors /
    n_gt_objects`` (each fuses one more piece into a segment); both per
    ``error_size_unit_vx``, the mean true neuron's voxels, their unit. Also the
    distribution of pieces per true neuron (``n_pieces_*``, objects with no piece of
    ``min_overlap_vx`` left out) and the largest piece's share of its neuron
    (``largest_piece_fraction_median``).
    """
    n_gt = len(sm.gt_objects)
    pieces = np.asarray(sm.gt_objects["n_pieces"], dtype=np.int64)
    pieces = pieces[pieces > 0]
    has = np.asarray(sm.gt_objects["n_pieces"]) > 0
    largest = (np.asarray(sm.gt_objects["largest_piece_vx"], np.float64)[has]
               / np.maximum(np.asarray(sm.gt_objects["size_vx"], np.float64)[has], 1.0))
    out = dict(
        error_split=sm.n_split_errors / n_gt if n_gt else math.nan,
        error_merge=sm.n_merge_errors / n_gt if n_gt else math.nan,
        error_size_unit_vx=n_voxels / n_gt if n_gt else math.nan,
        n_pieces_mean=float(pieces.mean()) if pieces.size else math.nan,
        n_pieces_median=float(np.median(pieces)) if pieces.size else math.nan,
        n_pieces_p90=float(np.quantile(pieces, 0.9)) if pieces.size else math.nan,
        n_pieces_max=int(pieces.max()) if pieces.size else 0,
        largest_piece_fraction_median=float(np.median(largest)) if largest.size else math.nan,
    )
    return out


def _ncc_fields(n) -> dict:
    out = dict(
        ncc_mean=n.mean, ncc_median=n.median, ncc_min=n.min, ncc_n_chunks=n.n_chunks,
        ncc_n_undefined=n.n_undefined,
    )
    if len(n.worst):
        w = n.worst.iloc[0]
        out.update(ncc_worst_section=int(w["section"]), ncc_worst_y_nm=float(w["y"]), ncc_worst_x_nm=float(w["x"]))
    return out


def _voxel_size(voxel_size, array):
    from ..volume import Volume

    if voxel_size is None and isinstance(array, Volume):
        return tuple(array.voxel_size)
    return voxel_size


def _pair_given(a, b, name_a, name_b) -> None:
    if (a is None) != (b is None):
        missing = name_b if b is None else name_a
        given = name_a if b is None else name_b
        raise VolumeError(f"{given} was given without {missing}: both are needed to score them")


def evaluate_tables(
    *,
    pred_synapses=None,
    gt_synapses=None,
    pred_edges=None,
    gt_edges=None,
    segment_map=None,
    max_distance_nm: float = 400.0,
    strong_threshold: float = 3,
    weight: str = "n_synapses",
) -> dict:
    """Score every table-based metric the given inputs allow.

    Parameters
    ----------
    pred_synapses, gt_synapses : DataFrame, optional
        Synapse tables (``synapse_id, pre_id, post_id, z, y, x``): synapse
        precision/recall/F1 with partners (``synapse_*``) and by distance alone
        (``synapse_detection_*``).
    pred_edges, gt_edges : DataFrame, optional
        Edge tables (``pre_id, post_id, n_synapses``): edge scores. Derived from
        the synapse tables when these are not given.
    segment_map : pandas.Series, optional
        Predicted segment -> ground-truth id (:func:`map_segments_to_gt`); None
        means predicted ids already are ground-truth ids.
    max_distance_nm : float
        Matching distance for synapses.
    strong_threshold : float
        Weight from which an edge is strong.
    weight : str
        Edge weight column.

    Returns
    -------
    dict
        Flat ``name -> number``: ``synapse_*`` and ``edge_*`` scores, and the
        synapse error rates of :func:`connectomix.analysis.perturb`:
        ``error_dropout`` (1 - synapse recall) and ``error_spurious`` (predicted
        synapses without a true match, per true synapse).

    Raises
    ------
    TableFormatError
        For malformed tables.
    VolumeError
        If only one table of a pair is given.
    """
    out: dict = {}
    _pair_given(pred_synapses, gt_synapses, "pred_synapses", "gt_synapses")
    _pair_given(pred_edges, gt_edges, "pred_edges", "gt_edges")
    if pred_synapses is not None:
        s = synapse_scores(pred_synapses, gt_synapses, segment_map=segment_map, max_distance_nm=max_distance_nm)
        d = synapse_scores(
            pred_synapses, gt_synapses, segment_map=segment_map, max_distance_nm=max_distance_nm,
            require_partners=False,
        )
        out.update(
            synapse_precision=s.precision, synapse_recall=s.recall, synapse_f1=s.f1,
            synapse_n_matched=s.n_matched, synapse_n_pred=s.n_pred, synapse_n_gt=s.n_gt,
            synapse_match_distance_nm=s.mean_match_distance_nm,
            synapse_detection_precision=d.precision, synapse_detection_recall=d.recall,
            synapse_detection_f1=d.f1,
            synapse_pred_to_gt_nm=s.mean_pred_to_gt_nm, synapse_gt_to_pred_nm=s.mean_gt_to_pred_nm,
            # rates as connectomix.analysis.perturb defines them
            error_dropout=1.0 - s.recall if s.n_gt else math.nan,
            error_spurious=(s.n_pred - s.n_matched) / s.n_gt if s.n_gt else math.nan,
        )
        if pred_edges is None:
            pred_edges = edges_from_synapses(pred_synapses, weight=weight)
            gt_edges = edges_from_synapses(gt_synapses, weight=weight)
    if pred_edges is not None:
        e = edge_scores(pred_edges, gt_edges, segment_map=segment_map, weight=weight, strong_threshold=strong_threshold)
        out.update({f"edge_{k}": v for k, v in e._asdict().items()})
    return out


def evaluate_run(run_path, *, compute_erl: bool = True, max_distance_nm: float = 400.0) -> dict:
    """Score a run directory against the ground truth it holds.

    Parameters
    ----------
    run_path : str or Path
        A run directory (DESIGN.md layout).
    compute_erl : bool
        Skeletonize ``gt_segmentation`` and compute ERL.
    max_distance_nm : float
        Matching distance for synapses.

    Returns
    -------
    dict
        What :func:`evaluate_arrays` and :func:`evaluate_tables` return for the
        arrays and tables present: ``segmentation`` vs ``gt_segmentation``
        (cropped to their common Roi), ``synapses``/``edges`` vs
        ``gt_synapses``/``gt_edges`` (predicted ids mapped to ground truth by
        maximum overlap when both segmentations exist), and the NCC of
        ``aligned``, and, where ``gt_section_quality`` lists missing or damaged
        sections, the fraction of true neurons that stay one segment across them
        (``continuity_missing``, ``continuity_damaged``, with ``_n`` crossings; see
        :func:`section_continuity`). Residuals against ``gt_transforms`` are not
        computed here (``align`` reports them).

        In a run aligned from a generator's misaligned ``raw`` or from its tiles, the
        aligned frame only approximates the true one, so ``gt_segmentation`` and the
        positions of ``gt_synapses`` are first mapped to where the aligned volume
        shows their tissue (through ``gt_transforms``, for a montage the offset of
        each section's stitched tiles from their true positions (``tile_positions``
        against ``gt_tiles``), and the estimated ``transforms``, see
        :func:`connectomix.align.labels_to_aligned`; ``gt_mapped_to_aligned`` is
        then True): the segmentation is scored for what it segments, not for the
        frame alignment gave it. Continuity's damaged strips stay where
        ``gt_section_quality`` puts them (true frame, a few pixels off).

    Raises
    ------
    RunDirectoryError
        If ``run_path`` is not a run, or holds no ground truth at all.
    """
    from ..run import Run

    run = Run(run_path)
    arrays = set(run.arrays())
    tables = set(run.tables())
    gt_present = "gt_segmentation" in arrays or "gt_synapses" in tables or "gt_edges" in tables
    if not gt_present:
        raise RunDirectoryError(
            f"run {run.path} has no ground truth (no 'gt_segmentation' array, no 'gt_synapses' or "
            "'gt_edges' table); evaluate needs a run made by `connectomix synth` or with imported ground truth"
        )
    out: dict = {}
    segment_map = None
    mapped = _maps_through_alignment(run, arrays, tables)
    if {"segmentation", "gt_segmentation"} <= arrays:
        pred, gt = _common(run.open("segmentation"), ground_truth_volume(run))
        fields, table = _score_segmentation(
            pred, gt, voxel_size=None, offset=None, gt_skeletons=None, compute_erl=compute_erl,
            min_overlap_vx=100, teasar_params=None, chunk_voxels=DEFAULT_CHUNK_VOXELS,
        )
        out.update(fields)
        segment_map = map_segments_to_gt(table=table)
        if "gt_section_quality" in tables:
            out.update(_continuity_fields(pred, gt, run.read_table("gt_section_quality")))
    if "gt_synapses" in tables and "synapses" in tables:
        gt_synapses = ground_truth_synapses(run)
        out.update(
            evaluate_tables(
                pred_synapses=run.read_table("synapses"), gt_synapses=gt_synapses,
                pred_edges=run.read_table("edges") if {"edges", "gt_edges"} <= tables else None,
                gt_edges=run.read_table("gt_edges") if {"edges", "gt_edges"} <= tables else None,
                segment_map=segment_map, max_distance_nm=max_distance_nm,
            )
        )
    elif {"edges", "gt_edges"} <= tables:
        out.update(
            evaluate_tables(pred_edges=run.read_table("edges"), gt_edges=run.read_table("gt_edges"), segment_map=segment_map)
        )
    if "aligned" in arrays:
        out.update(_ncc_fields(section_ncc(run.open("aligned"))))
    if mapped:
        out["gt_mapped_to_aligned"] = True
    return out


def _maps_through_alignment(run, arrays, tables) -> bool:
    """Whether the run's ground truth must be mapped into its aligned frame to be compared.

    True for a run aligned from a generator's ``raw`` (it has ``aligned``, the
    estimated ``transforms`` and the true ``gt_transforms``) or from the generator's
    tiles (also ``tile_positions`` and ``gt_tiles``): the aligned frame then only
    approximates the true frame (DESIGN.md, frames).
    """
    if not ({"aligned", "gt_segmentation"} <= arrays and {"transforms", "gt_transforms"} <= tables):
        return False
    if any(run.open("gt_segmentation").offset):  # the generator writes its volumes at the origin
        return False
    source = (run.read_config().get("align_result") or {}).get("source", "raw")
    if source == "montage":  # stitched from the generator's tiles: its frame is the raw one, shifted per section
        return {"tile_positions", "gt_tiles"} <= tables
    return source == "raw"


def _true_transforms(run):
    """``gt_transforms`` from the true frame to the frame ``align`` registered.

    For a run aligned from ``raw`` that is the generator's table. For a montage, each
    section's tiles were pasted at integer voxel positions (``tile_positions``) where
    the generator cut them at ``gt_tiles``: the section's montage frame is its raw
    frame shifted by their difference, which is added to the table's translation: one
    whole number of voxels per section, the median over its placed tiles rounded half
    up (stitching places tiles relative to each other to within a voxel), over all its
    tiles where none could be placed (they were pasted at their stage positions).
    """
    table = run.read_table("gt_transforms")
    if (run.read_config().get("align_result") or {}).get("source") != "montage":
        return table
    vs = run.open("gt_segmentation").voxel_size
    both = run.read_table("tile_positions").merge(run.read_table("gt_tiles"), on=["section", "tile"],
                                                   suffixes=("", "_true"))
    # tiles are pasted at whole voxels: each tile's shift in voxels, then one whole-voxel shift per
    # section (from its placed tiles; a section with none was pasted at its stage positions)
    both["dy"] = both["y_vx"] - both["y_true"] / float(vs[1])
    both["dx"] = both["x_vx"] - both["x_true"] / float(vs[2])
    placed = both["placed"].astype(bool)
    use = placed | ~placed.groupby(both["section"]).transform("any")
    shift = np.floor(both[use].groupby("section")[["dy", "dx"]].median() + 0.5)
    shift["dy"] *= float(vs[1])
    shift["dx"] *= float(vs[2])
    table = table.copy()
    sec = table["section"].astype(int)
    table["translation_y"] = table["translation_y"] + sec.map(shift["dy"]).fillna(0.0).to_numpy()
    table["translation_x"] = table["translation_x"] + sec.map(shift["dx"]).fillna(0.0).to_numpy()
    return table


def _missing_sections(run) -> list:
    """Sections ``align`` found missing (their maps and images interpolated from the neighbours)."""
    if "section_quality" not in run.tables():
        return []
    sq = run.read_table("section_quality")
    return [int(z) for z in sq.loc[sq["status"] == "missing", "section"]]


def ground_truth_volume(run):
    """A run's ``gt_segmentation`` in the frame its segmentation is in.

    For a run aligned from a generator's ``raw`` or stitched from its tiles: the labels
    of the tissue each aligned voxel shows (in memory; see :func:`evaluate_run`); otherwise the
    stored array.
    """
    from ..run import Run

    run = run if isinstance(run, Run) else Run(run)
    gt = run.open("gt_segmentation")
    if not _maps_through_alignment(run, set(run.arrays()), set(run.tables())):
        return gt
    key = _mapping_key(run)
    if key not in _MAPPED_GT:  # evaluate, the naive baseline and the report all ask for it
        _MAPPED_GT.clear()
        _MAPPED_GT[key] = _map_ground_truth(run, gt)
    return _MAPPED_GT[key]


#: The last mapped ground truth (one entry), keyed by :func:`_mapping_key`.
_MAPPED_GT: dict = {}


def _mapping_key(run) -> tuple:
    """What the mapped ground truth depends on: the generator's volume and the three tables."""
    synth = run.read_config().get("synth") or {}
    stamps = []
    for name in ("transforms", "gt_transforms", "section_quality", "tile_positions"):
        for f in sorted(run.table_dir(name).glob("*.parquet")):
            st = f.stat()
            stamps.append((name, f.name, st.st_ino, st.st_mtime_ns, st.st_size))
    return str(run.path.resolve()), synth.get("settings_hash"), synth.get("seed"), tuple(stamps)


def _map_ground_truth(run, gt):
    """``gt_segmentation`` sampled where each aligned voxel's tissue lies (an in-memory, read-only Volume)."""
    from ..align import labels_to_aligned, load_gridmap
    from ..volume import Volume

    aligned = run.open("aligned", require_complete=False)  # only its region is read
    if aligned.roi != gt.roi:
        raise VolumeError(f"aligned {aligned.roi} and gt_segmentation {gt.roi} cover different regions; "
                          "the ground truth cannot be mapped into the aligned frame")
    vs, off = tuple(gt.voxel_size), tuple(gt.offset)
    g = load_gridmap(run.read_table("transforms"), vs, off)
    labels = labels_to_aligned(gt.to_numpy(), g, _true_transforms(run), vs, offset=off,
                               missing=_missing_sections(run))
    labels.setflags(write=False)  # shared by every caller through the cache
    return Volume(labels, voxel_size=vs, offset=off)


def ground_truth_synapses(run):
    """A run's ``gt_synapses`` with positions in the frame of its segmentation (see :func:`ground_truth_volume`)."""
    from ..run import Run

    run = run if isinstance(run, Run) else Run(run)
    table = run.read_table("gt_synapses")
    if not len(table) or not _maps_through_alignment(run, set(run.arrays()), set(run.tables())):
        return table
    from ..align import map_points as aligned_points
    from ..synth import map_points as raw_points

    transforms = _true_transforms(run)
    gt = run.open("gt_segmentation")
    thickness = float(gt.voxel_size[0])

    def to_aligned(pts):
        return aligned_points(run.path, raw_points(transforms, pts, to="raw"), to="aligned")

    pts = table[["z", "y", "x"]].to_numpy(float)
    sec = np.floor(pts[:, 0] / thickness).astype(int)
    out = pts.copy()
    missing = set(_missing_sections(run))
    here = ~np.isin(sec, list(missing))
    if here.any():
        out[here] = to_aligned(pts[here])
    good = [z for z in range(gt.shape[0]) if z not in missing]
    for z in sorted(missing & set(sec.tolist())):
        # a missing section's map is interpolated from its neighbours' (as labels_to_aligned does)
        m = sec == z
        lo = [g for g in good if g < z]
        hi = [g for g in good if g > z]
        ends = [e for e in (lo[-1] if lo else None, hi[0] if hi else None) if e is not None]
        placed = []
        for e in ends:
            q = pts[m].copy()
            q[:, 0] = (e + 0.5) * thickness
            placed.append(to_aligned(q)[:, 1:])
        if len(placed) == 2:
            t = (z - ends[0]) / (ends[1] - ends[0])
            out[m, 1:] = (1 - t) * placed[0] + t * placed[1]
        elif placed:
            out[m, 1:] = placed[0]
    table = table.copy()
    table[["z", "y", "x"]] = out
    return table


def _continuity_fields(pred, gt, quality) -> dict:
    """``continuity_missing`` / ``continuity_damaged`` (+ ``_n``): see :func:`section_continuity`."""
    from ._continuity import damage_strip, section_continuity

    from ..geometry import Coordinate, Roi

    roi, vs = gt.roi, gt.voxel_size
    z_first = roi.offset[0] // vs[0]  # gt_section_quality counts sections from z = 0
    n_z = roi.shape[0] // vs[0]

    def around(z):  # sections z - 1 .. z + 1 only: a run's volumes need not fit in memory
        slab = Roi(roi.offset + Coordinate((int(z - z_first - 1) * vs[0], 0, 0)),
                   Coordinate((3 * vs[0],) + tuple(roi.shape[1:])))
        return pred[slab], gt[slab]

    out = {}
    for status, name in (("missing", "continuity_missing"), ("damaged", "continuity_damaged")):
        rows = quality[(quality["status"] == status) & (quality["section"] - z_first).between(1, n_z - 2)]
        if rows.empty:
            continue
        kept = crossing = 0
        for _, r in rows.iterrows():
            p, g = around(int(r["section"]))
            strips = {1: damage_strip(r, g.shape[1:], vs[1:])} if status == "damaged" else None
            c = section_continuity(p, g, [1], strips=strips)
            kept, crossing = kept + c.n_kept, crossing + c.n_crossing
        out[name] = kept / crossing if crossing else float("nan")
        out[f"{name}_n"] = crossing
    return out


def _common(a, b):
    """Crop two Volumes to their common Roi (same voxel size required)."""
    if tuple(a.voxel_size) != tuple(b.voxel_size):
        raise VolumeError(
            f"segmentation (voxel size {tuple(a.voxel_size)}) and gt_segmentation "
            f"(voxel size {tuple(b.voxel_size)}) are on different grids"
        )
    roi = a.roi.intersect(b.roi)
    if roi.empty:
        raise VolumeError(f"segmentation {a.roi} and gt_segmentation {b.roi} do not overlap")
    if roi == a.roi and roi == b.roi:
        return a, b
    return a.crop(roi), b.crop(roi)
