"""Where the `hard` preset's VOI comes from: the same seed with its difficulties taken away one by one.

`hard` (outside the training distribution) stacks noisier images, weaker membranes,
missing and damaged sections, misaligned sections and tiles with stage errors. Each
variant below is `preset_settings("hard").replace(...)` for the same seed, run as
`connectomix run --align` runs it where it has tiles or misalignment (stitch, align,
segment with the shipped network) and scored by `connectomix evaluate` (ground truth
mapped into the aligned frame), beside the naive baseline of the same volume:

    hard                     as it is
    tiles only               no misalignment (tiles with stage errors remain)
    misalignment only        no tiles
    no geometry              neither: segmented as generated
    ... and no defects       also no missing or damaged sections
    ... and training-like    also membranes as weak as in the middle of the `train`
        membranes            preset's range (30 % weak, floor 0.2; hard: 50 %, 0.08)

    .venv/bin/python benchmarks/bench_hard_sources.py [--seed 0] [--out /tmp/bench-hard]
"""

import argparse
import shutil
import time
from pathlib import Path


def variants():
    from connectomix.synth import preset_settings

    h = preset_settings("hard")
    plain = h.replace(misalign=False, tiles=None)
    return {
        "hard": h,
        "tiles only": h.replace(misalign=False),
        "misalignment only": h.replace(tiles=None),
        "no geometry": plain,
        "... and no defects": plain.replace(missing_sections=0, damaged_sections=0),
        "... and training-like membranes": plain.replace(missing_sections=0, damaged_sections=0,
                                                         weak_membrane_fraction=0.3, weak_membrane_floor=0.2),
    }


def one(out: Path, settings, seed: int) -> dict:
    from connectomix import pipeline
    from connectomix.config import ClusterConfig
    from connectomix.synth import synthesize

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    run = synthesize(out, preset="hard", seed=seed, settings=settings)
    if settings.misalign or settings.tiles:
        from connectomix.align import align_stage

        align_stage(out, say=lambda m: None)
    pipeline.segment_stage(out, cluster=ClusterConfig(scheduler="synchronous"), say=lambda m: None)
    s = pipeline.evaluate_stage(out, compute_erl=False)
    base = pipeline.naive_baseline(run)
    residual = (run.read_config().get("align_result") or {}).get("residual_px")
    return {"voi_split": s["voi_split"], "voi_merge": s["voi_merge"], "voi": s["voi"], "rand_error": s["rand_error"],
            "naive": base["voi_split"] + base["voi_merge"], "residual": residual, "seconds": time.perf_counter() - t0}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-hard"))
    args = p.parse_args()
    print("variant | VOI split + merge | adapted Rand | naive VOI | alignment residual (median / 95th px) | s")
    for k, (name, settings) in enumerate(variants().items()):
        r = one(args.out / f"v{k}", settings, args.seed)
        res = r["residual"]
        al = f"{res['median']:.1f} / {res['p95']:.1f}" if res else "-"
        print(f"{name} | {r['voi_split']:.2f} + {r['voi_merge']:.2f} = {r['voi']:.2f} | {r['rand_error']:.3f} | "
              f"{r['naive']:.2f} | {al} | {r['seconds']:.0f}", flush=True)


if __name__ == "__main__":
    main()
