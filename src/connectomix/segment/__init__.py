"""Segmentation: from affinities to fragments, a region graph and segments.

affinities_from_labels  the affinity target (and test oracle) made from labels
watershed               fragments: seeds deep inside objects, grown along strong edges
region_graph            the fragments' adjacency graph with mean-affinity scores
agglomerate             hierarchical mean-affinity merging of a region graph
segment                 all three on an in-memory array (the block-wise reference)
segment_affinities      the same, block-wise on a run: fragments, segmentation and
                        the fragments_edges table, identical for every block shape
SegmentConfig           the options, validated
"""

from ._affinities import NEAREST_OFFSETS, affinities_from_labels
from ._blockwise import SegmentResult, segment_affinities
from ._config import SegmentConfig
from ._segment import Segmentation, agglomerate, region_graph, segment, watershed

__all__ = [
    "NEAREST_OFFSETS",
    "affinities_from_labels",
    "watershed",
    "region_graph",
    "agglomerate",
    "segment",
    "Segmentation",
    "SegmentConfig",
    "segment_affinities",
    "SegmentResult",
]
