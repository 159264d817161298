"""Kernels of the align stage: patch matching, global shift, mesh maps, section status."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from connectomix.align import GridMap, global_shift, jacobian_det, match_patches, register_stack, section_status
from connectomix.errors import VolumeError


@pytest.fixture(scope="module")
def texture():
    rng = np.random.default_rng(0)
    return ndi.gaussian_filter(rng.standard_normal((192, 192)).astype(np.float32), 2.0)


def test_match_patches_recovers_subpixel_shift(texture):
    b = ndi.shift(texture, (3.3, -5.6), order=3, mode="nearest")
    c = np.stack(np.meshgrid(np.arange(48, 145, 24), np.arange(48, 145, 24), indexing="ij"), -1).reshape(-1, 2)
    m = match_patches(texture, b, c, patch=48, search=12)
    assert m.valid.all()
    assert np.allclose(np.median(m.shifts, 0), (3.3, -5.6), atol=0.15)


def test_match_patches_rejects_flat_patches(texture):
    a = texture.copy()
    a[:96] = 0.0  # no structure: no confident peak
    m = match_patches(a, a, np.array([[40, 96], [140, 96]]), patch=48, search=8)
    assert not m.valid[0] and m.valid[1]


def test_dense_grids_match_as_patches_matched_one_by_one(texture):
    """The image-wide window statistics of a dense grid give the per-window result, masks included."""
    yy, xx = np.mgrid[0:192, 0:192]
    b = ndi.map_coordinates(texture, [yy + 2.4 + np.sin(xx / 30), xx - 1.7], order=3, mode="nearest")
    mask = np.ones(texture.shape, bool)
    mask[60:80, 20:120] = False
    c = np.stack(np.meshgrid(np.arange(24, 169, 8), np.arange(24, 169, 8), indexing="ij"), -1).reshape(-1, 2)
    for kw in ({}, {"a_mask": mask, "b_mask": mask}):
        dense = match_patches(texture, b, c, patch=32, search=6, **kw)  # 361 windows of 44^2 px > the image
        single = [match_patches(texture, b, c[i : i + 1], patch=32, search=6, **kw) for i in range(len(c))]
        assert np.array_equal(dense.valid, np.concatenate([m.valid for m in single]))
        assert np.allclose(dense.shifts, np.concatenate([m.shifts for m in single]), atol=1e-6)
        assert np.allclose(dense.ncc, np.concatenate([m.ncc for m in single]), atol=1e-6)
    assert 0 < dense.valid.sum() < len(c)  # the mask rejected some, the texture passed the others


@pytest.mark.parametrize("sigma", [6.0, 12.0, 48.0])
def test_wide_blur_is_the_gaussian(sigma):
    from connectomix.align._match import _blur

    rng = np.random.default_rng(1)
    x = ndi.gaussian_filter(rng.random((300, 517)).astype(np.float32), 1.5)
    exact = ndi.gaussian_filter(x, sigma)
    fast = _blur(x, sigma)
    assert fast.shape == x.shape
    # within 1 % of the spread of the band the prefilter keeps (x minus its blur)
    assert np.sqrt(np.mean((fast - exact) ** 2)) < 0.01 * np.std(x - exact)


def test_global_shift_large_translation(texture):
    b = np.roll(texture, (40, -25), axis=(0, 1))
    assert np.allclose(global_shift(texture, b), (40, -25), atol=1)
    # on sections block-averaged to 96 px (by 2): a start within the factor, at a quarter of the pixels
    assert np.allclose(global_shift(texture, b, max_px=96), (40, -25), atol=2)


def test_gridmap_apply_invert_and_jacobian():
    g = GridMap.identity(2, (65, 65), 16)
    th = np.deg2rad(2.0)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    GY, GX = np.meshgrid(g.gy, g.gx, indexing="ij")
    p = np.stack([GY, GX], -1)
    g.coords[1] = np.moveaxis(p @ R.T + [3.0, -2.0], -1, 0)
    q = g.apply(1, np.array([[10.0, 20.0]]))
    assert np.allclose(q, np.array([[10.0, 20.0]]) @ R.T + [3, -2])
    assert np.allclose(g.invert(1, q), [[10.0, 20.0]], atol=1e-6)
    assert np.all(jacobian_det(g.coords, g.gy, g.gx) > 0.99)
    folded = g.coords.copy()
    folded[1, 1, 2, 2] += 40  # push one node past its neighbour
    assert jacobian_det(folded, g.gy, g.gx).min() <= 0


def test_section_status_finds_empty_constant_and_nan(texture):
    stack = np.stack([texture, np.zeros_like(texture), np.full_like(texture, 7.0), np.full_like(texture, np.nan), texture])
    missing, _ = section_status(stack)
    assert missing.tolist() == [False, True, True, True, False]


def test_register_rejects_single_section(texture):
    with pytest.raises(VolumeError, match="at least two sections"):
        register_stack(texture[None], reference=0)


def test_register_all_missing_but_one(texture):
    with pytest.raises(VolumeError, match="two sections with data"):
        register_stack(np.stack([texture, np.zeros_like(texture)]), reference=0)


def _stack(seed, **kw):
    from connectomix.synth import SynthSettings, generate

    s = SynthSettings(shape=(8, 192, 192), misalign=True, max_translation_px=30, max_rotation_deg=1.5,
                      elastic_amplitude_px=0, **kw)
    return generate(s, seed)


@pytest.mark.parametrize("damage_model", [True, False], ids=["network", "ncc-rule"])
def test_clean_stack_has_no_missing_or_damaged_sections(damage_model):
    from dataclasses import replace

    from connectomix.align import RegisterSettings, register_stack

    settings = replace(RegisterSettings(), damage_model=damage_model)
    out = _stack(5)
    res = register_stack(out["raw"], reference=4, elastic=False, settings=settings, log=lambda m: None)
    assert not res["missing"].any()
    assert res["stats"]["damage_method"] == ("network" if damage_model else "ncc")
    assert (res["damaged_fraction"] < settings.damage_min_fraction).all(), res["damaged_fraction"]


def _nan_stack():
    out = _stack(6)
    raw = out["raw"].astype(np.float32)
    raw[2] = np.nan  # a section without data
    raw[6, :40] = np.nan  # a partly empty section
    return out, raw


def test_nan_section_is_missing_and_maps_are_finite():
    from connectomix.align import register_stack

    _, raw = _nan_stack()
    res = register_stack(raw, reference=4, elastic=False, log=lambda m: None)
    assert res["missing"].tolist() == [False, False, True] + [False] * 5
    assert np.isfinite(res["map"].coords).all()


@pytest.mark.xfail(reason="open (issue #5): sections beyond a missing section are bridged by a whole-image rigid "
                          "search, but in this stack the content of sections 1 and 3 matches best ~12 px away from "
                          "their true relative placement (band-passed NCC 0.73 there against 0.57 at the truth; "
                          "0.14 against 0.05 in the fine band), and the alignment follows the content; measured "
                          "2026-11-27: median 1.9 px, p95 24.5 px, sections 0-1 off by 17-20 px, the others "
                          "<= 2.8 px (16.2 px p95 before the float32 NCC and the damage shape filter moved the "
                          "bridge within that ambiguity)", strict=True)
def test_sections_beyond_a_missing_section_are_placed():
    from connectomix.align import register_stack, transform_residuals

    out, raw = _nan_stack()
    res = register_stack(raw, reference=4, elastic=False, log=lambda m: None)
    r = transform_residuals(res["map"], out["transforms"], (40, 8, 8), sections=[0, 1, 3, 4, 5, 6, 7])
    assert r["all"].p95_nm < 3, r["per_section"]


def _noisy_copies(texture, n, seed, noise=0.05):
    rng = np.random.default_rng(seed)
    t = (texture - texture.min()) / np.ptp(texture)
    return np.stack([t + noise * rng.standard_normal(t.shape) for _ in range(n)]).astype(np.float32)


def _interior_moves(gmap, border=8):
    """Distance (px) of each section's map from the identity at interior pixels."""
    Y, X = int(gmap.gy[-1]) + 1, int(gmap.gx[-1]) + 1
    ys, xs = np.arange(border, Y - border, 4.0), np.arange(border, X - border, 4.0)
    P = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    return np.concatenate([np.hypot(*(gmap.apply(z, P) - P).T) for z in range(gmap.coords.shape[0])])


