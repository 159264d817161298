"""Local shape descriptors (the auxiliary target) and training with them."""

import json

import numpy as np
import pytest

from connectomix.models._lsd import LSD_CHANNELS, local_shape_descriptors, transform_lsd
from connectomix.testing import blobs

VS = (40.0, 8.0, 8.0)


def _kernel(sigma, truncate=3.0):
    """scipy's discrete Gaussian: radius int(truncate * sigma + 0.5), weights summing to 1."""
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return x, k / k.sum()


def _direct(lab, v, sigma_nm=80.0):
    """The ten descriptors of voxel ``v``, summed voxel by voxel."""
    obj = lab[v]
    stats = np.zeros(10)  # m0, sum x (3), sum x x^T (zz yy xx zy zx yx)
    kernels = [_kernel(sigma_nm / s) for s in VS]
    for dz, wz in zip(*kernels[0]):
        for dy, wy in zip(*kernels[1]):
            for dx, wx in zip(*kernels[2]):
                w = (v[0] + dz, v[1] + dy, v[2] + dx)
                if not all(0 <= c < n for c, n in zip(w, lab.shape)) or lab[w] != obj:
                    continue
                g = wz * wy * wx
                x = np.array(w, float) * VS
                stats += g * np.r_[1, x, x * x, x[0] * x[1], x[0] * x[2], x[1] * x[2]]
    m0 = stats[0]
    mu = stats[1:4] / m0
    var = stats[4:7] / m0 - mu**2
    cov = stats[7:10] / m0 - np.array([mu[0] * mu[1], mu[0] * mu[2], mu[1] * mu[2]])
    r = cov / np.sqrt([var[0] * var[1], var[0] * var[2], var[1] * var[2]])
    offset = mu - np.array(v, float) * VS
    return np.r_[np.clip(0.5 + offset / (4 * sigma_nm), 0, 1), np.clip(var / sigma_nm**2, 0, 1),
                 0.5 + r / 2, min(m0, 1.0)]


def test_descriptors_equal_a_voxel_by_voxel_sum():
    lab = blobs((6, 40, 40), n=5, seed=4).astype(np.uint32)
    d = local_shape_descriptors(lab, VS, downsample=1)
    assert d.shape == (LSD_CHANNELS,) + lab.shape and d.dtype == np.float32
    rng = np.random.default_rng(0)
    for _ in range(12):
        v = tuple(int(rng.integers(n)) for n in lab.shape)
        np.testing.assert_allclose(d[(slice(None),) + v], _direct(lab, v), atol=2e-4)


def test_descriptors_describe_the_shape_around_a_voxel():
    lab = np.zeros((14, 128, 128), np.uint32)  # the window (6 sections either way) fits at z = 7
    lab[:, 10:86, 10:86] = 1  # a thick square rod along z
    lab[:, 100:104, 10:120] = 2  # a thin wall along x
    d = local_shape_descriptors(lab, VS, downsample=1)
    assert not d[:, lab == 0].any()  # no object, no descriptor
    c = d[:, 7, 48, 48]  # the rod's centre: mass all around, centred, no correlation
    assert c[9] == pytest.approx(1.0, abs=1e-3) and c[:3] == pytest.approx([0.5] * 3, abs=1e-3)
    assert c[6:9] == pytest.approx([0.5] * 3, abs=1e-3)
    assert d[2, 7, 48, 11] > 0.6 and d[2, 7, 48, 84] < 0.4  # at its x edges, the mass lies inward
    assert d[1, 7, 11, 48] > 0.6 and d[0, 7, 48, 48] == pytest.approx(0.5, abs=1e-3)
    wall = d[:, 7, 102, 60]  # thin in y, long in x: small y variance, large x variance, little mass
    assert wall[4] < 0.1 < 0.5 < wall[5] and wall[9] < 0.5


@pytest.mark.parametrize("flips", [(True, False, False), (False, True, False), (False, False, True),
                                   (False, True, True)])
