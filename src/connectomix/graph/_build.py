"""The ``graph`` stage: the ``neurons`` and ``edges`` tables of a run, built in DuckDB.

Inputs: the run's ``synapses`` table (from the ``synapses`` stage or imported), the
``segmentation`` array when there is one (neuron sizes, centroids and bounding boxes,
summed block-wise), and the ``skeletons`` table when there is one (its
``cable_length_nm`` becomes ``neurons.skeleton_length_nm``).

Outputs (DuckDB ``RUN/connectome.duckdb`` and Parquet ``RUN/tables/<name>/``):

- ``neurons``: ``segment_id, size_vx, centroid_z/_y/_x, bbox_z0/_y0/_x0/_z1/_y1/_x1``
  (nm; ``*1`` is the exclusive end), ``n_pre, n_post`` (chemical synapses passing
  ``min_score``, both partners known), ``cell_class`` (``unknown``), ``cell_type``, ``transmitter``
  (``""``: the pipeline does not type cells), ``skeleton_length_nm`` (NULL without
  skeletons);
- ``edges``: ``pre_id, post_id, kind, n_synapses, weight`` (= ``n_synapses``, as in
  neuPrint's ConnectsTo) from the synapses with ``score >= min_score`` and both
  partners known, pairs with at least ``min_synapses``; electrical pairs are stored
  once with ``pre_id <= post_id``;
- ``synapses`` is validated and left as it is (all detections, thresholds not applied).

The thresholds are recorded under ``graph`` in ``run.yaml``. Changing them re-runs only
the aggregation: the segmentation statistics are reused while the segmentation is
unchanged, and synapses are never detected again.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import ConfigError, TableFormatError, TableNotFoundError
from ..volume import write_token

__all__ = ["GraphResult", "graph_stage", "build_edges", "segment_statistics", "connectome_from_run",
           "NEURON_GEOMETRY"]

_SCRATCH = (".scratch", "graph")
#: Geometry columns of ``neurons`` that come from the segmentation.
NEURON_GEOMETRY = ("size_vx", "centroid_z", "centroid_y", "centroid_x", "bbox_z0", "bbox_y0", "bbox_x0",
                   "bbox_z1", "bbox_y1", "bbox_x1")


@dataclass
class GraphResult:
    """What :func:`graph_stage` did.

    Attributes
    ----------
    n_neurons, n_edges : int
        Rows of ``neurons`` and ``edges``.
    n_synapses : int
        Rows of ``synapses``.
    n_synapses_used : int
        Synapses counted in ``edges`` (score and partners pass, before ``min_synapses``).
    geometry_reused : bool
        True when the segmentation statistics came from the previous build.
    seconds : dict
        Wall time of ``geometry``, ``edges``, ``neurons`` and ``total``.
    """

    n_neurons: int
    n_edges: int
    n_synapses: int
    n_synapses_used: int
    geometry_reused: bool
    seconds: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- SQL
def build_edges(con, *, min_score: float = 0.0, min_synapses: int = 1, synapses: str = "synapses",
                out: str = "edges") -> int:
    """Aggregate a synapse table into an edge table with DuckDB; return its row count.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
    min_score : float
        Synapses with a lower ``score`` are left out (a NULL score passes).
    min_synapses : int
        Pairs with fewer synapses are left out.
    synapses : str
        Table or view with ``pre_id, post_id, kind, score``.
    out : str
        The table made (replaced): ``pre_id, post_id, kind, n_synapses, weight``,
        sorted by ``pre_id, post_id, kind``.

    Notes
    -----
    One hash aggregation over the synapses (DuckDB spills it to disk beyond its
    memory limit), then a sort of the (much shorter) edge list.
    """
    con.execute(
        f"""
        CREATE OR REPLACE TABLE "{out}" AS
        WITH s AS (
            SELECT CASE WHEN kind = 'electrical' THEN least(pre_id, post_id) ELSE pre_id END AS pre_id,
                   CASE WHEN kind = 'electrical' THEN greatest(pre_id, post_id) ELSE post_id END AS post_id,
                   kind
            FROM "{synapses}"
            WHERE pre_id <> 0 AND post_id <> 0 AND coalesce(score >= $min_score, true)
        )
        SELECT pre_id::BIGINT AS pre_id, post_id::BIGINT AS post_id, kind::VARCHAR AS kind,
               count(*)::BIGINT AS n_synapses, count(*)::DOUBLE AS weight
        FROM s
        GROUP BY pre_id, post_id, kind
        HAVING count(*) >= $min_synapses
        ORDER BY pre_id, post_id, kind
        """,
        {"min_score": float(min_score), "min_synapses": int(min_synapses)},
    )
    return con.execute(f'SELECT count(*) FROM "{out}"').fetchall()[0][0]


def _columns(con, table: str) -> list[str]:
    return [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]


def _mirror(con, run, name: str) -> None:
    """Write DuckDB table ``name`` to ``RUN/tables/<name>/part-0.parquet`` (replacing the folder atomically)."""
    d = run.table_dir(name)
    tmp = d.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    target = str(tmp / "part-0.parquet").replace("'", "''")
    con.execute(f"COPY \"{name}\" TO '{target}' (FORMAT parquet)")
    shutil.rmtree(d, ignore_errors=True)
    os.replace(tmp, d)


# ----------------------------------------------------------------------------- geometry
def stats_kernel(block, inputs, *, voxel_size, offset) -> dict:
    """Per-segment voxel count, summed voxel centres (nm) and bounding box (voxels) of one block."""
    import cc3d
    import fastremap
    import pandas as pd

    vol = inputs["segmentation"]
    seg = np.ascontiguousarray(vol.data)
    vs = np.asarray(voxel_size, np.float64)
    origin = (np.asarray(vol.offset, np.int64) - np.asarray(offset, np.int64)) // np.asarray(voxel_size, np.int64)
    labels, remap = fastremap.renumber(seg, preserve_zero=True, in_place=False)
    ids = np.zeros(len(remap) + 1, np.uint64)
    for old, new in remap.items():
        ids[new] = old
    stats = cc3d.statistics(labels)
    counts = np.asarray(stats["voxel_counts"], np.int64)
    present = np.flatnonzero(counts)
    present = present[(present > 0) & (ids[present] != 0)]
    if not len(present):
        return {"segment_stats": None}
    cent = np.asarray(stats["centroids"], np.float64)[present] + origin  # global voxel coordinates
    boxes = [stats["bounding_boxes"][i] for i in present]
    lo = np.array([[s.start for s in b] for b in boxes], np.int64) + origin
    hi = np.array([[s.stop for s in b] for b in boxes], np.int64) + origin
    n = counts[present]
    pos = np.asarray(offset, np.float64) + (cent + 0.5) * vs
    df = pd.DataFrame({"segment_id": ids[present].astype(np.int64), "n": n})
    for k, axis in enumerate("zyx"):
        df[f"s{axis}"] = pos[:, k] * n
        df[f"lo_{axis}"] = lo[:, k]
        df[f"hi_{axis}"] = hi[:, k]
    return {"segment_stats": df}


def segment_statistics(run, segmentation: str = "segmentation", *, cluster=None, progress=None, block_shape=None):
    """Size, centroid and bounding box (nm) of every segment, summed block-wise.

    Parameters
    ----------
    run : Run
    segmentation : str
        The label array.
    cluster : ClusterConfig, optional
        Where the blocks run (default: in this process).
    progress : callable ``(n_done, n_total)``, optional
    block_shape : sequence of int, optional
        Voxels, a multiple of the array's chunks; default about 64 x 512 x 512.

    Returns
    -------
    DataFrame
        ``segment_id`` and :data:`NEURON_GEOMETRY`, sorted by ``segment_id``.
    """
    import duckdb

    from ..blockwise import run_blockwise, Input
    from ..config import ClusterConfig
    from ..geometry import Coordinate
    from ..run import Run
    from ..volume import Volume

    cluster = ClusterConfig(scheduler="synchronous") if cluster is None else cluster
    vol: Volume = run.open(segmentation)
    if vol.n_channel_axes or not np.issubdtype(vol.dtype, np.integer):
        from ..errors import VolumeError

        raise VolumeError(f"'{segmentation}' must be a (Z, Y, X) integer label array; got {vol.shape} {vol.dtype}")
    chunks = tuple((vol.chunks or vol.shape)[-3:])
    if block_shape is None:
        block_shape = tuple(max(c, min(s, t) // c * c) for s, c, t in zip(vol.shape, chunks, (64, 512, 512)))
    scratch = Run.create(run.path.joinpath(*_SCRATCH))
    try:
        run_blockwise(
            functools.partial(stats_kernel, voxel_size=tuple(vol.voxel_size), offset=tuple(vol.offset)),
            task="graph-stats", inputs={"segmentation": Input(vol.ref())}, tables=["segment_stats"],
            total_roi=vol.roi, block_shape=Coordinate(block_shape) * vol.voxel_size, run_dir=scratch.path,
            scheduler=cluster.scheduler or None, workers=cluster.workers, on_block_done=progress,
            config={"segmentation": segmentation, "shape": list(vol.shape)},
        )
        files = sorted(scratch.table_dir("segment_stats").glob("*.parquet"))
        vz, vy, vx = (float(v) for v in vol.voxel_size)
        oz, oy, ox = (float(o) for o in vol.offset)
        con = duckdb.connect()
        try:
            if not files:
                return con.execute(
                    "SELECT 0::BIGINT AS segment_id, 0::BIGINT AS size_vx, " +
                    ", ".join(f"0.0::DOUBLE AS {c}" for c in NEURON_GEOMETRY[1:]) + " WHERE false").df()
            return con.execute(
                f"""
                SELECT segment_id::BIGINT AS segment_id, sum(n)::BIGINT AS size_vx,
                       sum(sz) / sum(n) AS centroid_z, sum(sy) / sum(n) AS centroid_y, sum(sx) / sum(n) AS centroid_x,
                       {oz} + min(lo_z) * {vz} AS bbox_z0, {oy} + min(lo_y) * {vy} AS bbox_y0,
                       {ox} + min(lo_x) * {vx} AS bbox_x0, {oz} + max(hi_z) * {vz} AS bbox_z1,
                       {oy} + max(hi_y) * {vy} AS bbox_y1, {ox} + max(hi_x) * {vx} AS bbox_x1
                FROM read_parquet(?)
                GROUP BY segment_id ORDER BY segment_id
                """, [[str(f) for f in files]]).df()
        finally:
            con.close()
    finally:
        shutil.rmtree(scratch.path, ignore_errors=True)
        parent = run.path.joinpath(_SCRATCH[0])
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


# ----------------------------------------------------------------------------- checks
def _check_synapses(con, roi) -> int:
    """Validate the run's synapse table in SQL; return its row count."""
    cols = _columns(con, "synapses")
    need = ["synapse_id", "pre_id", "post_id"]
    missing = [c for c in need if c not in cols]
    if missing:
        raise TableFormatError(f"synapses table lacks column(s) {missing}; found {cols}")
    n = con.execute("SELECT count(*) FROM synapses").fetchall()[0][0]
    for c in need:
        bad = con.execute(f"SELECT count(*) FROM synapses WHERE {c} IS NULL OR {c} < 0").fetchall()[0][0]
        if bad:
            raise TableFormatError(f"synapses.{c} has {bad} missing or negative value(s)")
    dup = con.execute(
        "SELECT synapse_id, count(*) FROM synapses GROUP BY synapse_id HAVING count(*) > 1 ORDER BY synapse_id LIMIT 5"
    ).fetchall()
    if dup:
        n_dup = con.execute("SELECT count(*) - count(DISTINCT synapse_id) FROM synapses").fetchall()[0][0]
        raise TableFormatError(
            f"synapses.synapse_id must be unique; {n_dup} duplicate row(s), e.g. id(s) {[int(r[0]) for r in dup]}"
        )
    if "kind" in cols:
        kinds = [r[0] for r in con.execute(
            "SELECT DISTINCT kind FROM synapses WHERE kind IS NULL OR kind NOT IN ('chemical', 'electrical') LIMIT 5"
        ).fetchall()]
        if kinds:
            raise TableFormatError(f"synapses.kind must be 'chemical' or 'electrical'; found {kinds}")
    if roi is not None and all(c in cols for c in "zyx"):
        (z0, y0, x0), (z1, y1, x1) = tuple(roi.begin), tuple(roi.end)
        where = (f"NOT (z >= {z0} AND z < {z1} AND y >= {y0} AND y < {y1} AND x >= {x0} AND x < {x1}) "
                 "OR z IS NULL OR y IS NULL OR x IS NULL OR isnan(z::DOUBLE) OR isnan(y::DOUBLE) OR isnan(x::DOUBLE)")
        n_out = con.execute(f"SELECT count(*) FROM synapses WHERE {where}").fetchall()[0][0]
        if n_out:
            ex = con.execute(f"SELECT synapse_id, z, y, x FROM synapses WHERE {where} ORDER BY synapse_id LIMIT 1"
                             ).fetchall()[0]
            raise TableFormatError(
                f"{n_out} synapse(s) lie outside the volume {roi} (nm, z y x) or lack a position, e.g. "
                f"synapse {int(ex[0])} at (z, y, x) = ({ex[1]}, {ex[2]}, {ex[3]}) nm"
            )
    return n


