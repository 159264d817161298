import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the 'ml' extra; CI installs it

from connectomix.models import DEFAULT_OFFSETS, UNet3D, affinity_loss, load_model, predict_affinities, predict_array, train
from connectomix.run import Run
from connectomix.testing import blobs, stored_volume
from connectomix.volume import open_volume


def _toy_data(seed):
    lab = blobs((16, 64, 64), n=25, seed=seed).astype(np.uint32)
    from scipy import ndimage

    edges = ndimage.morphological_gradient(lab.astype(np.int64), size=(1, 3, 3)) > 0
    raw = np.where(edges, 40, 200).astype(np.uint8)
    return raw, lab


def test_unet_shapes_and_size():
    m = UNet3D()
    n = sum(p.numel() for p in m.parameters())
    assert 0.5e6 < n < 2e6
    assert m.factor == (2, 8, 8)
    y = m(torch.zeros(1, 1, 4, 32, 32))
    assert y.shape == (1, len(DEFAULT_OFFSETS), 4, 32, 32)


def test_balanced_loss_of_an_uninformed_network_is_ln2():
    target = torch.zeros(1, 2, 2, 4, 4)
    target[:, :, :, :2] = 1
    loss = affinity_loss(torch.zeros_like(target), target, torch.ones_like(target))
    assert float(loss) == pytest.approx(np.log(2), rel=1e-5)


def test_training_learns_resumes_and_predicts_blockwise(tmp_path):
    torch.manual_seed(0)
    vols = [_toy_data(0), _toy_data(1)]
    val = [_toy_data(2)]
    d = tmp_path / "model"
    s1 = train(d, vols, val, iterations=30, patch=(8, 32, 32), features=4, validate_every=10,
               checkpoint_every=10, threads=1, log=lambda m: None)
    assert s1["iterations"] == 30
    hist = [l.split(",") for l in (d / "log.csv").read_text().splitlines()[1:]]
    vals = [float(h[2]) for h in hist if h[2]]
    assert vals[-1] < vals[0] < 0.75  # it learns
    assert {"model.pt", "model.json", "checkpoint.pt", "log.csv", "loss.png"} <= {p.name for p in d.iterdir()}
    s2 = train(d, vols, val, iterations=40, patch=(8, 32, 32), features=4, validate_every=10,
               checkpoint_every=10, threads=1, log=lambda m: None)
    assert s2["iterations"] == 40 and len((d / "log.csv").read_text().splitlines()) == 1 + 4
    model, meta = load_model(d)
    assert meta["offsets"] == [list(o) for o in DEFAULT_OFFSETS]
    # block-wise prediction equals the whole-volume pass (to float rounding) away from the volume end
    run = Run.create(tmp_path / "run")
    lab = blobs((8, 176, 160), n=60, seed=3)
    from scipy import ndimage

    raw = np.where(ndimage.morphological_gradient(lab.astype(np.int64), size=(1, 3, 3)) > 0, 40, 200).astype(np.uint8)
    stored_volume(run.volume_path("raw"), raw, chunks=(8, 64, 64))
    res = predict_affinities(run, model_dir=d, block_shape_vx=(8, 64, 64))
    assert res.n_blocks == 1 * 3 * 3
    aff = open_volume(run.volume_path("affinities"))
    assert aff.shape == (len(DEFAULT_OFFSETS), 8, 176, 160)
    attrs = json.loads((run.volume_path("affinities") / "zarr.json").read_text())["attributes"]
    assert attrs["offsets"] == meta["offsets"]
    whole = np.rint(predict_array(raw, model, model.factor) * 255).astype(np.uint8)
    diff = np.abs(aff.to_numpy().astype(int) - whole.astype(int))
    assert diff.max() <= 1


def _tiny_model_dir(path, **kw):
    m = UNet3D(1, len(DEFAULT_OFFSETS), features=4, **kw)
    path.mkdir(parents=True, exist_ok=True)
    torch.save(m.state_dict(), path / "model.pt")
    (path / "model.json").write_text(json.dumps({"config": m.config, "offsets": [list(o) for o in DEFAULT_OFFSETS],
                                                 "task": "affinities"}))
    return path


