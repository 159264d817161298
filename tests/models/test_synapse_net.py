import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from connectomix.models import VECTOR_SCALE_NM, load_model, synapse_loss, synapse_targets, train
from connectomix.models._synapse_targets import flip_vectors
from connectomix.models._train import SynapsePatchSampler


def _two_cells():
    """Pre (1) in y < 16, post (2) in y >= 16; a cleft on both sides of the face."""
    lab = np.ones((8, 32, 32), np.uint32)
    lab[:, 16:] = 2
    clefts = np.zeros_like(lab)
    clefts[2:6, 15:17, 10:20] = 7
    syn = pd.DataFrame({"synapse_id": [7], "pre_id": [1], "post_id": [2]})
    return lab, clefts, syn


def test_vectors_from_every_cleft_voxel_land_inside_the_presynaptic_cell():
    lab, clefts, syn = _two_cells()
    vs = np.array([40.0, 8.0, 8.0])
    mask, vec = synapse_targets(lab, clefts, syn, vs)
    assert mask.sum() == (clefts > 0).sum()
    vox = np.argwhere(mask)
    tips = (vox + 0.5) * vs + vec[:, mask > 0].T.astype(float) * VECTOR_SCALE_NM
    tip_vox = np.floor(tips / vs).astype(int)
    assert (lab[tuple(tip_vox.T)] == 1).all()
    # pushed into the neurite, away from the contact face (y = 16)
    assert (tip_vox[:, 1] < 15).all()
    assert not vec[:, mask == 0].any()


def test_flipping_a_patch_keeps_vectors_pointing_at_the_same_tissue():
    lab, clefts, syn = _two_cells()
    vs = np.array([40.0, 8.0, 8.0])
    _, vec = synapse_targets(lab, clefts, syn, vs)
    flipped = flip_vectors(vec.astype(np.float32), 1)
    assert np.allclose(flipped[1, 3, 32 - 1 - 15, 12], -vec[1, 3, 15, 12])
    assert np.allclose(flipped[0, 3, 32 - 1 - 15, 12], vec[0, 3, 15, 12])


def test_sampler_augmentation_maps_vectors_with_the_image():
    lab, clefts, syn = _two_cells()
    vs = np.array([40.0, 8.0, 8.0])
    mask, vec = synapse_targets(lab, clefts, syn, vs)
    raw = np.where(lab == 1, 60, 200).astype(np.uint8)
    sampler = SynapsePatchSampler([(raw, mask, vec)], (8, 32, 32))
    rng = np.random.default_rng(0)
    for _ in range(20):
        r, t = sampler.sample(rng)
        # the tip of every cleft vector lies in the dark (presynaptic) cell of the augmented patch
        vox = np.argwhere(t[0] > 0)
        tips = np.floor(vox + t[1:, t[0] > 0].T * VECTOR_SCALE_NM / vs + 0.5).astype(int)
        tips = np.clip(tips, 0, np.array(r.shape) - 1)
        assert vox.size
        # each tip lies on the dark (presynaptic) side of its own section, wherever the
        # flips and transposes moved it (sections blanked by the augmentation say nothing)
        for (z, y, x) in tips:
            sec = r[z]
            if sec.std() > 0.05:
                assert sec[y, x] < np.median(sec)


def test_synapse_training_learns_and_records_its_task(tmp_path):
    lab, clefts, syn = _two_cells()
    vs = np.array([40.0, 8.0, 8.0])
    mask, vec = synapse_targets(lab, clefts, syn, vs)
    raw = np.where(lab == 1, 60, 200).astype(np.uint8)
    raw[clefts > 0] = 10
    vols = [(raw, mask, vec)]
    s = train(tmp_path / "syn", vols, vols, iterations=30, patch=(8, 32, 32), features=4, task="synapses",
              validate_every=10, checkpoint_every=10, threads=1, log=lambda m: None)
    assert s["task"] == "synapses" and s["config"]["out_channels"] == 4
    assert s["best_val_loss"] <= s["last_val_loss"]
    hist = [l.split(",") for l in (tmp_path / "syn" / "log.csv").read_text().splitlines()[1:]]
    vals = [float(h[2]) for h in hist if h[2]]
    assert vals[-1] < vals[0]
    model, meta = load_model(tmp_path / "syn")
    assert meta["task"] == "synapses" and (tmp_path / "syn" / "best.pt").exists()


def test_uninformed_synapse_network_loss_is_ln2_plus_vector_error():
    t = torch.zeros(1, 4, 2, 4, 4)
    t[:, 0, :, :2] = 1
    t[:, 1, :, :2] = 2.0  # vectors 200 nm along z on cleft voxels
    loss = synapse_loss(torch.zeros_like(t), t)
    assert float(loss) == pytest.approx(np.log(2) + 1.5, rel=1e-5)  # smooth L1 of 2 is 1.5