@pytest.mark.parametrize("elastic", [False, True])
def test_aligned_stack_is_not_moved(texture, elastic):
    # the same tissue in every section (fresh noise): an aligned stack must stay put (issue #5: <= 0.1 px)
    stack = _noisy_copies(texture, 5, seed=1)
    res = register_stack(stack, reference=2, elastic=elastic, log=lambda m: None)
    d = _interior_moves(res["map"])
    assert np.percentile(d, 95) <= 0.1, (np.median(d), np.percentile(d, 95))


def test_register_recovers_rigid_motion_subpixel(texture):
    # section 1 = section 0 rotated by 0.8 deg and shifted by (2.3, -1.7) px; the refinement in the
    # aligned frame must bring the coarse estimate to well below a pixel
    stack = _noisy_copies(texture, 2, seed=2, noise=0.02)
    th = np.deg2rad(0.8)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    c = (np.array(stack.shape[1:]) - 1) / 2
    t = np.array([2.3, -1.7])
    # raw_1(q) = raw_0(p) with q = R (p - c) + c + t
    stack[1] = ndi.affine_transform(stack[0], R.T, offset=c - R.T @ (c + t), order=3, mode="nearest")
    res = register_stack(stack, reference=0, elastic=False, log=lambda m: None)
    g = res["map"]
    ys = np.arange(24, stack.shape[1] - 24, 8.0)
    P = np.stack(np.meshgrid(ys, ys, indexing="ij"), -1).reshape(-1, 2)
    err = np.hypot(*(g.apply(1, P) - ((P - c) @ R.T + c + t)).T)
    assert np.percentile(err, 95) < 0.1, err.max()