# ----------------------------------------------------------------------------- driver
def graph_stage(
    run_path,
    *,
    min_score: float = 0.0,
    min_synapses: int = 1,
    segmentation: str = "segmentation",
    cluster=None,
    progress: Callable[[int, int], None] | None = None,
    say: Callable[[str], None] = print,
    force: bool = False,
) -> GraphResult | None:
    """Build the ``neurons`` and ``edges`` tables of a run from its synapses.

    Parameters
    ----------
    run_path : path
        The run directory; it needs a ``synapses`` table.
    min_score : float
        Synapses with a lower ``score`` count in neither ``edges`` nor
        ``n_pre``/``n_post`` (which count chemical synapses only, as neuPrint does).
    min_synapses : int >= 1
        Edges with fewer synapses are left out.
    segmentation : str
        The label array the neuron geometry comes from; without it neurons are
        the partner ids of the synapses and their geometry is NULL.
    cluster : ClusterConfig, optional
        Where the segmentation statistics run (default: in this process).
    progress : callable ``(n_done, n_total)``, optional
    say : callable
        Receives one summary line.
    force : bool
        Run even if the stage finished with this configuration before.

    Returns
    -------
    GraphResult, or None when the stage was already done with this configuration.

    Raises
    ------
    TableNotFoundError
        If the run has no ``synapses`` table (names the ``synapses`` stage).
    TableFormatError
        For duplicate synapse ids, synapses outside the volume, bad ids or kinds,
        or partner ids absent from the segmentation.
    ConfigError
        For invalid thresholds.
    """
    from ..run import Run

    t_start = time.perf_counter()
    run = Run(run_path)
    if not (isinstance(min_score, (int, float)) and math.isfinite(min_score)):
        raise ConfigError(f"graph.min_score must be a finite number; got {min_score!r}")
    if isinstance(min_synapses, bool) or not isinstance(min_synapses, (int, np.integer)) or min_synapses < 1:
        raise ConfigError(f"graph.min_synapses must be an integer >= 1; got {min_synapses!r}")
    tables = run.tables()
    if "synapses" not in tables:
        raise TableNotFoundError(
            f"run {run.path} has no 'synapses' table: the `synapses` stage has not run "
            f"(run `connectomix synapses {run.path}` first)"
        )
    has_seg = segmentation in run.arrays()
    seg_token = write_token(run.open(segmentation)) if has_seg else None
    cfg = {"min_score": float(min_score), "min_synapses": int(min_synapses),
           "segmentation": segmentation if has_seg else None, "segmentation_token": seg_token}
    previous = run.read_config().get("graph", {})
    with run.stage("graph", cfg, force=force) as st:
        if st.skipped:
            say("graph: already done with this configuration, skipped")
            return None
        seconds = {}
        roi = run.open(segmentation).roi if has_seg else None
        with run.db() as con:
            n_syn = _check_synapses(con, roi)
        # geometry: reuse the previous build's while the segmentation is unchanged
        t0 = time.perf_counter()
        geometry, reused = None, False
        if has_seg:
            if (previous.get("segmentation") == segmentation and previous.get("segmentation_token") == seg_token
                    and "neurons" in tables):
                old = run.read_table("neurons")
                if all(c in old.columns for c in ("segment_id",) + NEURON_GEOMETRY):
                    geometry, reused = old[["segment_id", *NEURON_GEOMETRY]], True
            if geometry is None:
                geometry = segment_statistics(run, segmentation, cluster=cluster, progress=progress)
        seconds["geometry"] = time.perf_counter() - t0

        with run.db() as con:
            cols = _columns(con, "synapses")
            kind = "kind" if "kind" in cols else "'chemical'"
            score = "score" if "score" in cols else "NULL::DOUBLE"
            con.execute(f"CREATE OR REPLACE TEMP VIEW syn AS SELECT pre_id, post_id, {kind} AS kind, "
                        f"{score} AS score FROM synapses")
            t0 = time.perf_counter()
            n_edges = build_edges(con, min_score=min_score, min_synapses=min_synapses, synapses="syn")
            n_used = con.execute(
                "SELECT count(*) FROM syn WHERE pre_id <> 0 AND post_id <> 0 AND coalesce(score >= ?, true)",
                [float(min_score)]).fetchall()[0][0]
            seconds["edges"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            _build_neurons(con, geometry, tables, min_score)
            seconds["neurons"] = time.perf_counter() - t0
            n_neurons = con.execute("SELECT count(*) FROM neurons").fetchall()[0][0]
            _mirror(con, run, "edges")
            _mirror(con, run, "neurons")
        seconds["total"] = time.perf_counter() - t_start
        say(f"graph: {n_neurons} neurons, {n_edges} edges from {n_used} of {n_syn} synapses "
            f"(min_score {min_score:g}, min_synapses {min_synapses}) in {seconds['total']:.1f} s "
            "-> tables/neurons, tables/edges")
        return GraphResult(n_neurons, n_edges, n_syn, n_used, reused, seconds)


def _build_neurons(con, geometry, tables, min_score: float) -> None:
    counts = """
        SELECT id, sum(pre)::BIGINT AS n_pre, sum(post)::BIGINT AS n_post FROM (
            SELECT pre_id AS id, 1 AS pre, 0 AS post FROM syn
            WHERE pre_id <> 0 AND post_id <> 0 AND kind = 'chemical' AND coalesce(score >= $min_score, true)
            UNION ALL
            SELECT post_id AS id, 0 AS pre, 1 AS post FROM syn
            WHERE pre_id <> 0 AND post_id <> 0 AND kind = 'chemical' AND coalesce(score >= $min_score, true)
        ) GROUP BY id
    """
    if geometry is not None:
        con.register("geometry_df", geometry)
        con.execute("CREATE OR REPLACE TEMP TABLE geometry AS SELECT * FROM geometry_df")
        con.unregister("geometry_df")
        unknown = con.execute(
            "SELECT DISTINCT id FROM (SELECT pre_id AS id FROM syn UNION ALL SELECT post_id FROM syn) "
            "WHERE id <> 0 AND id NOT IN (SELECT segment_id FROM geometry) ORDER BY id LIMIT 5").fetchall()
        if unknown:
            n_unknown = con.execute(
                "SELECT count(DISTINCT id) FROM (SELECT pre_id AS id FROM syn UNION ALL SELECT post_id FROM syn) "
                "WHERE id <> 0 AND id NOT IN (SELECT segment_id FROM geometry)").fetchall()[0][0]
            raise TableFormatError(
                f"synapses refer to {n_unknown} segment id(s) absent from the segmentation, e.g. "
                f"{[int(r[0]) for r in unknown]}: the synapse table was made from another segmentation; "
                "run the `synapses` stage again"
            )
    else:
        geo_cols = ", ".join(f"NULL::{'BIGINT' if c == 'size_vx' else 'DOUBLE'} AS {c}" for c in NEURON_GEOMETRY)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE geometry AS SELECT DISTINCT id::BIGINT AS segment_id, "
            f"{geo_cols} FROM (SELECT pre_id AS id FROM syn UNION SELECT post_id FROM syn) WHERE id <> 0")
    if "skeletons" in tables and "cable_length_nm" in _columns(con, "skeletons"):
        skel = ("LEFT JOIN (SELECT segment_id::BIGINT AS sid, sum(cable_length_nm)::DOUBLE AS len "
                "FROM skeletons GROUP BY 1) k ON k.sid = g.segment_id")
        length = "k.len"
    else:
        skel, length = "", "NULL::DOUBLE"
    con.execute(
        f"""
        CREATE OR REPLACE TABLE neurons AS
        WITH c AS ({counts})
        SELECT g.segment_id::BIGINT AS segment_id, {", ".join("g." + c for c in NEURON_GEOMETRY)},
               coalesce(c.n_pre, 0)::BIGINT AS n_pre, coalesce(c.n_post, 0)::BIGINT AS n_post,
               'unknown' AS cell_class, '' AS cell_type, '' AS transmitter, {length} AS skeleton_length_nm
        FROM geometry g LEFT JOIN c ON c.id = g.segment_id {skel}
        ORDER BY g.segment_id
        """,
        {"min_score": float(min_score)},
    )


