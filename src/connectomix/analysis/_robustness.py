"""Error-aware statistics: how much of each result survives reconstruction errors.

An error model applies the four errors an EM reconstruction makes, at given rates:
synapse dropout (false negatives), spurious synapses (false positives), neuron merges
and neuron splits. :func:`robustness` recomputes statistics on many perturbed copies
and reports their spread and confidence interval next to the observed value.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import norm as stats_norm

from ..graph import Connectome
from ._common import check_connectome
from ._motifs import triad_census
from ._summary import degrees, summary

__all__ = ["perturb", "robustness", "default_statistics"]


def _canonical(edges: pd.DataFrame) -> pd.DataFrame:
    """Electrical pairs as pre <= post, duplicates summed, empty edges dropped."""
    edges = edges.copy()
    elec = (edges["kind"] == "electrical").to_numpy()
    lo = np.minimum(edges["pre_id"].to_numpy(), edges["post_id"].to_numpy())
    hi = np.maximum(edges["pre_id"].to_numpy(), edges["post_id"].to_numpy())
    edges.loc[elec, "pre_id"] = lo[elec]
    edges.loc[elec, "post_id"] = hi[elec]
    edges = edges.groupby(["pre_id", "post_id", "kind"], as_index=False, sort=True)[
        ["n_synapses", "weight"]].sum()
    return edges[edges["n_synapses"] > 0].reset_index(drop=True)


def perturb(
    connectome,
    *,
    dropout: float = 0.0,
    spurious: float = 0.0,
    merge: float = 0.0,
    split: float = 0.0,
    seed: int | None = 0,
) -> Connectome:
    """Return a copy of the connectome with reconstruction errors applied.

    Parameters
    ----------
    connectome : Connectome
    dropout : float
        Probability that each synapse is missed (binomial thinning of
        ``n_synapses``; an edge with none left disappears).
    spurious : float
        False synapses added, as a fraction of the true synapses of each kind; each
        joins a random pair, the presynaptic neuron drawn in proportion to
        out-strength + 1 and the postsynaptic one to in-strength + 1.
    merge : float
        Fraction of neurons falsely merged into another random neuron (edges
        combined; a merge can create self-loops).
    split : float
        Fraction of neurons split in two; each synapse goes to either half at random.
    seed : int or None

    Returns
    -------
    Connectome
        Weights are scaled with synapse counts; ``meta["perturbation"]`` holds the rates.
    """
    c = check_connectome(connectome)
    for label, rate in (("dropout", dropout), ("merge", merge), ("split", split)):
        if not 0 <= rate <= 1:
            raise ValueError(f"{label} rate must be in [0, 1], got {rate}")
    if not spurious >= 0:
        raise ValueError(f"spurious rate must be >= 0, got {spurious}")
    rng = np.random.default_rng(seed)
    neurons = c._neurons.drop(columns=[col for col in ("n_pre", "n_post") if col in c._neurons])
    edges = c._edges[["pre_id", "post_id", "kind", "n_synapses", "weight"]].copy()
    per_syn = np.divide(edges["weight"].to_numpy(), edges["n_synapses"].to_numpy(),
                        out=np.ones(len(edges)), where=edges["n_synapses"].to_numpy() > 0)

    if dropout > 0:
        kept = rng.binomial(edges["n_synapses"].to_numpy(), 1 - dropout)
        edges["n_synapses"] = kept
        edges["weight"] = kept * per_syn
        edges = edges[edges["n_synapses"] > 0]

    if spurious > 0 and len(neurons) > 1:
        ids = neurons["segment_id"].to_numpy()
        added = []
        for kind_name in ("chemical", "electrical"):
            part = c._edges[c._edges["kind"] == kind_name]
            k = rng.poisson(spurious * part["n_synapses"].sum()) if len(part) else 0
            if k == 0:
                continue
            out_s = part.groupby("pre_id")["n_synapses"].sum().reindex(ids, fill_value=0).to_numpy() + 1.0
            in_s = part.groupby("post_id")["n_synapses"].sum().reindex(ids, fill_value=0).to_numpy() + 1.0
            pre = rng.choice(len(ids), size=k, p=out_s / out_s.sum())
            post = rng.choice(len(ids), size=k, p=in_s / in_s.sum())
            ok = pre != post
            added.append(pd.DataFrame({"pre_id": ids[pre[ok]], "post_id": ids[post[ok]],
                                       "kind": kind_name, "n_synapses": 1, "weight": 1.0}))
        if added:
            edges = pd.concat([edges] + added, ignore_index=True)

    if split > 0:
        n_split = int(round(split * len(neurons)))
        chosen = rng.choice(neurons["segment_id"].to_numpy(), size=n_split, replace=False)
        next_id = int(neurons["segment_id"].max()) + 1
        new_rows = []
        edges = edges.reset_index(drop=True)
        for old in chosen:
            new = next_id
            next_id += 1
            row = neurons[neurons["segment_id"] == old].iloc[0].to_dict()
            row["segment_id"] = new
            row["name"] = f"{row['name']}#split"
            new_rows.append(row)
            for end in ("pre_id", "post_id"):
                hit = np.flatnonzero(edges[end].to_numpy() == old)
                if hit.size == 0:
                    continue
                n_syn = edges.loc[hit, "n_synapses"].to_numpy()
                moved = rng.binomial(n_syn, 0.5)
                unit = np.divide(edges.loc[hit, "weight"].to_numpy(), n_syn, out=np.ones(hit.size), where=n_syn > 0)
                moved_rows = edges.loc[hit].copy()
                moved_rows[end] = new
                moved_rows["n_synapses"] = moved
                moved_rows["weight"] = moved * unit
                edges.loc[hit, "n_synapses"] = n_syn - moved
                edges.loc[hit, "weight"] = (n_syn - moved) * unit
                edges = pd.concat([edges, moved_rows[moved_rows["n_synapses"] > 0]], ignore_index=True)
        if new_rows:
            neurons = pd.concat([neurons, pd.DataFrame(new_rows)], ignore_index=True)

    if merge > 0:
        n_merge = int(round(merge * len(neurons)))
        ids = neurons["segment_id"].to_numpy()
        picked = rng.choice(len(ids), size=min(2 * n_merge, len(ids) // 2 * 2), replace=False)
        absorbed, into = ids[picked[0::2]], ids[picked[1::2]]
        mapping = pd.Series(into, index=absorbed)
        for end in ("pre_id", "post_id"):
            col = edges[end].to_numpy()
            hit = np.isin(col, absorbed)
            col = col.copy()
            col[hit] = mapping.loc[col[hit]].to_numpy()
            edges[end] = col
        neurons = neurons[~neurons["segment_id"].isin(absorbed)]

    edges = _canonical(edges)
    meta = c.meta
    meta["perturbation"] = {"dropout": dropout, "spurious": spurious, "merge": merge,
                            "split": split, "seed": seed}
    return Connectome(neurons, edges, name=c.name, meta=meta)


def default_statistics(connectome, *, kind: str = "chemical", top: int = 10) -> Callable:
    """Return the function that computes the statistics :func:`robustness` checks.

    Parameters
    ----------
    connectome : Connectome
        The unperturbed connectome (its top hubs are the reference for hub overlap).
    kind : {"chemical", "electrical", "combined"}
    top : int
        Size of the hub set compared.

    Returns
    -------
    callable
        ``f(Connectome) -> dict`` with ``n_neurons``, ``n_edges``, ``n_synapses``,
        ``density``, ``reciprocity``, ``clustering``, ``transitivity``,
        ``mean_degree``, ``max_degree``, ``largest_scc_fraction``, ``ffl_fraction``
        (030T among closed triads) and ``top_hub_overlap`` (Jaccard index of the
        top-``top`` neurons by degree with the original's, matched by name).
    """
    reference = set(degrees(connectome, kind=kind).nlargest(top, "degree")["name"])

    def compute(g) -> dict[str, float]:
        s = summary(g, kind=kind)
        out = {key: float(s[key]) for key in (
            "n_neurons", "n_edges", "n_synapses", "density", "reciprocity", "clustering",
            "transitivity", "mean_degree", "max_degree")}
        out["largest_scc_fraction"] = s["largest_scc"] / s["n_neurons"] if s["n_neurons"] else float("nan")
        t = triad_census(g, kind=kind)
        closed = sum(t[k] for k in ("030T", "030C", "120D", "120U", "120C", "210", "300"))
        out["ffl_fraction"] = t["030T"] / closed if closed else float("nan")
        names = degrees(g, kind=kind).nlargest(top, "degree")["name"].astype(str)
        got = set(names.str.replace("#split", "", regex=False))
        union = got | reference
        out["top_hub_overlap"] = len(got & reference) / len(union) if union else float("nan")
        return out

    return compute


def _evaluate(statistics, g) -> dict[str, float]:
    if callable(statistics):
        return {k: float(v) for k, v in statistics(g).items()}
    return {k: float(f(g)) for k, f in statistics.items()}


def robustness(
    connectome,
    *,
    statistics=None,
    n: int = 50,
    dropout: float = 0.1,
    spurious: float = 0.05,
    merge: float = 0.01,
    split: float = 0.01,
    mode: str = "forward",
    kind: str = "chemical",
    confidence: float = 0.95,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Recompute statistics under an error model and report their spread.

    Parameters
    ----------
    connectome : Connectome
    statistics : callable or mapping of str to callable, optional
        ``f(Connectome) -> dict of float``, or ``{name: f(Connectome) -> float}``;
        default :func:`default_statistics`.
    n : int
        Number of perturbed copies.
    dropout, spurious, merge, split : float
        Error rates of a reconstruction, as in :func:`perturb` (e.g. measured by
        ``connectomix evaluate``: dropout = 1 - synapse recall).
    mode : {"forward", "inverse"}
        ``"forward"`` applies the errors to the connectome: how much does each
        statistic move when a reconstruction makes such errors (its stability).
        ``"inverse"`` treats the connectome as a reconstruction that already has
        these errors and estimates the error-free value: ``mean`` is the
        bias-corrected value ``observed**2 / mean(copies)`` and the interval
        ``mean * exp(+- z sqrt(2) sd(log copies))`` (a ratio bootstrap; for
        statistics that can be <= 0: ``2 observed - mean(copies)`` +- z sqrt(2) sd).
        It assumes the errors shift the truth as they shift the reconstruction,
        which is exact for synapse counts and approximate for the rest.
    kind : {"chemical", "electrical", "combined"}
        Graph used by the default statistics.
    confidence : float
        Width of the percentile interval.
    seed : int or None
        Copy ``i`` uses seed ``seed + i``.

    Returns
    -------
    pandas.DataFrame
        Index: statistic; ``observed``, ``mean``, ``std``, ``ci_low``, ``ci_high``
        (percentile interval of the copies in forward mode), ``relative_spread``
        (std / |observed|), ``bias`` (mean - observed) and ``observed_in_ci``.
    """
    c = check_connectome(connectome)
    if mode not in ("forward", "inverse"):
        raise ValueError(f"mode must be 'forward' or 'inverse', got {mode!r}")
    rates = {"dropout": dropout, "spurious": spurious, "merge": merge, "split": split}
    stats = statistics if statistics is not None else default_statistics(c, kind=kind)
    base = 0 if seed is None else int(seed)
    observed = _evaluate(stats, c)
    keys = list(observed)
    values = np.full((n, len(keys)), np.nan)
    for i in range(n):
        got = _evaluate(stats, perturb(c, seed=base + i, **rates))
        values[i] = [got.get(k, np.nan) for k in keys]
    alpha = (1 - confidence) / 2
    z = float(stats_norm.ppf(1 - alpha))
    rows = []
    for j, key in enumerate(keys):
        col = values[:, j][np.isfinite(values[:, j])]
        obs = observed[key]
        if col.size:
            mean = float(col.mean())
            std = float(col.std(ddof=1)) if col.size > 1 else 0.0
            if mode == "forward":
                lo, hi = (float(q) for q in np.quantile(col, [alpha, 1 - alpha]))
            elif obs > 0 and np.all(col > 0):
                # the errors moved the truth to obs by about the factor they move obs
                # to the copies; the truth -> obs draw doubles the variance
                mean = obs * obs / mean
                spread = z * np.sqrt(2) * float(np.log(col).std(ddof=1)) if col.size > 1 else 0.0
                lo, hi = mean * np.exp(-spread), mean * np.exp(spread)
            else:  # same idea, additive
                mean = 2 * obs - mean
                lo, hi = mean - z * np.sqrt(2) * std, mean + z * np.sqrt(2) * std
        else:
            lo = hi = mean = std = float("nan")
        rows.append({
            "statistic": key, "observed": obs, "mean": mean, "std": std,
            "ci_low": float(lo), "ci_high": float(hi),
            "relative_spread": std / abs(obs) if obs != 0 and np.isfinite(obs) else float("nan"),
            "bias": mean - obs,
            "observed_in_ci": bool(lo <= obs <= hi) if col.size else False,
        })
    return pd.DataFrame(rows).set_index("statistic")
