"""Triad census and motif counts, with z-scores against degree-preserving nulls.

The census is computed with sparse matrix products instead of enumerating triads:
split the 0/1 matrix into mutual dyads ``M`` and asymmetric ones ``D``; every
triangle type is a masked sum such as ``sum(D * (D @ D))`` (030T), every open
two-dyad type is "all wedges at a centre" minus the closed ones, the one-dyad types
follow from common-neighbour counts, and 003 is what is left of C(n, 3). Products are
formed a block of rows at a time, so memory stays bounded.
"""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._common import binary, check_connectome, empirical_p, rewired, zscore

__all__ = [
    "TRIAD_TYPES",
    "triad_census",
    "motifs",
    "transmitter_signs",
    "DEFAULT_TRANSMITTER_SIGNS",
]

#: The 16 triad classes (Holland & Leinhardt; networkx/igraph naming and order).
TRIAD_TYPES = ("003", "012", "102", "021D", "021U", "021C", "111D", "111U",
               "030T", "030C", "201", "120D", "120U", "120C", "210", "300")

#: Sign of a presynaptic neuron's chemical synapses by transmitter (lower case).
#: Glutamate is inhibitory as in the fly model of Shiu et al. 2024; in C. elegans it
#: can be either, so pass your own mapping where that matters.
DEFAULT_TRANSMITTER_SIGNS = {
    "acetylcholine": 1, "ach": 1, "gaba": -1, "glutamate": -1, "glut": -1,
}

_WORK_PER_BLOCK = 20_000_000  # sparse multiply-adds per block of rows


def transmitter_signs(connectome, *, signs=None, default: int = 1) -> np.ndarray:
    """Return +1/-1 per neuron from its ``transmitter`` column.

    Parameters
    ----------
    connectome : Connectome
    signs : mapping of str to int, optional
        Transmitter (lower case) to sign; default :data:`DEFAULT_TRANSMITTER_SIGNS`.
    default : int
        Sign of neurons whose transmitter is unknown or not in ``signs``.

    Returns
    -------
    numpy.ndarray, (n,) int
        In ``neurons`` row order.
    """
    c = check_connectome(connectome)
    mapping = {k.lower(): int(v) for k, v in (signs or DEFAULT_TRANSMITTER_SIGNS).items()}
    nts = c._neurons["transmitter"].astype(str).str.lower().str.strip()
    return np.array([mapping.get(t, default) for t in nts], dtype=np.int64)


def _row_blocks(x: sp.csr_matrix, y: sp.csr_matrix):
    """Split the rows of x so that each block of x @ y costs about the same."""
    y_nnz = np.diff(y.indptr).astype(np.float64)
    work = x @ y_nnz if x.nnz else np.zeros(x.shape[0])
    cum = np.cumsum(work)
    n = x.shape[0]
    start = 0
    while start < n:
        limit = (cum[start - 1] if start else 0.0) + _WORK_PER_BLOCK
        stop = int(np.searchsorted(cum, limit, side="right"))
        stop = min(max(stop, start + 1), n)
        yield start, stop
        start = stop


