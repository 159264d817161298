"""Watershed + agglomeration: connectomix against its peers, same affinities, same run.

Input: a dense label volume (``connectomix.testing.blobs``: Voronoi cells, 64 x 512 x
512 voxels by default) turned into nearest-neighbour affinities (float32, 3 channels)
the way a network gets them wrong: Gaussian noise (sigma 0.15), 30 % of the objects
with faint boundaries (affinity 0.35 instead of 0) and a few boundaries missing
altogether (0.95: merges nobody can undo; the "best" row shows what they cost).

Methods (each timed on the same input, best of ``--repeat``; they take turns within a
round, so other people's load on the shared machine spreads over all of them):

connectomix (memory)   ``connectomix.segment.segment``: seeds, bounded growth,
                       region graph, mean-affinity agglomeration on the whole array
connectomix (blocks)   ``segment_affinities`` on a run: affinities read from OME-Zarr,
                       fragments / segmentation / fragments_edges written back, in
                       blocks of ``--block`` voxels, 1 process and ``--workers``
                       processes (Dask local cluster, started beforehand)
waterz                 ``waterz.agglomerate(affs, [0.5])`` (zwatershed fragments, mean
                       affinity agglomeration; threshold 0.5 on 1 - mean = ours)
mwatershed             ``mwatershed.agglom``: mutex watershed on the nearest-neighbour
                       edges with weights affinity - 0.5
skimage                ``skimage.segmentation.watershed`` of the boundary map 1 - mean
                       affinity from seeds = ``scipy.ndimage.label`` of the smoothed
                       boundary map below 0.2 (no agglomeration)

It prints wall seconds, CPU seconds (this process and, for the Dask row, its worker
processes: CPU time suffers far less than wall time from a busy machine), Mvoxel/s of
wall time, the ratio of each peer's throughput to connectomix (memory) by wall and by
CPU time, and VOI (split, merge, total; ``skimage.metrics.variation_of_information``)
against the truth. The block-wise rows are checked to equal the in-memory result label
for label. Peers that are not installed are reported as such (``pip install waterz
mwatershed``).

Usage::

    .venv/bin/python benchmarks/bench_segment.py            # 64 x 512 x 512
    .venv/bin/python benchmarks/bench_segment.py --quick    # 32 x 256 x 256
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np


def make_input(shape, *, n, seed=0, sigma=0.15, weak_fraction=0.3, weak=0.35, missing=3):
    """Truth labels and noisy affinities with faint and missing boundaries."""
    from connectomix.segment import affinities_from_labels
    from connectomix.testing import blobs

    rng = np.random.default_rng(seed)
    truth = blobs(shape, n=n, seed=seed)
    aff = affinities_from_labels(truth)
    ids = np.unique(truth)
    weak_ids = rng.choice(ids, int(len(ids) * weak_fraction), replace=False)
    a, b = truth[:, :, 1:], truth[:, :, :-1]
    m = a != b
    pairs = np.unique(np.stack([np.minimum(a[m], b[m]), np.maximum(a[m], b[m])], axis=1), axis=0)
    gone = [tuple(pairs[i].tolist()) for i in rng.choice(len(pairs), missing, replace=False)]
    best = truth.copy()
    for d in range(3):
        hi = [slice(None)] * 3
        lo = [slice(None)] * 3
        hi[d], lo[d] = slice(1, None), slice(None, -1)
        a, b = truth[tuple(hi)], truth[tuple(lo)]
        across = a != b
        ch = aff[d][tuple(hi)]
        ch[across & (np.isin(a, weak_ids) | np.isin(b, weak_ids))] = weak
        for p, r in gone:
            ch[across & (np.minimum(a, b) == p) & (np.maximum(a, b) == r)] = 0.95
    for p, r in gone:
        best[best == r] = p
    aff += rng.normal(0, sigma, aff.shape).astype(np.float32)
    np.clip(aff, 0, 1, out=aff)
    return truth, best, aff


# ------------------------------------------------------------------------ methods
def ours_memory(aff):
    from connectomix.segment import segment

    return segment(aff, threshold=0.5).segmentation


def waterz_seg(aff):
    import waterz

    with _quiet():  # waterz reports its progress on the C++ stdout
        return next(iter(waterz.agglomerate(np.ascontiguousarray(aff), [0.5])))


class _quiet:
    """Silence file descriptor 1 (output of compiled code) for a while."""

    def __enter__(self):
        sys.stdout.flush()
        self.saved = os.dup(1)
        self.null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(self.null, 1)

    def __exit__(self, *exc):
        sys.stdout.flush()
        os.dup2(self.saved, 1)
        os.close(self.saved)
        os.close(self.null)


def mwatershed_seg(aff, bias=0.5):
    """Mutex watershed on the nearest-neighbour edges, weight ``affinity - bias``."""
    import mwatershed

    # mwatershed's channel c at v is the edge (v, v + offset); ours is (v, v - e_c)
    shifted = np.zeros((3,) + aff.shape[1:], np.float64)
    for d in range(3):
        src = [slice(None)] * 3
        dst = [slice(None)] * 3
        src[d], dst[d] = slice(1, None), slice(None, -1)
        shifted[(d,) + tuple(dst)] = aff[(d,) + tuple(src)] - bias
    return mwatershed.agglom(shifted, [[1, 0, 0], [0, 1, 0], [0, 0, 1]])


def skimage_seg(aff):
    from scipy import ndimage
    from skimage.segmentation import watershed

    boundary = 1.0 - aff[:3].mean(axis=0)
    seeds, _ = ndimage.label(ndimage.gaussian_filter(boundary, (0.5, 1, 1)) < 0.2)
    return watershed(boundary, seeds)


def _available(module):
    try:
        __import__(module)
        return True
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False


# ------------------------------------------------------------------------ driver
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", type=int, nargs=3, default=(64, 512, 512))
    p.add_argument("--objects", type=int, default=None, help="objects in the volume (default: one per 16k voxels)")
    p.add_argument("--block", type=int, nargs=3, default=(64, 256, 256))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="32 x 256 x 256, one repeat")
    args = p.parse_args(argv)
    if args.quick:
        args.shape, args.block, args.repeat = (32, 256, 256), (32, 128, 128), 1
    shape = tuple(args.shape)
    n_vox = int(np.prod(shape))
    n_obj = args.objects or max(8, n_vox // 16_000)

    from skimage.metrics import variation_of_information

    from connectomix.blockwise import dask_client
    from connectomix.config import ClusterConfig
    from connectomix.run import Run
    from connectomix.segment import SegmentConfig, segment_affinities
    from connectomix.testing import stored_volume
    from connectomix.volume import open_volume

    t0 = time.perf_counter()
    truth, best, aff = make_input(shape, n=n_obj)
    print(f"input: {shape} voxels ({n_vox / 1e6:.1f} Mvoxel), {n_obj} objects, float32 affinities "
          f"(made in {time.perf_counter() - t0:.1f} s); {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")

    tmp = tempfile.mkdtemp(prefix="bench-segment-")
    run = Run.create(os.path.join(tmp, "run"))
    chunks = tuple(min(c, s) for c, s in zip((32, 128, 128), shape))
    stored_volume(run.volume_path("affinities"), aff, voxel_size=(40, 8, 8), chunks=(3,) + chunks)
    cfg = SegmentConfig(block_shape=tuple(args.block))
    client = dask_client(None, workers=args.workers)

    def blocks(cluster):
        def go(_aff):
            segment_affinities(run, cfg, cluster=cluster, force=True)
            return open_volume(run.volume_path("segmentation")).to_numpy()
        return go

    methods = [("connectomix (memory)", ours_memory),
               ("connectomix (blocks, 1 process)", blocks(ClusterConfig(scheduler="synchronous")))]
    if args.workers > 1:
        address = client.scheduler.address
        methods.append((f"connectomix (blocks, {args.workers} workers)", blocks(ClusterConfig(scheduler=address))))
    peers = [("waterz", "waterz", waterz_seg), ("mwatershed", "mwatershed", mwatershed_seg),
             ("skimage watershed", "skimage", skimage_seg)]
    missing = [name for name, mod, _ in peers if not _available(mod)]
    methods += [(name, fn) for name, mod, fn in peers if name not in missing]

    import psutil

    worker_pids = list(client.run(os.getpid).values())

    def cpu_seconds(name):
        procs = [psutil.Process()] + ([psutil.Process(p) for p in worker_pids] if "workers" in name else [])
        return sum(sum(p.cpu_times()[:2]) for p in procs)

    times = {name: [] for name, _ in methods}
    cpu = {name: [] for name, _ in methods}
    results = {}
    for _ in range(args.repeat):
        for name, fn in methods:
            c = cpu_seconds(name)
            t = time.perf_counter()
            seg = fn(aff)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(cpu_seconds(name) - c)
            results[name] = seg
    client.close()

    ref = results["connectomix (memory)"]
    for name in results:
        if name.startswith("connectomix (blocks"):
            assert np.array_equal(results[name], ref), f"{name} differs from the whole-array result"

    base = min(times["connectomix (memory)"])
    base_cpu = min(cpu["connectomix (memory)"])
    b_split, b_merge = variation_of_information(truth, best)
    rows = [("best (missing boundaries merged)", None, None, b_split, b_merge)]
    for name, _ in methods:
        split, merge = variation_of_information(truth, results[name])
        rows.append((name, min(times[name]), min(cpu[name]), split, merge))
    print()
    print(f"{'method':<36} {'wall s':>7} {'cpu s':>7} {'Mvox/s':>7} {'vs ours':>8} {'cpu vs':>7} "
          f"{'VOI split':>9} {'merge':>7} {'total':>7}")
    for name, t, c, split, merge in rows:
        voi = f"{split:9.3f} {merge:7.3f} {split + merge:7.3f}"
        if t is None:
            print(f"{name:<36} {'':>7} {'':>7} {'':>7} {'':>8} {'':>7} {voi}")
        else:
            print(f"{name:<36} {t:7.2f} {c:7.2f} {n_vox / t / 1e6:7.2f} {base / t:7.2f}x {base_cpu / c:6.2f}x {voi}")
    for name in missing:
        print(f"{name:<36} not installed (pip install {dict((n, m) for n, m, _ in peers)[name]})")
    print("\n'vs ours' / 'cpu vs': throughput relative to connectomix (memory) by wall / CPU time;"
          " > 1 means faster than ours.")
    print("block-wise results equal the whole-array result label for label: yes")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
