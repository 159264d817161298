"""Benchmark the synthetic EM generator: speed, and how hard its volumes are.

Prints, for each preset measured:

* generator throughput (voxels/s, wall clock, whole ``synthesize`` call including
  writing the run) and the seconds of each step;
* the scores of a naive segmentation -- Gaussian smoothing, a global Otsu threshold
  (cytoplasm is bright, membranes dark) and a watershed on the distance transform
  seeded at its maxima -- against the ground truth: variation of information
  (split, merge, total, in bits) and adapted Rand error, both from
  ``skimage.metrics``. The issue's bar: VOI >= 2 bits on ``eval``, so that a trained
  network is needed.

Usage::

    python benchmarks/bench_synth.py [--presets demo eval] [--eval-seeds 0 1 2 3 4] [--out DIR]

The peer for speed is the volume size itself (voxels/s); the target is a 64 x 512 x
512 volume in at most 30 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi


def naive_segmentation(raw, voxel_size, *, sigma=1.0, min_distance_nm=120.0):
    """Smooth, threshold (Otsu), and split the foreground by a distance-transform watershed."""
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    vs = np.asarray(voxel_size, float)
    img = ndi.gaussian_filter(raw.astype(np.float32), (sigma * vs[1] / vs[0], sigma, sigma))
    fg = img > threshold_otsu(img[:: max(1, img.shape[0] // 8)])
    dist = ndi.distance_transform_edt(fg, sampling=vs)
    footprint = np.ones(tuple(max(1, int(round(min_distance_nm / v))) * 2 + 1 for v in vs), bool)
    peaks = peak_local_max(dist, footprint=footprint, labels=fg.astype(np.int32), exclude_border=False)
    markers = np.zeros(raw.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers)  # every voxel gets a segment, membranes included


def scores(gt, seg):
    from skimage.metrics import adapted_rand_error, variation_of_information

    split, merge = variation_of_information(gt, seg, ignore_labels=(0,))
    are = adapted_rand_error(gt, seg, ignore_labels=(0,))[0]
    return dict(voi_split=float(split), voi_merge=float(merge), voi=float(split + merge), adapted_rand=float(are))


def run_one(preset, seed, out_dir):
    from connectomix.synth import synthesize

    steps = {}
    t0, c0 = time.perf_counter(), time.process_time()
    run = synthesize(Path(out_dir) / f"{preset}-{seed}", preset=preset, seed=seed,
                     log=lambda line: _step(steps, line))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    raw = run.open("raw").to_numpy()
    gt = run.open("gt_segmentation").to_numpy()
    n_syn = len(run.read_table("gt_synapses"))
    edges = run.read_table("gt_edges")
    t1 = time.perf_counter()
    seg = naive_segmentation(raw, run.open("raw").voxel_size)
    t_naive = time.perf_counter() - t1
    sc = scores(gt, seg)
    return dict(preset=preset, seed=seed, shape="x".join(map(str, raw.shape)), seconds=wall, cpu_seconds=cpu,
                voxels_per_s=raw.size / wall, n_segments=int(len(np.unique(gt)) - (gt == 0).any()),
                n_synapses=n_syn, n_edges=len(edges), strong_edges=int((edges["n_synapses"] >= 3).sum()),
                naive_seconds=t_naive, steps=steps, **sc)


def _step(steps, line):
    name, _, rest = line.partition(":")
    if rest.strip().endswith(" s"):
        steps[name] = float(rest.strip()[:-2])


def main(argv=None):
    from connectomix.synth import EVAL_SEEDS, eval_settings_hash

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["demo", "eval"])
    p.add_argument("--eval-seeds", nargs="+", type=int, default=list(EVAL_SEEDS))
    p.add_argument("--demo-seed", type=int, default=0)
    p.add_argument("--out", default=None, help="where to keep the runs (default: a temporary folder)")
    args = p.parse_args(argv)
    tmp = None
    out_dir = args.out
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory()
        out_dir = tmp.name
    rows = []
    for preset in args.presets:
        seeds = args.eval_seeds if preset == "eval" else [args.demo_seed]
        for seed in seeds:
            r = run_one(preset, seed, out_dir)
            rows.append(r)
            steps = " ".join(f"{k}={v:.1f}" for k, v in r["steps"].items())
            print(f"{preset:5s} seed {seed}: {r['shape']} in {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU "
                  f"({r['voxels_per_s'] / 1e6:.2f} Mvx/s; {steps}); {r['n_segments']} segments, "
                  f"{r['n_synapses']} synapses, {r['n_edges']} edges ({r['strong_edges']} with >= 3 synapses); "
                  f"naive VOI {r['voi']:.2f} bits (split {r['voi_split']:.2f}, merge {r['voi_merge']:.2f}), "
                  f"adapted Rand {r['adapted_rand']:.3f}", flush=True)
    print()
    print(f"{'preset':8s} {'volumes':>7s} {'Mvx/s':>7s} {'s/vol':>6s} {'cpu s':>6s} {'synapses':>8s} {'strong':>6s} "
          f"{'naive VOI':>9s} {'split':>6s} {'merge':>6s} {'ARand':>6s}")
    for preset in args.presets:
        rs = [r for r in rows if r["preset"] == preset]
        if not rs:
            continue
        print(f"{preset:8s} {len(rs):7d} {np.mean([r['voxels_per_s'] for r in rs]) / 1e6:7.2f} "
              f"{np.mean([r['seconds'] for r in rs]):6.1f} {np.mean([r['cpu_seconds'] for r in rs]):6.1f} "
              f"{sum(r['n_synapses'] for r in rs):8d} "
              f"{sum(r['strong_edges'] for r in rs):6d} {np.mean([r['voi'] for r in rs]):9.2f} "
              f"{np.mean([r['voi_split'] for r in rs]):6.2f} {np.mean([r['voi_merge'] for r in rs]):6.2f} "
              f"{np.mean([r['adapted_rand'] for r in rs]):6.3f}")
    if "eval" in args.presets:
        print(f"eval set: seeds {list(args.eval_seeds)}, settings hash {eval_settings_hash()}")
    if tmp is not None:
        tmp.cleanup()
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
