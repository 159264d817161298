"""Damaged-section detection of `align`: the shipped defect network against the NCC rule.

Each stack is a generator stack (8 x 256 x 256 by default) with translations up to 50 px,
rotations up to 1.5 deg, ``--missing`` missing and ``--damaged`` damaged sections
(fold, crack or smear). ``register_stack`` (rigid) reports a section ``damaged`` when at
least ``damage_min_fraction`` of it is found damaged; this counts, over all stacks, the
truly damaged sections found (TP), the sections reported damaged that are not (FP) and
the damaged ones missed (FN), for the defect network (``damage_model=True``, the
default) and for the hand rule it replaced (local NCC with the neighbours), same stacks.

    .venv/bin/python benchmarks/bench_defects.py [--seeds 12] [--first-seed 0] [--size 256] [--missing 2]
        [--damaged 1] [--elastic] [--methods network network-any ncc]

``network-any`` is the defect network without the shape filter (``damage_min_elongation=0``).

``--elastic`` runs the elastic alignment after the rigid one, as ``align`` does by default:
damage is then judged again on the refined maps where the first look found any.

``--damage-max-px N`` judges sections larger than N pixels block-averaged, as ``align`` does
on sections above 2048 px (``RegisterSettings.damage_max_px``; the network must have been
trained at that scale, ``connectomix train --task defects --scale``): e.g. ``--size 512
--damage-max-px 256`` measures on small stacks what 4096 px sections get.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=12, help="number of stacks")
    ap.add_argument("--first-seed", type=int, default=0, help="seed of the first stack")
    ap.add_argument("--sections", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--missing", type=int, default=2)
    ap.add_argument("--damaged", type=int, default=1)
    ap.add_argument("--elastic", action="store_true", help="elastic alignment after the rigid one")
    ap.add_argument("--damage-max-px", type=int, default=None,
                    help="judge larger sections block-averaged (RegisterSettings.damage_max_px)")
    ap.add_argument("--methods", nargs="+", default=["network", "ncc"], choices=["network", "network-any", "ncc"])
    a = ap.parse_args()

    from connectomix.align import RegisterSettings, register_stack
    from connectomix.synth import SynthSettings, generate

    methods = {"defect network": replace(RegisterSettings(), damage_model=True),
               # without the shape filter (damage_min_elongation 0, as before 2026-11-27)
               "network, any shape": replace(RegisterSettings(), damage_model=True, damage_min_elongation=0.0),
               # the rule at the smallest damaged fraction it was tuned with (0.008; the network's is 0.005)
               "NCC rule": replace(RegisterSettings(), damage_model=False, damage_min_fraction=0.008)}
    short = {"defect network": "network", "network, any shape": "network-any", "NCC rule": "ncc"}
    methods = {k: v for k, v in methods.items() if short[k] in a.methods}
    if a.damage_max_px is not None:
        methods = {k: replace(v, damage_max_px=a.damage_max_px) for k, v in methods.items()}
    counts = {m: [0, 0, 0] for m in methods}
    kinds = {m: {} for m in methods}
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        s = SynthSettings(shape=(a.sections, a.size, a.size), misalign=True, max_translation_px=50,
                          max_rotation_deg=1.5, elastic_amplitude_px=0, missing_sections=a.missing,
                          damaged_sections=a.damaged)
        out = generate(s, seed)
        q = out["section_quality"]
        true = set(q.index[q["status"] == "damaged"].tolist())
        line = [f"seed {seed:2d}: missing {out['missing']}, damaged {sorted(true)} "
                f"{q.loc[sorted(true), 'damage_kind'].tolist()}"]
        for name, st in methods.items():
            res = register_stack(out["raw"], reference=a.sections // 2, elastic=a.elastic, settings=st,
                                 log=lambda m: None)
            det = set(np.flatnonzero(res["damaged_fraction"] >= st.damage_min_fraction).tolist())
            c = counts[name]
            c[0] += len(det & true)
            c[1] += len(det - true)
            c[2] += len(true - det)
            for z in true:
                k = q.loc[z, "damage_kind"]
                found, n = kinds[name].get(k, (0, 0))
                kinds[name][k] = (found + (z in det), n + 1)
            line.append(f"{name}: {sorted(det)}")
        print("; ".join(line), flush=True)
    print(f"\n{a.seeds} stacks (seeds {a.first_seed}-{a.first_seed + a.seeds - 1}) of {a.sections} x {a.size} x {a.size}, {a.missing} missing + {a.damaged} damaged each")
    print(f"{'method':18s} {'found':>6s} {'false':>6s} {'missed':>6s} {'precision':>9s} {'recall':>7s}  by kind (found/n)")
    for name, (tp, fp, fn) in counts.items():
        by = ", ".join(f"{k} {f}/{n}" for k, (f, n) in sorted(kinds[name].items()))
        print(f"{name:18s} {tp:6d} {fp:6d} {fn:6d} {tp / max(tp + fp, 1):9.2f} {tp / max(tp + fn, 1):7.2f}  {by}")


if __name__ == "__main__":
    main()
