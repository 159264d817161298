"""Segmentation and synapse quality of the shipped networks on the frozen eval set.

For each eval seed (and the `hard` preset, outside the training distribution): synth ->
segment (shipped affinity U-Net) -> synapses (shipped synapse U-Net) -> graph ->
evaluate, with the naive baseline (no network) on the same volume side by side.

    .venv/bin/python benchmarks/bench_quality.py [--seeds 0 1 2 3 4] [--hard] [--out /tmp/bench-quality]
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np


def one(out: Path, preset: str, seed: int) -> dict:
    from connectomix import pipeline
    from connectomix.config import ClusterConfig
    from connectomix.synth import synthesize

    shutil.rmtree(out, ignore_errors=True)
    cl = ClusterConfig(scheduler="synchronous")
    t = {}
    t0 = time.perf_counter()
    run = synthesize(out, preset=preset, seed=seed)
    t["synth"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipeline.segment_stage(out, cluster=cl, say=lambda m: None)
    t["segment"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipeline.synapses_pipeline_stage(out, cluster=cl, say=lambda m: None)
    pipeline.graph_pipeline_stage(out, cluster=cl, say=lambda m: None)
    t["synapses+graph"] = time.perf_counter() - t0
    s = pipeline.evaluate_stage(out, compute_erl=False)
    base = pipeline.naive_baseline(run)
    return {"preset": preset, "seed": seed, "voi_split": s["voi_split"], "voi_merge": s["voi_merge"],
            "voi": s["voi"], "rand_error": s["rand_error"], "baseline_voi": base["voi_split"] + base["voi_merge"],
            "synapse_f1": s.get("synapse_f1"), "synapse_precision": s.get("synapse_precision"),
            "synapse_recall": s.get("synapse_recall"), "edge_f1": s.get("edge_f1"),
            "shape": list(run.open("raw").shape), **{f"s_{k}": round(v, 1) for k, v in t.items()}}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    p.add_argument("--hard", action="store_true", help="also the hard preset, seed 0")
    p.add_argument("--out", default="/tmp/bench-quality")
    args = p.parse_args()
    from connectomix.synth import eval_settings_hash

    rows = [one(Path(args.out) / f"eval{s}", "eval", s) for s in args.seeds]
    if args.hard:
        rows.append(one(Path(args.out) / "hard0", "hard", 0))
    print(f"eval set hash {eval_settings_hash()}")
    cols = ["preset", "seed", "voi_split", "voi_merge", "voi", "rand_error", "baseline_voi", "synapse_f1",
            "synapse_precision", "synapse_recall", "edge_f1", "s_segment", "s_synapses+graph"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    ev = [r for r in rows if r["preset"] == "eval"]
    if ev:
        mean = {c: float(np.mean([r[c] for r in ev])) for c in cols[2:11]}
        print("eval mean | " + " | ".join(f"{c}={v:.3f}" for c, v in mean.items()))
        print(f"VOI ratio naive / network: {mean['baseline_voi'] / mean['voi']:.2f}x (target >= 4x)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "quality.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
