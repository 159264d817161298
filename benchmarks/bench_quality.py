"""Segmentation and synapse quality of the shipped networks on the frozen eval set.

For each eval seed (and the `hard` preset, outside the training distribution, misaligned:
aligned first, as `connectomix run --align` does): synth -> segment (shipped affinity U-Net) -> synapses (shipped synapse U-Net) -> graph ->
evaluate, with the naive baselines (no network) on the same volume side by side: the
watershed segmentation of `pipeline.naive_baseline`, and the naive synapse detector
(`connectomix.synapses.naive_predictions`: darkest spots near segment boundaries, nearest
other segment as partner) run on the network's segmentation in a separate run directory
(`<out>/evalN-naive`), so the network's tables and scores stay the reported ones. Also prints
where the network's edge errors come from (`connectomix.evaluate.edge_error_sources`), and
where its VOI comes from: the same segmentation scored without the voxels at object
boundaries (`connectomix.evaluate.ignore_boundaries`, the CREMI convention: the two-voxel
band along every in-plane boundary), and the best agglomeration of its fragments
(`connectomix.evaluate.oracle_agglomeration`), with and without that band.

    .venv/bin/python benchmarks/bench_quality.py [--seeds 0 1 2 3 4] [--hard] [--voxel-size 30 6 6]
                                                 [--tta] [--out /tmp/bench-quality]
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np


def one(out: Path, preset: str, seed: int, voxel_size=None, align: bool = False, tta: bool = False) -> dict:
    from connectomix import pipeline
    from connectomix.config import ClusterConfig
    from connectomix.synth import synthesize

    shutil.rmtree(out, ignore_errors=True)
    cl = ClusterConfig(scheduler="synchronous")
    t = {}
    t0 = time.perf_counter()
    run = synthesize(out, preset=preset, seed=seed, voxel_size=voxel_size)
    t["synth"] = time.perf_counter() - t0
    if align:  # as `connectomix run --align`: segment and synapses then read `aligned`
        from connectomix.align import align_stage

        t0 = time.perf_counter()
        align_stage(out, say=lambda m: None)
        t["align"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipeline.segment_stage(out, cluster=cl, say=lambda m: None, tta=tta)
    t["segment"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipeline.synapses_pipeline_stage(out, cluster=cl, say=lambda m: None)
    pipeline.graph_pipeline_stage(out, cluster=cl, say=lambda m: None)
    t["synapses+graph"] = time.perf_counter() - t0
    s = pipeline.evaluate_stage(out, compute_erl=False)
    base = pipeline.naive_baseline(run)
    from connectomix.evaluate import edge_error_sources

    sources = edge_error_sources(out)
    where = voi_sources(run)
    t0 = time.perf_counter()
    naive = naive_synapses(out, cl)
    t["naive_synapses"] = time.perf_counter() - t0
    if voxel_size is not None:
        preset = f"{preset}@{'x'.join(map(str, voxel_size))}nm"
    return {"preset": preset, "seed": seed, "voi_split": s["voi_split"], "voi_merge": s["voi_merge"],
            "voi": s["voi"], "rand_error": s["rand_error"], "baseline_voi": base["voi_split"] + base["voi_merge"],
            "synapse_f1": s.get("synapse_f1"), "synapse_precision": s.get("synapse_precision"),
            "synapse_recall": s.get("synapse_recall"), "edge_f1": s.get("edge_f1"),
            "naive_synapse_f1": naive["synapse_f1"], "naive_synapse_precision": naive["synapse_precision"],
            "naive_synapse_recall": naive["synapse_recall"], "naive_edge_f1": naive["edge_f1"],
            "edge_n_gt": s.get("edge_n_gt"), "edge_n_pred": s.get("edge_n_pred"), "error_sources": sources,
            "voi_band": s.get("voi_boundary_ignored", float("nan")), **where,
            "shape": list(run.open("raw").shape), **{f"s_{k}": round(v, 1) for k, v in t.items()}}


def voi_sources(run) -> dict:
    """VOI of the oracle agglomeration of the segmentation's fragments, also with the
    boundary band ignored (bits, split + merge), and the band's share of the voxels
    (`evaluate` scores the segmentation itself both ways)."""
    from connectomix.evaluate import (
        ground_truth_volume,
        ignore_boundaries,
        oracle_agglomeration,
        variation_of_information,
    )

    gt = np.asarray(ground_truth_volume(run).to_numpy())
    band = ignore_boundaries(gt)
    oracle = oracle_agglomeration(run.open("fragments").to_numpy(), gt)
    return {"oracle_voi": variation_of_information(oracle, gt).total,
            "oracle_voi_band": variation_of_information(oracle, band).total,
            "band_fraction": float(np.mean((band == 0) & (gt != 0)))}


def naive_synapses(out: Path, cluster) -> dict:
    """Synapse and edge scores of the naive detector on the run's segmentation (a separate run)."""
    from connectomix import pipeline
    from connectomix.evaluate import edges_from_synapses, evaluate_tables, map_segments_to_gt
    from connectomix.run import Run
    from connectomix.synapses import PREDICTION_CHANNELS, naive_predictions, synapses_stage
    from connectomix.volume import create_volume

    src = Run(out)
    dest = out.parent / f"{out.name}-naive"
    shutil.rmtree(dest, ignore_errors=True)
    run = Run.create(dest)
    sv = src.open("segmentation")
    seg = sv.to_numpy()
    gt = src.open("gt_segmentation").to_numpy()
    pred = naive_predictions(src.open(src.input_name()).to_numpy(), seg, tuple(sv.voxel_size))
    kw = dict(voxel_size=tuple(sv.voxel_size), offset=tuple(sv.offset), overwrite=True)
    copy = create_volume(run.volume_path("segmentation"), shape=seg.shape, dtype=seg.dtype, chunks=sv.chunks, **kw)
    copy[copy.roi] = seg
    np_ = create_volume(run.volume_path("naive_pred"), shape=pred.shape, dtype=np.float32,
                        chunks=(4,) + tuple(sv.chunks), attrs={"channels": list(PREDICTION_CHANNELS),
                                                                "source": "naive (no learning)"}, **kw)
    np_[np_.roi] = pred
    del pred
    # the same detection settings as the network's, at the naive map's own threshold (0.5 by construction)
    synapses_stage(dest, cleft="naive_pred", output="naive_cleft_labels", min_size_vx=pipeline.SYNAPSE_MIN_SIZE_VX,
                   min_partner_weight=pipeline.SYNAPSE_MIN_PARTNER_WEIGHT, cluster=cluster, say=lambda m: None,
                   force=True)
    syn = run.read_table("synapses")
    both = syn[(syn["pre_id"] != 0) & (syn["post_id"] != 0)]  # as the graph stage builds edges
    scores = evaluate_tables(pred_synapses=syn, gt_synapses=src.read_table("gt_synapses"),
                             pred_edges=edges_from_synapses(both), gt_edges=src.read_table("gt_edges"),
                             segment_map=map_segments_to_gt(seg, gt))
    return {k: scores[k] for k in ("synapse_f1", "synapse_precision", "synapse_recall", "edge_f1")}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    p.add_argument("--hard", action="store_true", help="also the hard preset, seed 0")
    p.add_argument("--voxel-size", type=int, nargs=3, metavar=("Z", "Y", "X"),
                   help="also the demo volume (seed 0) at the model's voxel size and at this one "
                        "(resampled to the model's by `segment`): generalisation to another resolution")
    p.add_argument("--tta", action="store_true",
                   help="segment with test-time augmentation (`connectomix segment --tta`: 8 in-plane symmetries)")
    p.add_argument("--out", default="/tmp/bench-quality")
    args = p.parse_args()
    from connectomix.synth import eval_settings_hash

    rows = [one(Path(args.out) / f"eval{s}", "eval", s, tta=args.tta) for s in args.seeds]
    if args.hard:
        rows.append(one(Path(args.out) / "hard0", "hard", 0, align=True, tta=args.tta))
    if args.voxel_size:
        rows.append(one(Path(args.out) / "demo0", "demo", 0, tta=args.tta))
        rows.append(one(Path(args.out) / "demo0-resampled", "demo", 0, voxel_size=tuple(args.voxel_size), tta=args.tta))
    print(f"eval set hash {eval_settings_hash()}")
    cols = ["preset", "seed", "voi_split", "voi_merge", "voi", "rand_error", "baseline_voi", "synapse_f1",
            "synapse_precision", "synapse_recall", "edge_f1", "naive_synapse_f1", "naive_edge_f1", "s_segment",
            "s_synapses+graph", "s_naive_synapses"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    ev = [r for r in rows if r["preset"] == "eval"]
    if ev:
        mean = {c: float(np.mean([r[c] for r in ev])) for c in cols[2:13]}
        print("eval mean | " + " | ".join(f"{c}={v:.3f}" for c, v in mean.items()))
        print(f"VOI ratio naive / network: {mean['baseline_voi'] / mean['voi']:.2f}x (target >= 4x)")
        print(f"synapse F1 network {mean['synapse_f1']:.3f} (target >= 0.85) vs naive {mean['naive_synapse_f1']:.3f} "
              f"(target <= 0.5); edge F1 network {mean['edge_f1']:.3f} vs naive {mean['naive_edge_f1']:.3f}")
    print("where the VOI comes from (bits; band = the voxels at in-plane object boundaries, ignored as CREMI does; "
          "oracle = each fragment given its majority true object, a perfect merging by majority):")
    print("preset | seed | voi | voi, band ignored | oracle voi | oracle voi, band ignored | band voxels")
    for r in rows:
        print(f"{r['preset']} | {r['seed']} | {r['voi']:.3f} | {r['voi_band']:.3f} | {r['oracle_voi']:.3f} | "
              f"{r['oracle_voi_band']:.3f} | {r['band_fraction']:.1%}")
    if ev:
        print("eval mean | " + " | ".join(f"{float(np.mean([r[c] for r in ev])):.3f}"
                                          for c in ("voi", "voi_band", "oracle_voi", "oracle_voi_band")))
    print("where the network's edge errors come from (edges; see connectomix.evaluate.edge_error_sources):")
    for r in rows:
        e = r["error_sources"]
        print(f"  {r['preset']}{r['seed']}: {e['n_true_edges']} true, {e['n_pred_edges']} predicted, "
              f"{e['n_matched_edges']} matched | true edges lost: {e['true_edges_lost_to_missed_synapses']} to missed "
              f"synapses, {e['true_edges_lost_to_merges']} to merges, {e['true_edges_lost_to_partner_errors']} to "
              f"partner errors | found but split over fragments: {e['true_edges_lost_to_splits']} "
              f"(+{e['extra_edges_from_splits']} raw edges) | false edges: {e['false_edges_from_false_synapses']} "
              f"from false synapses, {e['false_edges_from_merges']} from merges, "
              f"{e['false_edges_from_partner_errors']} from partner errors | {e['n_split_neurons']} split neurons, "
              f"{e['n_merged_segments']} merged segments")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "quality.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