@pytest.mark.parametrize("transpose", [False, True])
def test_descriptors_of_flipped_or_transposed_labels_follow_from_the_originals(flips, transpose):
    lab = blobs((8, 48, 48), n=7, seed=5).astype(np.uint32)
    lab[:, 20:26] = 0  # a band without objects stays without descriptors
    d = local_shape_descriptors(lab, VS, downsample=1)
    moved = lab
    for axis, on in enumerate(flips):
        if on:
            moved = np.flip(moved, axis)
    if transpose:
        moved = moved.transpose(0, 2, 1)
    # the labels' voxel size is the same along y and x, so the transpose keeps it
    expect = local_shape_descriptors(np.ascontiguousarray(moved), VS, downsample=1)
    got = transform_lsd(d, flip_z=flips[0], flip_y=flips[1], flip_x=flips[2], transpose=transpose)
    np.testing.assert_allclose(got, expect, atol=1e-4)  # float32 filters, summed in another order


def test_moments_on_a_coarser_grid_stay_close_to_full_resolution():
    lab = blobs((8, 96, 96), n=12, seed=6).astype(np.uint32)
    full = local_shape_descriptors(lab, VS, downsample=1)
    for f, tol in ((2, 0.01), (4, 0.03)):
        coarse = local_shape_descriptors(lab, VS, downsample=f)
        err = np.abs(coarse - full)[:, lab > 0].mean(axis=1)
        assert err.max() < tol, (f, err)


def test_bad_labels_and_options_are_refused():
    with pytest.raises(ValueError, match="3D integer"):
        local_shape_descriptors(np.zeros((4, 8, 8), np.float32))
    with pytest.raises(ValueError, match="3D integer"):
        local_shape_descriptors(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="downsample"):
        local_shape_descriptors(np.ones((4, 8, 8), np.uint8), downsample=0)
    assert not local_shape_descriptors(np.zeros((4, 8, 8), np.uint8)).any()


def _toy_data(seed):
    from scipy import ndimage

    lab = blobs((16, 64, 64), n=25, seed=seed).astype(np.uint32)
    raw = np.where(ndimage.morphological_gradient(lab.astype(np.int64), size=(1, 3, 3)) > 0, 40, 200)
    return raw.astype(np.uint8), lab


def test_training_with_descriptors_keeps_the_affinities_apart(tmp_path):
    torch = pytest.importorskip("torch")
    from connectomix.models import DEFAULT_OFFSETS, load_model, predict_array, train

    vols, val = [_toy_data(0)], [_toy_data(2)]
    plain = tmp_path / "plain"
    train(plain, vols, val, iterations=4, patch=(8, 32, 32), features=4, validate_every=2, threads=1,
          log=lambda m: None)
    # starting from a network without descriptors: its affinity outputs carry over unchanged
    d = tmp_path / "lsd"
    s = train(d, vols, val, iterations=4, patch=(8, 32, 32), features=4, validate_every=2, threads=1,
              log=lambda m: None, aux="lsd", init=plain, data_info={"voxel_size": [40, 8, 8]})
    assert s["aux"]["name"] == "lsd" and s["aux"]["first_channel"] == len(DEFAULT_OFFSETS)
    assert json.loads((d / "model.json").read_text())["config"]["out_channels"] == len(DEFAULT_OFFSETS) + 10
    a, _ = load_model(plain)
    b, meta = load_model(d)  # the descriptor channels are dropped for inference
    assert b.head.out_channels == len(DEFAULT_OFFSETS) and meta["aux"]["channels"] == 10
    raw = _toy_data(3)[0][:8, :32, :32]
    np.testing.assert_array_equal(predict_array(raw, a, a.factor), predict_array(raw, b, b.factor))
    full, _ = load_model(d, keep_aux=True)
    assert full.head.out_channels == len(DEFAULT_OFFSETS) + 10
    # it trains on (resumed with another loss weight, which is allowed): the training loss (affinities +
    # descriptors) falls from where the descriptor head started
    s = train(d, vols, val, iterations=24, patch=(8, 32, 32), features=4, validate_every=4, threads=1,
              log=lambda m: None, aux="lsd", aux_weight=0.5, lr=2e-3, data_info={"voxel_size": [40, 8, 8]})
    assert s["iterations"] == 24 and s["aux"]["weight"] == 0.5
    loss = [float(line.split(",")[1]) for line in (d / "log.csv").read_text().splitlines()[2:]]
    assert loss[-1] < loss[0]
    with pytest.raises(ValueError, match="cannot be resumed"):  # the same directory without descriptors
        train(d, vols, val, iterations=26, patch=(8, 32, 32), features=4, threads=1, log=lambda m: None)
    with pytest.raises(ValueError, match="cannot be resumed"):  # descriptors at another voxel size
        train(d, vols, val, iterations=26, patch=(8, 32, 32), features=4, threads=1, log=lambda m: None,
              aux="lsd", data_info={"voxel_size": [30, 6, 6]})
    with pytest.raises(ValueError, match="auxiliary target"):  # starting from it with other descriptors
        train(tmp_path / "y", vols, val, iterations=26, patch=(8, 32, 32), features=4, threads=1,
              log=lambda m: None, aux="lsd", init=d, data_info={"voxel_size": [30, 6, 6]})
    with pytest.raises(ValueError, match="aux must be"):
        train(tmp_path / "x", vols, val, iterations=2, patch=(8, 32, 32), features=4, log=lambda m: None, aux="sdf")
    assert not (tmp_path / "x").exists()
    del torch


