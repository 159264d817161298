"""The connectome graph: neurons, edges and synapses as checked tables, with views.

:class:`Connectome` holds the ``neurons``, ``edges`` and optional ``synapses`` tables of
DESIGN.md's contracts and gives sparse (CSR), networkx and igraph views of them;
:func:`graph_stage` builds those tables in a run (DuckDB), :meth:`Connectome.from_run`
reads them, and the exports write GraphML, neuPrint-style CSV and CAVE-style synapses.
"""

from ._build import GraphResult, build_edges, connectome_from_run, graph_stage, segment_statistics
from ._connectome import CELL_CLASSES, EDGE_KINDS, GRAPH_KINDS, Connectome
from ._export import cave_synapse_table, to_graphml, to_neuprint_csv, write_cave_synapses

__all__ = [
    "Connectome",
    "EDGE_KINDS",
    "GRAPH_KINDS",
    "CELL_CLASSES",
    # the graph stage
    "graph_stage",
    "GraphResult",
    "build_edges",
    "segment_statistics",
    "connectome_from_run",
    # exports
    "to_graphml",
    "to_neuprint_csv",
    "cave_synapse_table",
    "write_cave_synapses",
]
