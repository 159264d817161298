"""Score every stage against ground truth.

- segmentation: variation of information (split/merge, bits), adapted Rand error,
  per-object split and merge counts, all from one streamed sparse
  :class:`ContingencyTable`; expected run length (ERL) along ground-truth skeletons
  (kimimaro); the map from predicted segments to ground-truth objects;
- synapses: precision/recall/F1 with one-to-one Hungarian matching by distance and
  synaptic partners (CREMI rule); cleft distance scores;
- connectome: precision/recall/F1 of edges and correlation of their weights, also
  for strong edges;
- error propagation: which edge errors come from missed or false synapses, split
  neurons and merged segments (:func:`edge_error_sources`);
- alignment: residuals against the true transforms, and NCC of adjacent sections
  per chunk (no ground truth needed);
- :func:`evaluate_arrays`, :func:`evaluate_tables`, :func:`evaluate_run`: all that
  the inputs allow, as one flat dict.

Ground-truth label 0 means "unlabelled" and is ignored by every metric.
"""

from ._alignment import AlignmentResiduals, SectionNCC, alignment_residuals, ncc_kernel, section_ncc
from ._contingency import ContingencyTable, contingency_table, pair_counts
from ._continuity import SectionContinuity, damage_strip, section_continuity
from ._edges import EDGE_COLUMNS, EdgeScores, edge_scores, edges_from_synapses
from ._erl import (
    RunLength,
    Skeletons,
    expected_run_length,
    run_length_from_ids,
    sample_labels,
    skeletonize,
)
from ._evaluate import evaluate_arrays, evaluate_run, evaluate_tables, ground_truth_synapses, ground_truth_volume
from ._propagation import edge_error_sources, edge_error_sources_tables
from ._segmentation import (
    AdaptedRand,
    BoundaryIgnored,
    SplitMergeErrors,
    VariationOfInformation,
    adapted_rand_error,
    apply_segment_map,
    ignore_boundaries,
    map_segments_to_gt,
    oracle_agglomeration,
    split_merge_errors,
    variation_of_information,
)
from ._synapses import (
    SYNAPSE_COLUMNS,
    CleftDistances,
    SynapseScores,
    cleft_distances,
    match_points,
    synapse_scores,
)

__all__ = [
    # segmentation
    "ContingencyTable",
    "contingency_table",
    "pair_counts",
    "VariationOfInformation",
    "variation_of_information",
    "AdaptedRand",
    "adapted_rand_error",
    "SplitMergeErrors",
    "split_merge_errors",
    "map_segments_to_gt",
    "apply_segment_map",
    "ignore_boundaries",
    "BoundaryIgnored",
    "oracle_agglomeration",
    "SectionContinuity",
    "section_continuity",
    "damage_strip",
    # skeletons and ERL
    "Skeletons",
    "RunLength",
    "skeletonize",
    "sample_labels",
    "expected_run_length",
    "run_length_from_ids",
    # synapses
    "SYNAPSE_COLUMNS",
    "SynapseScores",
    "CleftDistances",
    "match_points",
    "synapse_scores",
    "cleft_distances",
    # connectome edges
    "EDGE_COLUMNS",
    "EdgeScores",
    "edge_scores",
    "edges_from_synapses",
    "edge_error_sources",
    "edge_error_sources_tables",
    # alignment
    "AlignmentResiduals",
    "SectionNCC",
    "alignment_residuals",
    "section_ncc",
    "ncc_kernel",
    # everything at once
    "evaluate_arrays",
    "evaluate_tables",
    "evaluate_run",
    "ground_truth_volume",
    "ground_truth_synapses",
]
