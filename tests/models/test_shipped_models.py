"""Guards on the weights that ship with connectomix (random or broken weights fail these).

Both run on a fixed 32 x 256 x 256 crop of the frozen ``eval`` set (seed 0), which no
training run ever saw. The bounds sit just above what the shipped models measure
(see the model cards in src/connectomix/models/weights/*/MODEL_CARD.md), so a
regression fails; randomly initialised networks score far outside them.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from connectomix.evaluate import variation_of_information
from connectomix.models import load_model, predict_array, predict_synapse_array
from connectomix.pipeline import segment_config
from connectomix.segment import segment


@pytest.fixture(scope="module")
def eval_crop():
    from connectomix.synth import generate, resolve_settings

    settings = resolve_settings(preset="eval", seed=0)
    vol = generate(settings, 0, preset="eval")
    sl = (slice(0, 32), slice(0, 256), slice(0, 256))
    return vol["raw"][sl], vol["gt"][sl], vol["clefts"][sl], vol["synapses"], np.asarray(settings.voxel_size, float)


def test_shipped_segmentation_model_beats_its_guard(eval_crop):
    raw, gt, *_ = eval_crop
    torch.set_num_threads(2)
    model, meta = load_model(None)
    assert meta["task"] == "affinities" and meta["iterations"] > 1000
    aff = predict_array(raw, model, model.factor)
    config = segment_config()  # the pipeline's settings
    voi = variation_of_information(segment(aff, config=config).segmentation, gt)
    # measured 1.23 bits with the widened model (16 features, 49,400 iterations), in
    # bfloat16 (39,400 iterations: 1.24; 12 features, 24,200 iterations: 1.40; 13,800 iterations: 1.51; with 3D
    # fragments 2.27; 4,392 iterations: 3.55; random weights: 5.75); issue #4's target
    # of 1.0 is not reached yet
    assert voi.split + voi.merge <= 1.45


def test_shipped_synapse_model_finds_clefts_and_points_at_presynaptic_partners(eval_crop):
    raw, gt, clefts, synapses, vs = eval_crop
    torch.set_num_threads(2)
    model, meta = load_model(None, task="synapses")
    assert meta["task"] == "synapses"
    y = predict_synapse_array(raw, model, model.factor)
    prob = y[0]
    ids = np.unique(clefts[clefts > 0])
    detected = np.mean([prob[clefts == i].max() > 0.5 for i in ids])
    false_voxels = (prob[clefts == 0] > 0.5).mean()
    vox = np.argwhere(clefts > 0)
    tips = np.floor(((vox + 0.5) * vs + y[1:, clefts > 0].T) / vs).astype(int)
    tips = np.clip(tips, 0, np.array(gt.shape) - 1)
    pre_of = dict(zip(synapses.synapse_id, synapses.pre_id))
    want = np.array([pre_of.get(int(i), -1) for i in clefts[clefts > 0]])
    lands_in_pre = (gt[tuple(tips.T)] == want)[want > 0].mean()
    # measured: 98 % of clefts detected, 3.4 % false voxels, 98 % of vectors land in the
    # presynaptic neuron (random weights: 77 % false voxels, 16 % of vectors)
    assert len(ids) >= 20
    assert detected >= 0.9 and false_voxels <= 0.1 and lands_in_pre >= 0.9


def test_shipped_defect_model_finds_damaged_strips():
    # four volumes of the defect network's kind (train preset, a third of the sections damaged) from seeds
    # no training or validation run used; each section judged between its neighbours, as `align` does
    from connectomix.align import RegisterSettings
    from connectomix.models import defect_probability, make_defect_volumes

    torch.set_num_threads(2)
    model, meta = load_model(None, task="defects")
    assert meta["task"] == "defects" and meta["iterations"] > 1000
    t = RegisterSettings().damage_probability
    counts = {1: [0, 0, 0, 0], 2: [0, 0, 0, 0]}  # full resolution; averaged over 2 x 2 blocks (large sections)
    for raw, mask in make_defect_volumes([980, 981, 982, 983], shape=(8, 256, 256)):
        r = raw.astype(np.float32) / 255
        for z in range(8):
            three = [r[z - 1 if z else 1], r[z], r[z + 1 if z < 7 else 6]]
            for k, c in counts.items():
                img = [a.reshape(256 // k, k, 256 // k, k).mean(axis=(1, 3)) for a in three]
                p = defect_probability(*img, model) > t
                m = mask[z].reshape(256 // k, k, 256 // k, k).mean(axis=(1, 3)) > 0.5
                c[0], c[1] = c[0] + int((p & m).sum()), c[1] + int(m.sum())
                c[2], c[3] = c[2] + int((p & ~m).sum()), c[3] + int((~m).sum())
    for k, (hit, strip, false, clean) in counts.items():
        print(f"defect network at p > {t}, scale {k}: {hit / strip:.3f} of strip pixels, {false / clean:.4f} of the others")
    assert meta.get("scales") == [1, 2]  # align judges sections above 2048 px averaged over 2 x 2 blocks
    # measured 0.697 / 0.0033 at full resolution, 0.686 / 0.0017 at scale 2 (2026-11-27, the network fine-tuned
    # at both scales; before it 0.672 / 0.0031 at full resolution). On 8 volumes of 12 x 512 x 512 (seeds
    # 980-987): 0.918 / 0.0018 and 0.900 / 0.0014 (the network before: 0.889 / 0.0022 and 0.779 / 0.0019).
    # Random weights: 0.0 / 0.0
    for hit, strip, false, clean in counts.values():
        assert hit / strip >= 0.6 and false / clean <= 0.006