def test_missing_corrupt_foreign_and_wrong_task_models_are_clear_errors(tmp_path):
    from connectomix.errors import ModelError

    with pytest.raises(ModelError, match="no trained model"):
        load_model(tmp_path)
    d = _tiny_model_dir(tmp_path / "ok")
    load_model(d)  # the fixture itself loads
    with pytest.raises(ModelError, match="not a synapses model"):
        load_model(d, task="synapses")
    bad = _tiny_model_dir(tmp_path / "corrupt")
    (bad / "model.pt").write_bytes((bad / "model.pt").read_bytes()[:200])
    with pytest.raises(ModelError, match="cannot be read as model weights"):
        load_model(bad)
    other = _tiny_model_dir(tmp_path / "other")
    meta = json.loads((other / "model.json").read_text())
    meta["config"]["features"] = 6  # weights of a 4-feature net under a 6-feature description
    (other / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="does not fit the architecture"):
        load_model(other)
    (other / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a connectomix model description"):
        load_model(other)


def test_training_can_start_from_another_models_weights(tmp_path):
    vols = [_toy_data(0)]
    first = tmp_path / "first"
    train(first, vols, vols, iterations=10, patch=(8, 32, 32), features=4, validate_every=10, checkpoint_every=10,
          threads=1, log=lambda m: None)
    second = tmp_path / "second"
    s = train(second, vols, vols, iterations=10, patch=(8, 32, 32), features=4, validate_every=10,
              checkpoint_every=10, threads=1, log=lambda m: None, init=first)
    assert s["iterations"] == 10  # already there: no step taken, the weights are the first model's
    a, _ = load_model(first)
    b, _ = load_model(second)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    # the starting weights were validated on this run's own patches, and are the first best.pt
    log = (second / "log.csv").read_text().splitlines()
    assert log[1].startswith("10,nan,") and log[1].split(",")[2]
    assert (second / "best.pt").exists()
    # resumed with a cosine schedule and warm-up
    s = train(second, vols, vols, iterations=14, patch=(8, 32, 32), features=4, validate_every=2,
              checkpoint_every=2, threads=1, log=lambda m: None, schedule="cosine", warmup=2)
    assert s["iterations"] == 14 and s["schedule"] == "cosine"
    with pytest.raises(ValueError, match="architecture"):  # narrower than the weights: refused
        train(tmp_path / "third", vols, vols, iterations=12, patch=(8, 32, 32), features=3, threads=1,
              log=lambda m: None, init=first)
    # wider: the first model's weights, widened; it starts at the first model's validation loss
    messages = []
    s = train(tmp_path / "wide", vols, vols, iterations=10, patch=(8, 32, 32), features=6, validate_every=10,
              threads=1, log=messages.append, init=first)
    assert s["config"]["features"] == 6 and any("widened from 4 to 6 features" in m for m in messages)
    wide_log = (tmp_path / "wide" / "log.csv").read_text().splitlines()
    assert wide_log[1].startswith("10,nan,")
    assert float(wide_log[1].split(",")[2]) == pytest.approx(float(log[1].split(",")[2]), rel=1e-4)


def test_training_in_channels_last_memory_gives_the_same_weights(tmp_path):
    vols = [_toy_data(0)]
    kw = dict(patch=(8, 32, 32), features=4, validate_every=3, checkpoint_every=3, threads=1, log=lambda m: None)
    train(tmp_path / "plain", vols, vols, iterations=3, **kw)
    train(tmp_path / "last", vols, vols, iterations=3, channels_last=True, **kw)
    # and a checkpoint written in one layout resumes in the other
    train(tmp_path / "plain", vols, vols, iterations=5, channels_last=True, **kw)
    train(tmp_path / "last", vols, vols, iterations=5, **kw)
    a, _ = load_model(tmp_path / "plain")
    b, _ = load_model(tmp_path / "last")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        torch.testing.assert_close(va, vb, rtol=1e-4, atol=1e-6)


def test_widening_keeps_what_the_network_computes():
    from connectomix.models._unet import widen

    torch.manual_seed(0)
    narrow = UNet3D(1, 3, features=4)
    with torch.no_grad():  # biases too, so that the zero-initialised ones cannot hide a misplaced channel
        for m in narrow.modules():
            if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
                m.bias.normal_(0, 0.1)
    wide = widen(narrow, 6, seed=1)
    assert wide.config == {**narrow.config, "features": 6}
    assert sum(p.numel() for p in wide.parameters()) > 2 * sum(p.numel() for p in narrow.parameters())
    x = torch.rand(2, 1, 4, 32, 32)
    with torch.no_grad():
        a, b = narrow(x), wide(x)
        added = wide.encoders[0](x)[:, 4:]  # the new channels compute something, so they can learn
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    assert float(added.abs().mean()) > 0.01
    # every layer's new output channels read their inputs (weights not all zero)
    for name, m in wide.named_modules():
        if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) and name != "head":
            out_axis = 1 if isinstance(m, torch.nn.ConvTranspose3d) else 0
            w = m.weight.detach().transpose(0, out_axis)
            old_out = dict(narrow.named_modules())[name].weight.shape[out_axis]
            assert (w[old_out:].flatten(1).abs().sum(1) > 0).all(), name
    # training moves the new weights: the zero weights out of the new channels get a gradient
    wide(x).square().mean().backward()
    assert float(wide.head.weight.grad[:, 4:].abs().sum()) > 0
    assert all(torch.equal(p, q) for p, q in zip(widen(narrow, 4).state_dict().values(), narrow.state_dict().values()))
    with pytest.raises(ValueError, match="cannot widen"):
        widen(narrow, 3)


