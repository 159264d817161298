"""Synapse detection on in-memory arrays: clefts, partners, block independence, bad input."""

import numpy as np
import pandas as pd
import pytest
from synapse_testdata import synth_run, toy_pair

from connectomix.errors import ConfigError, TableFormatError, VolumeError
from connectomix.evaluate import edge_scores, edges_from_synapses, synapse_scores
from connectomix.run import Run
from connectomix.synapses import assign_partners, detect_synapses, ideal_predictions, merge_nearby

VS = (40, 8, 8)


def test_toy_synapse_partners_position_and_size():
    prob, vec, seg = toy_pair()
    syn, clefts = detect_synapses(prob, vec, seg, voxel_size=VS, offset=(400, 80, 0), min_size_vx=1,
                                  min_partner_weight=1)
    assert len(syn) == 1
    row = syn.iloc[0]
    assert (row.pre_id, row.post_id, row.kind, row.cleft_id, row.synapse_id) == (1, 2, "chemical", 1, 1)
    assert row.size_vx == 3 * 6 * 2
    assert row.score == pytest.approx(0.9)
    # centre of the slab: z voxels 1..3, y 4..9, x 7..8, voxel centres at (i + 0.5) * size + offset
    assert (row.z, row.y, row.x) == pytest.approx((400 + 2.5 * 40, 80 + 7.0 * 8, 8.0 * 8))
    assert clefts.dtype == np.uint64
    assert set(np.unique(clefts)) == {0, 1} and (clefts == 1).sum() == 36


def test_toy_vectors_too_long_or_nan_do_not_vote():
    prob, vec, seg = toy_pair()
    vec[2] = -5000.0
    syn, _ = detect_synapses(prob, vec, seg, voxel_size=VS, max_partner_nm=500, min_size_vx=1)
    assert (syn.pre_id.iloc[0], syn.post_id.iloc[0]) == (0, 1)  # best guesses: pre unknown, post the largest side
    vec[:] = np.nan
    syn, _ = detect_synapses(prob, vec, seg, voxel_size=VS, min_size_vx=1)
    assert syn.pre_id.iloc[0] == 0


def test_min_size_and_threshold():
    prob, vec, seg = toy_pair()
    assert len(detect_synapses(prob, vec, seg, voxel_size=VS, min_size_vx=37)[0]) == 0
    assert len(detect_synapses(prob, vec, seg, voxel_size=VS, threshold=0.95, min_size_vx=1)[0]) == 0
    prob_u8 = (prob * 255).astype(np.uint8)
    a = detect_synapses(prob_u8, vec, seg, voxel_size=VS, min_size_vx=1, min_partner_weight=1)[0]
    assert len(a) == 1 and a.score.iloc[0] == pytest.approx(229 / 255)


def test_polyadic_cleft_splits_by_postsynaptic_segment():
    # one presynaptic segment (1) contacting two (2, 3): one connected cleft, two synapses
    seg = np.zeros((4, 16, 16), np.uint64)
    seg[:, :, :8] = 1
    seg[:, :8, 8:] = 2
    seg[:, 8:, 8:] = 3
    prob = np.zeros(seg.shape, np.float32)
    prob[1:3, 2:14, 7:9] = 1.0
    vec = np.zeros((3,) + seg.shape, np.float32)
    vec[2][:, :, 7:9] = -24.0
    syn, clefts = detect_synapses(prob, vec, seg, voxel_size=VS, min_size_vx=1, min_partner_weight=1)
    assert syn[["pre_id", "post_id", "cleft_id"]].values.tolist() == [[1, 2, 1], [1, 3, 1]]
    assert syn["size_vx"].sum() == (clefts == 1).sum() == 48
    assert syn.y.iloc[0] < syn.y.iloc[1]  # each placed on its own side


def test_assign_partners_keeps_stronger_of_opposite_pairs():
    votes = pd.DataFrame({"cleft_id": [1, 1], "target": [5, 7], "own": [7, 5], "n": [30, 12],
                          "w": [30.0, 12.0], "wz": [0.0, 0.0], "wy": [0.0, 0.0], "wx": [0.0, 0.0]})
    out = assign_partners(votes, partner_fraction=0.2, min_partner_weight=1)
    assert out[["pre_id", "post_id"]].values.tolist() == [[5, 7]]


