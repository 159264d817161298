"""Connectome analysis at whole-fly-brain scale: connectomix vs igraph and networkx.

The input: a seeded FlyWire-sized synthetic graph from
``connectomix.analysis.synthetic_edges`` (140,000 neurons, 3,000,000 directed edges,
power-law degree exponent ~2.3, hubs with > 5,000 partners, reciprocity ~0.17),
written as Parquet (``edges.parquet``, ``neurons.parquet``) before anything is timed.

Measured, each tool in a fresh subprocess (imports done before the clock starts;
memory is the process's peak resident set, ``VmHWM``, over the whole child, inputs
included):

- **pipeline**: load the edge list, summary statistics (reciprocity, degrees,
  clustering, largest strongly/weakly connected components), the strongly connected
  components alone, and Leiden modules. connectomix: ``read_edge_list``,
  ``summary``, scipy SCC on the cached adjacency, ``modules(method="leiden")``;
  igraph: ``Graph`` from the Parquet arrays, ``reciprocity``, degrees,
  ``transitivity_avglocal_undirected``, ``connected_components("strong"/"weak")``,
  ``community_leiden`` on the undirected weighted graph; networkx: ``DiGraph`` from
  the edge list, ``overall_reciprocity``, ``average_clustering``,
  ``strongly/weakly_connected_components``, ``louvain_communities`` (networkx has
  no Leiden), each step as far as it gets within ``--nx-timeout``.
- **triad census** of the whole graph: connectomix ``triad_census`` vs igraph
  ``triad_census`` (networkx's ``triadic_census`` is run on an induced subgraph of
  random neurons, beside the other two on the same subgraph, since it does not
  finish on the whole graph in reasonable time).
- **motifs**: triad census and named motifs with 100 degree-preserving null
  networks on C. elegans (Varshney 2011, from ``cect``): connectomix ``motifs``;
  igraph ``rewire`` + ``triad_census`` per null; networkx ``directed_edge_swap`` +
  ``triadic_census`` per null.
- **LIF**: 1 s of the Shiu et al. 2024 leaky integrate-and-fire network at
  dt = 0.1 ms on 100,000 neurons and 3,000,000 connections (synthetic, 500
  stimulated neurons): connectomix ``simulate_lif`` vs Brian2 (numpy code generation,
  run for ``--brian-ms`` and scaled to 1 s; say so in the table).

Targets (issue #7): load + summary + SCC + Leiden < 60 s; triad census >= 2x faster
than igraph; peak memory < 4 GB; motif z-scores with 100 nulls < 30 s; LIF <= 20 s.

Usage::

    .venv/bin/python benchmarks/bench_analysis.py            # FlyWire size (~1 h with peers)
    .venv/bin/python benchmarks/bench_analysis.py --quick    # 20,000 neurons, 300,000 edges
    .venv/bin/python benchmarks/bench_analysis.py --skip networkx brian2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGETS = {"pipeline": 60.0, "census_ratio": 2.0, "memory_gb": 4.0, "motifs": 30.0, "lif": 20.0}
TRIADS = ("003", "012", "102", "021D", "021U", "021C", "111D", "111U",
          "030T", "030C", "201", "120D", "120U", "120C", "210", "300")


# --------------------------------------------------------------------------- helpers
def _peak_gb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def _emit(step: str, seconds: float, **extra) -> None:
    """One JSON line per finished step, so a timed-out child still reports what it did."""
    print(json.dumps({"step": step, "seconds": seconds, "peak_gb": _peak_gb(), **extra}), flush=True)


class _Clock:
    def __init__(self):
        self.t = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        out, self.t = now - self.t, now
        return out


def _edges_arrays(data: str):
    import pyarrow.parquet as pq

    t = pq.read_table(os.path.join(data, "edges.parquet"), columns=["pre_id", "post_id", "n_synapses"])
    return (t.column("pre_id").to_numpy() - 1, t.column("post_id").to_numpy() - 1,
            t.column("n_synapses").to_numpy())


def _n_nodes(data: str) -> int:
    with open(os.path.join(data, "info.json")) as f:
        return json.load(f)["n"]


# --------------------------------------------------------------------------- children
def child_pipeline(tool: str, data: str) -> None:
    if tool == "connectomix":
        from scipy.sparse.csgraph import connected_components

        from connectomix.analysis import modules, read_edge_list, summary

        clock = _Clock()
        c = read_edge_list(os.path.join(data, "edges.parquet"), os.path.join(data, "neurons.parquet"))
        _emit("load", clock.lap(), n=c.n_neurons)
        s = summary(c)
        _emit("summary", clock.lap(), reciprocity=s["reciprocity"], largest_scc=s["largest_scc"],
              clustering=s["clustering"])
        _, labels = connected_components(c.adjacency("chemical", weight=None), directed=True,
                                          connection="strong")
        _emit("scc", clock.lap(), largest_scc=int(np.bincount(labels).max()))
        m = modules(c, kind="chemical", method="leiden", seed=0)
        _emit("leiden", clock.lap(), n_modules=m.n_modules, modularity=m.modularity)
    elif tool == "igraph":
        import igraph as ig

        clock = _Clock()
        pre, post, w = _edges_arrays(data)
        g = ig.Graph(n=_n_nodes(data), edges=np.column_stack([pre, post]), directed=True)
        g.es["weight"] = w
        _emit("load", clock.lap(), n=g.vcount())
        rec = g.reciprocity(ignore_loops=True, mode="default")
        g.degree(mode="in"), g.degree(mode="out"), g.strength(weights="weight")
        clus = g.transitivity_avglocal_undirected(mode="zero")
        g.transitivity_undirected()
        scc = max(g.connected_components(mode="strong").sizes())
        g.connected_components(mode="weak")
        _emit("summary", clock.lap(), reciprocity=rec, largest_scc=scc, clustering=clus)
        scc = max(g.connected_components(mode="strong").sizes())
        _emit("scc", clock.lap(), largest_scc=scc)
        u = g.as_undirected(mode="collapse", combine_edges={"weight": "sum"})
        part = u.community_leiden(objective_function="modularity", weights="weight", n_iterations=-1)
        _emit("leiden", clock.lap(), n_modules=len(part), modularity=u.modularity(part.membership, weights="weight"))
    elif tool == "networkx":
        import networkx as nx

        clock = _Clock()
        pre, post, w = _edges_arrays(data)
        g = nx.DiGraph()
        g.add_nodes_from(range(_n_nodes(data)))
        g.add_weighted_edges_from(zip(pre.tolist(), post.tolist(), w.tolist()))
        _emit("load", clock.lap(), n=g.number_of_nodes())
        rec = nx.overall_reciprocity(g)
        _emit("summary: reciprocity", clock.lap(), reciprocity=rec)
        scc = max(len(x) for x in nx.strongly_connected_components(g))
        max(len(x) for x in nx.weakly_connected_components(g))
        _emit("scc", clock.lap(), largest_scc=scc)
        clus = nx.average_clustering(g.to_undirected(as_view=True))
        _emit("summary: clustering", clock.lap(), clustering=clus)
        comms = nx.community.louvain_communities(g.to_undirected(), weight="weight", seed=0)
        _emit("louvain (no leiden in networkx)", clock.lap(), n_modules=len(comms))
    else:
        raise ValueError(tool)


def child_census(tool: str, data: str, subset: str) -> None:
    pre, post, _ = _edges_arrays(data)
    n = _n_nodes(data)
    if subset != "all":
        keep = np.zeros(n, dtype=bool)
        keep[np.random.default_rng(0).choice(n, size=int(subset), replace=False)] = True
        new = np.cumsum(keep) - 1
        inside = keep[pre] & keep[post]
        pre, post, n = new[pre[inside]], new[post[inside]], int(subset)
    clock = _Clock()
    if tool == "connectomix":
        import scipy.sparse as sp

        from connectomix.analysis._triads import census_from_matrix

        clock.lap()
        a = sp.csr_matrix((np.ones(len(pre)), (pre, post)), shape=(n, n))
        census = census_from_matrix(a)
    elif tool == "igraph":
        import igraph as ig

        g = ig.Graph(n=n, edges=np.column_stack([pre, post]), directed=True)
        clock.lap()
        census = dict(zip(TRIADS, (int(x) for x in g.triad_census())))
    elif tool == "networkx":
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        g.add_edges_from(zip(pre.tolist(), post.tolist()))
        clock.lap()
        census = {k: int(v) for k, v in nx.triadic_census(g).items()}
    else:
        raise ValueError(tool)
    _emit("census", clock.lap(), census=census, n=n, m=int(len(pre)))


def child_motifs(tool: str, n_null: str) -> None:
    from connectomix import datasets
    from connectomix.analysis._common import binary

    c = datasets.load("celegans-varshney2011")
    n_null = int(n_null)
    a = binary(c, "chemical").tocoo()
    edges = np.column_stack([a.row, a.col])
    n = c.n_neurons
    clock = _Clock()
    if tool == "connectomix":
        from connectomix.analysis import motifs

        table = motifs(c, n_null=n_null, seed=0)
        _emit("motifs", clock.lap(), z_030T=float(table.loc["030T", "z"]))
    elif tool == "igraph":
        import random

        import igraph as ig

        ig.set_random_number_generator(random.Random(0))
        g = ig.Graph(n=n, edges=edges, directed=True)
        observed = g.triad_census()
        null = []
        for _ in range(n_null):
            h = g.copy()
            h.rewire(10 * h.ecount(), "simple")
            null.append(list(h.triad_census()))
        null = np.array(null, dtype=float)
        z = (list(observed)[8] - null[:, 8].mean()) / null[:, 8].std(ddof=1)
        _emit("motifs", clock.lap(), z_030T=float(z))
    elif tool == "networkx":
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        g.add_edges_from(map(tuple, edges.tolist()))
        observed = nx.triadic_census(g)["030T"]
        null = []
        for i in range(n_null):
            h = g.copy()
            nx.directed_edge_swap(h, nswap=10 * h.number_of_edges(), max_tries=10**8, seed=i)
            null.append(nx.triadic_census(h)["030T"])
        null = np.array(null, dtype=float)
        _emit("motifs", clock.lap(), z_030T=float((observed - null.mean()) / null.std(ddof=1)))
    else:
        raise ValueError(tool)


def child_lif(tool: str, data: str, duration_ms: str) -> None:
    import pandas as pd

    duration_ms = float(duration_ms)
    edges = pd.read_parquet(os.path.join(data, "lif_edges.parquet"))
    neurons = pd.read_parquet(os.path.join(data, "lif_neurons.parquet"))
    stim = np.random.default_rng(1).choice(len(neurons), size=500, replace=False)
    if tool == "connectomix":
        from connectomix.analysis import simulate_lif
        from connectomix.graph import Connectome

        c = Connectome(neurons, edges)
        c.adjacency("chemical")  # building the matrix is loading, not simulating
        clock = _Clock()
        r = simulate_lif(c, stimulate=neurons["segment_id"].to_numpy()[stim], duration_ms=duration_ms, seed=0)
        _emit("lif", clock.lap(), mean_rate=float(r["rate_hz"].mean()),
              active=float((r["rate_hz"] > 0).mean()), duration_ms=duration_ms)
    elif tool == "brian2":
        import brian2 as b2
        from brian2 import Hz, Network, NeuronGroup, PoissonInput, SpikeMonitor, Synapses, mV, ms

        b2.prefs.codegen.target = "numpy"
        b2.seed(0)
        n = len(neurons)
        # stimulated neurons first, so that one PoissonInput drives them all
        order = np.concatenate([np.sort(stim), np.setdiff1d(np.arange(n), stim)])
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n)
        inhibitory = neurons["transmitter"].isin(["gaba", "glutamate"]).to_numpy()
        sign = np.where(inhibitory, -1.0, 1.0)
        pre_old = edges["pre_id"].to_numpy() - 1
        pre = position[pre_old]
        post = position[edges["post_id"].to_numpy() - 1]
        clock = _Clock()
        eqs = """
        dv/dt = (v_0 - v + g) / t_mbr : volt (unless refractory)
        dg/dt = -g / tau : volt (unless refractory)
        rfc : second
        """
        params = {"v_0": -52 * mV, "v_rst": -52 * mV, "v_th": -45 * mV, "t_mbr": 20 * ms, "tau": 5 * ms}
        neu = NeuronGroup(n, eqs, method="linear", threshold="v > v_th", reset="v = v_rst; g = 0 * mV",
                          refractory="rfc", namespace=params, dt=0.1 * ms)
        neu.v = -52 * mV
        neu.rfc = 2.2 * ms
        neu.rfc[:len(stim)] = 0 * ms
        syn = Synapses(neu, neu, "w_syn : volt", on_pre="g += w_syn", delay=1.8 * ms, dt=0.1 * ms)
        syn.connect(i=pre, j=post)
        syn.w_syn = sign[pre_old] * edges["n_synapses"].to_numpy() * 0.275 * mV
        objects = [neu, syn, PoissonInput(target=neu[:len(stim)], target_var="v", N=1, rate=150 * Hz,
                                          weight=0.275 * 250 * mV)]
        monitor = SpikeMonitor(neu, record=False)
        net = Network(*objects, monitor)
        setup = clock.lap()
        net.run(duration_ms * ms)
        counts = np.asarray(monitor.count)
        _emit("lif", clock.lap(), setup_s=setup, mean_rate=float(counts.mean() / (duration_ms / 1000)),
              active=float((counts > 0).mean()), duration_ms=duration_ms)
    else:
        raise ValueError(tool)


CHILDREN = {"pipeline": child_pipeline, "census": child_census, "motifs": child_motifs, "lif": child_lif}


def run_child(task: str, *args: str, timeout: float) -> list[dict]:
    cmd = [sys.executable, __file__, "--child", task, *args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out, err, timed_out, code = res.stdout, res.stderr, False, res.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, timed_out, code = "", True, 0
    steps = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if timed_out:
        steps.append({"step": "TIMEOUT", "seconds": float(timeout)})
    elif code != 0:
        steps.append({"step": "ERROR", "error": (err.strip().splitlines() or ["failed"])[-1]})
    return steps


# --------------------------------------------------------------------------- main
def _fmt(x, unit="s"):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.2f}" if unit == "s" else f"{x:.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 neurons, 300,000 edges; LIF 10,000 / 300,000")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--m", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subgraph", type=int, default=None, help="neurons in the networkx census subgraph")
    ap.add_argument("--skip", nargs="*", default=[], help="tools to skip: igraph networkx brian2")
    ap.add_argument("--timeout", type=float, default=1800.0, help="limit per child, seconds")
    ap.add_argument("--nx-timeout", type=float, default=600.0, help="limit per networkx child")
    ap.add_argument("--brian-ms", type=float, default=100.0, help="Brian2's simulated time (scaled to 1 s)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        CHILDREN[args.child[0]](*args.child[1:])
        return 0

    from connectomix.analysis import powerlaw_exponent, synthetic_edges

    n = args.n or (20_000 if args.quick else 140_000)
    m = args.m or (300_000 if args.quick else 3_000_000)
    n_lif, m_lif = (10_000, 300_000) if args.quick else (100_000, 3_000_000)
    sub = args.subgraph or (5_000 if args.quick else 20_000)
    peers = [t for t in ("igraph", "networkx") if t not in args.skip]
    results: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as data:
        clock = _Clock()
        neurons, edges = synthetic_edges(n, m, seed=args.seed)
        neurons.to_parquet(os.path.join(data, "neurons.parquet"))
        edges.to_parquet(os.path.join(data, "edges.parquet"))
        lif_neurons, lif_edges = synthetic_edges(n_lif, m_lif, seed=args.seed + 1)
        lif_neurons.to_parquet(os.path.join(data, "lif_neurons.parquet"))
        lif_edges.to_parquet(os.path.join(data, "lif_edges.parquet"))
        with open(os.path.join(data, "info.json"), "w") as f:
            json.dump({"n": n, "m": m}, f)
        pre, post = edges["pre_id"].to_numpy() - 1, edges["post_id"].to_numpy() - 1
        key = pre * n + post
        mutual = np.isin(post * n + pre, key).mean()
        deg_in, deg_out = np.bincount(post, minlength=n), np.bincount(pre, minlength=n)
        und = np.unique(np.minimum(pre, post) * n + np.maximum(pre, post))
        deg = np.bincount(np.concatenate([und // n, und % n]), minlength=n)
        gamma, kmin = powerlaw_exponent(deg)
        print(f"graph: {n:,} neurons, {m:,} edges, {int(edges['n_synapses'].sum()):,} synapses; "
              f"degree exponent {gamma:.2f} (k >= {kmin}), max degree {deg.max():,} "
              f"(in {deg_in.max():,}, out {deg_out.max():,}), reciprocity {mutual:.3f}, "
              f"sum of squared degrees {float(np.sum(deg.astype(float) ** 2)):.2e}; "
              f"made in {clock.lap():.1f} s (seed {args.seed})", flush=True)
        del edges, neurons, pre, post, key, lif_edges, lif_neurons

        def timeout_for(tool):
            return args.nx_timeout if tool == "networkx" else args.timeout

        for tool in ["connectomix"] + peers:
            print(f"pipeline: {tool} ...", flush=True)
            results.setdefault("pipeline", {})[tool] = run_child("pipeline", tool, data, timeout=timeout_for(tool))
        for tool in ["connectomix"] + [p for p in peers if p == "igraph"]:
            print(f"census (whole graph): {tool} ...", flush=True)
            results.setdefault("census", {})[tool] = run_child("census", tool, data, "all", timeout=args.timeout)
        for tool in ["connectomix"] + peers:
            print(f"census ({sub:,}-neuron subgraph): {tool} ...", flush=True)
            results.setdefault("census_sub", {})[tool] = run_child("census", tool, data, str(sub),
                                                                    timeout=timeout_for(tool))
        for tool in ["connectomix"] + peers:
            print(f"motifs: {tool} ...", flush=True)
            results.setdefault("motifs", {})[tool] = run_child("motifs", tool, "100", timeout=timeout_for(tool))
        lif_tools = ["connectomix"] + ([] if "brian2" in args.skip else ["brian2"])
        for tool in lif_tools:
            ms = "1000" if tool == "connectomix" else str(args.brian_ms)
            print(f"LIF: {tool} ...", flush=True)
            results.setdefault("lif", {})[tool] = run_child("lif", tool, data, ms, timeout=args.timeout)

    return report(results, n=n, m=m, n_lif=n_lif, m_lif=m_lif, sub=sub, quick=args.quick,
                  brian_ms=args.brian_ms)


def _step(rows: list[dict], name: str):
    for r in rows:
        if r.get("step") == name:
            return r
    return None


def _seconds(rows, names):
    """Sum of the named steps, or a string saying why there is none."""
    total = 0.0
    for name in names:
        r = _step(rows, name)
        if r is None:
            bad = _step(rows, "TIMEOUT") or _step(rows, "ERROR")
            if bad and bad["step"] == "TIMEOUT":
                return f">{bad['seconds']:.0f}"
            return "failed" if bad else "-"
        total += r["seconds"]
    return total


def report(results, *, n, m, n_lif, m_lif, sub, quick, brian_ms) -> int:
    def peak(rows):
        return max((r["peak_gb"] for r in rows if "peak_gb" in r), default=None)

    lines = []
    header = f"{'task':<46}{'connectomix':>12}{'igraph':>10}{'networkx':>10}{'igraph/cmx':>11}{'nx/cmx':>8}  target"
    lines.append(header)
    lines.append("-" * len(header))

    def ratio(peer, ours):
        if isinstance(ours, (int, float)) and ours > 0:
            if isinstance(peer, (int, float)):
                return f"{peer / ours:.1f}x"
            if isinstance(peer, str) and peer.startswith(">"):
                return f">{float(peer[1:]) / ours:.0f}x"
        return "-"

    def row(label, task, steps, target="", steps_nx=None, scale=None):
        res = results.get(task, {})
        vals = {}
        for tool in ("connectomix", "igraph", "networkx"):
            if tool not in res:
                vals[tool] = None
                continue
            names = steps_nx if (tool == "networkx" and steps_nx is not None) else steps
            vals[tool] = _seconds(res[tool], names)
        ours = vals["connectomix"]
        lines.append(f"{label:<46}{_fmt(ours):>12}{_fmt(vals['igraph']):>10}{_fmt(vals['networkx']):>10}"
                     f"{ratio(vals['igraph'], ours):>11}{ratio(vals['networkx'], ours):>8}  {target}")
        return vals

    size = f"{n // 1000}k/{m / 1e6:g}M"
    row(f"load edge list ({size})", "pipeline", ["load"])
    row("summary (recipr., degrees, clustering, SCC)", "pipeline", ["summary"],
        steps_nx=["summary: reciprocity", "scc", "summary: clustering"])
    row("strongly connected components", "pipeline", ["scc"])
    row("Leiden modules (networkx: Louvain)", "pipeline", ["leiden"],
        steps_nx=["louvain (no leiden in networkx)"])
    total = row("load + summary + SCC + Leiden", "pipeline", ["load", "summary", "scc", "leiden"],
                target=f"< {TARGETS['pipeline']:.0f} s",
                steps_nx=["load", "summary: reciprocity", "scc", "summary: clustering",
                          "louvain (no leiden in networkx)"])
    census = row(f"triad census, whole graph ({size})", "census", ["census"],
                 target=f">= {TARGETS['census_ratio']:.0f}x faster than igraph")
    row(f"triad census, {sub // 1000}k-neuron induced subgraph", "census_sub", ["census"])
    motif = row("motif z-scores, 100 nulls, C. elegans (280)", "motifs", ["motifs"],
                target=f"< {TARGETS['motifs']:.0f} s")
    lif = results.get("lif", {})
    ours_lif = _seconds(lif.get("connectomix", []), ["lif"])
    brian = _seconds(lif["brian2"], ["lif"]) if "brian2" in lif else None
    brian_1s = brian * 1000 / brian_ms if isinstance(brian, float) else brian
    lines.append(f"{f'LIF 1 s, dt 0.1 ms ({n_lif // 1000}k neurons, {m_lif / 1e6:g}M conn.)':<46}"
                 f"{_fmt(ours_lif):>12}{'':>10}{'':>10}{'':>11}{'':>8}  <= {TARGETS['lif']:.0f} s")
    if brian is not None:
        lines.append(f"{f'  Brian2 (numpy), {brian_ms:g} ms run x {1000 / brian_ms:g}':<46}"
                     f"{_fmt(brian_1s):>12}{'':>10}{'':>10}{ratio(brian_1s, ours_lif):>11}{'':>8}  "
                     "(ratio: Brian2 / connectomix)")
    mem = {tool: peak(rows) for tool, rows in results.get("pipeline", {}).items()}
    mem_c = {tool: peak(rows) for tool, rows in results.get("census", {}).items()}
    lines.append(f"{'peak memory, pipeline (GB)':<46}{_fmt(mem.get('connectomix')):>12}"
                 f"{_fmt(mem.get('igraph')):>10}{_fmt(mem.get('networkx')):>10}{'':>11}{'':>8}"
                 f"  < {TARGETS['memory_gb']:.0f} GB")
    lines.append(f"{'peak memory, whole-graph census (GB)':<46}{_fmt(mem_c.get('connectomix')):>12}"
                 f"{_fmt(mem_c.get('igraph')):>10}{'':>10}{'':>11}{'':>8}  < {TARGETS['memory_gb']:.0f} GB")
    print()
    print("\n".join(lines))

    # agreement and the facts behind the numbers
    print()
    pipe = results.get("pipeline", {})
    for tool, rows in pipe.items():
        s = _step(rows, "summary") or _step(rows, "summary: reciprocity")
        lv = _step(rows, "leiden") or _step(rows, "louvain (no leiden in networkx)")
        sc = _step(rows, "scc")
        print(f"{tool:<12} reciprocity {s.get('reciprocity', float('nan')) if s else '-'}, "
              f"largest SCC {sc.get('largest_scc') if sc else '-'}, "
              f"modules {lv.get('n_modules') if lv else '-'} (Q {lv.get('modularity', float('nan')) if lv else '-'})")
    agree = True
    for task in ("census", "census_sub"):
        got = {tool: (_step(rows, "census") or {}).get("census") for tool, rows in results.get(task, {}).items()}
        ours = got.get("connectomix")
        for tool, theirs in got.items():
            if tool != "connectomix" and theirs is not None and ours is not None:
                same = theirs == ours
                agree &= same
                print(f"{task}: connectomix census {'equals' if same else 'DIFFERS FROM'} {tool}'s")
    for tool, rows in results.get("motifs", {}).items():
        r = _step(rows, "motifs")
        print(f"motifs {tool:<12} z(030T) = {r['z_030T']:.1f}" if r else f"motifs {tool}: {rows[-1]}")
    for tool, rows in lif.items():
        r = _step(rows, "lif")
        if r:
            print(f"LIF {tool:<10} mean rate {r['mean_rate']:.2f} Hz, active {r['active']:.1%}, "
                  f"simulated {r['duration_ms']:g} ms")
    for task, tools in results.items():
        for tool, rows in tools.items():
            for r in rows:
                if r["step"] in ("ERROR", "TIMEOUT"):
                    print(f"{task} {tool}: {r['step']} {r.get('error', '')}")

    ok = True
    if isinstance(total["connectomix"], float):
        ok &= total["connectomix"] < TARGETS["pipeline"]
    if isinstance(census["connectomix"], float) and census.get("igraph") is not None:
        ig_s = census["igraph"]
        ig_s = float(ig_s[1:]) if isinstance(ig_s, str) and ig_s.startswith(">") else ig_s
        if isinstance(ig_s, float):
            ok &= ig_s / census["connectomix"] >= TARGETS["census_ratio"]
    if isinstance(motif["connectomix"], float):
        ok &= motif["connectomix"] < TARGETS["motifs"]
    if isinstance(ours_lif, float) and not quick:
        ok &= ours_lif <= TARGETS["lif"]
    ok &= all(v is None or v < TARGETS["memory_gb"] for v in (mem.get("connectomix"), mem_c.get("connectomix")))
    print(f"\ntargets {'met' if ok else 'MISSED'}; censuses agree: {'yes' if agree else 'NO'}"
          + (" (quick run: sizes are smaller than the targets assume)" if quick else ""))
    return 0 if ok and agree else 1


if __name__ == "__main__":
    sys.exit(main())