def test_a_block_averaged_first_elastic_pass_ends_where_the_full_resolution_one_does(texture):
    # section 1 = section 0 under a smooth warp of up to ~3.6 px; with elastic_max_px=96 the first elastic
    # pass of these 192 px sections matches 2 x 2 block averages, the second one full resolution
    from dataclasses import replace

    from connectomix.align import RegisterSettings

    stack = _noisy_copies(texture, 2, seed=3, noise=0.02)
    yy, xx = np.mgrid[0:192, 0:192].astype(float)
    dy = 3.0 * np.sin(2 * np.pi * xx / 192)
    dx = 2.0 * np.cos(2 * np.pi * yy / 192)
    stack[1] = ndi.map_coordinates(stack[0], [yy + dy, xx + dx], order=3, mode="nearest")  # raw_1(p) = raw_0(p + d)
    ys = np.arange(40, 152, 8.0)
    P = np.stack(np.meshgrid(ys, ys, indexing="ij"), -1).reshape(-1, 2)

    def error(elastic, elastic_max_px=None):
        s = replace(RegisterSettings(), elastic_max_px=elastic_max_px, damage_model=False)
        q = register_stack(stack, reference=0, elastic=elastic, settings=s, log=lambda m: None)["map"].apply(1, P)
        d = np.stack([ndi.map_coordinates(v, q.T, order=1) for v in (dy, dx)], 1)
        return np.hypot(*(q + d - P).T)  # the map sends p to q with raw_1(q) = raw_0(p), i.e. q + d(q) = p

    rigid, full, averaged = error(False), error(True), error(True, 96)
    assert np.median(full) < 0.7 * np.median(rigid), (np.median(full), np.median(rigid))
    assert abs(np.median(averaged) - np.median(full)) < 0.1 and np.abs(averaged - full).max() < 0.3


