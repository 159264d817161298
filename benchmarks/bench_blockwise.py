"""Block engine overhead: a 3-D Gaussian filter, zarr in -> zarr out, against its peers.

The job: ``scipy.ndimage.gaussian_filter`` with sigma = (1, 3, 3) voxels on a uint8
volume (256 x 512 x 512 by default; EM-like smooth noise) stored as OME-Zarr, written
to a new OME-Zarr array, in 64 x 256 x 256 blocks. Input and output use
connectomix's default storage layout (``create_volume``: chunks 32 x 128 x 128,
Blosc-zstd). Every run's output is checked voxel for voxel against the whole-array
result (the block engine's "seamless" promise).

Measured (each timing the best of ``--repeat`` rounds; the methods take turns within a
round, so that other people's load on the shared machine spreads over all of them):

(a) connectomix ``run_blockwise`` on a local cluster of 1 worker process: "warm" on a
    cluster started beforehand (``connectomix.blockwise.dask_client``), "cold" with the
    cluster started and stopped by the call itself; its overhead beyond the halo's
    share of the work, where the ideal time is (b) x (sum of the blocks' read volumes
    / the volume);
(b) ``scipy.ndimage.gaussian_filter`` on the whole array, read from and written to
    zarr;
(c) ``dask.array.map_overlap`` (``from_zarr`` -> ``map_overlap`` with the same depth ->
    ``to_zarr``), on the synchronous scheduler (one thread: the 1-worker peer) and on
    2 threads;
(d) connectomix with 2 worker processes (warm): the speed-up from 1 to 2 workers;
(e) peak resident memory of the worker process (``VmHWM`` from ``/proc``, read in the
    worker) for a volume 4 x deeper than the base one, same blocks: the engine must
    keep memory bounded by the block, not the volume.

Besides wall time it prints the CPU seconds, system CPU seconds and minor page faults
of every process that did the work (driver and workers, all threads): CPU time
suffers far less than wall time from a busy machine, and the page faults show where
the kernel's share of the time goes.

Usage::

    .venv/bin/python benchmarks/bench_blockwise.py           # Z 256; memory: 256 vs 1024
    .venv/bin/python benchmarks/bench_blockwise.py --quick   # Z 128; memory: 128 vs 512
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np
import scipy.ndimage as ndi

from connectomix.blockwise import Input, dask_client, run_blockwise, tile
from connectomix.geometry import Coordinate, Roi
from connectomix.volume import Volume, create_volume

SIGMA = (1.0, 3.0, 3.0)
TRUNCATE = 4.0  # scipy's default
RADIUS_VX = Coordinate(tuple(int(TRUNCATE * s + 0.5) for s in SIGMA))  # (4, 12, 12): exact context
VOXEL_SIZE = Coordinate(40, 8, 8)
BLOCK_VX = Coordinate(64, 256, 256)
DEFAULT_CHUNKS_VX = Coordinate(32, 128, 128)  # create_volume's default
TARGETS = {"overhead": 0.15, "speedup": 1.5, "memory": 0.10}


# --------------------------------------------------------------------------- the job
def smooth_block(block, inputs):
    """The block function: filter the read region, hand back a Volume the engine crops."""
    raw = inputs["raw"]
    out = ndi.gaussian_filter(raw.data, SIGMA, truncate=TRUNCATE)
    return {"smooth": Volume(out, voxel_size=raw.voxel_size, offset=raw.offset)}


def em_like(shape, seed=0) -> np.ndarray:
    """EM-like uint8 smooth noise."""
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=(1.0, 2.0, 2.0))
    img *= 40.0 / img.std()
    img += 128.0 + rng.normal(0.0, 6.0, size=shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_input(path, data, z):
    """An OME-Zarr raw volume of depth ``z``: ``data`` repeated along z."""
    vol = create_volume(path, shape=(z,) + data.shape[1:], dtype=np.uint8, voxel_size=VOXEL_SIZE, overwrite=True)
    for z0 in range(0, z, data.shape[0]):
        n = min(data.shape[0], z - z0)
        vol.data[z0 : z0 + n] = data[:n]
    return vol


def new_output(path, shape):
    return create_volume(path, shape=shape, dtype=np.uint8, voxel_size=VOXEL_SIZE, overwrite=True)


def run_engine(raw, out_path, scheduler, workers=1):
    out = new_output(out_path, raw.shape)
    run_blockwise(
        smooth_block,
        task="smooth",
        inputs={"raw": Input(raw.ref(), context=RADIUS_VX * VOXEL_SIZE)},
        outputs={"smooth": out},
        block_shape=BLOCK_VX * VOXEL_SIZE,
        scheduler=scheduler,
        workers=workers,
    )


# --------------------------------------------------------------------------- measuring
def _usage():
    """(cpu s, system cpu s, minor page faults) of this process so far, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return np.array([r.ru_utime + r.ru_stime, r.ru_stime, r.ru_minflt], dtype=float)