def test_merge_nearby_joins_pieces_of_one_cleft():
    syn = pd.DataFrame({"synapse_id": [1, 2, 3, 4, 5], "pre_id": [1, 1, 1, 2, 0], "post_id": [2, 2, 2, 1, 2],
                        "z": [0.0, 0.0, 0.0, 0.0, 0.0], "y": [0.0, 100.0, 900.0, 50.0, 60.0],
                        "x": [0.0] * 5, "score": [1.0, 0.5, 1.0, 1.0, 1.0], "size_vx": [30, 10, 30, 30, 30],
                        "kind": "chemical", "cleft_id": [1, 2, 3, 4, 5]})
    out = merge_nearby(syn, distance_nm=250)
    assert out[["synapse_id", "pre_id", "post_id", "cleft_id", "size_vx"]].values.tolist() == [
        [1, 1, 2, 1, 40], [2, 1, 2, 3, 30], [3, 2, 1, 4, 30], [4, 0, 2, 5, 30]]
    assert out.loc[0, "y"] == pytest.approx(25.0) and out.loc[0, "score"] == pytest.approx(0.875)
    assert merge_nearby(syn, distance_nm=0) is syn


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    run = Run(synth_run(tmp_path_factory.mktemp("kern") / "run"))
    clefts = run.open("gt_clefts").to_numpy()
    seg = run.open("gt_segmentation").to_numpy()
    gts = run.read_table("gt_synapses")
    prob, vec = ideal_predictions(clefts, seg, gts, voxel_size=VS)
    return dict(run=run, prob=prob, vec=vec, seg=seg, gt=gts, gt_edges=run.read_table("gt_edges"))


def test_ideal_predictions_recover_ground_truth(synth):
    syn, clefts = detect_synapses(synth["prob"], synth["vec"], synth["seg"], voxel_size=VS)
    assert len(synth["gt"]) >= 10
    s = synapse_scores(syn, synth["gt"])
    assert s.f1 == 1.0 and s.mean_match_distance_nm < 60
    e = edge_scores(edges_from_synapses(syn), synth["gt_edges"])
    assert e.f1 == 1.0
    # labels only on cleft voxels, one id per instance
    assert not np.any((clefts > 0) & (synth["prob"] == 0))
    assert set(np.unique(clefts[clefts > 0])) == set(syn["cleft_id"])


@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("block_shape", [(7, 50, 61), (24, 128, 256), (5, 256, 33)])
def test_result_does_not_depend_on_blocks(synth, connectivity, block_shape):
    whole = detect_synapses(synth["prob"], synth["vec"], synth["seg"], voxel_size=VS, connectivity=connectivity)
    tiled = detect_synapses(synth["prob"], synth["vec"], synth["seg"], voxel_size=VS, connectivity=connectivity,
                            block_shape=block_shape)
    pd.testing.assert_frame_equal(whole[0], tiled[0])
    assert np.array_equal(whole[1], tiled[1])


def test_bad_inputs():
    prob, vec, seg = toy_pair()
    bad = prob.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(VolumeError, match="NaN"):
        detect_synapses(bad, vec, seg, voxel_size=VS)
    with pytest.raises(VolumeError, match=r"\[0, 1\]"):
        detect_synapses(prob * 3, vec, seg, voxel_size=VS)
    with pytest.raises(VolumeError, match="partner vectors must be"):
        detect_synapses(prob, vec[:2], seg, voxel_size=VS)
    with pytest.raises(VolumeError, match="segmentation shape"):
        detect_synapses(prob, vec, seg[:-1], voxel_size=VS)
    with pytest.raises(VolumeError, match="integer"):
        detect_synapses(prob, vec, seg.astype(np.float32), voxel_size=VS)
    with pytest.raises(ConfigError, match="threshold"):
        detect_synapses(prob, vec, seg, voxel_size=VS, threshold=0)
    with pytest.raises(ConfigError, match="connectivity"):
        detect_synapses(prob, vec, seg, voxel_size=VS, connectivity=8)
    with pytest.raises(TableFormatError, match="pre_id"):
        ideal_predictions(seg, seg, pd.DataFrame({"synapse_id": [1]}), voxel_size=VS)