def test_end_sections_bridged_across_missing_ones_are_not_damaged():
    # sections 1 and 6 missing: the end sections 0 and 7 only have a neighbour two sections away,
    # whose similarity must be judged against another pair two apart, not an adjacent one
    from connectomix.align import RegisterSettings, register_stack

    from dataclasses import replace

    raw = _stack(5)["raw"].copy()
    raw[[1, 6]] = 0
    res = register_stack(raw, reference=4, elastic=False, log=lambda m: None)
    assert res["missing"].tolist() == [False, True] + [False] * 4 + [True, False]
    assert (res["damaged_fraction"] < RegisterSettings().damage_min_fraction).all(), res["damaged_fraction"]
    # the NCC rule (no torch): the end sections are judged against a pair two apart too
    ncc = replace(RegisterSettings(), damage_model=False)
    res = register_stack(raw, reference=4, elastic=False, settings=ncc, log=lambda m: None)
    assert (res["damaged_fraction"][[0, 7]] < ncc.damage_min_fraction).all(), res["damaged_fraction"]


def test_defect_network_reads_the_same_tissue_the_same_in_any_grey_range():
    # 8-bit, 16-bit (x257) and 0..1 float copies of one stack: the network sees the same images
    pytest.importorskip("torch")
    from connectomix.align import RegisterSettings, damage_maps

    from connectomix.synth import SynthSettings, generate

    out = generate(SynthSettings(shape=(8, 192, 192), damaged_sections=2), 7)  # registered already
    raw = out["raw"].astype(np.float32)
    usable = np.ones(len(raw), bool)
    s = RegisterSettings()
    _, f8 = damage_maps(list(raw), usable, s, np.uint8)
    _, f16 = damage_maps(list(raw * 257), usable, s, np.uint16)
    _, f1 = damage_maps(list(raw / 255), usable, s, np.float32)
    q = out["section_quality"]
    assert set(np.flatnonzero(f8 >= s.damage_min_fraction)) == set(q.index[q["status"] == "damaged"])
    assert np.allclose(f8, f16, atol=1e-3) and np.allclose(f8, f1, atol=1e-3), (f8, f16, f1)


