"""PNG figures of the analyses (matplotlib Agg rendering, imported only here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..graph._deps import require

__all__: list[str] = []


def _figure(nrows: int = 1, ncols: int = 1, **kwargs):
    # A bare Figure renders with Agg and touches no global pyplot state or backend.
    require("matplotlib", feature="analysis figures")
    from matplotlib.figure import Figure

    fig = Figure(figsize=kwargs.pop("figsize", (6, 4)), dpi=kwargs.pop("dpi", 120))
    return fig, fig.subplots(nrows, ncols, **kwargs)


def adjacency_sorted(adjacency, labels: np.ndarray, path: Path, *, title: str,
                     what: str = "module") -> Path:
    """Plot the adjacency with rows and columns sorted by a label (module, type)."""
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    a = adjacency[order][:, order].tocoo()
    fig, ax = _figure(figsize=(6, 6), dpi=120)
    n = adjacency.shape[0]
    if a.nnz:
        sc = ax.scatter(a.col, a.row, s=max(0.5, 2000 / max(n, 1) / 10), c=np.log10(a.data + 1),
                        cmap="viridis", marker="s", linewidths=0, zorder=1)
        fig.colorbar(sc, ax=ax, shrink=0.7, label="log10(synapses + 1)")
    sorted_labels = labels[order]
    bounds = np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 0.5
    # many small groups (cell types): faint lines, so the synapses stay visible
    color, lw = ("0.7", 0.5) if len(bounds) <= 30 else ("0.92", 0.3)
    for b in bounds:
        ax.axhline(b, color=color, lw=lw, zorder=0)
        ax.axvline(b, color=color, lw=lw, zorder=0)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel(f"postsynaptic neuron (sorted by {what})")
    ax.set_ylabel(f"presynaptic neuron (sorted by {what})")
    ax.set_title(title)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path)
    return path


def adjacency_by_module(adjacency, membership: np.ndarray, path: Path, *, title: str) -> Path:
    """Plot the adjacency with rows and columns sorted by module."""
    return adjacency_sorted(adjacency, membership, path, title=title, what="module")


def degree_distribution(deg: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Plot the complementary cumulative distributions of in-, out- and total degree."""
    fig, ax = _figure(figsize=(5.5, 4), dpi=120)
    for col in ("in_degree", "out_degree", "degree"):
        values = np.sort(deg[col].to_numpy())
        values = values[values > 0]
        if values.size == 0:
            continue
        ccdf = 1.0 - np.arange(values.size) / values.size
        ax.step(values, ccdf, where="post", label=col.replace("_", " "))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("degree k")
    ax.set_ylabel("P(K >= k)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path


def rich_club_curve(rc: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Plot phi(k), the null mean +- 2 sd, and the normalised coefficient."""
    fig, (ax1, ax2) = _figure(2, 1, figsize=(5.5, 6), dpi=120, sharex=True)
    k = rc.index.to_numpy()
    ax1.plot(k, rc["phi"], label="observed")
    ax1.plot(k, rc["phi_null_mean"], label="degree-preserving null")
    ax1.fill_between(k, rc["phi_null_mean"] - 2 * rc["phi_null_std"],
                     rc["phi_null_mean"] + 2 * rc["phi_null_std"], alpha=0.3, color="C1")
    ax1.set_ylabel("rich-club coefficient phi(k)")
    ax1.legend()
    ax1.set_title(title)
    ax2.plot(k, rc["phi_norm"], color="C2")
    sig = rc["p_value"] < 0.05
    ax2.scatter(k[sig.to_numpy()], rc["phi_norm"][sig], s=8, color="C3", label="p < 0.05", zorder=3)
    ax2.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax2.set_xlabel("degree k")
    ax2.set_ylabel("phi / phi_null")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path


def motif_profile(motif_table: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Bar chart of motif z-scores against the null ensemble."""
    z = motif_table["z"].astype(float)
    fig, ax = _figure(figsize=(8, 4), dpi=120)
    colors = ["C0" if induced else "C1" for induced in motif_table["induced"]]
    ax.bar(np.arange(len(z)), np.nan_to_num(z.to_numpy()), color=colors)
    ax.axhline(0, color="0.3", lw=0.8)
    for level in (-2, 2):
        ax.axhline(level, color="0.6", lw=0.6, ls="--")
    ax.set_xticks(np.arange(len(z)))
    ax.set_xticklabels(motif_table.index, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("z-score vs degree-preserving null")
    ax.set_title(title + "  (blue: induced triads, orange: named motifs)")
    fig.tight_layout()
    fig.savefig(path)
    return path
