"""Inference and end-to-end ``segment``: the shipped affinity U-Net on CPU, with peers.

Part 1 -- CPU inference of the shipped affinity model (``load_model(None)``: 3D U-Net,
0.77 M parameters, 8 affinity channels) on a synthetic EM volume
(``connectomix.synth``, ``demo`` preset, 32 x 256 x 256 voxels, 40 x 8 x 8 nm).
Each row runs in a fresh process (so its peak RSS is its own), with at most 2 threads:

connectomix (shipped: ...)   ``predict_array``: the forward pass + sigmoid that
                             ``predict_block`` runs, on the whole block, 2 torch threads,
                             channels-last memory, bfloat16 where the CPU has native
                             bfloat16 kernels (``connectomix.models._unet.inference_dtype``)
connectomix, float32         the same with ``CONNECTOMIX_PRECISION=float32``
peers, same network, same input:
torch.jit (frozen, fp32)     ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``
torch.compile (fp32)         inductor (its compile seconds are reported apart)
eager bf16 autocast          CPU autocast to bfloat16, plain (contiguous) memory
naive baseline (scipy)       ``connectomix.pipeline.naive_baseline``: Gaussian smoothing,
                             Otsu threshold, distance-transform watershed and its scores
                             -- no learning; a cheap time reference, not a rival in quality
block-wise rows              ``predict_affinities`` on a run (raw read from / affinities
                             written to OME-Zarr), the default context 16 x 64 x 64 voxels,
                             ``scheduler='synchronous'`` (``predict_block`` sets torch to
                             1 thread), two block shapes on a 32 x 512 x 512 volume, and
                             the same volume as one whole-array forward pass: peak memory
                             follows the block, not the volume

Part 2 -- end-to-end ``connectomix.pipeline.segment_stage`` (predict + seeds + grow +
agglomerate + relabel, block-wise, a local Dask cluster of 2 single-threaded worker
processes) on a larger synthetic volume (default 64 x 512 x 512; the issue's target is
128 x 1024 x 1024, which at this machine's speed would take far longer than a benchmark
should): wall time, the per-stage split, CPU seconds and the peak RSS of the whole
process tree (sampled every 0.2 s; shared libraries count once per process), VOI
against the generator's truth as a sanity check, and an *extrapolation* to the target
shape (predict scaled by the voxels the blocks read including context, the other stages
by voxels).

Part 3 -- the GPU figure (bf16 forward pass) is not measured here: it is read from the
shipped model's ``model.json`` (``gpu_throughput``), copied there from the
``throughput.json`` that ``scripts/train_gpu.py`` wrote on the lent GPU that trained it.

Timings are best of ``--repeat`` (after one warm-up call); CPU seconds are printed next
to wall seconds because the machine is shared: CPU time suffers far less from other
people's load than wall time does.

Usage::

    .venv/bin/python benchmarks/bench_inference.py                 # ~15-20 min on 2 cores
    .venv/bin/python benchmarks/bench_inference.py --quick         # small shapes, a few minutes
    .venv/bin/python benchmarks/bench_inference.py --e2e-shape 32 1024 1024
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2
CONTEXT = (16, 64, 64)  # connectomix.models._predict.DEFAULT_CONTEXT_VX, checked at run time
PREDICT_BLOCK = (64, 256, 256)  # connectomix.models._predict.DEFAULT_BLOCK_VX, checked at run time


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def mirror_tile(a: np.ndarray, shape) -> np.ndarray:
    """Tile ``a`` to ``shape`` by mirroring, so membranes stay continuous at the seams."""
    for ax, n in enumerate(shape):
        parts, k = [], 0
        while sum(p.shape[ax] for p in parts) < n:
            parts.append(a if k % 2 == 0 else np.flip(a, ax))
            k += 1
        a = np.concatenate(parts, axis=ax)
        a = a[tuple(slice(0, n) if i == ax else slice(None) for i in range(a.ndim))]
    return np.ascontiguousarray(a)


def read_voxels(shape, block, context, factor):
    """Voxels the block-wise predict reads (write region + context, clipped at the border)."""
    from connectomix.geometry import Coordinate

    shape_c = Coordinate(shape)
    b = Coordinate(block).min(shape_c.ceil_div(Coordinate(factor)) * Coordinate(factor))
    b = b.ceil_div(Coordinate(factor)) * Coordinate(factor)
    total, n_blocks = 1, 1
    for s, bs, c in zip(shape, b, context):
        starts = range(0, s, bs)
        total *= sum(min(s, st + bs + c) - max(0, st - c) for st in starts)
        n_blocks *= len(starts)
    return total, n_blocks, tuple(b)


# --------------------------------------------------------------------- child jobs
def job_forward(spec):
    """One forward-pass variant on the whole array of ``spec['raw']``."""
    import torch

    torch.set_num_threads(THREADS)
    from connectomix.models import load_model, predict_array

    model, _ = load_model(None)
    factor = model.factor
    raw = np.load(spec["raw"])
    variant = spec["variant"]
    base_rss = _rss_mib()
    prep = 0.0
    if variant == "fp32":
        os.environ["CONNECTOMIX_PRECISION"] = "float32"  # this child process only
    if variant in ("eager", "whole", "fp32"):
        def fn():
            return predict_array(raw, model, factor)
    else:
        pad = [(0, (-s) % f) for s, f in zip(raw.shape, factor)]
        x = torch.from_numpy(np.pad(raw.astype(np.float32) / 255.0, pad, mode="reflect")[None, None])
        if variant == "bf16":
            def fn():
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return torch.sigmoid(model(x).float()).numpy()
        elif variant == "jit":
            t = time.perf_counter()
            with torch.inference_mode():
                net = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))
            prep = time.perf_counter() - t

            def fn():
                with torch.inference_mode():
                    return torch.sigmoid(net(x)).numpy()
        elif variant == "compile":
            net = torch.compile(model)
            t = time.perf_counter()
            with torch.inference_mode():
                net(x)  # compiles
            prep = time.perf_counter() - t

            def fn():
                with torch.inference_mode():
                    return torch.sigmoid(net(x)).numpy()
        else:
            raise ValueError(variant)
    ref = None
    walls, cpus = [], []
    for i in range(spec["repeat"] + (0 if spec.get("no_warmup") else 1)):
        c, t = _cpu(), time.perf_counter()
        out = fn()
        w, cc = time.perf_counter() - t, _cpu() - c
        if i > 0 or spec.get("no_warmup"):
            walls.append(w)
            cpus.append(cc)
        ref = out
    agree = None
    if spec.get("check") and variant != "whole":
        os.environ["CONNECTOMIX_PRECISION"] = "float32"  # the reference: full precision
        want = predict_array(raw, model, factor)
        got = ref if ref.ndim == want.ndim else ref[0]
        got = got[(slice(None),) + tuple(slice(0, s) for s in raw.shape)]
        agree = float(np.abs(want - got).max())
    return dict(wall=min(walls), cpu=min(cpus), rss=_maxrss_mib(), base_rss=base_rss, prep=prep,
                voxels=int(raw.size), max_abs_diff=agree)


def job_naive(spec):
    from connectomix.pipeline import naive_baseline
    from connectomix.run import Run

    run = Run(spec["run"])
    walls, cpus = [], []
    for _ in range(spec["repeat"]):
        c, t = _cpu(), time.perf_counter()
        scores = naive_baseline(run)
        walls.append(time.perf_counter() - t)
        cpus.append(_cpu() - c)
    n = int(np.prod(tuple(run.open("raw").spatial_shape)))
    return dict(wall=min(walls), cpu=min(cpus), rss=_maxrss_mib(), voxels=n,
                voi=scores["voi_split"] + scores["voi_merge"])


def job_blockwise(spec):
    from connectomix.models import predict_affinities
    from connectomix.models._predict import DEFAULT_BLOCK_VX, DEFAULT_CONTEXT_VX
    from connectomix.run import Run

    assert tuple(DEFAULT_CONTEXT_VX) == CONTEXT, DEFAULT_CONTEXT_VX
    assert tuple(DEFAULT_BLOCK_VX) == PREDICT_BLOCK, DEFAULT_BLOCK_VX
    run = Run(spec["run"])
    base_rss = _rss_mib()
    walls, cpus = [], []
    for _ in range(spec["repeat"]):
        c, t = _cpu(), time.perf_counter()
        res = predict_affinities(run, block_shape_vx=tuple(spec["block"]), scheduler="synchronous")
        walls.append(time.perf_counter() - t)
        cpus.append(_cpu() - c)
    shape = tuple(run.open("raw").spatial_shape)
    read, n_blocks, _ = read_voxels(shape, spec["block"], CONTEXT, (2, 8, 8))
    aff = run.open("affinities")
    return dict(wall=min(walls), cpu=min(cpus), rss=_maxrss_mib(), base_rss=base_rss, voxels=int(np.prod(shape)),
                read=read, n_blocks=res.n_blocks, dtype=str(aff.dtype))


class TreeRSS:
    """Peak of the summed RSS of this process and its descendants, sampled in a thread."""

    def __init__(self, period=0.2):
        import psutil

        self.me, self.period = psutil.Process(), period
        self.peak = self.peak_main = self.peak_child = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        import psutil

        while not self._stop.is_set():
            try:
                main = self.me.memory_info().rss
                kids = []
                for p in self.me.children(recursive=True):
                    try:
                        kids.append(p.memory_info().rss)
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, (main + sum(kids)) / 2**20)
                self.peak_main = max(self.peak_main, main / 2**20)
                self.peak_child = max(self.peak_child, max(kids, default=0) / 2**20)
            except psutil.Error:
                pass
            self._stop.wait(self.period)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def job_e2e(spec):
    from connectomix.config import ClusterConfig
    from connectomix.pipeline import segment_stage
    from connectomix.run import Run

    run = Run(spec["run"])
    said = []

    def say(msg):
        said.append(msg)
        print(f"  [segment] {msg}", file=sys.stderr, flush=True)

    last = [0.0]

    def progress(done, total):
        if time.perf_counter() - last[0] > 30 or done == total:
            last[0] = time.perf_counter()
            print(f"  [segment] {done}/{total} blocks ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    cluster = ClusterConfig(scheduler=None, workers=spec["workers"])
    c0 = _cpu()
    with TreeRSS() as mem:
        t0 = time.perf_counter()
        res = segment_stage(run.path, cluster=cluster, say=say, on_block_done=progress)
        wall = time.perf_counter() - t0
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_main = _cpu() - c0
    m = next((re.search(r"predict: (\d+) blocks in ([\d.]+) s", s) for s in said if s.startswith("predict:")), None)
    stages = {"predict": float(m.group(2)) if m else float("nan")} | {k: float(v) for k, v in res.seconds.items()}
    voi = None
    if "gt_segmentation" in run.arrays():
        from connectomix.evaluate import variation_of_information

        v = variation_of_information(run.open("segmentation").to_numpy(), run.open("gt_segmentation").to_numpy())
        voi = [float(v.split), float(v.merge)]
    shape = tuple(run.open("raw").spatial_shape)
    return dict(wall=wall, stages=stages, cpu_main=cpu_main, cpu_children=ch.ru_utime + ch.ru_stime,
                rss_tree=mem.peak, rss_main=mem.peak_main, rss_worker=mem.peak_child, voxels=int(np.prod(shape)),
                shape=shape, n_predict_blocks=int(m.group(1)) if m else None, n_fragments=res.n_fragments,
                n_segments=res.n_segments, n_edges=res.n_edges, voi=voi)


JOBS = {"forward": job_forward, "naive": job_naive, "blockwise": job_blockwise, "e2e": job_e2e}


def child(spec_json):
    spec = json.loads(spec_json)
    out = JOBS[spec["job"]](spec)
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def run_child(spec, timeout=None, threads=THREADS):
    """Run one job in a fresh interpreter limited to ``threads`` threads; its result dict."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[k] = str(threads)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("CONNECTOMIX_PRECISION", None)  # each row sets its own: the first is what ships
    p = subprocess.run([sys.executable, __file__, "--_child", json.dumps(spec)], env=env, capture_output=True,
                       text=True, timeout=timeout)
    if p.returncode != 0:
        tail = (p.stderr or "").strip().splitlines()[-8:]
        return {"error": f"exit {p.returncode}: " + " | ".join(tail)}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": "no result: " + p.stdout[-300:]}


