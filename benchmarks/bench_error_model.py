"""Validate the error-aware statistics against the pipeline (issue #7).

For each generator seed: synth -> segment -> synapses -> graph with the shipped
networks, measure the reconstruction's error rates with `connectomix evaluate`, run
`connectomix.analysis.robustness(..., mode="inverse")` on the reconstructed graph at
those rates, and check whether each statistic's interval contains the value of the
ground-truth graph. The issue asks for >= 80 % coverage over 5 seeds.

    .venv/bin/python benchmarks/bench_error_model.py [--seeds 0 1 2 3 4] [--n 20] [--n-inner 3]

Rates (as `perturb` defines them): dropout = 1 - synapse recall; spurious = unmatched
predicted synapses / true synapses; merge = merged segments / true neurons; split =
split true neurons / true neurons (capped at 1: `perturb` splits a neuron at most once).
"""

import argparse
import shutil
from pathlib import Path

import numpy as np


def one(out: Path, seed: int, n: int, n_inner: int, synaptic_only: bool):
    from connectomix import pipeline
    from connectomix.analysis import default_statistics, robustness
    from connectomix.config import ClusterConfig
    from connectomix.synth import synthesize

    shutil.rmtree(out, ignore_errors=True)
    cl = ClusterConfig(scheduler="synchronous")
    synthesize(out, preset="demo", seed=seed)
    pipeline.segment_stage(out, cluster=cl, say=lambda m: None)
    pipeline.synapses_pipeline_stage(out, cluster=cl, say=lambda m: None)
    pipeline.graph_pipeline_stage(out, cluster=cl, say=lambda m: None)
    s = pipeline.evaluate_stage(out, compute_erl=False)
    rates = {
        "dropout": float(1 - s["synapse_recall"]),
        "spurious": float((s["synapse_n_pred"] - s["synapse_n_matched"]) / max(1, s["synapse_n_gt"])),
        "merge": float(min(1.0, s["n_merged_segments"] / max(1, s["n_gt_objects"]))),
        "split": float(min(1.0, s["n_split_objects"] / max(1, s["n_gt_objects"]))),
    }
    rec = pipeline.load_connectome(run=out)
    gt = pipeline.load_connectome(run=out, ground_truth=True)
    if synaptic_only:  # statistics over neurons that take part in at least one edge
        def active(c):
            ids = np.union1d(c.edges["pre_id"].to_numpy(), c.edges["post_id"].to_numpy())
            return c.subset(ids)
        rec, gt = active(rec), active(gt)
    res = robustness(rec, n=n, n_inner=n_inner, mode="inverse", seed=seed, **rates)
    truth = default_statistics(gt)(gt)
    rows = []
    for stat, r in res.iterrows():
        if stat == "top_hub_overlap":  # comparative: no ground-truth counterpart
            continue
        t = truth.get(stat, float("nan"))
        rows.append((stat, r["observed"], r["mean"], r["ci_low"], r["ci_high"], t,
                     bool(r["ci_low"] <= t <= r["ci_high"]) if np.isfinite(t) else None))
    return rates, rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--n-inner", type=int, default=3)
    p.add_argument("--synaptic-only", action="store_true", help="restrict both graphs to neurons with edges")
    p.add_argument("--out", default="/tmp/bench-error-model")
    args = p.parse_args()
    hits = []
    for seed in args.seeds:
        rates, rows = one(Path(args.out) / f"demo{seed}", seed, args.n, args.n_inner, args.synaptic_only)
        print(f"seed {seed}: rates " + ", ".join(f"{k} {v:.2f}" for k, v in rates.items()))
        print(f"  {'statistic':22s} {'observed':>10s} {'estimate':>10s} {'ci_low':>10s} {'ci_high':>10s} {'truth':>10s}  in")
        for stat, obs, est, lo, hi, t, inside in rows:
            print(f"  {stat:22s} {obs:10.4g} {est:10.4g} {lo:10.4g} {hi:10.4g} {t:10.4g}  {inside}")
            if inside is not None:
                hits.append(inside)
    print(f"coverage: {np.mean(hits):.0%} of {len(hits)} statistic-seed pairs contain the ground truth "
          f"(issue #7 target >= 80 %)")


if __name__ == "__main__":
    main()
