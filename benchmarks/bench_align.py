"""Alignment accuracy and time against the generator's true transforms, peer side by side.

Stack: translations up to ``--translation`` px, rotations up to ``--rotation`` deg,
elastic warps of ``--elastic`` px, ``--missing`` missing and ``--damaged`` damaged
sections. Residual = distance between where the estimated and the true transform
send points of the aligned frame (pixels), on the sections the generator marks ok,
where the true raw position lies 8 px inside the image.

Methods:
- connectomix rigid (global least squares, ``elastic=False``);
- connectomix elastic (mesh, default settings);
- scikit-image ``phase_cross_correlation`` per adjacent pair, translations chained to
  the reference (the naive translation-only baseline);
- itk-elastix (``pip install itk-elastix``): elastix's default rigid then B-spline
  parameter maps (4 resolutions, mutual information, final grid spacing 32 px as our
  mesh), each section registered to its already-registered neighbour towards the
  reference (chained, as elastix aligns a stack); skipped with a note when not installed.
  Like the scikit-image baseline, it is told which sections are missing.

``--methods`` picks a subset (e.g. ``--methods elastic elastix`` on 4096 px sections,
where the rigid pass and the baselines add little). Time per section and peak Python-side
memory (tracemalloc; elastix's own C++ allocations are not seen by it, so its column is
a lower bound) are printed for each method; connectomix's notes split its time per section
into the coarse pass, the defect network (``damage``), the coarse refinement and the
elastic passes.

``--per-section`` also prints each method's residual per section (median / 95th percentile, px)
with the distance to the nearest usable section: far from the reference, and beyond missing
sections, the residual grows (see the notes on issue #5 in the report).

Usage: python benchmarks/bench_align.py [--sections 12 --size 384 --seed 0] [--per-section]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc

import numpy as np


def skimage_baseline(raw, reference, missing):
    from skimage.registration import phase_cross_correlation

    from connectomix.align import GridMap

    Z, Y, X = raw.shape
    g = GridMap.identity(Z, (Y, X), 32)
    good = [z for z in range(Z) if z not in missing]
    t = {reference: np.zeros(2)}
    k = good.index(reference)
    for direction in (-1, 1):
        prev = reference
        for z in good[k + direction :: direction] if direction > 0 else good[:k][::-1]:
            sh, _, _ = phase_cross_correlation(raw[prev].astype(np.float32), raw[z].astype(np.float32),
                                               upsample_factor=10, normalization=None)
            t[z] = t[prev] - sh  # raw_z(p + t) ~ raw_prev(p)
            prev = z
    for z in range(Z):
        tz = t.get(z, np.zeros(2))
        g.coords[z, 0] += tz[0]
        g.coords[z, 1] += tz[1]
    return g


def elastix_baseline(raw, reference, missing, spacing=32):
    """itk-elastix rigid + B-spline, chained from the reference; a ``GridMap`` of raw positions."""
    import itk

    from connectomix.align import GridMap

    Z, Y, X = raw.shape
    g = GridMap.identity(Z, (Y, X), spacing)
    GY, GX = np.meshgrid(g.gy, g.gx, indexing="ij")
    iy = np.clip(np.round(GY).astype(int), 0, Y - 1)
    ix = np.clip(np.round(GX).astype(int), 0, X - 1)
    good = [z for z in range(Z) if z not in missing]
    k = good.index(reference)
    registered = {reference: np.ascontiguousarray(raw[reference], dtype=np.float32)}
    for chain in (good[k + 1:], good[:k][::-1]):
        prev = reference
        for z in chain:
            po = itk.ParameterObject.New()
            po.AddParameterMap(po.GetDefaultParameterMap("rigid", 4))
            po.AddParameterMap(po.GetDefaultParameterMap("bspline", 4, float(spacing)))
            fixed_np = registered[prev]
            moving_np = np.ascontiguousarray(raw[z], dtype=np.float32)
            fixed, moving = itk.image_from_array(fixed_np), itk.image_from_array(moving_np)
            # (passing number_of_threads crashes itk-elastix 0.25.4; it uses every core by default)
            out, tp = itk.elastix_registration_method(fixed, moving, parameter_object=po, log_to_console=False)
            registered[z] = np.ascontiguousarray(itk.array_from_image(out), dtype=np.float32)
            # the transform sends fixed (= aligned-frame) points to moving (= raw) points; (dx, dy) per pixel
            with tempfile.TemporaryDirectory() as d:  # transformix writes the field to a file as well
                field = itk.array_from_image(itk.transformix_deformation_field(moving, tp, output_directory=d))
            g.coords[z, 0] = GY + field[iy, ix, 1]
            g.coords[z, 1] = GX + field[iy, ix, 0]
            prev = z
    return g


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sections", type=int, default=12)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--translation", type=float, default=50.0)
    ap.add_argument("--rotation", type=float, default=1.5)
    ap.add_argument("--elastic", type=float, default=8.0)
    ap.add_argument("--missing", type=int, default=2)
    ap.add_argument("--damaged", type=int, default=1)
    ap.add_argument("--per-section", action="store_true", help="print residuals per section")
    ap.add_argument("--methods", nargs="+", default=["rigid", "elastic", "skimage", "elastix"],
                    choices=["rigid", "elastic", "skimage", "elastix"])
    a = ap.parse_args()

    from connectomix.align import RegisterSettings, register_stack
    from connectomix.align import transform_residuals
    from connectomix.synth import SynthSettings, generate

    s = SynthSettings(shape=(a.sections, a.size, a.size), misalign=True, max_translation_px=a.translation,
                      max_rotation_deg=a.rotation, elastic_amplitude_px=a.elastic, missing_sections=a.missing,
                      damaged_sections=a.damaged)
    t0 = time.perf_counter()
    out = generate(s, a.seed)
    print(f"generated {s.shape} in {time.perf_counter() - t0:.1f} s; missing {out['missing']}, damaged "
          f"{out['section_quality'].index[out['section_quality'].status == 'damaged'].tolist()}")
    raw = out["raw"]
    ref = a.sections // 2
    qual = out["section_quality"]
    ok = qual.index[qual.status == "ok"].tolist()
    rows = []
    per_sec = []

    def score(name, fn):
        tracemalloc.start()
        t = time.perf_counter()
        g, extra = fn()
        dt = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        res = transform_residuals(g, out["transforms"], s.voxel_size, sections=ok)
        r = res["all"]
        rows.append((name, r.median_nm, r.p95_nm, r.max_nm, dt, dt / a.sections, peak, extra))
        per_sec.append((name, res["per_section"]))

    def cx(elastic):
        def f():
            res = register_stack(raw, reference=ref, elastic=elastic, log=lambda m: None)
            det = res["missing"].nonzero()[0].tolist()
            dmg = [int(z) for z in np.flatnonzero(res["damaged_fraction"] >= RegisterSettings().damage_min_fraction)]
            sec = res["stats"]["seconds"]
            split = " ".join(f"{k} {v / a.sections:.1f}" for k, v in sec.items() if v >= 0.05 * a.sections)
            return res["map"], f"missing {det} damaged {dmg} minJ {res['min_jacobian']:.2f}; s/sect: {split}"
        return f

    if "rigid" in a.methods:
        score("connectomix rigid", cx(False))
    if "elastic" in a.methods:
        score("connectomix elastic", cx(True))
    if "skimage" in a.methods:
        score("skimage phase corr (chained)", lambda: (skimage_baseline(raw, ref, set(out["missing"])), ""))
    if "elastix" in a.methods:
        try:
            import itk  # noqa: F401
        except ImportError:
            print("note: itk-elastix not installed (pip install itk-elastix); B-spline peer skipped")
        else:
            score("itk-elastix B-spline (chained)", lambda: (elastix_baseline(raw, ref, set(out["missing"])), ""))
    print(f"\nresiduals vs true transforms on {len(ok)} ok sections (px); targets: rigid median <= 0.5, 95th <= 1; "
          "elastic median <= 1, 95th <= 2")
    print(f"{'method':32s} {'median':>7s} {'p95':>7s} {'max':>7s} {'time s':>7s} {'s/sect':>7s} {'peak MiB':>8s}  notes")
    for n, med, p95, mx, dt, per, peak, extra in rows:
        print(f"{n:32s} {med:7.2f} {p95:7.2f} {mx:7.2f} {dt:7.1f} {per:7.2f} {peak:8.0f}  {extra}")
    if a.per_section:
        usable = [z for z in range(a.sections) if z not in set(out["missing"])]
        print(f"\nper section (median / 95th px); gap = sections to the nearest usable neighbour, ref = {ref}")
        print(f"{'method':32s} " + " ".join(f"{'z' + str(z) + ' gap' + str(min(abs(z - u) for u in usable if u != z)):>12s}"
                                            for z in ok))
        for name, d in per_sec:
            print(f"{name:32s} " + " ".join(f"{d[z].median_nm:5.2f}/{d[z].p95_nm:5.2f} " if z in d else f"{'-':>12s}"
                                            for z in ok))


if __name__ == "__main__":
    main()
