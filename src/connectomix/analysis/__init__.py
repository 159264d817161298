"""Network analysis of connectomes: functions that take a Connectome and return data.

Summary statistics, hubs and the rich club, modules, motifs with degree-preserving
null models, pathways, cell types and left/right pairing, comparison of two
connectomes, dynamics on the wiring, error-aware statistics, edge-list reading, a
seeded generator of large heavy-tailed graphs, and :func:`analyze`, which writes all
of it to a directory. Nothing here mutates its input; igraph and matplotlib are imported
only by the functions that need them.
"""

from ._analyze import analyze
from ._celltypes import CellTypes, Pairing, adjusted_rand_index, cell_types, pair_left_right
from ._compare import Comparison, compare, developmental_summary
from ._dynamics import lif_rate, linear_response, simulate_lif
from ._generate import powerlaw_exponent, synthetic_connectome, synthetic_edges
from ._hubs import hubs, rich_club
from ._modules import Modules, modules
from ._motifs import (
    DEFAULT_TRANSMITTER_SIGNS,
    TRIAD_TYPES,
    motifs,
    transmitter_signs,
    triad_census,
)
from ._pathways import layers, reachability, shortest_path, shortest_paths
from ._read import detect_edge_format, read_edge_list, read_table
from ._robustness import active_neurons, default_statistics, perturb, robustness
from ._summary import clustering, degrees, reciprocity, summary

__all__ = [
    "analyze",
    "summary",
    "degrees",
    "reciprocity",
    "clustering",
    "hubs",
    "rich_club",
    "modules",
    "Modules",
    "triad_census",
    "motifs",
    "TRIAD_TYPES",
    "transmitter_signs",
    "DEFAULT_TRANSMITTER_SIGNS",
    "shortest_paths",
    "shortest_path",
    "layers",
    "reachability",
    "cell_types",
    "CellTypes",
    "pair_left_right",
    "Pairing",
    "adjusted_rand_index",
    "compare",
    "Comparison",
    "developmental_summary",
    "simulate_lif",
    "lif_rate",
    "linear_response",
    "perturb",
    "robustness",
    "default_statistics",
    "active_neurons",
    "read_edge_list",
    "detect_edge_format",
    "read_table",
    "synthetic_edges",
    "synthetic_connectome",
    "powerlaw_exponent",
]