def _peak_rss_bytes():
    # VmHWM, not getrusage: a spawned worker's ru_maxrss keeps the RSS of the process
    # it was forked from (Linux carries it over exec), i.e. the driver's.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_bytes():
    import psutil

    return psutil.Process().memory_info().rss


def _warm_worker():
    import connectomix.blockwise  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import zarr  # noqa: F401

    return os.getpid()


def usage(client=None):
    """Resource usage of the driver plus (if given) every worker of ``client``."""
    u = _usage()
    if client is not None:
        u = u + sum(client.run(_usage).values())
    return u


def measured(fn, client=None, cold=False):
    """Run ``fn``: (wall s, cpu s, sys s, minor faults, busy). Cold runs' workers are not counted.

    ``busy`` is the share of the workers' time (workers x wall) spent computing block
    tasks, from the scheduler's task stream (NaN without a client): near 1 means the
    engine kept every worker fed, whatever the machine's load did to the wall time.
    """
    u0 = usage(client)
    busy = np.nan
    if client is not None:
        from distributed import get_task_stream

        with get_task_stream(client) as stream:
            t0 = time.perf_counter()
            fn()
            wall = time.perf_counter() - t0
        n = len(client.scheduler_info()["workers"])
        done = sum(ss["stop"] - ss["start"] for t in stream.data for ss in t["startstops"] if ss["action"] == "compute")
        busy = done / (n * wall)
    else:
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
    du = usage(client) - u0
    if cold:
        du[:] = np.nan
    return (wall, *du, busy)


def read_share(shape_vx, chunk_vx=None):
    """Sum of the blocks' read volumes / volume (snapped to whole chunks if ``chunk_vx``)."""
    total = Roi((0, 0, 0), Coordinate(shape_vx) * VOXEL_SIZE)
    block, ctx = BLOCK_VX * VOXEL_SIZE, RADIUS_VX * VOXEL_SIZE
    blocks = tile(total, block, block, fit="shrink")
    size = 0
    for b in blocks:
        r = b.write_roi.grow(ctx).intersect(total)
        if chunk_vx is not None:
            r = r.snap(Coordinate(chunk_vx) * VOXEL_SIZE, "grow").intersect(total)
        size += r.size
    return len(blocks), size / total.size


