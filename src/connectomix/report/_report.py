"""``report``: one self-contained HTML page that tells the story of a run.

The page works from disk with no server and no internet: figures are inline PNG
(base64), the stylesheet and the small script (sortable tables, a zoomable adjacency
matrix on a canvas) are inline. Every section says "not run" where its stage has not
produced anything yet, rather than failing or inventing numbers.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from ..evaluate import ground_truth_volume
from ._assets import CSS, JS

__all__ = ["report"]

logger = logging.getLogger(__name__)

#: Largest number of voxels read for the slice panels and the error hot spots.
_MAX_SCORE_VOXELS = 64 * 1024 * 1024
_MAX_TABLE_ROWS = 500


# ---------------------------------------------------------------------- small html helpers
def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return "–"
        if v == int(v) and abs(v) < 1e12:
            return f"{int(v):,}"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


def _cell(v) -> str:
    numeric = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
    if numeric:
        raw = float(v)
        data = "" if not math.isfinite(raw) else f' data-v="{raw!r}"'
        return f'<td class="n"{data}>{_e(_fmt(v))}</td>'
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "<td>–</td>"
    return f"<td>{_e(_fmt(v))}</td>"


def _table(df, *, sortable: bool = True, max_rows: int = _MAX_TABLE_ROWS, table_id: str | None = None) -> str:
    import pandas as pd

    if df is None or not len(df):
        return '<p class="muted">(empty)</p>'
    shown = df.head(max_rows)
    cls = ' class="sortable"' if sortable else ""
    tid = f' id="{_e(table_id)}"' if table_id else ""
    head = "".join(f"<th>{_e(c)}</th>" for c in shown.columns)
    rows = []
    for rec in shown.itertuples(index=False):
        cells = []
        for v in rec:
            if v is pd.NA or v is pd.NaT:
                v = None
            cells.append(_cell(v))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="muted">showing {max_rows:,} of {len(df):,} rows</p>' if len(df) > max_rows else ""
    return (f'<div class="scroll"><table{cls}{tid}><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + f"</tbody></table></div>{more}")


def _kv_table(pairs, *, sortable: bool = False) -> str:
    import pandas as pd

    return _table(pd.DataFrame(pairs, columns=["metric", "value"]), sortable=sortable)


def _cards(items) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card" data-key="{_e(k)}"><div class="v">{_e(_fmt(v))}</div><div class="k">{_e(k)}</div></div>'
        for k, v in items) + "</div>"


def _not_run(stage: str, hint: str = "") -> str:
    extra = f" {_e(hint)}" if hint else ""
    return f'<p class="notrun"><b>{_e(stage)}: not run.</b>{extra}</p>'


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(src: str, caption: str, *, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return (f'<figure><img src="{src}" alt="{_e(alt)}"{w}><figcaption>{_e(caption)}</figcaption></figure>')


def _file_img(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


# ---------------------------------------------------------------------- sections
def _header(run, tables) -> str:
    counts = []
    for name, label in (("neurons", "neurons"), ("synapses", "synapses"), ("edges", "edges")):
        if name in tables:
            counts.append((label, tables[name]))
    for name, label in (("gt_neurons", "GT neurons"), ("gt_synapses", "GT synapses"), ("gt_edges", "GT edges")):
        if name in tables:
            counts.append((label, tables[name]))
    return _cards([("arrays", len(run.arrays())), ("tables", len(tables)), *counts])


def _stages_section(run) -> str:
    import pandas as pd

    from ..run import STAGE_ORDER

    df = run.stages()
    df = df[~((df["stage"] == "report") & (df["status"] == "running"))]
    if not len(df):
        body = _not_run("stages", "No stage of the pipeline has been recorded in this run yet.")
        done = set()
    else:
        df = df.copy()
        started = pd.to_datetime(df["started"])
        finished = pd.to_datetime(df["finished"])
        df["seconds"] = (finished - started).dt.total_seconds().round(2)
        order = {s: i for i, s in enumerate(STAGE_ORDER)}
        df["_o"] = df["stage"].map(lambda s: order.get(s, len(order)))
        df = df.sort_values(["_o", "started"]).drop(columns="_o")
        df["started"] = started.dt.strftime("%Y-%m-%d %H:%M:%S")
        df["finished"] = finished.dt.strftime("%Y-%m-%d %H:%M:%S")
        body = _table(df[["stage", "status", "started", "finished", "seconds", "config_hash"]], table_id="stages")
        done = set(df["stage"])
    missing = [s for s in STAGE_ORDER if s not in done]
    if missing:
        body += ('<p class="muted">Not run in this run: ' + ", ".join(f"<code>{_e(s)}</code>" for s in missing)
                 + ".</p>")
    return body


def _config_section(run) -> str:
    if not run.config_path.exists():
        return _not_run("configuration", "The run has no run.yaml.")
    text = run.config_path.read_text()
    return f"<p>From <code>{_e(run.config_path)}</code>:</p><pre>{_e(text)}</pre>"


def _data_section(run, tables) -> str:
    import pandas as pd

    rows = []
    for name in run.arrays():
        try:
            v = run.open(name, require_complete=False)
            rows.append((name, " × ".join(str(s) for s in v.shape), str(v.dtype),
                         " × ".join(str(s) for s in v.voxel_size), " , ".join(str(s) for s in v.offset)))
        except Exception as e:  # a broken array is reported, not fatal to the report
            rows.append((name, f"unreadable: {e}", "", "", ""))
    arrays = pd.DataFrame(rows, columns=["array", "shape (z, y, x)", "dtype", "voxel size (nm)", "offset (nm)"])
    tabs = pd.DataFrame(sorted(tables.items()), columns=["table", "rows"])
    return "<h3>Arrays</h3>" + _table(arrays, table_id="arrays") + "<h3>Tables</h3>" + _table(tabs, table_id="tables")


def _label_colours(labels: np.ndarray) -> np.ndarray:
    """RGBA per voxel: a fixed pseudo-random colour per segment id, transparent for 0."""
    ids = labels.astype(np.uint64)
    h = (ids * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
    rgb = np.stack([(h >> np.uint64(s)) & np.uint64(0xFF) for s in (16, 8, 0)], axis=-1).astype(np.float32) / 255
    rgb = 0.25 + 0.75 * rgb
    alpha = np.where(ids > 0, 0.45, 0.0)[..., None]
    return np.concatenate([rgb, alpha], axis=-1)


def _slices_section(run, tables) -> str:
    from matplotlib.figure import Figure

    arrays = run.arrays()
    try:
        image_name = run.input_name()
    except Exception:
        return _not_run("import", "The run has no image (raw or aligned).")
    img = run.open(image_name, require_complete=False)
    if img.n_channel_axes:
        return _not_run("slices", f"'{image_name}' has channel axes; no slice panels.")
    nz = img.shape[0]
    zs = sorted({int(nz * f) for f in (0.25, 0.5, 0.75)} & set(range(nz))) or [0]
    columns = [(image_name, None)]
    if image_name == "aligned" and "raw" in arrays:
        columns.insert(0, ("raw (before alignment)", "raw"))
    seg_name = "segmentation" if "segmentation" in arrays else None
    gt_name = "gt_segmentation" if "gt_segmentation" in arrays else None
    if seg_name:
        columns.append(("segmentation", seg_name))
    if gt_name:
        columns.append(("ground truth", gt_name))
    syn = None
    for t in ("synapses", "gt_synapses"):
        if t in tables:
            syn = (t, run.read_table(t))
            break
    vs = np.asarray(img.voxel_size, dtype=float)
    off = np.asarray(img.offset, dtype=float)
    vols = {}
    for _, name in columns:
        if name is not None:
            # the ground truth of what the aligned sections show (mapped as evaluate maps it)
            vols[name] = (ground_truth_volume(run) if name == "gt_segmentation"
                          else run.open(name, require_complete=False))
    fig = Figure(figsize=(3.3 * len(columns), 3.3 * len(zs)), dpi=100)
    axes = fig.subplots(len(zs), len(columns), squeeze=False)
    for r, z in enumerate(zs):
        em = np.asarray(img.data[z])
        z_nm = off[0] + (z + 0.5) * vs[0]
        extent = (off[2], off[2] + em.shape[1] * vs[2], off[1] + em.shape[0] * vs[1], off[1])
        lo, hi = np.percentile(em, (1, 99)) if em.size else (0, 1)
        for c, (title, name) in enumerate(columns):
            ax = axes[r, c]
            if name == "raw":
                raw = vols["raw"]
                zr = min(z, raw.shape[0] - 1)
                ax.imshow(np.asarray(raw.data[zr]), cmap="gray", extent=extent, interpolation="nearest")
            else:
                ax.imshow(em, cmap="gray", vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
            if name in (seg_name, gt_name) and name is not None:
                lab = vols[name]
                # the label array may have another offset: read the section at this z in nm
                zl = int(round((z_nm - lab.offset[0]) / lab.voxel_size[0] - 0.5))
                if 0 <= zl < lab.shape[0]:
                    sl = np.asarray(lab.data[zl])
                    lext = (lab.offset[2], lab.offset[2] + sl.shape[1] * lab.voxel_size[2],
                            lab.offset[1] + sl.shape[0] * lab.voxel_size[1], lab.offset[1])
                    ax.imshow(_label_colours(sl), extent=lext, interpolation="nearest")
            if syn is not None and len(syn[1]):
                s = syn[1]
                near = np.abs(s["z"].to_numpy(float) - z_nm) <= vs[0] * 1.5
                if near.any():
                    ax.scatter(s["x"].to_numpy(float)[near], s["y"].to_numpy(float)[near], s=40,
                               facecolors="none", edgecolors="#ffea00", linewidths=1.5)
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{title}, z={z} ({z_nm:.0f} nm)", fontsize=8)
    fig.tight_layout()
    parts = [_img(_png(fig), (
        f"Sections of '{image_name}' ({' × '.join(map(str, img.shape))} voxels of "
        f"{' × '.join(map(str, img.voxel_size))} nm). Colours: segments; yellow circles: "
        + (f"synapses from '{syn[0]}' within 1.5 sections" if syn else "no synapse table")
        + "."), alt="EM slices with segmentation and synapse overlays")]
    notes = []
    if not seg_name:
        notes.append(_not_run("segment", "No 'segmentation' array: only the image (and ground truth, if any) is shown."))
    if syn is None:
        notes.append(_not_run("synapses", "No synapse table to overlay."))
    elif syn[0] == "gt_synapses":
        notes.append('<p class="muted">Synapse overlay shows the ground-truth synapses (no detected ones yet).</p>')
    return "".join(parts) + "".join(notes)


def _hot_spots(run) -> str:
    """Where the errors are: segments that merge ground-truth objects, objects split into segments."""
    import pandas as pd

    arrays = run.arrays()
    if not {"segmentation", "gt_segmentation"} <= set(arrays):
        return ""
    seg, gt = run.open("segmentation"), ground_truth_volume(run)
    if seg.shape != gt.shape or seg.offset != gt.offset or seg.voxel_size != gt.voxel_size:
        return '<p class="muted">Hot spots skipped: segmentation and ground truth are on different grids.</p>'
    if int(np.prod(seg.shape)) > _MAX_SCORE_VOXELS:
        return '<p class="muted">Hot spots skipped: volume larger than the report reads.</p>'
    s = seg.to_numpy().ravel()
    g = gt.to_numpy().ravel()
    keep = g != 0
    s, g = s[keep].astype(np.uint64), g[keep].astype(np.uint64)
    if not s.size:
        return ""
    pairs, counts = np.unique(np.stack([s, g]), axis=1, return_counts=True)
    df = pd.DataFrame({"seg": pairs[0], "gt": pairs[1], "n": counts})
    df = df[(df["n"] >= 100) & (df["seg"] != 0)]
    merges = df.groupby("seg").agg(n_gt_objects=("gt", "nunique"), voxels=("n", "sum"))
    merges = merges[merges["n_gt_objects"] > 1].sort_values("voxels", ascending=False).head(10)
    splits = df.groupby("gt").agg(n_segments=("seg", "nunique"), voxels=("n", "sum"))
    splits = splits[splits["n_segments"] > 1].sort_values("voxels", ascending=False).head(10)
    out = ["<h3>Where the errors are</h3>"]
    if len(merges):
        out.append("<p>Segments that merge several ground-truth objects (≥ 100 voxels each):</p>"
                   + _table(merges.reset_index().rename(columns={"seg": "segment_id"}), table_id="merges"))
    else:
        out.append("<p>No merge errors (no segment overlaps two ground-truth objects by ≥ 100 voxels).</p>")
    if len(splits):
        out.append("<p>Ground-truth objects split into several segments:</p>"
                   + _table(splits.reset_index().rename(columns={"gt": "gt_segment_id"}), table_id="splits"))
    else:
        out.append("<p>No split errors (no ground-truth object spans two segments by ≥ 100 voxels).</p>")
    return "".join(out)


_METRIC_GROUPS = (
    ("Segmentation", ("voi", "voi_split", "voi_merge", "adapted_rand_error", "rand_error", "rand_precision",
                      "rand_recall", "voi_boundary_ignored", "voi_boundary_ignored_split",
                      "voi_boundary_ignored_merge", "rand_error_boundary_ignored", "erl", "erl_nm", "n_gt_objects", "n_segments", "n_split_errors",
                      "n_merge_errors")),
    ("Synapses", ("synapse_precision", "synapse_recall", "synapse_f1")),
    ("Edges", ("edge_precision", "edge_recall", "edge_f1")),
)


def _evaluation_section(run) -> str:
    path = run.path / "evaluation.json"
    if not path.exists():
        return _not_run("evaluate", "No evaluation.json: run `connectomix evaluate RUN` on a run with ground truth.")
    try:
        scores = json.loads(path.read_text())
    except ValueError as e:
        return f'<p class="failed">evaluation.json is unreadable: {_e(e)}</p>'
    scalars = {k: v for k, v in scores.items() if isinstance(v, (int, float, bool)) or v is None}
    headline = []
    for group, keys in _METRIC_GROUPS:
        for k in keys:
            if k in scalars and scalars[k] is not None:
                headline.append((k, scalars[k]))
    out = [_cards(headline[:10])] if headline else []
    out.append("<h3>All scores</h3>" + _kv_table(sorted(scalars.items()), sortable=True))
    out.append(_hot_spots(run))
    return "".join(out)


def _shapes_section(run, tables) -> str:
    if "skeletons" not in tables:
        return _not_run("shapes", "No skeletons or meshes yet (connectomix.shapes.shapes_stage).")
    df = run.read_table("skeletons").sort_values("cable_length_nm", ascending=False)
    total = float(df["cable_length_nm"].sum())
    return (_cards([("skeletons", len(df)), ("total cable (µm)", round(total / 1000, 1)),
                    ("nodes", int(df["n_nodes"].sum()))])
            + "<p>Per segment (SWC in <code>skeletons/</code>, PLY in <code>meshes/</code>):</p>"
            + _table(df, table_id="skeletons"))


def _adjacency_data(run, tables, analysis_dir: Path | None):
    """Adjacency entries ordered by module (from the analysis) or by degree."""
    import pandas as pd

    prefix = "" if "edges" in tables else ("gt_" if "gt_edges" in tables else None)
    if prefix is None:
        return None
    edges = run.read_table(prefix + "edges")
    if "kind" in edges.columns and (edges["kind"] == "chemical").any():
        edges = edges[edges["kind"] == "chemical"]
    weight = edges["n_synapses"] if "n_synapses" in edges.columns else pd.Series(1, index=edges.index)
    ids = pd.unique(pd.concat([edges["pre_id"], edges["post_id"]]))
    groups, what = None, None
    table = analysis_dir / "tables" / "neurons.parquet" if analysis_dir else None
    if table is not None and table.exists():
        nt = pd.read_parquet(table)
        if "segment_id" in nt.columns and "module" in nt.columns:
            nt = nt.set_index("segment_id")
            known = [i for i in nt.index if i in set(ids)]
            if known:
                ids = np.array(known + [i for i in ids if i not in set(known)])
                mod = nt["module"].reindex(ids).fillna(-1).astype(int).to_numpy()
                order = np.argsort(mod, kind="stable")
                ids, groups, what = ids[order], mod[order], "module"
    if groups is None:
        deg = pd.concat([edges["pre_id"], edges["post_id"]]).value_counts()
        ids = np.asarray(deg.index)
    index = {int(i): k for k, i in enumerate(ids)}
    entries = [[index[int(p)], index[int(q)], int(w)] for p, q, w in zip(edges["pre_id"], edges["post_id"], weight)]
    bounds = [] if groups is None else [int(b) + 1 for b in np.flatnonzero(groups[1:] != groups[:-1])]
    return {"names": [str(int(i)) for i in ids], "entries": entries, "bounds": bounds,
            "groups": None if groups is None else [int(g) for g in groups], "what": what,
            "source": prefix + "edges"}


def _analysis_dirs(run) -> list[Path]:
    root = run.path / "analysis"
    if not root.is_dir():
        return []
    found = [root] if (root / "analysis.json").exists() else []
    found += sorted(p for p in root.iterdir() if p.is_dir() and (p / "analysis.json").exists())
    return found


def _analysis_block(d: Path, run) -> str:
    import pandas as pd

    a = json.loads((d / "analysis.json").read_text())
    name = a.get("name") or d.name
    rc = a.get("rich_club") or {}
    mods = a.get("modules") or {}
    cards = [("neurons", a.get("n_neurons")), ("edges", a.get("n_edges")), ("synapses", a.get("n_synapses")),
             ("reciprocity", a.get("reciprocity")), ("largest SCC", a.get("largest_scc")),
             ("hubs", (a.get("hubs") or {}).get("n_hubs"))]
    for key in ("n_modules", "modularity", "q"):
        if key in mods and isinstance(mods[key], (int, float)):
            cards.append((key.replace("n_", "").replace("q", "modularity"), mods[key]))
    rel = d.relative_to(run.path)
    out = [f'<h3>{_e(name)} <span class="muted">({_e(rel)}/)</span></h3>', _cards(cards)]
    figs = []
    captions = {
        "adjacency_by_module.png": "Adjacency sorted by module (rows: presynaptic, columns: postsynaptic).",
        "adjacency_by_type.png": "Adjacency sorted by connectivity-derived cell type.",
        "degree_distribution.png": "Degree distribution (complementary cumulative).",
        "motif_zscores.png": "Motif z-scores against degree-preserving null networks.",
        "rich_club.png": "Rich-club coefficient normalised by null networks.",
    }
    for rel_fig in a.get("figures", []):
        p = d / rel_fig
        if p.exists():
            figs.append(_img(_file_img(p), captions.get(p.name, p.stem), alt=p.stem, width=460))
    out.append('<div class="figs">' + "".join(figs) + "</div>" if figs else
               '<p class="muted">No figures were written for this analysis.</p>')
    motifs = (a.get("motifs") or {}).get("counts") or {}
    if motifs:
        mt = pd.DataFrame([{"motif": k, **v} for k, v in motifs.items()])
        out.append(f"<h3>Motifs</h3><p class='muted'>{_e((a.get('motifs') or {}).get('null_model', ''))}, "
                   f"{_e((a.get('motifs') or {}).get('n_null', ''))} null networks</p>" + _table(mt))
    curve = rc.get("curve") or []
    if curve:
        out.append("<h3>Rich club</h3>" + _table(pd.DataFrame(curve)))
    top = (a.get("hubs") or {}).get("top_by_degree") or []
    if top:
        out.append("<h3>Top neurons by degree</h3>" + _table(pd.DataFrame(top)))
    nt = d / "tables" / "neurons.parquet"
    if nt.exists():
        out.append("<h3>Neurons</h3>" + _table(pd.read_parquet(nt)))
    return "".join(out)


def _connectome_section(run, tables) -> str:
    out = []
    counts = [(k, tables[k]) for k in ("neurons", "synapses", "edges") if k in tables]
    if counts:
        out.append(_cards(counts))
    else:
        out.append(_not_run("graph", "No reconstructed connectome (neurons/synapses/edges tables) yet."))
    dirs = _analysis_dirs(run)
    main_dir = dirs[0] if dirs else None
    adj = _adjacency_data(run, tables, main_dir)
    if adj is not None and adj["names"]:
        n = len(adj["names"])
        size = 560
        payload = json.dumps(adj).replace("</", "<\\/")
        out.append(
            f"<h3>Interactive adjacency ({_e(adj['source'])}, {n} neurons, "
            f"{'sorted by module' if adj['groups'] else 'sorted by degree'})</h3>"
            '<p class="muted">Wheel: zoom, drag: pan, double-click: reset, hover: pre → post.</p>'
            f'<script type="application/json" id="adj-data">{payload}</script>'
            f'<div class="adj-wrap"><canvas class="adjacency" data-src="adj-data" width="{size}" height="{size}">'
            '</canvas><div class="adj-tip"></div></div>')
    if not dirs:
        out.append(_not_run("analyze", "No analysis.json under analysis/: run `connectomix analyze RUN`."))
    for d in dirs:
        out.append(_analysis_block(d, run))
    return "".join(out)


def _viewer_section(run) -> str:
    p = _e(run.path)
    exported = (run.path / "precomputed" / "state.json").exists()
    return (f"<p>3D view (neuroglancer, local): <code>connectomix view {p}</code> — prints a URL on "
            "127.0.0.1; stop it with Ctrl+C.</p>"
            f"<p>Static export for any web server: <code>connectomix export {p} --precomputed DIR</code> "
            "(image, segmentation, meshes, skeletons, synapses, and a viewer state in DIR/state.json).</p>"
            + ('<p class="muted">An export exists in <code>precomputed/</code>.</p>' if exported else ""))


# ---------------------------------------------------------------------- entry point
def _guard(title: str, fn, *args) -> str:
    """Render one section; a failure shows in the page instead of losing the report."""
    try:
        return fn(*args)
    except Exception as e:  # the report must degrade, not die, on one broken input
        logger.exception("report section %s failed", title)
        return f'<p class="failed">This section could not be made: {_e(type(e).__name__)}: {_e(e)}</p>'


def report(run_path, *, out=None) -> Path:
    """Write ``RUN/report/index.html``: a self-contained page about a run.

    Parameters
    ----------
    run_path : str or Path
        A run directory.
    out : str or Path, optional
        Where to write the page (default ``RUN/report/index.html``).

    Returns
    -------
    Path
        The page written.

    Raises
    ------
    RunDirectoryError
        If ``run_path`` is not a run.

    Notes
    -----
    Sections: overview, stages and timings (the ``stages`` table), configuration
    (run.yaml), data (arrays and tables), EM slices with segmentation, ground truth
    and synapse overlays (before/after alignment when ``aligned`` exists), evaluation
    (``evaluation.json``, merge and split hot spots), neuron shapes (``skeletons``
    table), the connectome (counts, an interactive adjacency, every analysis under
    ``analysis/``), and how to open the viewer. A section whose stage has not run
    says so ("not run").
    """
    from ..run import Run

    run = Run(run_path)
    with run.db(read_only=True) as con:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]
        tables = {n: int(con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}
    sections = [
        ("overview", "Overview", lambda: _header(run, tables)),
        ("stages", "Stages and timings", lambda: _stages_section(run)),
        ("config", "Configuration", lambda: _config_section(run)),
        ("data", "Data", lambda: _data_section(run, tables)),
        ("slices", "EM slices", lambda: _slices_section(run, tables)),
        ("evaluation", "Evaluation against ground truth", lambda: _evaluation_section(run)),
        ("shapes", "Neuron shapes", lambda: _shapes_section(run, tables)),
        ("connectome", "Connectome", lambda: _connectome_section(run, tables)),
        ("viewer", "Viewer", lambda: _viewer_section(run)),
    ]
    body = []
    with run.stage("report", {"out": None if out is None else str(out)}, force=True):
        for key, title, fn in sections:
            body.append(f'<section id="{key}"><h2>{_e(title)}</h2>{_guard(title, fn)}</section>')
        dest = _write_page(run, sections, body, out)
    return dest


def _write_page(run, sections, body, out) -> Path:
    nav = "".join(f'<a href="#{k}">{_e(t.split(" ")[0])}</a>' for k, t, _ in sections)
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    from .. import __version__ as version  # noqa: PLC0415 - lazy, the package is imported already

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>connectomix report: {_e(run.path.name)}</title>
<style>{CSS}</style></head>
<body><header><h1>connectomix run: {_e(run.path.name)}</h1>
<div class="sub">{_e(run.path.resolve())} · report made {_e(now)} · connectomix {_e(version)}</div></header>
<nav>{nav}</nav><main>
{''.join(body)}
</main><script>{JS}</script></body></html>
"""
    dest = Path(out) if out is not None else run.path / "report" / "index.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, dest)
    return dest