def _census_from_matrix(a: sp.csr_matrix) -> dict[str, int]:
    n = a.shape[0]
    a = sp.csr_matrix(a, dtype=np.float64)
    at = a.T.tocsr()
    mutual = a.multiply(at).tocsr()
    asym = (a - mutual).tocsr()
    asym.eliminate_zeros()
    asym_t = asym.T.tocsr()
    und = ((a + at) > 0).astype(np.float64).tocsr()

    dm = np.asarray(mutual.sum(axis=1)).ravel()
    do = np.asarray(asym.sum(axis=1)).ravel()
    di = np.asarray(asym.sum(axis=0)).ravel()
    deg = dm + do + di

    sums = dict.fromkeys(
        ["MM_D", "MM_M", "MM_U", "DtD_M", "DtD_U", "DDt_M", "DDt_U", "DD_M", "DD_D",
         "DD_Dt", "DD_U", "MDt_U", "MD_U", "UU_D", "UU_M"], 0.0)

    def masked(prod, mask):
        return float(prod.multiply(mask).sum())

    for start, stop in _row_blocks(und, und):
        rows = slice(start, stop)
        m_r, d_r, dt_r, u_r = mutual[rows], asym[rows], asym_t[rows], und[rows]
        p = m_r @ mutual
        sums["MM_D"] += masked(p, d_r)
        sums["MM_M"] += masked(p, m_r)
        sums["MM_U"] += masked(p, u_r)
        p = dt_r @ asym
        sums["DtD_M"] += masked(p, m_r)
        sums["DtD_U"] += masked(p, u_r)
        p = d_r @ asym_t
        sums["DDt_M"] += masked(p, m_r)
        sums["DDt_U"] += masked(p, u_r)
        p = d_r @ asym
        sums["DD_M"] += masked(p, m_r)
        sums["DD_D"] += masked(p, d_r)
        sums["DD_Dt"] += masked(p, dt_r)
        sums["DD_U"] += masked(p, u_r)
        sums["MDt_U"] += masked(m_r @ asym_t, u_r)
        sums["MD_U"] += masked(m_r @ asym, u_r)
        p = u_r @ und
        sums["UU_D"] += masked(p, d_r)
        sums["UU_M"] += masked(p, m_r)
    s = {k: int(round(v)) for k, v in sums.items()}

    def pairs(x):
        return int(round(float(np.sum(x * (x - 1) / 2))))

    census = {
        "300": s["MM_M"] // 6,
        "210": s["MM_D"],
        "120D": s["DtD_M"] // 2,
        "120U": s["DDt_M"] // 2,
        "120C": s["DD_M"],
        "030T": s["DD_D"],
        "030C": s["DD_Dt"] // 3,
        "201": pairs(dm) - s["MM_U"] // 2,
        "021D": pairs(do) - s["DtD_U"] // 2,
        "021U": pairs(di) - s["DDt_U"] // 2,
        "021C": int(round(float(np.sum(do * di)))) - s["DD_U"],
        "111D": int(round(float(np.sum(dm * di)))) - s["MDt_U"],
        "111U": int(round(float(np.sum(dm * do)))) - s["MD_U"],
    }
    n_asym = int(asym.nnz)
    n_mutual_pairs = int(mutual.nnz) // 2
    census["012"] = (
        n_asym * n
        - int(round(float(do @ deg + di @ deg)))
        + s["UU_D"]
    )
    census["102"] = (
        n_mutual_pairs * n
        - int(round(float(dm @ deg)))
        + s["UU_M"] // 2
    )
    census["003"] = comb(n, 3) - sum(census.values())
    return {t: int(census[t]) for t in TRIAD_TYPES}


def triad_census(connectome, *, kind: str = "chemical") -> dict[str, int]:
    """Count the 16 triad classes of the directed graph.

    Parameters
    ----------
    connectome : Connectome
    kind : {"chemical", "electrical", "combined"}
        Electrical edges count in both directions.

    Returns
    -------
    dict of str to int
        Keys :data:`TRIAD_TYPES` (``"003"`` ... ``"300"``); the counts sum to
        C(n, 3). Self-loops and weights are ignored; every triad is counted once
        (the census is induced by definition). Equals ``networkx.triadic_census``.

    Notes
    -----
    Sparse masked products, O(sum over edges of the neighbours' degrees); no
    enumeration of the C(n, 3) triads.
    """
    return _census_from_matrix(binary(check_connectome(connectome), kind))