def test_augmentation_carries_descriptors_with_the_labels():
    from connectomix.models._augment import _flip_transpose, augment

    lab = blobs((8, 48, 48), n=9, seed=7).astype(np.uint32)
    raw = np.random.default_rng(1).random(lab.shape).astype(np.float32)
    d = local_shape_descriptors(lab, VS, downsample=1)
    # flips and transposes: exactly the descriptors of the moved labels
    for seed in range(6):
        _, l2, d2 = _flip_transpose(raw, lab, np.random.default_rng(seed), d)
        np.testing.assert_allclose(d2, local_shape_descriptors(np.ascontiguousarray(l2), VS, downsample=1),
                                   atol=1e-4)
    # the whole augmentation: the same random draws with and without descriptors, and each voxel keeps the
    # descriptors of the voxel its label came from (the size channel, which no flip changes, codes the label)
    coded = d.copy()
    coded[9] = lab / float(lab.max())
    moved = 0
    for seed in range(16):
        r1, l1 = augment(raw, lab, np.random.default_rng(seed))
        r2, l2, d2 = augment(raw, lab, np.random.default_rng(seed), lsd=coded)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(l1, l2)
        assert d2.shape == (10,) + l2.shape and d2.dtype == np.float32
        np.testing.assert_array_equal(np.rint(d2[9] * lab.max()).astype(np.uint32), l2)
        moved += not any(np.array_equal(l2, t) for t in _symmetries(lab))
    assert moved  # some draws deformed or slipped the labels


def _symmetries(lab):
    out = []
    for a in (lab, lab[::-1]):
        for b in (a, a[:, ::-1]):
            for c in (b, b[:, :, ::-1]):
                out += [c, c.transpose(0, 2, 1)]
    return out


def test_training_patches_hold_affinities_then_descriptors():
    from connectomix.models import DEFAULT_OFFSETS
    from connectomix.models._train import PatchSampler

    vols = [_toy_data(0), _toy_data(1)]
    off = [list(o) for o in DEFAULT_OFFSETS]
    lsd = {"voxel_size": VS, "downsample": 2}
    s = PatchSampler(vols, (8, 32, 32), off, lsd=lsd)
    pooled = PatchSampler(vols, (8, 32, 32), off, lsd=lsd, workers=2)
    for a, b in zip(s.lsd_volumes, pooled.lsd_volumes):
        np.testing.assert_array_equal(a, b)
    assert s.lsd_volumes[0].dtype == np.float16 and s.lsd_volumes[0].shape == (10,) + vols[0][1].shape
    rng = np.random.default_rng(3)
    for _ in range(6):
        r, t = s.sample(rng)
        assert r.shape == (8, 32, 32) and t.shape == (len(off) + 10, 8, 32, 32)
        assert t.min() >= 0 and t.max() <= 1
    # without augmentation a patch's descriptors are the volume's, cut out (the sampler's draws, repeated)
    plain = PatchSampler(vols, (8, 32, 32), off, lsd=lsd, augment=False)
    r, t = plain.sample(np.random.default_rng(4))
    rng = np.random.default_rng(4)
    k = int(rng.integers(2))
    sl = tuple(slice(c, c + p) for c, p in zip((rng.integers(0, n - p + 1) for n, p in
                                                   zip(vols[k][0].shape, (8, 32, 32))), (8, 32, 32)))
    np.testing.assert_array_equal(r, vols[k][0][sl] / np.float32(255.0))
    np.testing.assert_array_equal(t[len(off):], plain.lsd_volumes[k][(slice(None),) + sl].astype(np.float32))
