"""Comparison of two connectomes and a summary across a developmental series."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from ._common import check_connectome, edges_of
from ._summary import summary

__all__ = ["compare", "Comparison", "developmental_summary"]


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`.

    Attributes
    ----------
    stats : dict
        Counts of shared, gained and lost edges, Jaccard index, weight correlations,
        the permutation test of weight change.
    edges : pandas.DataFrame
        One row per edge in either graph: ``pre``, ``post`` (names), ``weight_a``,
        ``weight_b`` (0 where absent), ``status`` (shared/gained/lost).
    degrees : pandas.DataFrame
        Per matched neuron: ``degree_a``, ``degree_b``, ``change``.
    """

    stats: dict
    edges: pd.DataFrame
    degrees: pd.DataFrame

    def to_dict(self) -> dict:
        """Return the scalar statistics as JSON-ready data."""
        return dict(self.stats)


def _edge_table(c, kind: str, key: str) -> pd.Series:
    names = c._neurons.set_index("segment_id")[key]
    e = edges_of(c, kind)
    pre = names.loc[e["pre_id"].to_numpy()].to_numpy()
    post = names.loc[e["post_id"].to_numpy()].to_numpy()
    s = pd.Series(e["n_synapses"].to_numpy(dtype=float), index=pd.MultiIndex.from_arrays([pre, post], names=["pre", "post"]))
    return s.groupby(level=[0, 1]).sum()


def compare(
    a,
    b,
    *,
    kind: str = "chemical",
    match: str = "name",
    n_permutations: int = 1000,
    seed: int | None = 0,
    common_neurons_only: bool = True,
) -> Comparison:
    """Compare the edges and weights of two connectomes.

    Parameters
    ----------
    a, b : Connectome
        E.g. two Witvliet developmental stages, or a reconstruction and its ground
        truth.
    kind : {"chemical", "electrical", "combined"}
    match : {"name", "segment_id"}
        How neurons of ``a`` and ``b`` are matched.
    n_permutations : int
        Sign flips in the permutation test.
    seed : int or None
    common_neurons_only : bool
        Compare only edges between neurons present in both (so that neurons added
        during development do not count as gained edges).

    Returns
    -------
    Comparison
        ``stats`` holds ``n_edges_a``, ``n_edges_b``, ``shared``, ``gained`` (in b
        only), ``lost`` (in a only), ``jaccard``, ``weight_pearson`` and
        ``weight_spearman`` (over shared edges), ``weight_pearson_union`` (over the
        union, 0 where absent), ``mean_log2_ratio`` (mean of log2((w_b+1)/(w_a+1))
        over the union) and ``p_value`` of a two-sided sign-flip permutation test
        that this mean is 0 (no systematic change of weights).
    """
    a, b = check_connectome(a), check_connectome(b)
    if match not in ("name", "segment_id"):
        raise ValueError(f"match must be 'name' or 'segment_id', got {match!r}")
    ea, eb = _edge_table(a, kind, match), _edge_table(b, kind, match)
    na, nb = set(a._neurons[match]), set(b._neurons[match])
    if common_neurons_only:
        common = na & nb

        def inside(s):
            pre, post = s.index.get_level_values(0), s.index.get_level_values(1)
            return s[pre.isin(common) & post.isin(common)]

        ea, eb = inside(ea), inside(eb)
    union = ea.index.union(eb.index)
    wa = ea.reindex(union, fill_value=0.0).to_numpy()
    wb = eb.reindex(union, fill_value=0.0).to_numpy()
    status = np.where((wa > 0) & (wb > 0), "shared", np.where(wb > 0, "gained", "lost"))
    shared = status == "shared"

    def corr(fn, x, y):
        if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
            return float("nan")
        return float(fn(x, y)[0])

    diff = np.log2((wb + 1) / (wa + 1))
    observed = float(diff.mean()) if len(diff) else float("nan")
    rng = np.random.default_rng(seed)
    if len(diff) and n_permutations:
        flips = rng.choice([-1.0, 1.0], size=(n_permutations, len(diff)))
        null = (flips * diff).mean(axis=1)
        p = float((1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + n_permutations))
    else:
        p = float("nan")
    n_union = len(union)
    out_stats = {
        "kind": kind,
        "n_neurons_a": len(na),
        "n_neurons_b": len(nb),
        "n_common_neurons": len(na & nb),
        "n_edges_a": int(np.sum(wa > 0)),
        "n_edges_b": int(np.sum(wb > 0)),
        "shared": int(shared.sum()),
        "gained": int(np.sum(status == "gained")),
        "lost": int(np.sum(status == "lost")),
        "jaccard": float(shared.sum() / n_union) if n_union else float("nan"),
        "weight_pearson": corr(stats.pearsonr, wa[shared], wb[shared]),
        "weight_spearman": corr(stats.spearmanr, wa[shared], wb[shared]),
        "weight_pearson_union": corr(stats.pearsonr, wa, wb),
        "mean_log2_ratio": observed,
        "p_value": p,
    }
    edges = pd.DataFrame(
        {"pre": union.get_level_values(0), "post": union.get_level_values(1),
         "weight_a": wa, "weight_b": wb, "status": status}
    )
    da = _degree_by(a, kind, match)
    db = _degree_by(b, kind, match)
    deg = pd.concat([da.rename("degree_a"), db.rename("degree_b")], axis=1, join="inner")
    deg["change"] = deg["degree_b"] - deg["degree_a"]
    return Comparison(stats=out_stats, edges=edges, degrees=deg)


def _degree_by(c, kind: str, key: str) -> pd.Series:
    from ._summary import degrees

    d = degrees(c, kind=kind)["degree"]
    d.index = c._neurons.set_index("segment_id").loc[d.index, key].to_numpy()
    return d


def developmental_summary(connectomes: Mapping[str, object], *, kind: str = "chemical") -> pd.DataFrame:
    """Summarise a series of connectomes (e.g. the eight Witvliet stages).

    Parameters
    ----------
    connectomes : mapping of str to Connectome
        In developmental order.
    kind : {"chemical", "electrical", "combined"}

    Returns
    -------
    pandas.DataFrame
        One row per stage: the :func:`summary` numbers, plus ``shared_with_previous``,
        ``gained``, ``lost`` and ``jaccard_with_previous`` (edges between neurons
        present in both, matched by name), and ``fraction_in_last`` (edges of this
        stage that are present in the last stage).
    """
    items = list(connectomes.items())
    if not items:
        raise ValueError("no connectomes given")
    last = items[-1][1]
    rows = []
    previous = None
    for label, c in items:
        row = {"stage": label}
        row.update(summary(c, kind=kind))
        if previous is not None:
            comp = compare(previous, c, kind=kind, n_permutations=0)
            row.update({"shared_with_previous": comp.stats["shared"],
                        "gained": comp.stats["gained"], "lost": comp.stats["lost"],
                        "jaccard_with_previous": comp.stats["jaccard"]})
        to_last = compare(c, last, kind=kind, n_permutations=0)
        row["fraction_in_last"] = (
            to_last.stats["shared"] / to_last.stats["n_edges_a"] if to_last.stats["n_edges_a"] else float("nan")
        )
        rows.append(row)
        previous = c
    return pd.DataFrame(rows).set_index("stage")
