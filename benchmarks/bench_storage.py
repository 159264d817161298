"""Storage throughput: zarr-python 3 vs tensorstore on the same OME-Zarr (zarr v3) files.

Writes a volume block by block (128^3 blocks) and reads it back block by block, for
an EM-like uint8 image (smooth noise) and a uint64 label volume (large constant
regions with random 64-bit ids and thin 0-valued boundaries), Blosc-zstd compressed,
unsharded (one 128^3 chunk per block) and sharded (one 128^3 shard of 64^3 inner
chunks per block). Both libraries use the very same files: the array metadata is
made once with zarr-python and opened by both, and every array one library writes is
checked voxel for voxel by reading it back with the other.

Throughput is uncompressed bytes per second of wall time (MB = 10^6 bytes); a second
table gives it per CPU-second (process CPU time, all threads), which is what counts
when every core already runs a block worker. Each timing is the best of ``--repeat``
runs, since the machine is shared and noisy. Written data lands in the page cache and
reads come from it: this measures the libraries (codec, indexing, per-call overhead),
not the disk.

A last table compares Blosc's shuffle filters on the same data (one thread), since
the filter changes both speed and compression far more than the library does.

Usage::

    .venv/bin/python benchmarks/bench_storage.py            # 256 x 512 x 512
    .venv/bin/python benchmarks/bench_storage.py --quick    # 128 x 256 x 256
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import scipy.ndimage as ndi

BLOCK = 128
LAYOUTS = {
    "unsharded": {"chunks": (BLOCK,) * 3, "shards": None},
    "sharded": {"chunks": (BLOCK // 2,) * 3, "shards": (BLOCK,) * 3},
}
SHUFFLES = ("noshuffle", "shuffle", "bitshuffle")


# --------------------------------------------------------------------------- data
def em_like(shape, seed=0) -> np.ndarray:
    """Smooth noise with EM-like grey-level statistics, uint8."""
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=(1.0, 2.0, 2.0))
    img *= 40.0 / img.std()
    img += 128.0 + rng.normal(0.0, 6.0, size=shape).astype(np.float32)  # shot noise
    return np.clip(img, 0, 255).astype(np.uint8)


def labels_like(shape, seed=0, cell=(24, 64, 64)) -> np.ndarray:
    """A uint64 segmentation: warped cells with random 64-bit ids, 1-voxel 0 boundaries."""
    rng = np.random.default_rng(seed)
    z, y, x = (np.arange(n, dtype=np.float32) for n in shape)

    def field(a, b, amp):  # smooth 2-D displacement, amplitude ``amp`` voxels
        f = ndi.gaussian_filter(rng.standard_normal((a, b)).astype(np.float32), 12.0, mode="wrap")
        return f * (amp / (f.std() + 1e-6))

    cz = (z[:, None, None] + field(shape[1], shape[2], 6.0)[None]) / cell[0]
    cy = (y[None, :, None] + field(shape[0], shape[2], 20.0)[:, None, :]) / cell[1]
    cx = (x[None, None, :] + field(shape[0], shape[1], 20.0)[:, :, None]) / cell[2]
    iz, iy, ix = (np.floor(c).astype(np.int64) + 2 for c in (cz, cy, cx))
    ids = rng.integers(1, 2**63, size=(iz.max() + 1, iy.max() + 1, ix.max() + 1), dtype=np.uint64)
    out = ids[iz, iy, ix]
    boundary = ((cz % 1) * cell[0] < 1) | ((cy % 1) * cell[1] < 1) | ((cx % 1) * cell[2] < 1)
    out[boundary] = 0
    return out


def relabel_consecutive(labels: np.ndarray) -> np.ndarray:
    """The same segmentation with ids 0..n-1 (what a canonical relabelling gives)."""
    _, inv = np.unique(labels, return_inverse=True)
    return inv.reshape(labels.shape).astype(labels.dtype)


# --------------------------------------------------------------------------- backends
def create(path, shape, dtype, layout, blosc):
    import zarr
    from zarr.codecs import BloscCodec

    shutil.rmtree(path, ignore_errors=True)
    zarr.create_array(
        store=path,
        shape=shape,
        dtype=dtype,
        chunks=LAYOUTS[layout]["chunks"],
        shards=LAYOUTS[layout]["shards"],
        compressors=[BloscCodec(**blosc)],
        fill_value=0,
        dimension_names=["z", "y", "x"],
    )


class ZarrPython:
    name = "zarr-python"

    def __init__(self, path, mode):
        import zarr

        self.arr = zarr.open_array(path, mode=mode)

    def write(self, sl, block):
        self.arr[sl] = block

    def read(self, sl):
        return self.arr[sl]


class TensorStore:
    name = "tensorstore"

    def __init__(self, path, mode):
        import tensorstore as ts

        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
        self.arr = ts.open(spec, open=True, read=True, write=mode != "r").result()

    def write(self, sl, block):
        self.arr[sl].write(block).result()

    def read(self, sl):
        return self.arr[sl].read().result()


BACKENDS = (ZarrPython, TensorStore)


def block_slices(shape):
    ranges = [range(0, n, BLOCK) for n in shape]
    return [tuple(slice(o, min(o + BLOCK, n)) for o, n in zip(c, shape)) for c in itertools.product(*ranges)]


def du(path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t):
    return time.perf_counter() - t[0], time.process_time() - t[1]


def bench_one(backend, data, path, layout, blosc, repeat):
    """Best (wall, cpu) seconds to write and to read ``data`` block by block; stored bytes."""
    slices = block_slices(data.shape)
    best_w = best_r = (float("inf"), float("inf"))
    for _ in range(repeat):
        create(path, data.shape, data.dtype, layout, blosc)  # a fresh array: writes make new files
        store = backend(path, "r+")
        t = _clock()
        for sl in slices:
            store.write(sl, data[sl])
        best_w = min(best_w, _since(t))
        store = backend(path, "r")
        t = _clock()
        for sl in slices:
            store.read(sl)
        best_r = min(best_r, _since(t))
    return best_w, best_r, du(path)


def check_cross(data, path, writer, reader, layout, blosc):
    """Write with one library, read with the other: the same files, the same voxels."""
    create(path, data.shape, data.dtype, layout, blosc)
    w = writer(path, "r+")
    for sl in block_slices(data.shape):
        w.write(sl, data[sl])
    r = reader(path, "r")
    for sl in block_slices(data.shape):
        if not np.array_equal(r.read(sl), data[sl]):
            raise SystemExit(f"MISMATCH: {writer.name} wrote {layout} {data.dtype}, {reader.name} read different voxels")


def codec_table(datasets, repeat):
    """Blosc zstd-3 with each shuffle filter on one 128^3 block, one thread."""
    import numcodecs
    import numcodecs.blosc

    numcodecs.blosc.set_nthreads(1)
    rows = []
    for name, data in datasets.items():
        block = np.ascontiguousarray(data[:BLOCK, :BLOCK, :BLOCK])
        for shuffle in SHUFFLES:
            codec = numcodecs.Blosc("zstd", 3, {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[shuffle])
            enc = codec.encode(block)
            te = td = float("inf")
            for _ in range(max(3, repeat)):
                t0 = time.perf_counter()
                codec.encode(block)
                te = min(te, time.perf_counter() - t0)
                t0 = time.perf_counter()
                codec.decode(enc)
                td = min(td, time.perf_counter() - t0)
            rows.append((name, shuffle, block.nbytes / len(enc), block.nbytes / te / 1e6, block.nbytes / td / 1e6))
    return rows


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    from connectomix.volume import DEFAULT_COMPRESSION

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a 128 x 256 x 256 volume instead of 256 x 512 x 512")
    p.add_argument("--shape", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"))
    p.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is kept (default 3)")
    p.add_argument(
        "--shuffle",
        choices=SHUFFLES,
        default=DEFAULT_COMPRESSION.get("shuffle", "bitshuffle"),
        help="Blosc shuffle filter for the library comparison (default: connectomix's DEFAULT_COMPRESSION)",
    )
    p.add_argument("--dir", default="/tmp", help="where to make the scratch directory (default /tmp)")
    args = p.parse_args(argv)
    shape = tuple(args.shape) if args.shape else ((128, 256, 256) if args.quick else (256, 512, 512))
    blosc = {"cname": "zstd", "clevel": int(DEFAULT_COMPRESSION.get("clevel", 3)), "shuffle": args.shuffle}
    scratch = tempfile.mkdtemp(prefix="cmx-bench-storage-", dir=args.dir)

    import zarr

    out = lambda *a: print(*a, flush=True)  # noqa: E731
    try:
        t0 = time.perf_counter()
        labels = labels_like(shape)
        datasets = {"uint8 EM": em_like(shape), "uint64 labels": labels}
        t_gen = time.perf_counter() - t0
        out(
            f"storage benchmark: volume {shape[0]}x{shape[1]}x{shape[2]}, {BLOCK}^3 blocks written and read "
            f"one by one, blosc {blosc['cname']} clevel {blosc['clevel']} {blosc['shuffle']}"
        )
        out(
            f"zarr-python {zarr.__version__}, tensorstore {_version('tensorstore')}, numpy {np.__version__}, "
            f"{os.cpu_count()} CPUs; best of {args.repeat}; data made in {t_gen:.1f} s"
        )
        out("layouts: unsharded = one 128^3 chunk per block; sharded = one 128^3 shard of 64^3 chunks per block")
        out("labels: random 64-bit ids (as an agglomeration makes them), 1-voxel 0 boundaries")
        out()
        rows = []
        for (dname, data), layout in itertools.product(datasets.items(), LAYOUTS):
            for writer, reader in ((ZarrPython, TensorStore), (TensorStore, ZarrPython)):
                check_cross(data, os.path.join(scratch, "cross"), writer, reader, layout, blosc)
            res = {
                b.name: bench_one(b, data, os.path.join(scratch, b.name), layout, blosc, args.repeat)
                for b in BACKENDS
            }
            (zw, zr, zsize), (tw, tr, _) = res["zarr-python"], res["tensorstore"]
            rows.append((dname, layout, data.nbytes / zsize, data.nbytes / 1e6, zw, tw, zr, tr))

        for title, k in (("MB/s (wall clock)", 0), ("MB per CPU-second (all threads of the process)", 1)):
            out(title)
            head = (
                f"{'data':13s} {'layout':9s} {'comp.':>5s} | {'write':>7s} {'':>7s} {'ts/zarr':>7s} | "
                f"{'read':>7s} {'':>7s} {'ts/zarr':>7s}"
            )
            sub = (
                f"{'':13s} {'':9s} {'ratio':>5s} | {'zarr-py':>7s} {'tstore':>7s} {'':>7s} | "
                f"{'zarr-py':>7s} {'tstore':>7s} {'':>7s}"
            )
            out(head)
            out(sub)
            out("-" * len(head))
            wr, rr = [], []
            for dname, layout, comp, mb, zw, tw, zr, tr in rows:
                a, b, c, d = mb / zw[k], mb / tw[k], mb / zr[k], mb / tr[k]
                wr.append(b / a)
                rr.append(d / c)
                out(f"{dname:13s} {layout:9s} {comp:5.1f} | {a:7.0f} {b:7.0f} {b / a:7.2f} | {c:7.0f} {d:7.0f} {d / c:7.2f}")
            out("-" * len(head))
            out(f"{'geometric mean':29s} | {'':15s} {_gmean(wr):7.2f} | {'':15s} {_gmean(rr):7.2f}")
            out()
            if k == 0:
                gw, gr = _gmean(wr), _gmean(rr)
            else:
                cw, cr = _gmean(wr), _gmean(rr)
        out("cross-check: every array written by one library was read back identically by the other")
        out(_verdict(gw, gr, cw, cr))
        out()

        codec_data = dict(datasets)
        codec_data["uint64 small ids"] = relabel_consecutive(labels[:BLOCK, :BLOCK, :BLOCK])
        out("Blosc zstd-3 shuffle filters on one 128^3 block (numcodecs, 1 thread; MB/s of uncompressed data)")
        head = f"{'data':16s} {'shuffle':10s} {'ratio':>6s} {'encode':>7s} {'decode':>7s}"
        out(head)
        out("-" * len(head))
        for name, shuffle, ratio, enc, dec in codec_table(codec_data, args.repeat):
            mark = " <- current default" if shuffle == DEFAULT_COMPRESSION.get("shuffle") else ""
            out(f"{name:16s} {shuffle:10s} {ratio:6.1f} {enc:7.0f} {dec:7.0f}{mark}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _gmean(xs):
    return float(np.exp(np.mean(np.log(xs))))


def _verdict(gw, gr, cw, cr):
    wall, cpu = _gmean([gw, gr]), _gmean([cw, cr])
    summary = f"tensorstore/zarr-python: wall {wall:.2f}x, per CPU-second {cpu:.2f}x (write and read together)"
    if wall > 1.2 and cpu > 1.0:
        return f"verdict: tensorstore -- {summary}"
    if wall < 1 / 1.2 and cpu < 1.0:
        return f"verdict: zarr-python -- {summary}"
    return f"verdict: no decisive difference -- {summary}; keep zarr-python (one library fewer)"


def _version(mod):
    from importlib.metadata import version

    return version(mod)


if __name__ == "__main__":
    sys.exit(main())
