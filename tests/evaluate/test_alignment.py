"""Tests for alignment residuals and the NCC of adjacent sections."""

import numpy as np
import pytest

from connectomix.errors import VolumeError
from connectomix.evaluate import alignment_residuals, ncc_kernel, section_ncc
from connectomix.testing import random_volume
from connectomix.volume import Volume


def test_residuals():
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 1e4, size=(200, 2))
    shift = np.zeros_like(true)
    shift[:, 1] = np.arange(200)  # residuals 0..199 nm
    r = alignment_residuals(true + shift, true)
    assert r.median_nm == pytest.approx(99.5)
    assert r.p95_nm == pytest.approx(np.percentile(np.arange(200), 95))
    assert r.max_nm == pytest.approx(199) and r.n_points == 200
    r3 = alignment_residuals(np.ones((3, 3)), np.zeros((3, 3)))
    assert r3.median_nm == pytest.approx(np.sqrt(3))


def test_residual_errors():
    with pytest.raises(VolumeError, match=r"same shape, got \(3, 2\) and \(4, 2\)"):
        alignment_residuals(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(VolumeError, match="estimated_points holds 1 points with NaN"):
        alignment_residuals(np.array([[0.0, np.nan], [0, 0]]), np.zeros((2, 2)))
    with pytest.raises(VolumeError, match="empty"):
        alignment_residuals(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(VolumeError, match=r"shape \(N, D\)"):
        alignment_residuals(np.zeros(3), np.zeros(3))


def test_ncc_kernel_against_corrcoef():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 70))
    b = 0.5 * a + rng.normal(size=(50, 70))
    out = ncc_kernel(a, b, (16, 32))
    assert out.shape == (4, 3)  # edge chunks are smaller
    for iy, y in enumerate(range(0, 50, 16)):
        for ix, x in enumerate(range(0, 70, 32)):
            ref = np.corrcoef(a[y : y + 16, x : x + 32].ravel(), b[y : y + 16, x : x + 32].ravel())[0, 1]
            assert out[iy, ix] == pytest.approx(ref, abs=1e-10)
    np.testing.assert_allclose(ncc_kernel(a, a, (16, 16)), 1.0)
    np.testing.assert_allclose(ncc_kernel(a, 3 - 2 * a, (16, 16)), -1.0)


def test_ncc_kernel_constant_chunk_is_nan():
    a = np.random.default_rng(2).normal(size=(32, 32))
    b = a.copy()
    b[:16, :16] = 7.0
    out = ncc_kernel(a, b, (16, 16))
    assert np.isnan(out[0, 0])
    np.testing.assert_allclose(out[np.isfinite(out)], 1.0)


def test_section_ncc_finds_the_misaligned_chunk():
    stack = random_volume((6, 64, 96), dtype=np.float32, seed=3)
    stack[1:] = stack[0]  # identical sections ...
    stack[4, 32:, 48:] = np.roll(stack[4, 32:, 48:], 7, axis=1)  # ... except one shifted patch
    r = section_ncc(stack, voxel_size=(40, 8, 8), offset=(0, 800, 1600), chunk_shape_vx=(32, 48), n_worst=3)
    assert r.n_chunks == 5 * 2 * 2
    assert list(r.chunks.columns) == ["section", "y", "x", "ncc"]
    worst = r.worst.iloc[0]
    assert worst["ncc"] < 0.9
    assert int(worst["section"]) in (3, 4)  # pairs (3, 4) and (4, 5)
    assert (worst["y"], worst["x"]) == (800 + 32 * 8, 1600 + 48 * 8)  # chunk corner in nm
    assert sorted(r.worst["section"].iloc[:2].tolist()) == [3, 4]
    assert r.min == pytest.approx(worst["ncc"])
    assert r.mean < 1.0 and r.median == pytest.approx(1.0)
    assert r.n_undefined == 0


def test_section_ncc_volume_and_undefined():
    data = random_volume((3, 32, 32), dtype=np.uint8, seed=4)
    data[2] = 0  # a missing section: NCC undefined against it
    vol = Volume(data, voxel_size=(40, 8, 8), offset=(80, 0, 0))
    r = section_ncc(vol, chunk_shape_vx=(16, 16))
    assert r.n_chunks == 8 and r.n_undefined == 4
    assert set(r.worst["section"]) == {0}


def test_section_ncc_errors():
    with pytest.raises(VolumeError, match="3-D"):
        section_ncc(np.zeros((4, 4)), voxel_size=(40, 8, 8))
    with pytest.raises(VolumeError, match="at least two"):
        section_ncc(np.zeros((1, 4, 4)), voxel_size=(40, 8, 8))
    with pytest.raises(VolumeError, match="voxel_size is required"):
        section_ncc(np.zeros((2, 4, 4)))
    bad = np.zeros((2, 4, 4))
    bad[1, 1, 1] = np.nan
    with pytest.raises(VolumeError, match="section 1 holds NaN"):
        section_ncc(bad, voxel_size=(40, 8, 8))
    with pytest.raises(VolumeError, match="chunk_shape_vx"):
        section_ncc(np.zeros((2, 4, 4)), voxel_size=(40, 8, 8), chunk_shape_vx=(1, 4))
