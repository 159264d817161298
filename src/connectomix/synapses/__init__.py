"""Synapse detection: cleft instances, synaptic partners, the synapse table.

- :func:`synapses_stage`: the ``synapses`` stage of a run, block-wise;
- :func:`detect_synapses`: the same on in-memory arrays;
- :func:`ideal_predictions`, :func:`write_ideal_predictions`: perfect network
  outputs made from ground truth (for tests and demos without a network);
- :func:`naive_predictions`: a ``synapse_pred``-like array without learning (dark
  spots near segment boundaries, nearest other segment as partner), the baseline;
- :func:`assign_partners`: how a cleft's votes become (pre, post) pairs;
  :func:`merge_nearby`: how pieces of one broken cleft become one synapse.
"""

from ._detect import detect_synapses
from ._ideal import PREDICTION_CHANNELS, ideal_predictions, write_ideal_predictions
from ._kernels import SYNAPSE_TABLE_COLUMNS, assign_partners, merge_nearby
from ._naive import naive_predictions
from ._stage import SynapseResult, require_segmentation, synapses_stage

__all__ = [
    "synapses_stage",
    "require_segmentation",
    "SynapseResult",
    "detect_synapses",
    "ideal_predictions",
    "write_ideal_predictions",
    "naive_predictions",
    "assign_partners",
    "merge_nearby",
    "PREDICTION_CHANNELS",
    "SYNAPSE_TABLE_COLUMNS",
]