def close(client):
    cluster = client.cluster
    client.close()
    cluster.close()


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="Z = 128 (memory: 128 vs 512) instead of 256 (256 vs 1024)")
    p.add_argument("--repeat", type=int, default=3, help="rounds; the best run of each method is kept (default 3)")
    p.add_argument("--dir", default="/tmp", help="where to make the scratch directory (default /tmp)")
    p.add_argument("--skip-memory", action="store_true", help="leave out (e), the deep-volume memory run")
    args = p.parse_args(argv)
    z = 128 if args.quick else 256
    shape = (z, 512, 512)
    scratch = tempfile.mkdtemp(prefix="cmx-bench-blockwise-", dir=args.dir)
    out = lambda *a: print(*a, flush=True)  # noqa: E731
    zarr_dir = os.path.join(scratch, "run", "volume.zarr")
    mb = np.prod(shape) / 1e6

    import dask
    import dask.array as da
    import zarr

    clients = {}
    try:
        data = em_like(shape)
        raw = make_input(os.path.join(zarr_dir, "raw"), data, z)
        raw_s0 = os.path.join(raw.path, "s0")
        n_blocks, f_read = read_share(shape)
        _, f_decoded = read_share(shape, DEFAULT_CHUNKS_VX)
        expected = ndi.gaussian_filter(data, SIGMA, truncate=TRUNCATE)
        load0 = os.getloadavg()[0]
        out(
            f"block engine benchmark: gaussian_filter sigma={SIGMA} vx on {shape[0]}x{shape[1]}x{shape[2]} uint8 "
            f"({mb:.0f} MB), zarr -> zarr, blocks {tuple(BLOCK_VX)} vx ({n_blocks} blocks), context {tuple(RADIUS_VX)} vx"
        )
        out(
            f"storage: create_volume defaults (chunks {'x'.join(map(str, DEFAULT_CHUNKS_VX))}, blosc zstd); "
            f"{os.cpu_count()} CPUs shared with other users (load average {load0:.1f} at start); "
            f"best of {args.repeat} interleaved rounds"
        )
        out(
            f"halo share: the blocks read {f_read:.3f} x the volume in voxels "
            f"({f_decoded:.3f} x counting the whole storage chunks decoded)"
        )
        out()

        def check(path, what):
            got = zarr.open_array(os.path.join(path, "s0"), mode="r")[:]
            if not np.array_equal(got, expected):
                n = int(np.count_nonzero(got != expected))
                raise SystemExit(f"{what}: output differs from the whole-array result in {n} voxels")

        # ------------------------------------------------------------- the methods
        split = []

        def scipy_whole():
            dst = new_output(os.path.join(zarr_dir, "smooth_scipy"), shape).data
            t0 = time.perf_counter()
            a = zarr.open_array(raw_s0, mode="r")[:]
            t1 = time.perf_counter()
            r = ndi.gaussian_filter(a, SIGMA, truncate=TRUNCATE)
            t2 = time.perf_counter()
            dst[:] = r
            split.append((time.perf_counter() - t0, t1 - t0, t2 - t1, time.perf_counter() - t2))

        def dask_overlap(scheduler, n):
            new_output(os.path.join(zarr_dir, "smooth_dask"), shape)
            # dask writes through zarr-python itself
            dst = zarr.open_array(os.path.join(zarr_dir, "smooth_dask", "s0"), mode="r+")
            x = da.from_zarr(zarr.open_array(raw_s0, mode="r"), chunks=tuple(BLOCK_VX))
            y = x.map_overlap(
                ndi.gaussian_filter, depth=tuple(RADIUS_VX), boundary="none", dtype=np.uint8,
                sigma=SIGMA, truncate=TRUNCATE,
            )
            with dask.config.set(scheduler=scheduler, num_workers=n):
                da.to_zarr(y, dst)

        cx_out = os.path.join(zarr_dir, "smooth")
        methods = {
            "scipy": (lambda: measured(scipy_whole), "smooth_scipy"),
            "dask1": (lambda: measured(lambda: dask_overlap("synchronous", 1)), "smooth_dask"),
            "dask2": (lambda: measured(lambda: dask_overlap("threads", 2)), "smooth_dask"),
            "cmx1": (lambda: measured(lambda: run_engine(raw, cx_out, clients[1]), clients[1]), "smooth"),
            "cmx2": (lambda: measured(lambda: run_engine(raw, cx_out, clients[2]), clients[2]), "smooth"),
            "cmx1cold": (lambda: measured(lambda: run_engine(raw, cx_out, None, workers=1), cold=True), "smooth"),
        }
        for n in (1, 2):
            clients[n] = dask_client(None, workers=n)
            clients[n].run(_warm_worker)
        runs = {k: [] for k in methods}
        for rnd in range(args.repeat):
            for key, (fn, name) in methods.items():
                runs[key].append(fn())
                if rnd == 0:
                    check(os.path.join(zarr_dir, name), key)
        load1 = os.getloadavg()[0]
        for n in (2, 1):  # reverse order: each LocalCluster restores log levels on close
            close(clients.pop(n))
        bst = {k: min(v, key=lambda r: r[0]) for k, v in runs.items()}  # best by wall time
        bcpu = {k: min(v, key=lambda r: r[1]) for k, v in runs.items()}  # best by CPU time

        # ------------------------------------------------------------- timings table
        t_scipy, c_scipy = bst["scipy"][0], bcpu["scipy"][1]
        rows = [
            ("(b) scipy whole array, zarr->zarr", "1 thread", "scipy"),
            ("(c) dask map_overlap", "sync, 1", "dask1"),
            ("(c) dask map_overlap", "threads, 2", "dask2"),
            ("(a) connectomix run_blockwise, warm", "1 process", "cmx1"),
            ("(a) connectomix run_blockwise, cold", "1 process", "cmx1cold"),
            ("(d) connectomix run_blockwise, warm", "2 processes", "cmx2"),
        ]
        head = (
            f"{'method':36s} {'workers':11s} {'wall s':>6s} {'MB/s':>5s} {'/scipy':>6s} | "
            f"{'cpu s':>5s} {'sys s':>5s} {'faults':>7s} | {'cores':>5s} {'busy':>4s} | all walls (s)"
        )
        out(head)
        out("-" * len(head))
        for label, workers, key in rows:
            w, wc, *_, busy = bst[key]
            _, c, sy, f, _ = bcpu[key]
            cpu = "    -     -       -" if c != c else f"{c:5.2f} {sy:5.2f} {f / 1e3:6.0f}k"
            cores = "    -" if wc != wc else f"{wc / w:5.2f}"
            busy = "   -" if busy != busy else f"{busy * 100:3.0f}%"
            walls = " ".join(f"{r[0]:.2f}" for r in runs[key])
            out(f"{label:36s} {workers:11s} {w:6.2f} {mb / w:5.1f} {w / t_scipy:6.2f} | {cpu} | {cores} {busy} | {walls}")
        out("-" * len(head))
        _, t_read, t_filter, t_write = min(split)
        out(f"scipy whole array, best run: read {t_read:.2f} s, filter {t_filter:.2f} s, write {t_write:.2f} s")
        out("cpu s, sys s, faults: CPU seconds, system CPU seconds and minor page faults of the driver and the")
        out("  workers (best run by CPU; cold runs start their own workers, which are not counted);")
        out("cores: CPU s / wall s of the best run (how many cores it got); busy: share of workers x wall")
        out("  spent computing block tasks (scheduler task stream)")
        out("every output above equals the whole-array scipy result voxel for voxel")
        out()

        # ------------------------------------------------------------- memory
        mem_rows = []
        if not args.skip_memory:
            for zz in (z, 4 * z):
                vol = raw if zz == z else make_input(os.path.join(zarr_dir, f"raw{zz}"), data, zz)
                client = dask_client(None, workers=1)
                try:
                    client.run(_warm_worker)
                    idle = sum(client.run(_rss_bytes).values())
                    wall = measured(lambda: run_engine(vol, os.path.join(zarr_dir, f"smooth{zz}"), client))[0]
                    peak = sum(client.run(_peak_rss_bytes).values())
                finally:
                    close(client)
                mem_rows.append((zz, wall, idle, peak))

        # ------------------------------------------------------------- targets table
        ideal, ideal_cpu = t_scipy * f_read, c_scipy * f_read
        checks = [
            ("overhead beyond halo, 1 worker (warm)", bst["cmx1"][0] / ideal - 1, "<=", TARGETS["overhead"], "pct"),
            ("  the same, cold (+ cluster start/stop)", bst["cmx1cold"][0] / ideal - 1, "<=", TARGETS["overhead"], "pct"),
            ("  the same in CPU seconds (warm)", bcpu["cmx1"][1] / ideal_cpu - 1, "<=", TARGETS["overhead"], "pct"),
            ("speed-up 1 -> 2 workers (warm)", bst["cmx1"][0] / bst["cmx2"][0], ">=", TARGETS["speedup"], "x"),
        ]
        if mem_rows:
            (z0, _, _, p0), (z1, _, _, p1) = mem_rows
            checks.append((f"peak worker RSS, Z={z1} vs Z={z0}", p1 / p0 - 1, "<=", TARGETS["memory"], "pct"))
        out(
            f"ideal 1-worker time = scipy {t_scipy:.2f} s x halo share {f_read:.3f} = {ideal:.2f} s "
            f"(in CPU: {c_scipy:.2f} s x {f_read:.3f} = {ideal_cpu:.2f} s)"
        )
        head = f"{'target':40s} {'measured':>9s} {'target':>9s}  result"
        out(head)
        out("-" * len(head))
        for label, value, op, target, unit in checks:
            ok = value <= target if op == "<=" else value >= target
            if unit == "pct":
                m, t = f"{value * 100:+8.1f}%", f"{op}{target * 100:.0f}%"
            else:
                m, t = f"{value:8.2f}x", f"{op}{target:.1f}x"
            out(f"{label:40s} {m:>9s} {t:>9s}  {'PASS' if ok else 'FAIL'}")
        out("-" * len(head))
        if mem_rows:
            out()
            out("worker memory (1 worker, fresh warm cluster per size; peak = VmHWM of the worker process)")
            head = f"{'Z':>5s} {'blocks':>6s} {'wall s':>7s} {'idle RSS MB':>11s} {'peak RSS MB':>11s} {'peak-idle MB':>12s}"
            out(head)
            out("-" * len(head))
            for zz, wall, idle, peak in mem_rows:
                nb = read_share((zz,) + shape[1:])[0]
                out(f"{zz:5d} {nb:6d} {wall:7.2f} {idle / 1e6:11.0f} {peak / 1e6:11.0f} {(peak - idle) / 1e6:12.0f}")
            out("-" * len(head))
        out(f"load average (2 CPUs): {load0:.1f} at start, {load1:.1f} after the timings, {os.getloadavg()[0]:.1f} at end")
    finally:
        for c in clients.values():
            close(c)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
