"""Pyramid levels: the numpy kernels first, then write_pyramid block-wise."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from connectomix.errors import VolumeError
from connectomix.io import downsample, write_pyramid
from connectomix.volume import Volume, create_volume, open_volume


def brute_force(a, factor, reduce):
    out_shape = tuple(-(-s // f) for s, f in zip(a.shape, factor))
    out = np.empty(out_shape, a.dtype)
    for idx in itertools.product(*(range(n) for n in out_shape)):
        window = a[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factor))]
        out[idx] = reduce(window)
    return out


def first_mode(window):
    values = list(window.ravel())
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)


@pytest.mark.parametrize("shape", [(4, 8, 8), (3, 7, 9), (1, 5, 1)])
@pytest.mark.parametrize("factor", [(1, 2, 2), (2, 2, 2), (1, 3, 2)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int64])
def test_mean_matches_brute_force(shape, factor, dtype):
    rng = np.random.default_rng(0)
    a = (rng.random(shape) * 200).astype(dtype)

    def mean(w):
        m = w.astype(np.float64).mean()
        return np.rint(m) if np.issubdtype(np.dtype(dtype), np.integer) else m

    out = downsample(a, factor, kind="image")
    assert out.dtype == a.dtype
    np.testing.assert_allclose(out, brute_force(a, factor, mean), rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 8, 8), (3, 7, 9)])
@pytest.mark.parametrize("factor", [(1, 2, 2), (2, 2, 2), (1, 3, 3)])
def test_label_mode_matches_brute_force(shape, factor):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, shape).astype(np.uint64) * np.uint64(2**40)
    np.testing.assert_array_equal(downsample(a, factor, kind="labels"), brute_force(a, factor, first_mode))


def test_label_pick_is_strided():
    a = np.arange(3 * 7 * 9, dtype=np.uint32).reshape(3, 7, 9)
    np.testing.assert_array_equal(downsample(a, (1, 2, 2), kind="labels", method="pick"), a[:, ::2, ::2])


def test_channels_are_kept():
    a = np.random.default_rng(2).random((3, 4, 6, 6)).astype(np.float32)
    out = downsample(a, (1, 2, 2))
    assert out.shape == (3, 4, 3, 3)
    np.testing.assert_allclose(out[1], downsample(a[1], (1, 2, 2)), rtol=1e-6)


def build(tmp_path, data, *, levels, chunks, downsample_factor=None, offset=None, name="img"):
    vol = create_volume(
        tmp_path / "run" / "volume.zarr" / name, shape=data.shape, dtype=data.dtype, voxel_size=(40, 4, 4),
        offset=offset, chunks=chunks, levels=levels, downsample=downsample_factor,
    )
    vol[vol.roi] = data
    return vol


@pytest.mark.parametrize("chunks", [(2, 4, 4), (3, 8, 16), (8, 64, 64)])
@pytest.mark.parametrize("kind", ["image", "labels"])
def test_write_pyramid_equals_whole_array_result(tmp_path, chunks, kind):
    rng = np.random.default_rng(4)
    shape = (7, 45, 38)
    data = rng.integers(0, 250, shape).astype(np.uint8) if kind == "image" else rng.integers(0, 5, shape).astype(np.uint64)
    vol = build(tmp_path, data, levels=4, chunks=chunks)
    ticks = []
    levels = write_pyramid(vol, kind=kind, on_block_done=lambda d, t: ticks.append((d, t)))
    assert len(levels) == 4
    expected = data
    for level, got in enumerate(levels):
        assert tuple(got.voxel_size) == (40, 4 * 2**level, 4 * 2**level)
        np.testing.assert_array_equal(got.to_numpy(), expected)
        expected = downsample(expected, (1, 2, 2), kind=kind)
    assert ticks[-1][0] == ticks[-1][1]


def test_factor_comes_from_the_group(tmp_path):
    data = np.random.default_rng(5).random((8, 8, 8)).astype(np.float32)
    vol = build(tmp_path, data, levels=2, chunks=(4, 4, 4), downsample_factor=(2, 2, 2))
    s0, s1 = write_pyramid(vol)
    assert s1.shape == (4, 4, 4) and tuple(s1.voxel_size) == (80, 8, 8)
    np.testing.assert_allclose(s1.to_numpy(), data.reshape(4, 2, 4, 2, 4, 2).mean(axis=(1, 3, 5)), rtol=1e-6)


def test_fewer_levels_than_created(tmp_path):
    data = np.ones((2, 16, 16), np.uint8)
    vol = build(tmp_path, data, levels=3, chunks=(2, 8, 8))
    assert len(write_pyramid(vol, levels=2)) == 2


def test_pyramid_errors(tmp_path):
    data = np.ones((2, 16, 16), np.uint8)
    vol = build(tmp_path, data, levels=2, chunks=(2, 8, 8))
    with pytest.raises(VolumeError, match=r"has 2 pyramid level\(s\), so levels=3 cannot be written"):
        write_pyramid(vol, levels=3)
    with pytest.raises(VolumeError, match="kind must be"):
        write_pyramid(vol, kind="segmentation")
    with pytest.raises(VolumeError, match="stored volume"):
        write_pyramid(Volume(data, voxel_size=(40, 4, 4)))
    shifted = build(tmp_path, data, levels=2, chunks=(2, 8, 8), offset=(0, 4, 0), name="shifted")
    with pytest.raises(VolumeError, match=r"offset \(0, 4, 0\) nm is not a multiple of that level's voxel size \(40, 8, 8\)"):
        write_pyramid(shifted)
    assert open_volume(vol.path).shape == (2, 16, 16)
