"""``analyze``: run the standard analyses and write ``analysis.json``, tables, figures."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TableFormatError
from ..graph._connectome import _check_graph_kind
from . import _figures
from ._celltypes import _MAX_DENSE, cell_types, pair_left_right
from ._common import check_connectome
from ._hubs import hubs, rich_club
from ._modules import modules
from ._motifs import motifs, triad_census
from ._pathways import layers, reachability
from ._robustness import robustness
from ._summary import degrees, summary

__all__ = ["analyze"]


def _jsonable(value):
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def _write_table(df: pd.DataFrame, directory: Path, stem: str) -> list[str]:
    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].astype("string")
    df.to_parquet(directory / f"{stem}.parquet")
    df.to_csv(directory / f"{stem}.csv")
    return [f"tables/{stem}.parquet", f"tables/{stem}.csv"]


def analyze(
    connectome,
    out_dir,
    *,
    kind: str = "chemical",
    n_null: int = 100,
    n_perturb: int = 20,
    error_rates: dict | None = None,
    error_mode: str = "forward",
    seed: int = 0,
    n_types: int | None = None,
    figures: bool = True,
) -> dict:
    """Run the standard analyses and write their results to a directory.

    Parameters
    ----------
    connectome : Connectome
    out_dir : str or Path
        Created if absent; gets ``analysis.json``, ``tables/`` (Parquet and CSV:
        ``neurons``, ``motifs``, ``rich_club``, ``robustness``, ``cell_pairs``) and
        ``figures/`` (``adjacency_by_module.png``, ``adjacency_by_type.png``,
        ``degree_distribution.png``, ``rich_club.png``, ``motif_zscores.png``).
    kind : {"chemical", "electrical", "combined"}
        The graph analysed (chemical synapses, directed, by default).
    n_null : int
        Null networks for motif z-scores and the rich club.
    n_perturb : int
        Perturbed copies for the error-aware statistics (0 skips them).
    error_rates : dict, optional
        ``dropout``, ``spurious``, ``merge``, ``split`` (and optionally
        ``size_unit``) for :func:`robustness`; default 0.1, 0.05, 0.01, 0.01.
        ``connectomix evaluate`` measures them (``error_*`` fields). The
        statistics are over neurons with at least one synapse of ``kind``.
    error_mode : {"forward", "inverse"}
        ``"forward"``: stability of each statistic under such errors; ``"inverse"``:
        the connectome is a reconstruction with these (measured) error rates, and
        the intervals estimate the error-free values (see :func:`robustness`).
    seed : int
        Seed of every random step.
    n_types : int, optional
        Number of cell types to cluster into; default the number of known types
        (``neurons.cell_type``). Without either, cell typing is skipped.
    figures : bool
        Write the PNG figures (needs matplotlib).

    Returns
    -------
    dict
        What ``analysis.json`` holds. Top-level keys include ``n_neurons``,
        ``n_edges``, ``n_synapses``, ``reciprocity``, ``largest_scc``,
        ``largest_wcc`` and ``triad_census`` (the 16 classes), then ``summary``,
        ``by_kind``, ``hubs``, ``rich_club``, ``modules``, ``motifs``, ``pathways``
        (when neurons carry ``sim_class``), ``cell_types`` (connectivity clusters
        and left/right pairing, each beside its degree-only baseline),
        ``robustness``, ``timings_s``.

    Raises
    ------
    TableFormatError
        If the connectome has no edges of ``kind`` (nothing to analyse).
    """
    c = check_connectome(connectome)
    _check_graph_kind(kind)
    if c.adjacency(kind, weight=None).nnz == 0:
        raise TableFormatError(
            f"connectome {c.name!r} has no {kind} edges: nothing to analyse "
            "(try kind='combined' or check the edge table)"
        )
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def timed(label, fn, *args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        timings[label] = round(time.perf_counter() - t0, 4)
        return result

    head = timed("summary", summary, c, kind=kind)
    census = timed("triad_census", triad_census, c, kind=kind)
    by_kind = {}
    for k in ("chemical", "electrical", "combined"):
        if c.adjacency(k, weight=None).nnz:
            s = summary(c, kind=k)
            by_kind[k] = {key: s[key] for key in ("n_edges", "n_synapses", "reciprocity",
                                                  "density", "largest_scc", "largest_wcc")}
    hub_table = timed("hubs", hubs, c, kind=kind, seed=seed)
    rc = timed("rich_club", rich_club, c, kind=kind, n_null=n_null, seed=seed)
    mods = timed("modules", modules, c, kind=kind, seed=seed)
    motif_table = timed("motifs", motifs, c, kind=kind, n_null=n_null, seed=seed)

    neuron_table = hub_table.join(mods.table[["module", "participation", "within_module_z", "role"]])
    extra = [col for col in ("cell_class", "cell_type", "transmitter", "sim_class")
             if col in c._neurons.columns]
    info = c._neurons.set_index("segment_id")[extra]
    neuron_table = info.join(neuron_table, how="right")

    result = {
        "name": c.name,
        "kind": kind,
        "n_neurons": head["n_neurons"],
        "n_edges": head["n_edges"],
        "n_synapses": head["n_synapses"],
        "reciprocity": head["reciprocity"],
        "largest_scc": head["largest_scc"],
        "largest_wcc": head["largest_wcc"],
        "triad_census": census,
        "summary": head,
        "by_kind": by_kind,
        "meta": c.meta,
    }
    top = hub_table.head(10)
    result["hubs"] = {
        "n_hubs": int(hub_table["is_hub"].sum()),
        "hubs": hub_table.loc[hub_table["is_hub"], "name"].astype(str).tolist(),
        "top_by_degree": [{"name": str(r["name"]), "degree": int(r["degree"]),
                           "strength": float(r["strength"]), "pagerank": float(r["pagerank"])}
                          for _, r in top.iterrows()],
    }
    sig = rc[(rc["p_value"] < 0.05) & (rc["phi_norm"] > 1)]
    result["rich_club"] = {
        "kind": kind,
        "graph": "undirected skeleton",
        "n_null": n_null,
        "significant_k": [int(k) for k in sig.index],
        "max_phi_norm": float(rc["phi_norm"].max()) if len(rc) else None,
        "curve": [{"k": int(k), "n_nodes": int(r["n_nodes"]), "phi": r["phi"],
                   "phi_norm": r["phi_norm"], "p_value": r["p_value"]} for k, r in rc.iterrows()],
    }
    result["modules"] = mods.to_dict()
    result["motifs"] = {
        "null_model": "directed edge swaps keeping in- and out-degree (igraph rewire)",
        "n_null": n_null,
        "counts": {m: {"count": int(r["count"]), "induced": bool(r["induced"]), "z": r["z"],
                       "p_greater": r["p_greater"], "p_less": r["p_less"]}
                   for m, r in motif_table.iterrows()},
    }
    if "sim_class" in c._neurons.columns:
        sim = c._neurons["sim_class"].astype(str).to_numpy()
        sensory, motor = sim == "sensory", sim == "motor"
        if sensory.any() and motor.any():
            lay = layers(c, sensory, kind=kind)
            reach = reachability(c, sensory, motor, kind=kind, max_hops=6)
            neuron_table["layer_from_sensory"] = lay
            motor_layers = lay.to_numpy()[motor]
            result["pathways"] = {
                "sources": "sim_class == sensory",
                "targets": "sim_class == motor",
                "reachable_fraction_by_hops": {int(k): float(v) for k, v in reach["fraction"].items()},
                "mean_motor_layer": float(motor_layers[motor_layers >= 0].mean())
                if np.any(motor_layers >= 0) else None,
            }
    typing = timed("cell_types", _cell_typing, c, kind=kind, n_types=n_types)
    result["cell_types"] = typing["summary"]
    if typing["clusters"] is not None:
        neuron_table["cell_cluster"] = typing["clusters"]
    if typing["pairs"] is not None:
        pairs = typing["pairs"]
        mate = pd.concat([pd.Series(pairs["right_name"].to_numpy(), index=pairs["left_id"].to_numpy()),
                          pd.Series(pairs["left_name"].to_numpy(), index=pairs["right_id"].to_numpy())])
        neuron_table["lr_mate"] = mate.reindex(neuron_table.index).astype("string")
    if n_perturb:
        rates = {"dropout": 0.1, "spurious": 0.05, "merge": 0.01, "split": 0.01}
        rates.update(error_rates or {})
        rob = timed("robustness", robustness, c, n=n_perturb, kind=kind, seed=seed,
                    mode=error_mode, **rates)
        result["robustness"] = {
            "error_rates": rates,
            "mode": error_mode,
            "n_perturbed": n_perturb,
            "neurons": f"statistics over the neurons with at least one {kind} synapse (isolated neurons and "
                       "fragments without synapses left out); the errors act on every neuron",
            "statistics": {s: {k: r[k] for k in ("observed", "mean", "std", "ci_low", "ci_high",
                                                 "observed_in_ci", "identified")}
                           for s, r in rob.iterrows()},
        }
    tables = []
    tables += _write_table(neuron_table.reset_index(), out / "tables", "neurons")
    tables += _write_table(motif_table.reset_index(), out / "tables", "motifs")
    tables += _write_table(rc.reset_index(), out / "tables", "rich_club")
    if n_perturb:
        tables += _write_table(rob.reset_index(), out / "tables", "robustness")
    if typing["pairs"] is not None:
        tables += _write_table(typing["pairs"], out / "tables", "cell_pairs")
    result["tables"] = tables
    if figures:
        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        title = c.name or "connectome"
        t0 = time.perf_counter()
        paths = [
            _figures.adjacency_by_module(c.adjacency(kind), mods.table["module"].to_numpy(),
                                         fig_dir / "adjacency_by_module.png",
                                         title=f"{title}: {kind} synapses by module"),
            *([_figures.adjacency_sorted(
                c.adjacency(kind), typing["clusters"].to_numpy(), fig_dir / "adjacency_by_type.png",
                title=f"{title}: {kind} synapses by connectivity type", what="cell type")]
              if typing["clusters"] is not None else []),
            _figures.degree_distribution(degrees(c, kind=kind), fig_dir / "degree_distribution.png",
                                         title=f"{title}: degree distribution"),
            _figures.rich_club_curve(rc, fig_dir / "rich_club.png", title=f"{title}: rich club"),
            _figures.motif_profile(motif_table, fig_dir / "motif_zscores.png",
                                   title=f"{title}: motifs"),
        ]
        timings["figures"] = round(time.perf_counter() - t0, 4)
        result["figures"] = [f"figures/{p.name}" for p in paths]
    result["timings_s"] = timings
    result = _jsonable(result)
    with open(out / "analysis.json", "w") as fh:
        json.dump(result, fh, indent=2, allow_nan=False)
    return result


def _cell_typing(c, *, kind: str, n_types: int | None) -> dict:
    """Cell types and left/right pairs beside their degree-only baselines."""
    out = {"summary": {"kind": kind}, "clusters": None, "pairs": None}
    table = c._neurons
    if c.n_neurons > _MAX_DENSE:
        out["summary"]["skipped"] = (
            f"{c.n_neurons} neurons: connectivity typing is limited to {_MAX_DENSE}")
        return out
    known = table["cell_type"].astype("string").fillna("")
    n_known = int(known[known != ""].nunique())
    if n_types is None and n_known < 2:
        out["summary"]["types"] = {"skipped": "no known cell types and no n_types given"}
    else:
        types = cell_types(c, kind=kind, n_types=n_types)
        baseline = cell_types(c, kind=kind, n_types=types.n_types, features="degree")
        out["summary"]["types"] = {
            "n_known_types": n_known,
            "scored_against": "neurons.cell_type" if n_known else None,
            "connectivity": types.to_dict(),
            "degree_baseline": baseline.to_dict(),
            "beats_baseline": bool(types.ari > baseline.ari) if n_known else None,
        }
        out["clusters"] = types.table["cluster"]
    side = table["side"].astype("string").fillna("") if "side" in table.columns else None
    if side is not None and (side == "L").any() and (side == "R").any():
        pairing = pair_left_right(c, kind=kind)
        baseline = pair_left_right(c, kind=kind, method="degree")
        out["summary"]["pairing"] = {
            "scored_on": "names ending in L/R",
            "connectivity": pairing.to_dict(),
            "degree_baseline": baseline.to_dict(),
            "beats_baseline": (bool(pairing.accuracy > baseline.accuracy)
                               if pairing.n_scored else None),
        }
        out["pairs"] = pairing.pairs
    else:
        out["summary"]["pairing"] = {"skipped": "neurons have no side column with L and R"}
    return out