def test_learning_rate_warms_up_then_decays_to_a_fiftieth():
    from connectomix.models._train import learning_rate

    assert learning_rate(1e-3, 0, 0.5) == 1e-3  # constant
    assert learning_rate(1e-3, 0, 0.0, schedule="cosine", warmup=100) == pytest.approx(1e-5)
    assert learning_rate(1e-3, 50, 0.0, schedule="cosine", warmup=100) == pytest.approx(0.505e-3)
    assert learning_rate(1e-3, 100, 0.0, schedule="cosine", warmup=100) == pytest.approx(1e-3)
    assert learning_rate(1e-3, 500, 0.5, schedule="cosine") == pytest.approx(0.51e-3)
    assert learning_rate(1e-3, 900, 1.0, schedule="cosine") == pytest.approx(2e-5)
    assert learning_rate(1e-3, 999, 3.0, schedule="cosine") == pytest.approx(2e-5)  # past the end: stays


def test_an_unknown_schedule_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="schedule"):
        train(tmp_path / "m", [], [], schedule="linear")
    assert not (tmp_path / "m").exists()



def test_inference_precision_is_chosen_from_the_device_and_the_environment(monkeypatch):
    from connectomix.errors import ConfigError
    from connectomix.models._unet import forward, inference_dtype

    monkeypatch.delenv("CONNECTOMIX_PRECISION", raising=False)
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert inference_dtype("cpu") == (torch.bfloat16 if native else torch.float32)  # never emulated bf16
    monkeypatch.setenv("CONNECTOMIX_PRECISION", "")  # set but empty: the default
    assert inference_dtype("cpu") == inference_dtype("cpu", "auto")
    assert inference_dtype("cpu", "float32") == torch.float32
    monkeypatch.setenv("CONNECTOMIX_PRECISION", "bfloat16")
    assert inference_dtype("cpu") == torch.bfloat16
    monkeypatch.setenv("CONNECTOMIX_PRECISION", "half")
    with pytest.raises(ConfigError, match="CONNECTOMIX_PRECISION.*half"):
        inference_dtype("cpu")
    torch.manual_seed(0)
    model = UNet3D(1, 3, features=4).eval()
    x = np.random.default_rng(0).random((1, 1, 4, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    with torch.inference_mode():  # the weights go channels-last outside the caller's inference mode
        exact = forward(model, x, precision="float32")  # channels-last memory changes nothing but speed
    assert exact.dtype == np.float32 and np.allclose(exact, want, rtol=1e-4, atol=1e-5)
    half = forward(model, x, precision="bfloat16")  # 8 bits of mantissa: close, not equal
    assert np.abs(half - want).max() < 0.05 * np.abs(want).max() + 1e-3
    assert not any(p.is_inference() for p in model.parameters())  # it can still be trained


@pytest.mark.parametrize("shape,tta", [((40, 96, 80), False), ((39, 100, 84), False), ((39, 100, 84), True)])
def test_prediction_does_not_depend_on_the_block_shape(tmp_path, shape, tta):
    # each block reads the network's whole receptive field as context, so a voxel's affinities are the
    # same whatever block it lands in (the default block shape can change without changing results);
    # also for a volume that is not a whole number of pooling cells (one block then covers an axis
    # whole: 39 x 100 x 84 failed before 2026-11-27, seventh session), and with test-time augmentation
    from connectomix.models._predict import DEFAULT_BLOCK_VX

    d = _tiny_model_dir(tmp_path / "model")
    raw = (np.random.default_rng(0).random(shape) * 255).astype(np.uint8)
    out = {}
    for block in [(8, 32, 32), (16, 48, 64), DEFAULT_BLOCK_VX]:
        run = Run.create(tmp_path / f"run{block[0]}")
        stored_volume(run.volume_path("raw"), raw, chunks=(8, 32, 32))
        predict_affinities(run, model_dir=d, block_shape_vx=block, tta=tta)
        out[block] = open_volume(run.volume_path("affinities")).to_numpy()
    first, *rest = out.values()
    assert first.std() > 0
    for a in rest:
        np.testing.assert_array_equal(a, first)


def test_cut_at_nodata_zeroes_exactly_the_pairs_that_touch_no_data():
    from connectomix.models._predict import _cut_at_nodata

    rng = np.random.default_rng(0)
    nodata = rng.random((4, 9, 10)) < 0.2
    offsets = [(-1, 0, 0), (0, -1, 0), (0, 0, -4), (0, 2, 0)]
    aff = np.full((len(offsets),) + nodata.shape, 200, np.uint8)
    _cut_at_nodata(aff, nodata, offsets)
    for c, o in enumerate(offsets):
        for v in np.ndindex(nodata.shape):
            w = tuple(a + b for a, b in zip(v, o))
            inside = all(0 <= a < n for a, n in zip(w, nodata.shape))
            cut = nodata[v] or (inside and nodata[w])
            assert aff[(c,) + v] == (0 if cut else 200), (o, v)


@pytest.mark.parametrize("flip_y,flip_x,transpose", [(fy, fx, t) for t in (False, True) for fy in (False, True)
                                                     for fx in (False, True) if fy or fx or t])
def test_affinities_of_a_flipped_or_transposed_volume_map_back_exactly(flip_y, flip_x, transpose):
    # test-time augmentation: what a perfect network says about the transformed volume, mapped back,
    # is what it says about the volume itself (affinities of the true labels stand in for the network)
    from connectomix.models._predict import _transform, untransform
    from connectomix.segment import affinities_from_labels

    labels = blobs((6, 40, 40), n=12, seed=3)
    want = affinities_from_labels(labels, DEFAULT_OFFSETS)
    seen = affinities_from_labels(np.ascontiguousarray(_transform(labels, flip_y, flip_x, transpose)), DEFAULT_OFFSETS)
    unknown = np.full_like(want, -1.0)
    back = untransform(seen, DEFAULT_OFFSETS, flip_y, flip_x, transpose, fallback=unknown)
    known = back != -1
    # left to the fallback: exactly the pairs whose partner lies outside along a flipped axis
    outside = np.zeros(want.shape, bool)
    Z, Y, X = labels.shape
    for c, (_, oy, ox) in enumerate(DEFAULT_OFFSETS):
        yy, xx = np.meshgrid(np.arange(Y), np.arange(X), indexing="ij")
        out = np.zeros((Y, X), bool)
        if flip_y:
            out |= (yy + oy < 0) | (yy + oy >= Y)
        if flip_x:
            out |= (xx + ox < 0) | (xx + ox >= X)
        outside[c] = out
    np.testing.assert_array_equal(~known, outside)
    np.testing.assert_array_equal(back[known], want[known])


def test_test_time_augmentation_averages_the_eight_in_plane_symmetries(tmp_path, monkeypatch):
    from connectomix.models import _predict

    d = _tiny_model_dir(tmp_path / "model")
    raw = (np.random.default_rng(1).random((16, 64, 64)) * 255).astype(np.uint8)
    calls = []
    real = _predict.predict_array
    monkeypatch.setattr(_predict, "predict_array", lambda *a, **k: calls.append(1) or real(*a, **k))
    run = Run.create(tmp_path / "run")
    stored_volume(run.volume_path("raw"), raw, chunks=(8, 32, 32))
    predict_affinities(run, model_dir=d, tta=True)
    assert len(calls) == 8  # one block, the 8 in-plane symmetries
    aff = open_volume(run.volume_path("affinities")).to_numpy()
    plain = predict_array(raw, *(lambda m: (m, m.factor))(load_model(d)[0]))
    assert aff.shape == plain.shape and aff.std() > 0
    assert not np.array_equal(aff, np.rint(np.clip(plain, 0, 1) * 255).astype(np.uint8))
