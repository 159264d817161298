"""The error-model rates that evaluate reports for connectomix.analysis.perturb."""

import json

import numpy as np
import pytest

from connectomix.evaluate import evaluate_arrays, evaluate_tables, split_merge_errors

from .test_evaluate import GT_SYN, PRED_SYN, neurites, predicted


def test_split_and_merge_rates_per_true_neuron():
    gt = neurites()  # objects 1 (background), 11, 12, 13, 14
    pred = predicted(gt)  # 11 cut in two, 14 fused into 12
    out = evaluate_arrays(pred_labels=pred, gt_labels=gt, min_overlap_vx=10, compute_erl=False)
    assert out["n_gt_objects"] == 5
    assert out["error_split"] == pytest.approx(out["n_split_errors"] / 5) == pytest.approx(1 / 5)
    assert out["error_merge"] == pytest.approx(out["n_merge_errors"] / 5) == pytest.approx(1 / 5)
    assert out["error_size_unit_vx"] == pytest.approx(gt.size / 5)
    assert out["n_pieces_mean"] == pytest.approx(6 / 5)
    assert out["n_pieces_median"] == 1 and out["n_pieces_max"] == 2
    assert out["largest_piece_fraction_median"] == 1.0
    json.dumps(out)


def test_largest_piece_of_each_true_neuron():
    gt = np.array([1, 1, 1, 1, 2, 2, 3, 3])
    seg = np.array([4, 4, 4, 5, 6, 6, 6, 6])
    sm = split_merge_errors(seg, gt, min_overlap_vx=1)
    assert sm.gt_objects["largest_piece_vx"].tolist() == [3, 2, 2]
    out = evaluate_arrays(pred_labels=seg, gt_labels=gt, min_overlap_vx=1, compute_erl=False)
    assert out["largest_piece_fraction_median"] == 1.0  # 3/4, 1, 1
    assert out["error_split"] == pytest.approx(1 / 3) and out["error_merge"] == pytest.approx(1 / 3)


def test_synapse_rates():
    out = evaluate_tables(pred_synapses=PRED_SYN, gt_synapses=GT_SYN)
    assert out["error_dropout"] == pytest.approx(1 - out["synapse_recall"])
    assert out["error_spurious"] == pytest.approx(
        (out["synapse_n_pred"] - out["synapse_n_matched"]) / out["synapse_n_gt"])
