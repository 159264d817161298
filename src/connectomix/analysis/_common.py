"""Helpers shared by the analyses: matrix views, node selection, seeded null models."""

from __future__ import annotations

import contextlib
import random
from typing import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..graph import Connectome
from ..graph._connectome import _check_graph_kind
from ..graph._deps import require

__all__: list[str] = []


def check_connectome(connectome) -> Connectome:
    if not isinstance(connectome, Connectome):
        raise TypeError(
            f"expected a connectomix.graph.Connectome, got {type(connectome).__name__}"
        )
    return connectome


def edges_of(connectome: Connectome, kind: str):
    """The rows of the connectome's edge table of ``kind`` (all rows for ``combined``)."""
    e = connectome._edges
    return e if kind == "combined" else e[e["kind"] == kind]


def binary(connectome: Connectome, kind: str) -> sp.csr_matrix:
    """0/1 adjacency of ``kind`` without self-loops (the graph the motif maths uses).

    Cached on the connectome beside its adjacency views; callers must not modify it.
    """
    _check_graph_kind(kind)
    key = ("analysis.binary", kind)
    cached = connectome._cache.get(key)
    if cached is None:
        a = connectome.adjacency(kind, weight=None).tocoo()
        keep = (a.row != a.col) & (a.data != 0)
        cached = sp.csr_matrix((np.ones(int(keep.sum())), (a.row[keep], a.col[keep])), shape=a.shape)
        connectome._cache[key] = cached  # a view like adjacency(): do not modify
    return cached


def undirected(connectome: Connectome, kind: str) -> sp.csr_matrix:
    """0/1 symmetric skeleton of ``kind`` without self-loops."""
    key = ("analysis.undirected", kind)
    cached = connectome._cache.get(key)
    if cached is None:
        a = binary(connectome, kind)
        cached = sp.csr_matrix(((a + a.T) > 0).astype(np.float64))
        connectome._cache[key] = cached
    return cached


def resolve_nodes(connectome: Connectome, nodes, *, what: str = "nodes") -> np.ndarray:
    """Turn segment ids, names or a boolean mask into row positions (sorted, unique).

    Accepted: an iterable of int segment ids, an iterable of str names, or a boolean
    array of length ``n_neurons``.
    """
    table = connectome._neurons
    if isinstance(nodes, (str, int, np.integer)):
        nodes = [nodes]
    arr = np.asarray(list(nodes) if not isinstance(nodes, (np.ndarray, pd.Series)) else nodes)
    if arr.dtype == bool:
        if arr.shape != (len(table),):
            raise ValueError(
                f"a boolean mask of {what} must have length {len(table)}, got {arr.shape}"
            )
        return np.flatnonzero(arr)
    if arr.size == 0:
        raise ValueError(f"no {what} given")
    if np.issubdtype(arr.dtype, np.integer):
        index = connectome.node_index()
        missing = np.setdiff1d(arr, index.index.to_numpy())
        if missing.size:
            raise KeyError(f"{what}: unknown segment id(s) {missing[:5].tolist()}")
        return np.unique(index.loc[arr].to_numpy())
    names = pd.Series(np.arange(len(table)), index=table["name"].astype(str).to_numpy())
    names = names[~names.index.duplicated()]
    wanted = arr.astype(str)
    missing = [n for n in wanted if n not in names.index]
    if missing:
        raise KeyError(f"{what}: unknown neuron name(s) {missing[:5]}")
    return np.unique(names.loc[wanted].to_numpy())


@contextlib.contextmanager
def igraph_seeded(seed: int | None):
    """Run igraph with a seeded random generator, restoring the global one after."""
    ig = require("igraph", feature="degree-preserving null models")
    ig.set_random_number_generator(random.Random(seed))
    try:
        yield ig
    finally:
        ig.set_random_number_generator(random)


def rewired(a: sp.csr_matrix, *, n_null: int, seed: int | None, directed: bool,
            swaps_per_edge: int = 10) -> Iterable[sp.csr_matrix]:
    """Yield degree-preserving randomisations of a 0/1 matrix without self-loops.

    Directed graphs keep every node's in- and out-degree, undirected ones its degree
    (igraph's edge-swap ``rewire``, simple graphs only). ``swaps_per_edge`` x edges
    swap attempts per network.
    """
    n = a.shape[0]
    coo = sp.triu(a, k=1).tocoo() if not directed else a.tocoo()
    edges = np.column_stack([coo.row, coo.col])
    with igraph_seeded(seed) as ig:
        base = ig.Graph(n=n, edges=edges.tolist(), directed=directed)
        m = base.ecount()
        for _ in range(n_null):
            g = base.copy()
            if m >= 2:
                g.rewire(swaps_per_edge * m, "simple")
            el = np.asarray(g.get_edgelist(), dtype=np.int64).reshape(-1, 2)
            rows, cols = el[:, 0], el[:, 1]
            if not directed:
                rows, cols = np.concatenate([rows, cols]), np.concatenate([cols, rows])
            yield sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def empirical_p(observed: float, null: np.ndarray) -> tuple[float, float]:
    """One-sided empirical p-values (greater, less) with the +1 correction."""
    null = np.asarray(null, dtype=float)
    k = len(null)
    p_hi = (1 + np.sum(null >= observed)) / (1 + k)
    p_lo = (1 + np.sum(null <= observed)) / (1 + k)
    return float(p_hi), float(p_lo)


def zscore(observed: float, null: np.ndarray) -> float:
    null = np.asarray(null, dtype=float)
    sd = null.std(ddof=1) if len(null) > 1 else 0.0
    if sd == 0 or not np.isfinite(sd):
        return float("nan")
    return float((observed - null.mean()) / sd)
