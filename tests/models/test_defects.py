"""The defect network: training data, patches, loss, training and prediction."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from connectomix.models import (  # noqa: E402
    DefectPatchSampler,
    defect_loss,
    defect_probability,
    load_model,
    make_defect_volumes,
    train,
)


def _strip_stack(Z=6, Y=64, X=64, seed=0):
    """Textured sections with a dark band across sections 2 and 4 (at different places)."""
    rng = np.random.default_rng(seed)
    from scipy import ndimage as ndi

    base = ndi.gaussian_filter(rng.random((Z, Y, X)), (1.5, 2, 2))
    raw = (40 + 180 * (base - base.min()) / np.ptp(base)).astype(np.uint8)
    mask = np.zeros((Z, Y, X), np.uint8)
    mask[2, 20:30] = 1
    mask[4, :, 40:48] = 1
    raw[mask > 0] = 20
    return raw, mask


def test_defect_volumes_mark_the_damaged_strips():
    (raw, mask), = make_defect_volumes([200], shape=(6, 144, 144))
    assert raw.shape == mask.shape == (6, 144, 144) and raw.dtype == np.uint8
    damaged = np.flatnonzero(mask.reshape(6, -1).any(1))
    assert len(damaged) == 2  # a third of the sections
    for z in damaged:  # the strips are where the image was damaged: darker, brighter or flatter than the rest
        inside, outside = raw[z][mask[z] > 0].astype(float), raw[z][mask[z] == 0].astype(float)
        assert abs(inside.mean() - outside.mean()) > 5 or inside.std() < 0.8 * outside.std()


def test_defect_patches_pair_three_sections_with_the_middle_mask():
    raw, mask = _strip_stack()
    s = DefectPatchSampler([(raw, mask)], (3, 32, 32), augment=False)
    rng = np.random.default_rng(0)
    seen_positive = False
    for _ in range(40):
        r, t = s.sample(rng)
        assert r.shape == (3, 32, 32) and t.shape == (1, 1, 32, 32)
        # without augmentation the target is the middle section's strip where its pixels are dark
        dark = r[1] < 25 / 255
        assert np.array_equal(t[0, 0] > 0, dark)
        seen_positive |= bool(t.any())
    assert seen_positive  # half the patches come from damaged sections
    with pytest.raises(ValueError, match=r"\(3, Y, X\)"):
        DefectPatchSampler([(raw, mask)], (4, 32, 32))


def test_defect_patches_at_scale_two_are_block_averages_of_twice_the_region():
    raw, mask = _strip_stack(Y=96, X=96)
    s = DefectPatchSampler([(raw, mask)], (3, 32, 32), augment=False, scales=(1, 2))
    rng = np.random.default_rng(1)
    averaged = set()
    for _ in range(60):
        r, t = s.sample(rng)
        assert r.shape == (3, 32, 32) and t.shape == (1, 1, 32, 32)
        # the strip is dark (20) in a textured section (>= 40): a 2 x 2 block is mostly strip where its
        # mean is dark, and blocks half on the strip's edge (mean 30) are not counted as damage
        averaged.add(bool(np.isin(np.round(r[1] * 255 * 4) % 4, (1, 2, 3)).any()))
        strip = r[1] < 25 / 255
        assert np.array_equal(t[0, 0] > 0, strip)
    assert averaged == {True, False}  # both scales drawn (averages of 4 pixels are not all whole grey values)
    with pytest.raises(ValueError, match="at scale 2"):
        DefectPatchSampler([(raw[:, :60, :60], mask[:, :60, :60])], (3, 32, 32), scales=(1, 2))
    with pytest.raises(ValueError, match="positive"):
        DefectPatchSampler([(raw, mask)], (3, 32, 32), scales=(0,))


def test_defect_loss_is_ln2_when_uninformed_and_lower_when_right():
    t = torch.zeros(2, 1, 1, 8, 8)
    t[:, :, :, :3] = 1
    assert float(defect_loss(torch.zeros(2, 1, 3, 8, 8), t)) == pytest.approx(np.log(2), rel=1e-5)
    good = torch.full((2, 1, 3, 8, 8), -4.0)
    good[:, :, 1, :3] = 4.0  # only the middle section's logits count
    assert float(defect_loss(good, t)) < 0.05


def test_defect_training_learns_and_predicts_any_size(tmp_path):
    vols = [_strip_stack(seed=s) for s in range(3)]
    s = train(tmp_path / "def", vols, vols[:1], iterations=60, patch=(3, 32, 32), features=4, task="defects",
              batch_size=4, lr=2e-3, validate_every=20, checkpoint_every=20, threads=1, log=lambda m: None)
    assert s["task"] == "defects" and s["config"]["out_channels"] == 1
    assert s["config"]["downsample"] == [[1, 2, 2]] * 3
    hist = [l.split(",") for l in (tmp_path / "def" / "log.csv").read_text().splitlines()[1:]]
    vals = [float(h[2]) for h in hist if h[2]]
    assert vals[-1] < vals[0]
    model, meta = load_model(tmp_path / "def", task="defects")
    raw, mask = vols[0]
    img = raw[:, :61, :59].astype(np.float32) / 255  # not a multiple of the pooling factor
    p = defect_probability(img[1], img[2], img[3], model)
    assert p.shape == (61, 59) and np.all((p >= 0) & (p <= 1))
    strip = mask[2, :61, :59] > 0
    assert p[strip].mean() > p[~strip].mean() + 0.2  # 60 iterations already tell the band apart
    nan = img[2].copy()
    nan[:, :10] = np.nan  # no data there: filled, still a finite map
    assert np.isfinite(defect_probability(img[1], nan, img[3], model)).all()
    tiled = defect_probability(img[1], img[2], img[3], model, tile=32, context=64)
    assert np.allclose(tiled, p, atol=1e-5)  # tiles read their context: the same map, in bounded memory
    from connectomix.errors import ModelError

    with pytest.raises(ModelError, match="defects"):
        load_model(tmp_path / "def", task="affinities")
    with pytest.raises(ValueError, match="cannot be resumed"):  # another task on this model directory
        train(tmp_path / "def", vols, vols[:1], iterations=70, patch=(3, 32, 32), features=8, task="defects",
              threads=1, log=lambda m: None)


def test_defect_training_at_two_scales_is_recorded_and_resumed_only_at_them(tmp_path):
    vols = [_strip_stack(Y=96, X=96, seed=s) for s in range(2)]
    kw = dict(patch=(3, 32, 32), features=4, task="defects", batch_size=2, validate_every=2, checkpoint_every=2,
              n_val_patches=2, threads=1, log=lambda m: None)
    s = train(tmp_path / "d", vols, vols[:1], iterations=2, scales=(1, 2), **kw)
    assert s["scales"] == [1, 2]
    with pytest.raises(ValueError, match="cannot be resumed at scales"):
        train(tmp_path / "d", vols, vols[:1], iterations=4, **kw)
    with pytest.raises(ValueError, match="positive integers"):
        train(tmp_path / "e", vols, vols[:1], iterations=2, scales=(0,), **kw)
    assert not (tmp_path / "e").exists()
    with pytest.raises(ValueError, match="for task 'defects' only"):
        train(tmp_path / "f", vols, vols[:1], iterations=2, scales=(2,), **{**kw, "task": "synapses"})
