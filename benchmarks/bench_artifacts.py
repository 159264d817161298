"""Segmentation across missing and damaged sections (issue #4: >= 90 % of the true
neurons that cross a missing section or a damaged strip stay one segment across it).

Each volume is the ``demo`` preset (32 x 256 x 256, no misalignment) with missing and
damaged sections added; the shipped network segments it and
:func:`connectomix.evaluate.section_continuity` counts the neurons that stay one
segment. As a control, the same neurons are scored across the same sections of the
volume without artifacts (same seed), which shows what the sections cost; and across
every section of those clean volumes, by the neurite's cross-section (thin ones break
most).

    .venv/bin/python benchmarks/bench_artifacts.py [--seeds 0 1 2] [--missing 2] [--damaged 2] [--tta]
"""

import argparse
import shutil
from pathlib import Path

import numpy as np


def one(out: Path, seed: int, missing: int, damaged: int, tta: bool = False) -> dict:
    from connectomix import pipeline
    from connectomix.config import ClusterConfig
    from connectomix.evaluate import damage_strip, section_continuity
    from connectomix.synth import preset_settings, synthesize

    cl = ClusterConfig(scheduler="synchronous")
    res = {"seed": seed}
    quality = None
    for name, m, d in (("artifacts", missing, damaged), ("clean", 0, 0)):
        path = out / f"{name}{seed}"
        shutil.rmtree(path, ignore_errors=True)
        settings = preset_settings("demo").replace(missing_sections=m, damaged_sections=d)
        run = synthesize(path, preset="demo", seed=seed, settings=settings)
        pipeline.segment_stage(path, cluster=cl, say=lambda msg: None, tta=tta)
        seg, gt = run.open("segmentation").to_numpy(), run.open("gt_segmentation").to_numpy()
        if quality is None:  # score the clean volume across the artifact volume's bad sections
            quality = run.read_table("gt_section_quality")
        vs = run.open("gt_segmentation").voxel_size
        miss = quality.loc[quality["status"] == "missing", "section"].astype(int).tolist()
        dam = quality[quality["status"] == "damaged"]
        strips = {int(r["section"]): damage_strip(r, gt.shape[1:], vs[1:]) for _, r in dam.iterrows()}
        cm = section_continuity(seg, gt, miss)
        cd = section_continuity(seg, gt, list(strips), strips=strips)
        res[f"{name}_missing"] = (cm.n_kept, cm.n_crossing)
        res[f"{name}_damaged"] = (cd.n_kept, cd.n_crossing)
        if name == "clean":
            res["by_size"] = crossings_by_size(seg, gt)
    return res


SIZE_BINS = (50, 150, 400, 1000, 3000, np.inf)


def crossings_by_size(seg, gt, min_voxels: int = 50):
    """(cross-section in voxels, kept) for every true neuron crossing every inner section.

    As :func:`~connectomix.evaluate.section_continuity` counts: a neuron with at least
    ``min_voxels`` voxels in sections z - 1 and z + 1 is kept when the segment holding
    most of them is the same on both sides; its size is the mean of the two counts.
    """
    rows = []
    for z in range(1, gt.shape[0] - 1):
        below, above = gt[z - 1].ravel(), gt[z + 1].ravel()
        sb, sa = seg[z - 1].ravel().astype(np.int64), seg[z + 1].ravel().astype(np.int64)
        for i in np.intersect1d(np.unique(below), np.unique(above)):
            if i == 0:
                continue
            mb, ma = below == i, above == i
            if mb.sum() < min_voxels or ma.sum() < min_voxels:
                continue
            kept = np.bincount(sb[mb]).argmax() == np.bincount(sa[ma]).argmax()
            rows.append(((mb.sum() + ma.sum()) / 2, bool(kept)))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--missing", type=int, default=2)
    p.add_argument("--damaged", type=int, default=2)
    p.add_argument("--tta", action="store_true", help="segment with `segment --tta` (8 in-plane symmetries)")
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-artifacts"))
    args = p.parse_args()
    rows = [one(args.out, s, args.missing, args.damaged, args.tta) for s in args.seeds]
    print("seed | across missing: with artifacts / clean volume | across damaged strips: with artifacts / clean")
    tot = {}
    for r in rows:
        cells = []
        for kind in ("missing", "damaged"):
            parts = []
            for name in ("artifacts", "clean"):
                k, n = r[f"{name}_{kind}"]
                tot.setdefault((name, kind), [0, 0])
                tot[(name, kind)][0] += k
                tot[(name, kind)][1] += n
                parts.append(f"{k}/{n}")
            cells.append(" / ".join(parts))
        print(f"{r['seed']} | " + " | ".join(cells))
    for kind in ("missing", "damaged"):
        a, c = tot[("artifacts", kind)], tot[("clean", kind)]
        print(f"across {kind} sections: {a[0] / max(1, a[1]):.1%} of {a[1]} crossings stay one segment "
              f"(clean volume, same sections: {c[0] / max(1, c[1]):.1%}); target >= 90 %")
    sizes = np.array([r for row in rows for r in row["by_size"]], float).reshape(-1, 2)
    print(f"across every inner section of the clean volumes: {sizes[:, 1].mean():.1%} of {len(sizes)} crossings "
          "stay one segment; by the neurite's cross-section (voxels per section):")
    for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:]):
        m = (sizes[:, 0] >= lo) & (sizes[:, 0] < hi)
        if m.any():
            print(f"  {lo:>5.0f} - {hi:<5.0f}: {sizes[m, 1].mean():.1%} of {int(m.sum())}")


if __name__ == "__main__":
    main()
