"""Synapse detection throughput: the block-wise ``synapses`` stage against in-memory peers.

Input: a synthetic run (``synthesize``, preset ``demo``, ``--shape``), its true
segmentation copied to ``segmentation`` and the ideal network output made from
ground truth (``write_ideal_predictions``: cleft probability + partner vectors), so
quality is known (synapse F1 and edge F1 should be 1.0) and the timing is the
post-processing alone, not the network.

Measured (wall seconds, voxels/s, synapses/s):

(a) connectomix ``synapses_stage`` in this process (``scheduler='synchronous'``),
    one block and blocks of 32 x 128 x 128 voxels: zarr in, zarr + DuckDB out;
(b) ``detect_synapses`` on the whole volume in memory (no I/O, one block): the
    kernel's own cost;
(c) the labelling step alone: ``cc3d.connected_components`` (used) against
    ``scipy.ndimage.label`` (the peer) on the thresholded probability, 26-connected.

Usage::

    .venv/bin/python benchmarks/bench_synapses.py                    # 32 x 512 x 512
    .venv/bin/python benchmarks/bench_synapses.py --shape 24 256 256 # quick
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> None:
    from scipy import ndimage

    import cc3d
    from connectomix.config import ClusterConfig
    from connectomix.evaluate import edge_scores, edges_from_synapses, synapse_scores
    from connectomix.run import Run
    from connectomix.synapses import detect_synapses, synapses_stage, write_ideal_predictions
    from connectomix.synth import synthesize
    from connectomix.volume import create_volume

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(32, 512, 512))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_synapses_"))
    try:
        t0 = time.perf_counter()
        path = work / "run"
        synthesize(path, shape=tuple(args.shape), seed=args.seed, preset="demo")
        run = Run(path)
        gt = run.open("gt_segmentation")
        chunks = (32, 128, 128)
        seg = create_volume(run.volume_path("segmentation"), shape=gt.shape, dtype=np.uint64,
                            voxel_size=gt.voxel_size, chunks=tuple(min(a, b) for a, b in zip(chunks, gt.shape)))
        seg[seg.roi] = gt.to_numpy()
        write_ideal_predictions(path, chunks=seg.chunks)
        gts, gte = run.read_table("gt_synapses"), run.read_table("gt_edges")
        n_vx = int(np.prod(gt.shape))
        print(f"input: {tuple(gt.shape)} voxels ({n_vx / 1e6:.1f} M), {len(gts)} true synapses, "
              f"made in {time.perf_counter() - t0:.1f} s")
        rows = []
        sync = ClusterConfig(scheduler="synchronous")
        for label, block in (("one block", tuple(gt.shape)), ("blocks 32x128x128", seg.chunks)):
            t = time.perf_counter()
            res = synapses_stage(path, cluster=sync, block_shape=block, force=True, say=lambda _: None)
            sec = time.perf_counter() - t
            syn = run.read_table("synapses")
            f1 = synapse_scores(syn, gts).f1
            ef1 = edge_scores(edges_from_synapses(syn), gte).f1
            rows.append((f"synapses_stage, {label} ({res.n_blocks})", sec, len(syn), f1, ef1))
        pred = run.open("synapse_pred").to_numpy()
        labels = seg.to_numpy()
        t = time.perf_counter()
        syn, _ = detect_synapses(pred[0], pred[1:], labels, voxel_size=gt.voxel_size)
        sec = time.perf_counter() - t
        rows.append(("detect_synapses in memory", sec, len(syn), synapse_scores(syn, gts).f1,
                     edge_scores(edges_from_synapses(syn), gte).f1))
        print(f"{'method':<42} {'seconds':>8} {'Mvoxels/s':>10} {'synapses/s':>11} {'syn F1':>7} {'edge F1':>8}")
        for name, sec, n, f1, ef1 in rows:
            print(f"{name:<42} {sec:>8.2f} {n_vx / sec / 1e6:>10.2f} {n / sec:>11.0f} {f1:>7.3f} {ef1:>8.3f}")
        mask = pred[0] >= 0.5
        t = time.perf_counter()
        cc3d.connected_components(mask, connectivity=26)
        t_cc = time.perf_counter() - t
        t = time.perf_counter()
        ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
        t_nd = time.perf_counter() - t
        print(f"labelling: cc3d {t_cc:.3f} s, scipy.ndimage.label {t_nd:.3f} s (ratio {t_nd / t_cc:.1f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
