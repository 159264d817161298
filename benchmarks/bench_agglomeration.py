"""Watershed + agglomeration on the shipped network's affinities: connectomix and its peers.

`bench_segment.py` times the methods on made-up noisy affinities; this one scores them
on what the pipeline really feeds them: the shipped affinity U-Net's output on generator
volumes (32 x 256 x 256, 40 x 8 x 8 nm). Each method gets the same nearest-neighbour
affinities and is scored at several thresholds (VOI split + merge in bits, adapted Rand
error, against the generator's truth); the best threshold of each method is marked.

connectomix (xy)   the pipeline's settings (`connectomix.pipeline.segment_config`):
                   fragments within sections, joined across sections by mean-affinity
                   agglomeration, segments < 300 voxels joined to their best neighbour
connectomix (3D)   the same agglomeration on 3D fragments (the pipeline before
                   2026-11-27), threshold 0.45, segments < 300 voxels joined
waterz             `waterz.agglomerate` (zwatershed fragments, mean-affinity
                   agglomeration), threshold t on 1 - mean affinity
waterz (xy)        waterz's agglomeration of connectomix's xy fragments (as the LSD
                   pipelines hand it their own fragments), so the fragments and the
                   merging can be told apart; no small-segment cleanup
mwatershed         mutex watershed on the nearest-neighbour edges, weight affinity - b
oracle (xy)        not a method: connectomix's xy fragments, each given the true object
                   it overlaps most (`connectomix.evaluate.oracle_agglomeration`): a
                   perfect merging by majority, the reference for what the fragments
                   allow (not a strict bound on VOI); what it keeps is the fragments'
                   own error (mostly boundary voxels on the wrong side)

Voxels a method leaves at 0 (waterz below its low threshold, mwatershed's unmerged
ones) are scored as one segment each, not as one shared segment.

The default volumes are the validation seeds of the train preset (900-903), on which
connectomix's settings were chosen; ``--preset eval --seeds 0 1 2 3 4`` scores crops
(the first ``--shape`` voxels) of the frozen eval set instead, on which nothing was chosen.

    .venv/bin/python benchmarks/bench_agglomeration.py [--preset train] [--seeds 900 901 902 903]
                                                       [--model DIR] [--methods 'connectomix (xy)' ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench_segment import _quiet, mwatershed_seg


def volumes(preset: str, seeds, shape, model_dir=None):
    from connectomix.models import load_model, make_volumes, predict_array

    model, _ = load_model(model_dir)
    crop = tuple(slice(0, n) for n in shape)
    if preset == "eval":  # frozen at its own shape: generate that, score a crop of it
        from connectomix.synth import resolve_settings

        shape = resolve_settings(preset="eval", seed=0).shape
    for seed, (raw, gt) in zip(seeds, make_volumes(seeds, preset=preset, shape=shape)):
        yield seed, gt[crop], predict_array(raw[crop], model, model.factor)


def ours(aff, threshold, in_xy):
    from connectomix.pipeline import segment_config
    from connectomix.segment import SegmentConfig, segment

    cfg = segment_config(threshold=threshold) if in_xy else SegmentConfig(threshold=threshold, min_size=300)
    return segment(aff, config=cfg).segmentation


def waterz_all(aff, thresholds, fragments=None):
    import waterz

    a = np.ascontiguousarray(aff[:3], dtype=np.float32)
    kw = {} if fragments is None else {"fragments": np.ascontiguousarray(fragments, dtype=np.uint64).copy()}
    with _quiet():  # waterz reports its progress on the C++ stdout
        segs = [s.copy() for s in waterz.agglomerate(a, [1 - t for t in sorted(thresholds, reverse=True)], **kw)]
    return dict(zip(sorted(thresholds, reverse=True), segs))


def waterz_xy_all(aff, thresholds):
    from connectomix.pipeline import segment_config
    from connectomix.segment import watershed

    return waterz_all(aff, thresholds, fragments=watershed(aff[:3], config=segment_config()))


def singletons(seg):
    """Every voxel labelled 0 as a segment of its own."""
    seg = np.asarray(seg).astype(np.uint64)
    zero = seg == 0
    seg[zero] = seg.max(initial=0) + 1 + np.arange(int(zero.sum()), dtype=np.uint64)
    return seg


def oracle_xy(aff, gt):
    from connectomix.evaluate import oracle_agglomeration
    from connectomix.pipeline import segment_config
    from connectomix.segment import watershed

    return oracle_agglomeration(watershed(aff[:3], config=segment_config()), gt)


def mwatershed_all(aff, biases):
    return {b: mwatershed_seg(aff[:3], bias=b) for b in biases}


def main():
    from connectomix.evaluate import adapted_rand_error, variation_of_information

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="train")
    p.add_argument("--seeds", type=int, nargs="+", default=[900, 901, 902, 903])
    p.add_argument("--shape", type=int, nargs=3, default=[32, 256, 256])
    p.add_argument("--model", default=None, help="a model directory to score instead of the shipped network "
                   "(e.g. one trained with --aux lsd, before shipping it)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="a subset of the methods, e.g. 'connectomix (xy)' 'oracle (xy)'")
    args = p.parse_args()
    thresholds = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6]
    methods = {
        "connectomix (xy)": lambda a: {t: ours(a, t, True) for t in thresholds},
        "connectomix (3D)": lambda a: {t: ours(a, t, False) for t in thresholds},
        "waterz": lambda a: waterz_all(a, thresholds),
        "waterz (xy)": lambda a: waterz_xy_all(a, thresholds),
        "mwatershed": lambda a: mwatershed_all(a, [0.3, 0.4, 0.5, 0.6, 0.7]),
        "oracle (xy)": None,  # needs the truth: see below
    }
    if args.methods:
        unknown = set(args.methods) - set(methods)
        if unknown:
            p.error(f"unknown methods {sorted(unknown)}; choose from {list(methods)}")
        methods = {k: v for k, v in methods.items() if k in args.methods}
    # timing: one parameter per method, the same for all (waterz computes all its
    # thresholds in one pass, so the sweep's time would flatter it)
    timed = {
        "connectomix (xy)": lambda a: ours(a, 0.4, True),
        "connectomix (3D)": lambda a: ours(a, 0.4, False),
        "waterz": lambda a: waterz_all(a, [0.4]),
        "waterz (xy)": lambda a: waterz_xy_all(a, [0.4]),
        "mwatershed": lambda a: mwatershed_all(a, [0.5]),
    }
    scores: dict = {}  # (method, parameter) -> list of (split, merge, arand)
    secs: dict = {}
    for seed, gt, aff in volumes(args.preset, args.seeds, args.shape, args.model):
        for name, fn in methods.items():
            if fn is None:
                seg = singletons(oracle_xy(aff, gt))
                v = variation_of_information(seg, gt)
                scores.setdefault((name, 0.0), []).append((v.split, v.merge, adapted_rand_error(seg, gt).error))
                continue
            try:
                segs = fn(aff)
            except ImportError:
                print(f"{name}: not installed (pip install waterz mwatershed)")
                continue
            t0 = time.perf_counter()
            timed[name](aff)
            secs[name] = secs.get(name, 0.0) + time.perf_counter() - t0
            for par, seg in segs.items():
                seg = singletons(seg)
                v = variation_of_information(seg, gt)
                scores.setdefault((name, par), []).append((v.split, v.merge, adapted_rand_error(seg, gt).error))
        print(f"scored {args.preset} seed {seed}", flush=True)
    n = len(args.seeds)
    print(f"\n{args.preset} seeds {args.seeds}, {'x'.join(map(str, args.shape))} voxels; mean over the volumes")
    print(f"{'method':18} {'parameter':>9} {'VOI split':>9} {'merge':>7} {'total':>7} {'ARAND':>7}")
    for name in methods:
        rows = [(par, np.mean(v, axis=0)) for (m, par), v in scores.items() if m == name]
        if not rows:
            continue
        best = min(rows, key=lambda r: r[1][0] + r[1][1])[0]
        for par, (s, m, r) in sorted(rows):
            mark = "  <- best" if par == best and len(rows) > 1 else ""
            print(f"{name:18} {par:9.2f} {s:9.3f} {m:7.3f} {s + m:7.3f} {r:7.3f}{mark}")
        if name not in timed:
            continue
        vx = float(np.prod(args.shape))
        print(f"{name:18} seconds per volume: {secs[name] / n:.2f} ({vx * n / secs[name] / 1e6:.2f} Mvoxel/s)")


if __name__ == "__main__":
    main()
