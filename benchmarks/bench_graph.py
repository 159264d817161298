"""Graph building: the ``edges`` table from a large synapse table, DuckDB against pandas.

The job is what ``connectomix graph`` does with a run's synapses
(:func:`connectomix.graph.build_edges`): drop synapses without both partners or below
``min_score``, count synapses per (pre, post, kind) pair, keep pairs with at least
``min_synapses``, sort. Input: a synthetic synapse table of ``--n`` rows (default
5 x 10^7) over ``--neurons`` neurons (default 10^5; each neuron synapses onto ~100
partners, so about 5 synapses per edge as in fly connectomes; 1 % electrical),
``score`` uniform in [0, 1], written once as Parquet and loaded into a DuckDB file
(not timed: in a run the table lives there already).

Measured, each method in its own fresh process so that its peak memory is its own:

(a) connectomix ``build_edges`` (DuckDB SQL, in the run's database file), then the
    Parquet mirror of the result (``COPY ... TO``), as ``graph_stage`` does;
(b) the peer: pandas reads the same columns from the Parquet file and does the same
    filter + ``groupby(...).size()`` + sort;
(c) with ``--stage``: the whole ``graph_stage`` on a run holding the same table (no
    segmentation): synapse validation (ids, duplicates, kinds), ``edges``, ``neurons``
    with ``n_pre``/``n_post``, the Parquet mirrors and the stage record.

Printed: wall seconds, synapses/s, peak resident memory (``ru_maxrss`` of the process,
GB), the number of edges (which must agree) and the ratio pandas / DuckDB.

Target (issue #6): ``edges`` from 5 x 10^7 synapses in <= 60 s and <= 6 GB.

Usage::

    .venv/bin/python benchmarks/bench_graph.py                 # 5e7 synapses
    .venv/bin/python benchmarks/bench_graph.py --n 5000000     # quick
    .venv/bin/python benchmarks/bench_graph.py --stage         # also the whole graph_stage
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

MIN_SCORE = 0.2
MIN_SYNAPSES = 1

_DUCKDB = r"""
import json, resource, sys, time, duckdb
from connectomix.graph import build_edges
db, out, min_score, min_syn, mem = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
con = duckdb.connect(db)
if mem:
    con.execute(f"SET memory_limit = '{mem}'")
t0 = time.perf_counter()
n = build_edges(con, min_score=min_score, min_synapses=min_syn)
t1 = time.perf_counter()
con.execute(f"COPY edges TO '{out}' (FORMAT parquet)")
t2 = time.perf_counter()
con.close()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"edges": n, "seconds": t1 - t0, "mirror_seconds": t2 - t1, "peak_gb": rss}))
"""

_STAGE = r"""
import json, resource, sys, time
from connectomix.graph import graph_stage
t0 = time.perf_counter()
res = graph_stage(sys.argv[1], min_score=float(sys.argv[2]), min_synapses=int(sys.argv[3]), say=lambda _: None)
t1 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"edges": res.n_edges, "seconds": t1 - t0, "peak_gb": rss, "neurons": res.n_neurons}))
"""

_PANDAS = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
path, min_score, min_syn = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
s = pd.read_parquet(path, columns=["pre_id", "post_id", "kind", "score"])
t1 = time.perf_counter()
s = s[(s["pre_id"] != 0) & (s["post_id"] != 0) & ~(s["score"] < min_score)]
elec = (s["kind"] == "electrical").to_numpy()
pre, post = s["pre_id"].to_numpy(), s["post_id"].to_numpy()
s = pd.DataFrame({"pre_id": np.where(elec, np.minimum(pre, post), pre),
                  "post_id": np.where(elec, np.maximum(pre, post), post), "kind": s["kind"].to_numpy()})
e = s.groupby(["pre_id", "post_id", "kind"], sort=True).size().rename("n_synapses").reset_index()
e = e[e["n_synapses"] >= min_syn]
e["weight"] = e["n_synapses"].astype("float64")
t2 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"edges": len(e), "seconds": t2 - t1, "read_seconds": t1 - t0, "peak_gb": rss}))
"""


