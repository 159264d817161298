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
