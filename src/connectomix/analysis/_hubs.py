"""Hub measures (degree, strength, PageRank, betweenness) and the rich club."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..graph._deps import require
from ._common import check_connectome, empirical_p, rewired, undirected
from ._summary import degrees

__all__ = ["hubs", "rich_club"]


def hubs(
    connectome,
    *,
    kind: str = "chemical",
    betweenness_sources: int | None = None,
    seed: int | None = 0,
    top_fraction: float = 0.1,
) -> pd.DataFrame:
    """Rank neurons by degree, strength, PageRank and betweenness.

    Parameters
    ----------
    connectome : Connectome
    kind : {"chemical", "electrical", "combined"}
    betweenness_sources : int, optional
        Estimate betweenness from this many randomly chosen source neurons (scaled
        up by n / sources) instead of all of them; use it on large graphs. Default:
        exact below 5,000 neurons, 500 sources above.
    seed : int or None
        Seed for the sampled sources.
    top_fraction : float
        A neuron is a hub (``is_hub``) when it is in this top fraction for at least
        three of degree, strength, PageRank and betweenness.

    Returns
    -------
    pandas.DataFrame
        Index ``segment_id``; the columns of :func:`degrees` plus ``pagerank``
        (weighted by synapse count, damping 0.85, sums to 1), ``betweenness``
        (shortest paths by hops, directed, normalised by (n-1)(n-2)), ``hub_votes``
        and ``is_hub``; sorted by degree, descending.
    """
    c = check_connectome(connectome)
    ig = require("igraph", feature="hub measures")
    table = degrees(c, kind=kind)
    n = c.n_neurons
    w = c.adjacency(kind, weight="n_synapses").tocoo()
    directed = kind != "electrical"
    if not directed:
        keep = w.row <= w.col
        w = sp.coo_matrix((w.data[keep], (w.row[keep], w.col[keep])), shape=w.shape)
    g = ig.Graph(n=n, edges=np.column_stack([w.row, w.col]).tolist(), directed=directed)
    weights = w.data.tolist()
    table["pagerank"] = g.pagerank(weights=weights if len(weights) else None, directed=directed) if n else []
    if betweenness_sources is None and n > 5000:
        betweenness_sources = 500
    simple = g.copy()
    simple.simplify(multiple=True, loops=True)
    if betweenness_sources is not None and betweenness_sources < n:
        rng = np.random.default_rng(seed)
        sources = rng.choice(n, size=betweenness_sources, replace=False).tolist()
        bc = np.asarray(simple.betweenness(directed=directed, sources=sources), dtype=float)
        bc *= n / betweenness_sources
    else:
        bc = np.asarray(simple.betweenness(directed=directed), dtype=float) if n else np.zeros(0)
    norm = (n - 1) * (n - 2) * (1 if directed else 0.5)
    table["betweenness"] = bc / norm if norm > 0 else bc
    votes = np.zeros(n, dtype=np.int64)
    for col in ("degree", "strength", "pagerank", "betweenness"):
        cutoff = np.quantile(table[col].to_numpy(), 1 - top_fraction) if n else 0
        votes += ((table[col] >= cutoff) & (table[col] > 0)).to_numpy()
    table["hub_votes"] = votes
    table["is_hub"] = votes >= 3
    return table.sort_values(["degree", "strength"], ascending=False, kind="stable")


def _rich_club_curve(u: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """phi(k), N_k, E_k for k = 0..max_degree-1 of a 0/1 symmetric matrix."""
    deg = np.asarray(u.sum(axis=1)).ravel().astype(np.int64)
    kmax = int(deg.max()) if deg.size else 0
    coo = sp.triu(u, k=1).tocoo()
    low = np.minimum(deg[coo.row], deg[coo.col])
    # nodes / edges with degree > k: reverse cumulative counts
    n_k = np.array([np.sum(deg > k) for k in range(kmax)], dtype=np.int64)
    edge_hist = np.bincount(low, minlength=kmax + 1)
    e_k = np.array([edge_hist[k + 1:].sum() for k in range(kmax)], dtype=np.int64)
    pairs = n_k * (n_k - 1) / 2
    phi = np.divide(e_k, pairs, out=np.full(kmax, np.nan), where=pairs > 0)
    return phi, n_k, e_k


def rich_club(
    connectome,
    *,
    kind: str = "combined",
    n_null: int = 100,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Compute the rich-club coefficient, normalised against degree-preserving nulls.

    Parameters
    ----------
    connectome : Connectome
    kind : {"chemical", "electrical", "combined"}
        The graph is the undirected 0/1 skeleton (self-loops dropped), as in
        Towlson et al. 2013 for C. elegans.
    n_null : int
        Number of null networks (undirected edge swaps keeping every degree).
    seed : int or None
        Seed of the null ensemble.

    Returns
    -------
    pandas.DataFrame
        Index ``k`` (0 .. max degree - 1, rows with at least two neurons of degree
        > k); columns ``n_nodes`` and ``n_edges`` among neurons of degree > k, ``phi``
        = 2 E_k / (N_k (N_k - 1)) (networkx ``rich_club_coefficient`` unnormalised),
        ``phi_null_mean``, ``phi_null_std``, ``phi_norm`` = phi / phi_null_mean, and
        ``p_value`` (fraction of nulls with phi >= observed, +1 corrected).
    """
    c = check_connectome(connectome)
    u = undirected(c, kind)
    phi, n_k, e_k = _rich_club_curve(u)
    kmax = len(phi)
    null = np.full((n_null, kmax), np.nan)
    for i, r in enumerate(rewired(u, n_null=n_null, seed=seed, directed=False)):
        p, _, _ = _rich_club_curve(r)
        null[i, : min(kmax, len(p))] = p[:kmax]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns at large k
        mean = np.nanmean(null, axis=0) if n_null else np.full(kmax, np.nan)
        std = np.nanstd(null, axis=0, ddof=1) if n_null > 1 else np.full(kmax, np.nan)
        norm = phi / mean
    p_values = np.array(
        [empirical_p(phi[k], null[:, k][np.isfinite(null[:, k])])[0] if n_null else np.nan
         for k in range(kmax)]
    )
    out = pd.DataFrame(
        {"n_nodes": n_k, "n_edges": e_k, "phi": phi, "phi_null_mean": mean,
         "phi_null_std": std, "phi_norm": norm, "p_value": p_values},
        index=pd.Index(np.arange(kmax), name="k"),
    )
    return out[out["n_nodes"] >= 2]