def test_large_sections_are_judged_block_averaged_at_a_scale_the_network_knows(monkeypatch):
    # sections above damage_max_px are judged averaged over k x k blocks, k among the network's
    # training scales; a network trained at full resolution only judges them at full resolution
    pytest.importorskip("torch")
    from dataclasses import replace

    import connectomix.align._register as reg
    from connectomix.align import RegisterSettings, damage_maps
    from connectomix.synth import SynthSettings, generate

    out = generate(SynthSettings(shape=(6, 256, 256), damaged_sections=1), 3)  # registered already
    from connectomix.evaluate import damage_strip

    raw = list(out["raw"].astype(np.float32)[:, :255])  # an odd number of rows: the last block row is padded
    usable = np.ones(6, bool)
    q = out["section_quality"]
    damaged = int(q.index[q["status"] == "damaged"][0])
    raw[damaged][:, -3:] = np.nan  # no data at the border (its blocks are filled from the neighbours)
    # the masks are dilated by half the damage window; 2 px more for the blocks
    strip = ndi.binary_dilation(damage_strip(q.loc[damaged], (255, 256), (8, 8)),
                                iterations=RegisterSettings().damage_window // 2 + 2)
    model = reg._defect_model("cpu")
    seen = []
    import connectomix.models as models

    original = models.defect_probability

    def spy(*img, **kw):
        seen.append(img[1].shape)
        return original(*img, **kw)

    monkeypatch.setattr(models, "defect_probability", spy)
    s = replace(RegisterSettings(), damage_max_px=128)
    monkeypatch.setattr(model, "trained_scales", (1, 2), raising=False)
    masks, frac = damage_maps(raw, usable, s, np.uint8)
    assert set(seen) == {(128, 128)} and masks[damaged].shape == (255, 256)
    assert set(np.flatnonzero(frac >= s.damage_min_fraction)) == {damaged}, frac
    assert (masks[damaged] & strip).sum() > 0.8 * masks[damaged].sum()  # the blocks are put back in place
    seen.clear()
    damage_maps(raw, usable, replace(s, damage_max_px=32), np.uint8)  # would need 8 x 8 blocks: the largest known
    assert set(seen) == {(128, 128)}
    seen.clear()
    monkeypatch.setattr(model, "trained_scales", (1,), raising=False)
    damage_maps(raw, usable, s, np.uint8)
    assert set(seen) == {(255, 256)}


@pytest.mark.parametrize("elastic", [True, False])
def test_large_sections_run_fewer_passes(texture, elastic):
    # sections at least large_px wide: two elastic passes after one refinement pass (all three refinement
    # passes without the elastic ones); smaller sections: every pass
    from dataclasses import replace

    from connectomix.align import RegisterSettings

    stack = _noisy_copies(texture, 3, seed=4)
    for large_px, n_refine, n_elastic in ((192, 1 if elastic else 3, 2), (193, 3, 3)):
        said = []
        s = replace(RegisterSettings(), large_px=large_px, damage_model=False)
        res = register_stack(stack, reference=1, elastic=elastic, settings=s, log=said.append)
        assert sum(m.startswith("coarse refinement") and "search" in m for m in said) == n_refine, said
        passes = [k for k in res["stats"] if k.startswith("elastic") and k.endswith("_matches")]
        assert len(passes) == (n_elastic if elastic else 0), passes
    from connectomix.errors import ConfigError

    with pytest.raises(ConfigError, match="elastic_passes_large"):
        replace(RegisterSettings(), elastic_passes_large=-1).validate()


def test_elastic_pass_that_cannot_avoid_a_fold_keeps_the_maps(texture):
    # no mesh can have every cell's Jacobian above 1.5 and map an unstretched section: the elastic
    # refinement stops, says so, and returns the coarse maps (it raised before)
    from dataclasses import replace

    from connectomix.align import RegisterSettings

    stack = _noisy_copies(texture, 3, seed=2)
    said = []
    res = register_stack(stack, reference=1, elastic=True, settings=replace(RegisterSettings(), min_jacobian=1.5),
                         log=said.append)
    assert res["stats"]["elastic_stopped_at_pass"] == 1
    assert any("no fold-free mesh" in m for m in said)
    assert np.isfinite(res["map"].coords).all() and np.percentile(_interior_moves(res["map"]), 95) <= 0.1


def test_affine_refinement_does_not_stretch_a_poorly_matched_section():
    # generator seed 4 (8 x 256 x 256, 2 missing + 1 damaged): section 7, bridged across the missing
    # section 6 next to the damaged section 5, got an affine fit that halved its area; the elastic
    # alignment then could not find a fold-free mesh and raised
    from connectomix.align import jacobian_det
    from connectomix.synth import SynthSettings, generate

    s = SynthSettings(shape=(8, 256, 256), misalign=True, max_translation_px=50, max_rotation_deg=1.5,
                      elastic_amplitude_px=0, missing_sections=2, damaged_sections=1)
    out = generate(s, 4)
    said = []
    res = register_stack(out["raw"], reference=4, elastic=True, log=said.append)
    assert any("section 7 would be scaled" in m for m in said)
    assert "elastic_stopped_at_pass" not in res["stats"]
    g = res["map"]
    assert float(np.min(jacobian_det(g.coords[~res["missing"]], g.gy, g.gx))) > 0.9


def test_gridmap_dense_equals_apply_inside_and_beyond_the_nodes():
    rng = np.random.default_rng(5)
    g = GridMap.identity(2, (100, 130), 16)
    g.coords += rng.normal(0, 2.0, g.coords.shape)
    y = np.arange(-7, 110, dtype=float)  # beyond the first and last node: linear extrapolation
    x = np.arange(-3, 140, 1.5)
    qy, qx = g.dense(1, y, x)
    Y, X = np.meshgrid(y, x, indexing="ij")
    q = g.apply(1, np.stack([Y, X], -1))
    np.testing.assert_allclose(qy, q[..., 0], atol=1e-9)
    np.testing.assert_allclose(qx, q[..., 1], atol=1e-9)


def test_damage_must_be_a_strip_not_a_round_blob():
    """Folds, cracks and smears are strips; a round region the detector flags (a cell body) is not damage."""
    from dataclasses import replace

    from connectomix.align import RegisterSettings
    from connectomix.align._register import _damage_masks
    from connectomix.errors import ConfigError

    yy, xx = np.mgrid[0:256, 0:256]
    strip = np.abs(-(yy - 128) * np.cos(0.6) + (xx - 128) * np.sin(0.6)) <= 6  # 13 px wide, across the section
    blob = (yy - 40) ** 2 / 30**2 + (xx - 200) ** 2 / 18**2 <= 1  # elongation 1.7, 0.026 of the section
    s = RegisterSettings()
    masks, frac = _damage_masks({0: strip, 1: blob, 2: strip | blob}, 3, s)
    assert masks[0] is not None and frac[0] > 0.04
    assert masks[1] is None and frac[1] == 0
    assert masks[2] is not None and not masks[2][40, 200] and masks[2][128, 128]
    masks, frac = _damage_masks({1: blob}, 2, replace(s, damage_min_elongation=0.0))  # any shape
    assert masks[1] is not None
    with pytest.raises(ConfigError, match="damage_min_elongation"):
        replace(s, damage_min_elongation=-1.0).validate()


@pytest.mark.parametrize("refine_max_px", [2048, 128, 64])
def test_coarse_refinement_corrects_a_start_off_by_pixels_also_block_averaged(refine_max_px):
    """Section 1 is section 0 shifted by t; the refinement starts 1.5 px off and must land on t,
    also when it matches the sections averaged over 2 x 2 or 4 x 4 blocks (large sections)."""
    from dataclasses import replace

    from connectomix.align import RegisterSettings
    from connectomix.align._register import _affine_grid, _refine_coarse

    rng = np.random.default_rng(0)
    tex = ndi.gaussian_filter(rng.standard_normal((256, 256)).astype(np.float32), 2.0)
    t = np.array([2.3, -1.7])
    stack = np.stack([tex, ndi.shift(tex, t, order=3, mode="nearest")])
    stack += rng.normal(0, 0.02, stack.shape).astype(np.float32)
    centre = np.array([127.5, 127.5])
    maps = {0: np.c_[np.eye(2), np.zeros(2)], 1: np.c_[np.eye(2), -(t + [1.2, -0.9])]}  # raw -> aligned
    g = GridMap.identity(2, (256, 256), 32)
    for z, M in maps.items():
        _affine_grid(g, z, M, centre)
    maps, _ = _refine_coarse(lambda z: (stack[z], np.ones((256, 256), bool)), maps, g, np.array([True, True]),
                             [None, None], 0, centre, replace(RegisterSettings(), refine_max_px=refine_max_px),
                             lambda m: None, model="translation")
    assert np.allclose(maps[1][:, 2], -t, atol=0.06), maps[1][:, 2]


def test_threads_do_not_change_the_result(monkeypatch):
    # sections and pairs are processed on several threads: each must come out as it would alone
    import connectomix.align._register as reg

    raw = _stack(4, missing_sections=1, damaged_sections=1)["raw"]
    maps = {}
    for n in (1, 3):
        monkeypatch.setattr(reg, "_threads", lambda n=n: n)
        res = reg.register_stack(raw, reference=4, elastic=True, log=lambda m: None)
        maps[n] = res["map"].coords
    np.testing.assert_array_equal(maps[1], maps[3])
