"""Segmentation metrics on a 10^8-voxel pair: connectomix.evaluate vs scikit-image.

The input: a ground truth of about 5,000 objects (Voronoi cells on a coarse
anisotropic grid, upsampled 2 x 8 x 8, so objects are ~40 voxels across in-plane and
~10 sections deep, like neurites of ~300 nm at 40 x 8 x 8 nm), extracellular space
(label 0, ~8 % of voxels) on cell borders; ids are shuffled uint64 values below
~10^6, since scikit-image indexes its sparse table (and dense marginals) by label
value and cannot take ids near 2^64 (connectomix can: it compacts them). The
prediction: 20 % of objects cut in two, 5 % merged into a neighbour, boundaries
shifted by (0, 2, 1) voxels, and 0.2 % of voxels set to random small fragments.

Measured, each in a fresh subprocess that loads the pair from .npy first (so the
inputs, 1.6 GB, are already resident):

- ``connectomix``: one streamed contingency table, then VOI, adapted Rand and the
  split/merge counts from it (``evaluate_arrays(..., compute_erl=False)``);
- ``skimage VOI`` and ``skimage Rand``: ``skimage.metrics.variation_of_information
  (gt, pred, ignore_labels=[0])`` and ``adapted_rand_error(gt, pred)``, each
  building its own table, and their sum (what the same two numbers cost there).

Time is wall-clock, libraries already imported; memory is the process's peak
resident set during the call (``VmHWM``, reset just before it through
``/proc/self/clear_refs``) minus its resident set just before the call, i.e. what
the metric needed beyond its inputs. The scores of both sides are compared too. Targets (issue #3): at most
30 s and 3 GB for connectomix on 10^8 voxels, and at least as fast and lighter than
scikit-image.

Usage::

    .venv/bin/python benchmarks/bench_metrics.py                       # 100 x 1000 x 1000
    .venv/bin/python benchmarks/bench_metrics.py --shape 20 400 400    # a quick look
    .venv/bin/python benchmarks/bench_metrics.py --skip-skimage        # ours only
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

UPSAMPLE = (2, 8, 8)
TARGET_S, TARGET_GB = 30.0, 3.0


# --------------------------------------------------------------------------- the data
def make_pair(shape, seed=0):
    """Ground truth and prediction, uint64, as described in the module docstring."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    coarse = tuple(-(-s // u) for s, u in zip(shape, UPSAMPLE))
    n_cells = max(8, int(np.prod(shape) / 20_000))
    markers = np.zeros(coarse, np.int32)
    markers[tuple(rng.integers(0, c, n_cells) for c in coarse)] = np.arange(1, n_cells + 1)
    _, nearest = ndimage.distance_transform_edt(markers == 0, return_indices=True)
    cells = markers[tuple(nearest)]
    del nearest
    ids = np.concatenate(([0], rng.permutation(np.arange(1, n_cells + 1)))).astype(np.uint64)
    # per-cell edits, decided on the coarse grid
    split = rng.random(n_cells + 1) < 0.20
    merge_to = np.arange(n_cells + 1)
    merged = rng.random(n_cells + 1) < 0.05
    merge_to[merged] = rng.integers(1, n_cells + 1, merged.sum())

    gt = np.empty(shape, np.uint64)
    pred = np.empty(shape, np.uint64)
    for z0 in range(0, shape[0], UPSAMPLE[0] * 8):  # slab by slab: bounded memory
        z1 = min(shape[0], z0 + UPSAMPLE[0] * 8)
        c = cells[z0 // UPSAMPLE[0] : -(-z1 // UPSAMPLE[0])]
        up = c.repeat(UPSAMPLE[0], 0).repeat(UPSAMPLE[1], 1).repeat(UPSAMPLE[2], 2)
        up = up[: z1 - z0 + (z0 % UPSAMPLE[0]), : shape[1], : shape[2]][z0 % UPSAMPLE[0] :]
        g = ids[up]
        border = np.zeros(up.shape, bool)  # extracellular space between cells
        border[:, 1:, :] |= up[:, 1:, :] != up[:, :-1, :]
        border[:, :, 1:] |= up[:, :, 1:] != up[:, :, :-1]
        border[:, 1:, :] |= border[:, :-1, :].copy()
        g[border] = 0
        gt[z0:z1] = g
        # the prediction: split (x past the cell's middle third gets a new id), merge
        p_cells = merge_to[up]
        xs = np.arange(up.shape[2])[None, None, :]
        cut = split[up] & ((xs // UPSAMPLE[2]) % 3 == 0)
        p = ids[p_cells]
        p[cut] += np.uint64(n_cells)
        pred[z0:z1] = p
    pred = np.roll(pred, (0, 2, 1), axis=(0, 1, 2))
    noise = rng.random(shape, dtype=np.float32) < 0.002
    pred[noise] = rng.integers(2 * n_cells + 1, 2 * n_cells + 10**6, int(noise.sum()), dtype=np.uint64)
    return gt, pred


# --------------------------------------------------------------------------- one measurement
def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM), so loading the inputs does not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def measure(which: str, gt_path: str, pred_path: str) -> dict:
    """Run one metric in this process and return time, memory and the scores."""
    import pandas  # noqa: F401  (imports are not what is measured)
    import scipy.sparse  # noqa: F401

    gt = np.load(gt_path)
    pred = np.load(pred_path)
    if which == "connectomix":
        from connectomix.evaluate import evaluate_arrays

        def call():
            out = evaluate_arrays(pred_labels=pred, gt_labels=gt, compute_erl=False)
            return {k: out[k] for k in ("voi_split", "voi_merge", "rand_error")}
    elif which == "skimage VOI":
        from skimage.metrics import variation_of_information

        def call():
            split, merge = variation_of_information(gt, pred, ignore_labels=[0])
            return {"voi_split": float(split), "voi_merge": float(merge)}
    elif which == "skimage Rand":
        from skimage.metrics import adapted_rand_error

        def call():
            return {"rand_error": float(adapted_rand_error(gt, pred)[0])}
    else:
        raise ValueError(which)
    _reset_peak()
    before = _rss_bytes()
    t0 = time.perf_counter()
    scores = call()
    seconds = time.perf_counter() - t0
    peak = _peak_bytes()
    return {"which": which, "seconds": seconds, "extra_bytes": max(0, peak - before), "scores": scores}


def run_child(which, gt_path, pred_path) -> dict:
    cmd = [sys.executable, __file__, "--child", which, gt_path, pred_path]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return {"which": which, "error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(100, 1000, 1000), metavar=("Z", "Y", "X"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-skimage", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("WHICH", "GT", "PRED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child)))
        return 0

    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        t0 = time.perf_counter()
        gt, pred = make_pair(shape, seed=args.seed)
        n_obj = np.unique(gt[:: max(1, shape[0] // 10)]).size
        print(
            f"pair {shape} = {np.prod(shape):.2e} voxels, uint64; ~{n_obj} gt objects in every 10th section, "
            f"{(gt == 0).mean():.1%} gt voxels 0; made in {time.perf_counter() - t0:.1f} s"
        )
        gt_path, pred_path = os.path.join(tmp, "gt.npy"), os.path.join(tmp, "pred.npy")
        np.save(gt_path, gt)
        np.save(pred_path, pred)
        del gt, pred
        rows = [run_child("connectomix", gt_path, pred_path)]
        if not args.skip_skimage:
            rows += [run_child("skimage VOI", gt_path, pred_path), run_child("skimage Rand", gt_path, pred_path)]

    ok = [r for r in rows if "error" not in r]
    for r in rows:
        if "error" in r:
            print(f"{r['which']}: failed: {r['error']}")
    ours = next((r for r in ok if r["which"] == "connectomix"), None)
    sk = [r for r in ok if r["which"].startswith("skimage")]
    if len(sk) == 2:
        ok.append({
            "which": "skimage VOI + Rand",
            "seconds": sum(r["seconds"] for r in sk),
            "extra_bytes": max(r["extra_bytes"] for r in sk),
            "scores": {**sk[0]["scores"], **sk[1]["scores"]},
        })
    print()
    print(f"{'metric':<22}{'time (s)':>10}{'peak extra (GB)':>17}{'time / ours':>13}{'memory / ours':>15}")
    for r in ok:
        tr = r["seconds"] / ours["seconds"] if ours else float("nan")
        mr = r["extra_bytes"] / ours["extra_bytes"] if ours and ours["extra_bytes"] else float("nan")
        print(f"{r['which']:<22}{r['seconds']:>10.2f}{r['extra_bytes'] / 1e9:>17.2f}{tr:>13.2f}{mr:>15.2f}")
    print()
    for r in ok:
        print(f"{r['which']:<22}" + "  ".join(f"{k}={v:.6f}" for k, v in r["scores"].items()))
    status = 0
    if ours:
        fine = ours["seconds"] <= TARGET_S * np.prod(shape) / 1e8 and ours["extra_bytes"] <= TARGET_GB * 1e9
        print(f"\ntarget (<= {TARGET_S:.0f} s per 1e8 voxels, <= {TARGET_GB:.0f} GB): {'met' if fine else 'MISSED'}")
        both = next((r for r in ok if r["which"] == "skimage VOI + Rand"), None)
        if both:
            agree = all(np.isclose(ours["scores"][k], both["scores"][k], rtol=1e-9, atol=1e-12) for k in ours["scores"])
            print(f"scores agree with scikit-image: {'yes' if agree else 'NO'}")
            status = 0 if agree else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
