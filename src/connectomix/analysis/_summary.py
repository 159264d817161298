"""Whole-graph summary statistics and per-neuron degrees and strengths."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import connected_components

from ._common import binary, check_connectome, edges_of, undirected
from ._triads import node_triangles

__all__ = ["summary", "degrees", "reciprocity", "clustering"]


def reciprocity(connectome, *, kind: str = "chemical") -> float:
    """Return the fraction of directed edges whose reverse edge also exists.

    Parameters
    ----------
    connectome : Connectome
    kind : {"chemical", "electrical", "combined"}

    Returns
    -------
    float
        ``sum(A * A.T) / sum(A)`` on the 0/1 matrix without self-loops (networkx's
        ``overall_reciprocity`` on a graph without self-loops); NaN for no edges.
    """
    a = binary(check_connectome(connectome), kind)
    m = a.nnz
    if m == 0:
        return float("nan")
    return float(a.multiply(a.T).sum() / m)


def clustering(connectome, *, kind: str = "chemical") -> dict:
    """Return the clustering of the undirected 0/1 skeleton.

    Parameters
    ----------
    connectome : Connectome
    kind : {"chemical", "electrical", "combined"}

    Returns
    -------
    dict
        ``average`` (mean local clustering, nodes of degree < 2 count as 0, as in
        networkx ``average_clustering``) and ``transitivity`` (3 x triangles /
        connected triples).
    """
    u = undirected(check_connectome(connectome), kind)
    k = np.asarray(u.sum(axis=1)).ravel()
    tri = node_triangles(u).astype(np.float64)  # degree-ordered: no U @ U with hubs
    pairs = k * (k - 1) / 2
    local = np.divide(tri, pairs, out=np.zeros_like(tri), where=pairs > 0)
    triples = pairs.sum()
    return {
        "average": float(local.mean()) if len(local) else float("nan"),
        "transitivity": float(tri.sum() / triples) if triples > 0 else 0.0,
    }


def degrees(connectome, *, kind: str = "chemical") -> pd.DataFrame:
    """Return each neuron's degree and strength.

    Parameters
    ----------
    connectome : Connectome
    kind : {"chemical", "electrical", "combined"}
        Electrical edges count once per partner (the matrix is symmetric, so in- and
        out-degree are equal).

    Returns
    -------
    pandas.DataFrame
        Index ``segment_id``; columns ``name``, ``in_degree``, ``out_degree``,
        ``degree`` (distinct partners, either direction), ``in_strength``,
        ``out_strength``, ``strength`` (synapse counts). Self-loops count in
        in- and out-degree, as in networkx, but not in ``degree``.
    """
    c = check_connectome(connectome)
    a = c.adjacency(kind, weight=None)
    w = c.adjacency(kind, weight="n_synapses")
    table = c._neurons
    out = pd.DataFrame(
        {
            "name": table["name"].to_numpy(),
            "in_degree": np.asarray(a.sum(axis=0)).ravel().astype(np.int64),
            "out_degree": np.asarray(a.sum(axis=1)).ravel().astype(np.int64),
            "degree": np.asarray(undirected(c, kind).sum(axis=1)).ravel().astype(np.int64),
            "in_strength": np.asarray(w.sum(axis=0)).ravel(),
            "out_strength": np.asarray(w.sum(axis=1)).ravel(),
        },
        index=pd.Index(table["segment_id"].to_numpy(), name="segment_id"),
    )
    if kind == "electrical":
        # symmetric matrix: one gap junction is one synapse of each partner
        out["strength"] = out["in_strength"]
    else:
        out["strength"] = out["in_strength"] + out["out_strength"]
    return out


def summary(connectome, *, kind: str = "chemical") -> dict:
    """Return the headline numbers of a connectome.

    Parameters
    ----------
    connectome : Connectome
    kind : {"chemical", "electrical", "combined"}
        Which edges form the graph. Electrical edges are undirected (entered in both
        directions); combined adds them to the chemical ones.

    Returns
    -------
    dict
        ``n_neurons`` (all rows, isolated included), ``n_edges`` (directed pairs
        with >= 1 synapse; for electrical, unordered pairs), ``n_self_loops``,
        ``n_synapses``, ``density`` (edges without self-loops / n(n-1)),
        ``reciprocity``, ``largest_scc`` and ``largest_wcc`` (node counts),
        ``n_isolated``, ``clustering`` (average) and ``transitivity``, and degree
        statistics (``mean_degree``, ``max_in_degree``, ``max_out_degree``,
        ``max_degree``, ``mean_strength``, ``max_strength``).
    """
    c = check_connectome(connectome)
    n = c.n_neurons
    a = c.adjacency(kind, weight=None)
    diag = int((a.diagonal() > 0).sum())
    edges = edges_of(c, kind)
    if kind == "electrical":
        n_edges = len(edges)
        m_off = (a.nnz - diag) // 2
        density = m_off / (n * (n - 1) / 2) if n > 1 else float("nan")
    else:
        n_edges = int(a.nnz)
        density = (a.nnz - diag) / (n * (n - 1)) if n > 1 else float("nan")
    if n:
        _, scc = connected_components(a, directed=True, connection="strong")
        _, wcc = connected_components(a, directed=True, connection="weak")
        largest_scc = int(np.bincount(scc).max())
        largest_wcc = int(np.bincount(wcc).max())
    else:
        largest_scc = largest_wcc = 0
    deg = degrees(c, kind=kind)
    clus = clustering(c, kind=kind)
    return {
        "kind": kind,
        "n_neurons": int(n),
        "n_edges": int(n_edges),
        "n_self_loops": diag,
        "n_synapses": int(edges["n_synapses"].sum()),
        "density": float(density),
        "reciprocity": reciprocity(c, kind=kind),
        "largest_scc": largest_scc,
        "largest_wcc": largest_wcc,
        "n_isolated": int((deg["degree"] == 0).sum()),
        "clustering": clus["average"],
        "transitivity": clus["transitivity"],
        "mean_degree": float(deg["degree"].mean()) if n else float("nan"),
        "max_in_degree": int(deg["in_degree"].max()) if n else 0,
        "max_out_degree": int(deg["out_degree"].max()) if n else 0,
        "max_degree": int(deg["degree"].max()) if n else 0,
        "mean_strength": float(deg["strength"].mean()) if n else float("nan"),
        "max_strength": float(deg["strength"].max()) if n else float("nan"),
    }