# ----------------------------------------------------------------------------- reading
def connectome_from_run(run_path):
    """The :class:`~connectomix.graph.Connectome` of a run's ``neurons``, ``edges`` and ``synapses`` tables.

    Synapses without a known partner (id 0) are left out of ``Connectome.synapses``
    (they stay in the run's table); ``meta`` says how many, and holds the run's
    ``graph`` configuration (the thresholds). Geometry columns that the run could
    not fill (no segmentation) are dropped.

    Raises
    ------
    TableNotFoundError
        If the ``graph`` stage has not run (no ``neurons`` or ``edges`` table).
    TableFormatError
        For a malformed table, e.g. edges that refer to unknown neuron ids.
    """
    from ..run import Run
    from ._connectome import Connectome

    run = Run(run_path)
    tables = run.tables()
    missing = [t for t in ("neurons", "edges") if t not in tables]
    if missing:
        raise TableNotFoundError(
            f"run {run.path} has no {' and no '.join(repr(m) for m in missing)} table: the `graph` stage has not "
            f"run (run `connectomix graph {run.path}` first)"
        )
    neurons = run.read_table("neurons")
    edges = run.read_table("edges")
    handling = []
    empty = [c for c in NEURON_GEOMETRY if c in neurons.columns and neurons[c].isna().all() and len(neurons)]
    if empty:
        neurons = neurons.drop(columns=empty)
        handling.append("no segmentation: neuron geometry columns left out")
    synapses = None
    if "synapses" in tables:
        synapses = run.read_table("synapses")
        unassigned = (synapses["pre_id"] == 0) | (synapses["post_id"] == 0)
        if unassigned.any():
            synapses = synapses[~unassigned]
            handling.append(f"left out {int(unassigned.sum())} synapse(s) without a known partner (id 0)")
    meta = {"source": "run", "run": str(run.path), "graph": run.read_config().get("graph", {}),
            "handling": handling}
    return Connectome(neurons, edges, synapses, name=run.path.name, meta=meta)