# --------------------------------------------------------------------- driver
def make_run(path, shape, seed):
    from connectomix.synth import synthesize

    t = time.perf_counter()
    synthesize(path, shape=tuple(shape), preset="demo", seed=seed)
    return time.perf_counter() - t


def tiled_run(path, raw, shape):
    from connectomix.run import Run
    from connectomix.testing import stored_volume

    run = Run.create(path)
    stored_volume(run.volume_path("raw"), mirror_tile(raw, shape), voxel_size=(40, 8, 8), chunks=(32, 128, 128))
    return run


def fmt_row(name, shape, r, base, note=""):
    if "error" in r:
        return f"{name:<34} {'x'.join(map(str, shape)):>12}  FAILED: {r['error'][:160]}"
    mv = r["voxels"] / r["wall"] / 1e6
    mv_cpu = r["voxels"] / r["cpu"] / 1e6
    rel = f"{mv / base:7.2f}x" if base else f"{'':>8}"
    return (f"{name:<34} {'x'.join(map(str, shape)):>12} {r['wall']:7.2f} {r['cpu']:7.2f} {mv:7.3f} {mv_cpu:8.3f} "
            f"{rel} {r['rss']:8.0f}  {note}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", type=int, nargs=3, default=(32, 256, 256), help="whole-block forward shape")
    p.add_argument("--bw-shape", type=int, nargs=3, default=(32, 512, 512), help="volume of the block-wise rows")
    p.add_argument("--blocks", type=int, nargs="+", default=(32, 256, 256, 32, 128, 128),
                   help="block shapes (z y x, repeated) of the block-wise rows")
    p.add_argument("--e2e-shape", type=int, nargs=3, default=(64, 512, 512))
    p.add_argument("--target-shape", type=int, nargs=3, default=(128, 1024, 1024))
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes of the end-to-end run")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile row (~1 min of compiling)")
    p.add_argument("--no-e2e", action="store_true")
    p.add_argument("--quick", action="store_true", help="small shapes, one repeat, no torch.compile")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        return child(args._child)
    if args.quick:
        args.shape, args.bw_shape, args.blocks = (16, 192, 192), (16, 384, 384), (16, 192, 192, 16, 96, 96)
        args.e2e_shape, args.repeat, args.no_compile = (32, 256, 256), 1, True
    blocks = [tuple(args.blocks[i:i + 3]) for i in range(0, len(args.blocks), 3)]

    import torch

    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    try:
        t_gen = make_run(tmp / "demo", args.shape, seed=0)
        from connectomix.run import Run

        raw = Run(tmp / "demo").open("raw").to_numpy()
        np.save(tmp / "raw.npy", raw)
        bw_run = tiled_run(tmp / "bw", raw, args.bw_shape)
        np.save(tmp / "raw_bw.npy", bw_run.open("raw").to_numpy())
        print(f"input: synth demo {tuple(args.shape)} uint8, 40x8x8 nm (made in {t_gen:.1f} s); block-wise volume "
              f"{tuple(args.bw_shape)} mirror-tiled from it; torch {torch.__version__}, {os.cpu_count()} cores, "
              f"at most {THREADS} threads; load average {os.getloadavg()[0]:.1f}", flush=True)

        # ---------------------------------------------------------------- part 1
        rows = []
        fwd = dict(job="forward", raw=str(tmp / "raw.npy"), repeat=args.repeat, check=True)
        from connectomix.models._unet import precision_name

        shipped = precision_name("cpu", "auto")
        variants = [(f"connectomix (shipped: {shipped})", "eager", "predict_array, channels-last, 2 threads"),
                    ("connectomix, float32", "fp32", "CONNECTOMIX_PRECISION=float32"),
                    ("torch.jit (frozen, fp32)", "jit", "peer"),
                    ("torch.compile (inductor, fp32)", "compile", "peer"),
                    ("eager bf16 autocast", "bf16", "plain torch: no channels-last")]
        if args.no_compile:
            variants = [v for v in variants if v[1] != "compile"]
        for name, variant, note in variants:
            r = run_child(fwd | {"variant": variant})
            print(f"  measured {name}", flush=True)
            rows.append((name, tuple(args.shape), r, note, variant))
        r = run_child(dict(job="naive", run=str(tmp / "demo"), repeat=args.repeat))
        print("  measured naive baseline", flush=True)
        rows.append(("naive baseline (scipy, no model)", tuple(args.shape), r, "smooth+Otsu+EDT watershed+scoring",
                     "naive"))
        for b in blocks:
            r = run_child(dict(job="blockwise", run=str(tmp / "bw"), block=list(b), repeat=1), threads=1)
            print(f"  measured block-wise {b}", flush=True)
            note = ""
            if "error" not in r:
                note = f"{r['n_blocks']} blocks, reads {r['read'] / r['voxels']:.2f}x the voxels (context), 1 thread"
            rows.append((f"block-wise predict {'x'.join(map(str, b))}", tuple(args.bw_shape), r, note, "bw"))
        r = run_child(dict(job="forward", raw=str(tmp / "raw_bw.npy"), variant="whole", repeat=1, no_warmup=True))
        print("  measured whole-array forward", flush=True)
        rows.append(("whole-array forward (no blocks)", tuple(args.bw_shape), r, "predict_array, 2 threads", "whole"))

        base_r = rows[0][2]
        base = base_r["voxels"] / base_r["wall"] / 1e6 if "error" not in base_r else None
        print(f"\nPart 1: CPU inference, shipped affinity model (one fresh process per row, "
              f"best of {args.repeat} after a warm-up; block-wise and whole-array rows: one pass)")
        print(f"{'method':<34} {'shape':>12} {'wall s':>7} {'cpu s':>7} {'Mvox/s':>7} {'Mvox/cpu-s':>8} "
              f"{'vs ours':>8} {'peakRSS':>8}  note (MiB for RSS)")
        for name, shape, r, note, variant in rows:
            extra = []
            if "error" not in r:
                if r.get("prep"):
                    extra.append(f"prep {r['prep']:.1f} s")
                if r.get("max_abs_diff") is not None:
                    extra.append(f"max |diff| vs float32 {r['max_abs_diff']:.1e}")
                if r.get("base_rss"):
                    extra.append(f"RSS before {r['base_rss']:.0f}")
                if r.get("voi") is not None:
                    extra.append(f"VOI {r['voi']:.2f}")
            print(fmt_row(name, shape, r, base, "; ".join([note] + extra) if note else "; ".join(extra)))
        print("target (issue #4): >= 0.2 Mvoxels/s on the 2 cores. 'Mvox/s' is output voxels per wall second; "
              "'vs ours' relative to connectomix as shipped (first row); max |diff| against our float32.")

        # ---------------------------------------------------------------- part 3
        print("\nPart 3: GPU (not measured in this run)")
        from connectomix.models import load_model

        g = load_model()[1].get("gpu_throughput")
        if g:
            shapes = ", ".join(f"{k}: {v} Mvoxels/s" for k, v in g["mvoxels_per_s"].items())
            print(f"  {g['gpu']}, {g['precision']} of the shipped model: {shapes}; peak {g['peak_gib']} GiB -- "
                  f"measured on {g['date']} by scripts/train_gpu.py (the shipped model.json's gpu_throughput); "
                  "target >= 20 Mvoxels/s per GPU")
        else:
            print("  the shipped model.json records no GPU throughput")

        # ---------------------------------------------------------------- part 2
        if args.no_e2e:
            return 0
        t_gen = make_run(tmp / "e2e", args.e2e_shape, seed=1)
        print(f"\nPart 2: end-to-end segment_stage on synth demo {tuple(args.e2e_shape)} (made in {t_gen:.1f} s), "
              f"local Dask cluster of {args.workers} single-threaded workers; load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        e = run_child(dict(job="e2e", run=str(tmp / "e2e"), workers=args.workers), threads=1)
        if "error" in e:
            print(f"  FAILED: {e['error']}")
            return 1
        n = e["voxels"]
        print(f"{'stage':<14} {'wall s':>8} {'share':>6} {'Mvox/s':>7}")
        other = e["wall"] - sum(e["stages"].values())
        for k, v in list(e["stages"].items()) + [("other", other)]:
            print(f"{k:<14} {v:8.1f} {v / e['wall']:6.1%} {n / v / 1e6 if v > 0 else float('nan'):7.3f}")
        print(f"{'total':<14} {e['wall']:8.1f} {1:6.0%} {n / e['wall'] / 1e6:7.3f}")
        print("('other': starting the two local Dask clusters, stage bookkeeping)")
        print(f"CPU seconds: this process {e['cpu_main']:.0f}, worker processes {e['cpu_children']:.0f}")
        print(f"peak RSS: process tree {e['rss_tree']:.0f} MiB (main {e['rss_main']:.0f} MiB, largest worker "
              f"{e['rss_worker']:.0f} MiB)")
        print(f"{e['n_predict_blocks']} predict blocks; {e['n_fragments']} fragments, {e['n_edges']} edges, "
              f"{e['n_segments']} segments" + (f"; VOI vs truth split {e['voi'][0]:.2f} merge {e['voi'][1]:.2f}"
                                               if e["voi"] else ""))

        # extrapolation
        tgt = tuple(args.target_shape)
        n_t = int(np.prod(tgt))
        read_m, _, blk = read_voxels(e["shape"], PREDICT_BLOCK, CONTEXT, (2, 8, 8))
        read_t, nb_t, _ = read_voxels(tgt, PREDICT_BLOCK, CONTEXT, (2, 8, 8))
        pred = e["stages"]["predict"] * read_t / read_m
        rest = {k: v * n_t / n for k, v in e["stages"].items() if k != "predict"}
        total = pred + sum(rest.values()) + other
        print(f"\nEXTRAPOLATION (not measured) to {'x'.join(map(str, tgt))} ({n_t / 1e6:.0f} Mvoxel, {nb_t} predict "
              f"blocks of {'x'.join(map(str, blk))}): predict scaled by voxels read incl. context "
              f"({read_t / n_t:.2f}x vs {read_m / n:.2f}x here), other stages by voxels")
        print("  " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in ({"predict": pred} | rest).items())
              + f", cluster start-up {other:.0f} s")
        print(f"  total ~{total / 60:.0f} min on these 2 cores at today's load; memory: workers hold one block "
              f"(bounded), the main process holds the fragment graph (grows with fragments, "
              f"~{e['n_fragments'] * n_t / n / 1e6:.1f} M expected)")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
