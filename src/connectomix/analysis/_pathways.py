"""Pathways: weighted shortest paths, hop layers and k-hop reachability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from ._common import check_connectome, resolve_nodes

__all__ = ["shortest_paths", "shortest_path", "layers", "reachability"]


def _lengths(c, kind: str, weighted: bool) -> sp.csr_matrix:
    w = c.adjacency(kind, weight="n_synapses" if weighted else None).tolil(copy=True)
    w.setdiag(0)
    w = w.tocsr()
    w.eliminate_zeros()
    if weighted:
        w.data = 1.0 / w.data  # strong connections are short
    return w


def shortest_paths(
    connectome,
    sources,
    targets=None,
    *,
    kind: str = "chemical",
    weighted: bool = True,
) -> pd.DataFrame:
    """Return shortest path lengths from each source to each target.

    Parameters
    ----------
    connectome : Connectome
    sources, targets : iterable of int segment ids or str names, or boolean mask
        ``targets=None`` means every neuron.
    kind : {"chemical", "electrical", "combined"}
    weighted : bool
        Edge length ``1 / n_synapses`` (Dijkstra), so paths prefer strong
        connections; False counts hops.

    Returns
    -------
    pandas.DataFrame
        Rows sources, columns targets (both by name); ``inf`` where unreachable.
    """
    c = check_connectome(connectome)
    src = resolve_nodes(c, sources, what="sources")
    dst = np.arange(c.n_neurons) if targets is None else resolve_nodes(c, targets, what="targets")
    dist = dijkstra(_lengths(c, kind, weighted), directed=True, indices=src, unweighted=not weighted)
    names = c._neurons["name"].astype(str).to_numpy()
    return pd.DataFrame(dist[:, dst], index=pd.Index(names[src], name="source"),
                        columns=pd.Index(names[dst], name="target"))


def shortest_path(connectome, source, target, *, kind: str = "chemical",
                  weighted: bool = True) -> list:
    """Return one shortest path as a list of segment ids (empty if unreachable).

    Parameters
    ----------
    connectome : Connectome
    source, target : int segment id or str name
    kind : {"chemical", "electrical", "combined"}
    weighted : bool
        As in :func:`shortest_paths`.

    Returns
    -------
    list of int
        Segment ids from source to target, both included.
    """
    c = check_connectome(connectome)
    s = int(resolve_nodes(c, [source], what="source")[0])
    t = int(resolve_nodes(c, [target], what="target")[0])
    dist, pred = dijkstra(_lengths(c, kind, weighted), directed=True, indices=s,
                          unweighted=not weighted, return_predecessors=True)
    if not np.isfinite(dist[t]):
        return []
    path = [t]
    while path[-1] != s:
        path.append(int(pred[path[-1]]))
    ids = c._neurons["segment_id"].to_numpy()
    return [int(ids[i]) for i in reversed(path)]


def layers(connectome, sources, *, kind: str = "chemical") -> pd.Series:
    """Return each neuron's layer: the fewest synaptic hops from the source set.

    Parameters
    ----------
    connectome : Connectome
    sources : iterable of int segment ids or str names, or boolean mask
    kind : {"chemical", "electrical", "combined"}

    Returns
    -------
    pandas.Series
        Index ``segment_id``; 0 for sources, 1 for their direct targets, ...; -1 for
        neurons not reachable. Multi-source breadth-first search by sparse
        matrix-vector products, O(hops x edges).
    """
    c = check_connectome(connectome)
    src = resolve_nodes(c, sources, what="sources")
    at = c.adjacency(kind, weight=None).T.tocsr()
    n = c.n_neurons
    layer = np.full(n, -1, dtype=np.int64)
    layer[src] = 0
    frontier = np.zeros(n, dtype=bool)
    frontier[src] = True
    hop = 0
    while frontier.any():
        hop += 1
        reached = (at @ frontier.astype(np.float64)) > 0
        frontier = reached & (layer < 0)
        layer[frontier] = hop
    return pd.Series(layer, index=pd.Index(c._neurons["segment_id"].to_numpy(), name="segment_id"),
                     name="layer")


def reachability(connectome, sources, targets, *, kind: str = "chemical",
                 max_hops: int = 6) -> pd.DataFrame:
    """Return the fraction of targets reachable from the sources within k hops.

    Parameters
    ----------
    connectome : Connectome
    sources, targets : iterable of int segment ids or str names, or boolean mask
    kind : {"chemical", "electrical", "combined"}
    max_hops : int
        Largest k reported.

    Returns
    -------
    pandas.DataFrame
        Index ``hops`` 1..max_hops; ``n_reached`` and ``fraction`` of the targets
        whose layer from the source set is <= k.
    """
    c = check_connectome(connectome)
    layer = layers(c, sources, kind=kind).to_numpy()
    dst = resolve_nodes(c, targets, what="targets")
    lt = layer[dst]
    rows = []
    for k in range(1, max_hops + 1):
        reached = int(np.sum((lt >= 0) & (lt <= k)))
        rows.append({"hops": k, "n_reached": reached, "fraction": reached / len(dst)})
    return pd.DataFrame(rows).set_index("hops")
