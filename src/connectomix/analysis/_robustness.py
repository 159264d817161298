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
from scipy.stats import t as stats_t

from ..graph import Connectome
from ._common import check_connectome
from ._motifs import triad_census
from ._summary import degrees, summary

__all__ = ["perturb", "robustness", "default_statistics"]


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
    src = c._edges
    # plain arrays throughout: this runs thousands of times in robustness()
    pre = src["pre_id"].to_numpy(np.int64).copy()
    post = src["post_id"].to_numpy(np.int64).copy()
    elec = (src["kind"] == "electrical").to_numpy()
    n_syn = src["n_synapses"].to_numpy(np.int64)
    weight = src["weight"].to_numpy(np.float64)
    unit = np.divide(weight, n_syn, out=np.ones(len(n_syn)), where=n_syn > 0)

    if dropout > 0:
        n_syn = rng.binomial(n_syn, 1 - dropout)

    ids = neurons["segment_id"].to_numpy(np.int64)
    if spurious > 0 and len(ids) > 1:
        pos = c.node_index()
        add = [[], [], [], []]  # pre, post, elec, count
        for is_elec in (False, True):
            part = elec == is_elec if len(elec) else np.zeros(0, bool)
            total = int(src["n_synapses"].to_numpy()[part].sum())
            k = rng.poisson(spurious * total) if total else 0
            if k == 0:
                continue
            syn = src["n_synapses"].to_numpy(np.float64)[part]
            out_s = np.bincount(pos.loc[pre[part]].to_numpy(), weights=syn, minlength=len(ids)) + 1.0
            in_s = np.bincount(pos.loc[post[part]].to_numpy(), weights=syn, minlength=len(ids)) + 1.0
            a = rng.choice(len(ids), size=k, p=out_s / out_s.sum())
            b = rng.choice(len(ids), size=k, p=in_s / in_s.sum())
            ok = a != b
            add[0].append(ids[a[ok]])
            add[1].append(ids[b[ok]])
            add[2].append(np.full(int(ok.sum()), is_elec))
        if add[0]:
            extra = sum(len(x) for x in add[0])
            pre = np.concatenate([pre] + add[0])
            post = np.concatenate([post] + add[1])
            elec = np.concatenate([elec] + add[2])
            n_syn = np.concatenate([n_syn, np.ones(extra, dtype=np.int64)])
            unit = np.concatenate([unit, np.ones(extra)])

    if split > 0:
        n_split = int(round(split * len(ids)))
        chosen = rng.choice(ids, size=n_split, replace=False)
        if n_split:
            new_ids = int(ids.max()) + 1 + np.arange(n_split, dtype=np.int64)
            to_new = pd.Series(new_ids, index=chosen)
            for end in (0, 1):  # presynaptic ends, then postsynaptic ends (new rows too)
                col = pre if end == 0 else post
                hit = np.flatnonzero(np.isin(col, chosen))
                moved = rng.binomial(n_syn[hit], 0.5)
                n_syn = n_syn.copy()
                n_syn[hit] -= moved
                keep = moved > 0
                rows = hit[keep]
                new_pre, new_post = pre[rows].copy(), post[rows].copy()
                if end == 0:
                    new_pre = to_new.loc[new_pre].to_numpy()
                else:
                    new_post = to_new.loc[new_post].to_numpy()
                pre = np.concatenate([pre, new_pre])
                post = np.concatenate([post, new_post])
                elec = np.concatenate([elec, elec[rows]])
                n_syn = np.concatenate([n_syn, moved[keep]])
                unit = np.concatenate([unit, unit[rows]])
            rows = neurons.set_index("segment_id").loc[chosen].reset_index()
            rows["segment_id"] = new_ids
            rows["name"] = rows["name"].astype(str) + "#split"
            neurons = pd.concat([neurons, rows[neurons.columns]], ignore_index=True)

    if merge > 0:
        ids = neurons["segment_id"].to_numpy(np.int64)
        n_merge = int(round(merge * len(ids)))
        picked = rng.choice(len(ids), size=min(2 * n_merge, len(ids) // 2 * 2), replace=False)
        absorbed, into = ids[picked[0::2]], ids[picked[1::2]]
        if absorbed.size:
            mapping = pd.Series(into, index=absorbed)
            for col in (pre, post):
                hit = np.isin(col, absorbed)
                col[hit] = mapping.loc[col[hit]].to_numpy()
            neurons = neurons[~neurons["segment_id"].isin(absorbed)]

    edges = _canonical_arrays(pre, post, elec, n_syn, unit)
    meta = c.meta
    meta["perturbation"] = {"dropout": dropout, "spurious": spurious, "merge": merge,
                            "split": split, "seed": seed}
    return Connectome(neurons, edges, name=c.name, meta=meta)


def _canonical_arrays(pre, post, elec, n_syn, unit) -> pd.DataFrame:
    """Electrical pairs as pre <= post, duplicates summed, empty edges dropped."""
    lo, hi = np.minimum(pre, post), np.maximum(pre, post)
    pre = np.where(elec, lo, pre)
    post = np.where(elec, hi, post)
    keep = n_syn > 0
    pre, post, elec, n_syn, unit = pre[keep], post[keep], elec[keep], n_syn[keep], unit[keep]
    order = np.lexsort((elec, post, pre))
    pre, post, elec, n_syn, unit = pre[order], post[order], elec[order], n_syn[order], unit[order]
    new = np.ones(len(pre), dtype=bool)
    if len(pre):
        new[1:] = (pre[1:] != pre[:-1]) | (post[1:] != post[:-1]) | (elec[1:] != elec[:-1])
    starts = np.flatnonzero(new)
    return pd.DataFrame({
        "pre_id": pre[starts],
        "post_id": post[starts],
        "kind": np.where(elec[starts], "electrical", "chemical"),
        "n_synapses": np.add.reduceat(n_syn, starts) if len(starts) else n_syn[:0],
        "weight": np.add.reduceat(n_syn * unit, starts) if len(starts) else unit[:0],
    })


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
        top-``top`` neurons by degree with the original's, matched by name; listed
        in the function's ``comparative`` attribute).
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

    compute.comparative = ("top_hub_overlap",)
    return compute


def _evaluate(statistics, g) -> dict[str, float]:
    if callable(statistics):
        return {k: float(v) for k, v in statistics(g).items()}
    return {k: float(f(g)) for k, f in statistics.items()}


def _comparative(statistics) -> set[str]:
    """Statistics that compare a graph with the analysed one (not a property of it)."""
    return set(getattr(statistics, "comparative", ()))


def _inverse_estimate(obs: float, level1: np.ndarray, level2: np.ndarray,
                      confidence: float) -> tuple[float, float, float]:
    """Calibrated estimate and interval of the error-free value of one statistic.

    ``level1[i]`` is the statistic on copy i of the observed graph with errors added;
    ``level2[i, j]`` on copy j of copy i. On a log scale where every value is > 0.
    """
    ok1 = np.isfinite(level1)
    if ok1.sum() < 2 or not np.isfinite(obs):
        return float("nan"), float("nan"), float("nan")
    if np.all(level1[ok1] == obs) and np.all(level2[np.isfinite(level2)] == obs):
        return float(obs), float(obs), float(obs)  # the errors do not touch it
    positive = obs > 0 and np.all(level1[ok1] > 0) and np.all(level2[np.isfinite(level2)] > 0)
    f, inv = (np.log, np.exp) if positive else (lambda x: x, lambda x: x)
    y0, y1, y2 = f(obs), f(np.where(ok1, level1, 1.0)), f(np.where(np.isfinite(level2), level2, 1.0))
    y1 = np.where(ok1, y1, np.nan)
    y2 = np.where(np.isfinite(level2), y2, np.nan)
    # first-order correction: the errors moved the truth to obs as they move obs on
    t_obs = 2 * y0 - np.nanmean(y1)
    # the same estimator in a world whose truth is obs: its errors e calibrate both
    # the remaining bias and the spread (a double bootstrap; in mean it is the
    # quadratic SIMEX extrapolation 3 s0 - 3 s1 + s2)
    with np.errstate(invalid="ignore"):
        t_level1 = 2 * y1 - np.nanmean(y2, axis=1)
    e = t_level1[np.isfinite(t_level1)] - y0
    if e.size < 2:
        return float(inv(t_obs)), float("nan"), float("nan")
    estimate = t_obs - e.mean()
    spread = float(stats_t.ppf(0.5 + confidence / 2, e.size - 1)) * e.std(ddof=1) * np.sqrt(1 + 1 / e.size)
    # what the second-order step corrected is also how far off the correction may be
    half = float(np.hypot(spread, e.mean()))
    return float(inv(estimate)), float(inv(estimate - half)), float(inv(estimate + half))


def robustness(
    connectome,
    *,
    statistics=None,
    n: int = 50,
    n_inner: int = 5,
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
        default :func:`default_statistics`. A callable may name, in an attribute
        ``comparative``, statistics that compare a graph with the analysed one
        (such as hub overlap); those are never bias-corrected.
    n : int
        Number of perturbed copies.
    n_inner : int
        Inverse mode only: copies of each copy (the calibration level); the cost
        is ``n * (1 + n_inner)`` evaluations.
    dropout, spurious, merge, split : float
        Error rates of a reconstruction, as in :func:`perturb` (e.g. measured by
        ``connectomix evaluate``: dropout = 1 - synapse recall).
    mode : {"forward", "inverse"}
        ``"forward"`` applies the errors to the connectome: how much does each
        statistic move when a reconstruction makes such errors (its stability);
        ``ci_low``/``ci_high`` is the percentile interval of the copies.
        ``"inverse"`` treats the connectome as a reconstruction that already has
        these errors and estimates the error-free value with a calibrated
        bootstrap (Notes).
    kind : {"chemical", "electrical", "combined"}
        Graph used by the default statistics.
    confidence : float
        Nominal coverage of the interval.
    seed : int or None
        Copy ``i`` uses seed ``seed + i`` (its inner copies other, derived seeds).

    Returns
    -------
    pandas.DataFrame
        Index: statistic; ``observed``, ``mean`` (forward: mean of the copies;
        inverse: the estimated error-free value), ``std`` (of the copies),
        ``ci_low``, ``ci_high``, ``relative_spread`` (std / |observed|), ``bias``
        (mean - observed) and ``observed_in_ci``.

    Notes
    -----
    Inverse mode, per statistic s (on a log scale where all values are positive):
    the copies G1_i = E(G) of the observed graph G give the first-order estimate
    ``T(G) = 2 s(G) - mean_i s(G1_i)`` (the errors are assumed to move the truth
    to G as they move G to its copies). Because the shift itself depends on the
    graph, ``T`` is then checked in a world whose truth is G: each copy G1_i gets
    ``n_inner`` copies of its own, ``T(G1_i)`` is computed the same way, and its
    errors ``e_i = T(G1_i) - s(G)`` give the remaining bias (subtracted) and the
    spread: the half-width is ``t sd(e) sqrt(1 + 1/n)`` and, in quadrature, the size
    of that bias step ``|mean(e)|``, an allowance for what a finite extrapolation
    leaves (the errors' effect flattens as they pile up, e.g. on clustering). This is the double
    bootstrap of Beran (1987, doi:10.1093/biomet/74.3.457); in mean it equals the
    quadratic SIMEX extrapolation ``3 s0 - 3 s1 + s2`` (Cook & Stefanski 1994,
    doi:10.1080/01621459.1994.10476871). On Varshney 2011 with the default rates
    injected, the 95 % intervals of the default statistics contain the true value
    about 90 % of the time (the test checks >= 80 %); the uncorrected ratio
    interval reached about 60-70 %.
    """
    c = check_connectome(connectome)
    if mode not in ("forward", "inverse"):
        raise ValueError(f"mode must be 'forward' or 'inverse', got {mode!r}")
    if n < 1 or (mode == "inverse" and (n < 2 or n_inner < 1)):
        raise ValueError(f"need n >= 2 and n_inner >= 1 for the inverse mode, got n={n}, n_inner={n_inner}")
    rates = {"dropout": dropout, "spurious": spurious, "merge": merge, "split": split}
    stats = statistics if statistics is not None else default_statistics(c, kind=kind)
    comparative = _comparative(stats)
    base = 0 if seed is None else int(seed)
    observed = _evaluate(stats, c)
    keys = list(observed)
    values = np.full((n, len(keys)), np.nan)
    inner = np.full((n, max(n_inner, 1), len(keys)), np.nan) if mode == "inverse" else None
    for i in range(n):
        copy = perturb(c, seed=base + i, **rates)
        got = _evaluate(stats, copy)
        values[i] = [got.get(k, np.nan) for k in keys]
        if inner is not None:
            for j in range(n_inner):
                inner_seed = [base + i, j, 0x5EED]  # independent of the outer copies
                got = _evaluate(stats, perturb(copy, seed=inner_seed, **rates))
                inner[i, j] = [got.get(k, np.nan) for k in keys]
    alpha = (1 - confidence) / 2
    rows = []
    for j, key in enumerate(keys):
        col = values[:, j][np.isfinite(values[:, j])]
        obs = observed[key]
        if col.size:
            mean = float(col.mean())
            std = float(col.std(ddof=1)) if col.size > 1 else 0.0
            if mode == "forward" or key in comparative:
                lo, hi = (float(q) for q in np.quantile(col, [alpha, 1 - alpha]))
            else:
                mean, lo, hi = _inverse_estimate(obs, values[:, j], inner[:, :, j], confidence)
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