def make_table(workdir: str, n: int, neurons: int) -> tuple[str, str]:
    """Write the synthetic synapse table as Parquet and as a DuckDB file."""
    import duckdb

    parquet = os.path.join(workdir, "synapses.parquet")
    db = os.path.join(workdir, "connectome.duckdb")
    con = duckdb.connect(db)
    con.execute("SET threads = 2")
    con.execute(
        f"""
        CREATE TABLE synapses AS
        SELECT i + 1 AS synapse_id,
               1 + (hash(i) % {neurons})::BIGINT AS pre_id,
               1 + ((hash(i) % {neurons}) + (hash(i * 7 + 3) % 100)) % {neurons} AS post_id,
               ((hash(i * 13 + 5) % 1000000)::DOUBLE * 1e-6 * 2e4)::DOUBLE AS z,
               ((hash(i * 17 + 1) % 1000000)::DOUBLE * 1e-6 * 1e5)::DOUBLE AS y,
               ((hash(i * 19 + 2) % 1000000)::DOUBLE * 1e-6 * 1e5)::DOUBLE AS x,
               ((hash(i * 23 + 9) % 1000000)::DOUBLE * 1e-6)::DOUBLE AS score,
               (1 + hash(i * 29) % 2000)::BIGINT AS size_vx,
               CASE WHEN hash(i * 31) % 100 = 0 THEN 'electrical' ELSE 'chemical' END AS kind
        FROM range({n}) t(i)
        """
    )
    con.execute(f"COPY synapses TO '{parquet}' (FORMAT parquet)")
    con.close()
    return parquet, db


def run_child(code: str, *args) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=5e7, help="synapses (default 5e7)")
    ap.add_argument("--neurons", type=int, default=100_000)
    ap.add_argument("--memory-limit", default="", help="DuckDB memory_limit, e.g. 4GB (default: DuckDB's)")
    ap.add_argument("--no-pandas", action="store_true", help="skip the peer")
    ap.add_argument("--stage", action="store_true", help="also time the whole graph_stage")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    n = int(args.n)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_graph_")
    try:
        t0 = time.perf_counter()
        parquet, db = make_table(workdir, n, args.neurons)
        print(f"input: {n:,} synapses over {args.neurons:,} neurons ({os.path.getsize(parquet) / 2**30:.2f} GB "
              f"Parquet), made in {time.perf_counter() - t0:.1f} s; min_score {MIN_SCORE}, "
              f"min_synapses {MIN_SYNAPSES}; {os.cpu_count()} CPUs")
        duck = run_child(_DUCKDB, db, os.path.join(workdir, "edges.parquet"), MIN_SCORE, MIN_SYNAPSES,
                         args.memory_limit)
        rows = [("connectomix build_edges (DuckDB)", duck["seconds"], duck["peak_gb"], duck["edges"],
                 f"+ Parquet mirror {duck['mirror_seconds']:.1f} s")]
        if args.stage:
            from connectomix.run import Run

            run = Run.create(os.path.join(workdir, "run"))
            shutil.copy(db, run.db_path)
            st = run_child(_STAGE, run.path, MIN_SCORE, MIN_SYNAPSES)
            rows.append(("connectomix graph_stage (whole)", st["seconds"], st["peak_gb"], st["edges"],
                         f"validation + edges + {st['neurons']:,} neurons + mirrors"))
        if not args.no_pandas:
            pdr = run_child(_PANDAS, parquet, MIN_SCORE, MIN_SYNAPSES)
            rows.append(("pandas groupby (peer)", pdr["seconds"], pdr["peak_gb"], pdr["edges"],
                         f"+ Parquet read {pdr['read_seconds']:.1f} s"))
        print(f"{'method':<34} {'seconds':>8} {'synapses/s':>12} {'peak GB':>8} {'edges':>12}  note")
        for name, sec, gb, edges, note in rows:
            print(f"{name:<34} {sec:>8.1f} {n / sec:>12,.0f} {gb:>8.2f} {edges:>12,}  {note}")
        if any(r[3] != rows[0][3] for r in rows):
            print(f"MISMATCH: edge counts differ: {[r[3] for r in rows]}")
        if not args.no_pandas:
            peer = rows[-1]
            print(f"ratio pandas / DuckDB: time {peer[1] / rows[0][1]:.2f}x, memory {peer[2] / rows[0][2]:.2f}x")
        ok = duck["seconds"] + duck["mirror_seconds"] <= 60 and duck["peak_gb"] <= 6
        print(f"target (<= 60 s incl. mirror, <= 6 GB): {'met' if ok else 'NOT met'}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