def _named_counts(a: sp.csr_matrix, inhibitory: np.ndarray | None) -> dict[str, int]:
    a = sp.csr_matrix(a, dtype=np.float64)
    at = a.T.tocsr()
    out = {"reciprocal_pair": int(a.multiply(at).nnz // 2)}
    ffl = 0.0
    bifan2 = 0.0
    for start, stop in _row_blocks(a, a):
        a_r = a[start:stop]
        ffl += float((a_r @ a).multiply(a_r).sum())
    for start, stop in _row_blocks(a, at):
        s = (a[start:stop] @ at).tocoo()
        off = s.row + start != s.col
        v = s.data[off]
        bifan2 += float(np.sum(v * (v - 1) / 2))
    out["feed_forward_loop"] = int(round(ffl))
    out["bi_fan"] = int(round(bifan2 / 2))
    if inhibitory is not None:
        b = sp.diags(inhibitory.astype(np.float64)) @ a  # rows of inhibitory neurons
        into = np.asarray(b.sum(axis=0)).ravel()
        outof = np.asarray(b.sum(axis=1)).ravel()
        back = float(b.multiply(b.T).sum())  # a -| b -| a is not a chain of 3
        out["disinhibitory_chain"] = int(round(float(into @ outof) - back))
    return out


def _all_counts(a, inhibitory):
    counts = _census_from_matrix(a)
    counts.update(_named_counts(a, inhibitory))
    return counts


def motifs(
    connectome,
    *,
    kind: str = "chemical",
    n_null: int = 100,
    seed: int | None = 0,
    signs=None,
) -> pd.DataFrame:
    """Count triads and named motifs and compare them with degree-preserving nulls.

    Parameters
    ----------
    connectome : Connectome
    kind : {"chemical", "electrical", "combined"}
    n_null : int
        Number of null networks: edge-swap randomisations that keep every neuron's
        in- and out-degree (igraph ``rewire``, 10 swaps per edge, no self-loops or
        multi-edges).
    seed : int or None
        Seed of the null ensemble.
    signs : mapping of str to int, optional
        Transmitter signs for the disinhibitory chain (see :func:`transmitter_signs`);
        that row appears only where some neuron is inhibitory.

    Returns
    -------
    pandas.DataFrame
        Index: the 16 triad classes, then ``reciprocal_pair``, ``feed_forward_loop``,
        ``bi_fan`` and (signed) ``disinhibitory_chain``. Columns ``count``,
        ``induced`` (True for triads: each triad once by its exact class; False for
        named motifs: every embedding counted whatever other edges exist, e.g. a
        feed-forward loop per (source, middle, target) triple with a->b, b->c, a->c;
        a bi-fan per pair of sources and pair of targets, four distinct neurons; a
        disinhibitory chain per path a -| b -| c through inhibitory a and b),
        ``null_mean``, ``null_std``, ``z`` (NaN where the null has no spread),
        ``p_greater``, ``p_less`` (empirical, +1 corrected).
    """
    c = check_connectome(connectome)
    a = binary(c, kind)
    sign = transmitter_signs(c, signs=signs)
    inhibitory = (sign < 0) if np.any(sign < 0) else None
    observed = _all_counts(a, inhibitory)
    names = list(observed)
    null = np.zeros((n_null, len(names)))
    directed = True
    for i, r in enumerate(rewired(a, n_null=n_null, seed=seed, directed=directed)):
        counts = _all_counts(r, inhibitory)
        null[i] = [counts[k] for k in names]
    rows = []
    for j, k in enumerate(names):
        obs = observed[k]
        col = null[:, j]
        p_hi, p_lo = empirical_p(obs, col) if n_null else (float("nan"), float("nan"))
        rows.append({
            "motif": k,
            "count": int(obs),
            "induced": k in TRIAD_TYPES,
            "null_mean": float(col.mean()) if n_null else float("nan"),
            "null_std": float(col.std(ddof=1)) if n_null > 1 else float("nan"),
            "z": zscore(obs, col),
            "p_greater": p_hi,
            "p_less": p_lo,
        })
    return pd.DataFrame(rows).set_index("motif")
