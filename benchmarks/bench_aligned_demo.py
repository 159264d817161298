"""`connectomix demo` (misaligned sections, aligned first) over several seeds, beside the naive baseline.

The demo volume scored once is a small sample (about 45 true edges); this runs
``connectomix.pipeline.demo`` for each seed and prints VOI (bits), adapted Rand error,
synapse and edge F1, and the naive baseline's VOI on the same aligned volume (the
ratio is printed too), then the means.

    .venv/bin/python benchmarks/bench_aligned_demo.py [--seeds 0 1 2 3] [--out /tmp/bench-aligned-demo]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np


def main():
    from connectomix import pipeline
    from connectomix.config import ClusterConfig
    from connectomix.run import Run

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-aligned-demo"))
    args = p.parse_args()
    keys = ("voi", "rand_error", "synapse_f1", "edge_f1", "baseline_voi")
    rows = []
    print("seed | VOI split + merge | ARAND | synapse F1 | edge F1 | naive VOI | naive / network")
    for seed in args.seeds:
        out = args.out / f"seed{seed}"
        shutil.rmtree(out, ignore_errors=True)
        pipeline.demo(out, cluster=ClusterConfig(scheduler="synchronous"), say=lambda m: None, seed=seed)
        ev = json.loads((out / "evaluation.json").read_text())
        base = pipeline.naive_baseline(Run(out))
        r = {"voi": ev["voi_split"] + ev["voi_merge"], "rand_error": ev["rand_error"], "synapse_f1": ev["synapse_f1"],
             "edge_f1": ev["edge_f1"], "baseline_voi": base["voi_split"] + base["voi_merge"]}
        rows.append(r)
        print(f"{seed} | {ev['voi_split']:.2f} + {ev['voi_merge']:.2f} = {r['voi']:.2f} | {r['rand_error']:.3f} | "
              f"{r['synapse_f1']:.3f} | {r['edge_f1']:.3f} | {r['baseline_voi']:.2f} | "
              f"{r['baseline_voi'] / r['voi']:.2f}x", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    print(f"mean | {mean['voi']:.2f} | {mean['rand_error']:.3f} | {mean['synapse_f1']:.3f} | {mean['edge_f1']:.3f} | "
          f"{mean['baseline_voi']:.2f} | {mean['baseline_voi'] / mean['voi']:.2f}x")


if __name__ == "__main__":
    main()
