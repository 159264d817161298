"""The connectome graph: neurons, edges and synapses as checked tables, with views.

:class:`Connectome` holds the ``neurons``, ``edges`` and optional ``synapses`` tables of
DESIGN.md's contracts and gives sparse (CSR), networkx and igraph views of them.
"""

from ._connectome import CELL_CLASSES, EDGE_KINDS, GRAPH_KINDS, Connectome

__all__ = ["Connectome", "EDGE_KINDS", "GRAPH_KINDS", "CELL_CLASSES"]
