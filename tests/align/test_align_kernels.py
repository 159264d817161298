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


def test_global_shift_large_translation(texture):
    b = np.roll(texture, (40, -25), axis=(0, 1))
    assert np.allclose(global_shift(texture, b), (40, -25), atol=1)


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


def test_clean_stack_has_no_missing_or_damaged_sections():
    from connectomix.align import RegisterSettings, register_stack

    out = _stack(5)
    res = register_stack(out["raw"], reference=4, elastic=False, log=lambda m: None)
    assert not res["missing"].any()
    assert (res["damaged_fraction"] < RegisterSettings().damage_min_fraction).all(), res["damaged_fraction"]


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
                          "search, but this generator's sections share little structure two sections apart; "
                          "measured p95 22 px here (sections 0-1 off by 16 px)", strict=True)
def test_sections_beyond_a_missing_section_are_placed():
    from connectomix.align import register_stack, transform_residuals

    out, raw = _nan_stack()
    res = register_stack(raw, reference=4, elastic=False, log=lambda m: None)
    r = transform_residuals(res["map"], out["transforms"], (40, 8, 8), sections=[0, 1, 3, 4, 5, 6, 7])
    assert r["all"].p95_nm < 3, r["per_section"]
