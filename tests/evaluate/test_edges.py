"""Tests for connectome edge scores."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from connectomix.errors import TableFormatError
from connectomix.evaluate import edge_scores, edges_from_synapses, map_segments_to_gt


def edges(rows):
    return pd.DataFrame(rows, columns=["pre_id", "post_id", "n_synapses"]).astype(np.int64)


GT = edges([(1, 2, 5), (1, 3, 1), (2, 3, 3), (3, 1, 4)])


def test_precision_recall_and_correlation():
    pred = edges([(1, 2, 4), (2, 3, 1), (2, 1, 2)])
    s = edge_scores(pred, GT)
    assert (s.n_pred, s.n_gt, s.n_matched) == (3, 4, 2)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # union of edges in sorted (pre, post) order: (1,2) (1,3) (2,1) (2,3) (3,1)
    a, b = [4, 0, 2, 1, 0], [5, 1, 0, 3, 4]
    assert s.weight_pearson == pytest.approx(pearsonr(a, b)[0])
    assert s.weight_spearman == pytest.approx(spearmanr(a, b)[0])


def test_strong_edges():
    pred = edges([(1, 2, 4), (2, 3, 1), (2, 1, 3)])
    s = edge_scores(pred, GT)
    # strong: pred {(1,2), (2,1)}, gt {(1,2), (2,3), (3,1)}
    assert (s.strong_n_pred, s.strong_n_gt) == (2, 3)
    assert s.strong_precision == pytest.approx(0.5) and s.strong_recall == pytest.approx(1 / 3)
    a, b = [4, 3, 1, 0], [5, 0, 3, 4]  # full weights over the union of strong edges
    assert s.strong_weight_pearson == pytest.approx(pearsonr(a, b)[0])
    assert edge_scores(pred, GT, strong_threshold=5).strong_n_gt == 1


def test_perfect():
    s = edge_scores(GT, GT)
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)
    assert s.weight_pearson == pytest.approx(1.0) and s.weight_spearman == pytest.approx(1.0)


def test_segment_map_merges_split_neurons():
    gt_labels = np.array([1, 1, 1, 2, 2, 3])
    pred_labels = np.array([10, 11, 11, 20, 20, 30])  # neuron 1 split into 10 and 11
    m = map_segments_to_gt(pred_labels, gt_labels)
    pred = edges([(10, 20, 2), (11, 20, 3), (99, 30, 1)])
    gt = edges([(1, 2, 5)])
    s = edge_scores(pred, gt, segment_map=m)
    assert s.n_pred == 2  # (1,2) with weight 2 + 3, and (0,3) from the unmapped segment 99
    assert s.n_matched == 1 and s.recall == 1.0 and s.precision == 0.5


def test_undefined_scores_are_nan():
    empty = edges([])
    s = edge_scores(empty, GT)
    assert np.isnan(s.precision) and s.recall == 0.0
    assert np.isnan(s.weight_pearson)  # nothing predicted: all predicted weights 0
    one = edges([(1, 2, 5)])
    assert np.isnan(edge_scores(one, one).weight_pearson)  # a single edge has no correlation


def test_edges_from_synapses():
    syn = pd.DataFrame({"pre_id": [1, 1, 2, 1], "post_id": [2, 2, 1, 3]})
    e = edges_from_synapses(syn)
    assert e.values.tolist() == [[1, 2, 2], [1, 3, 1], [2, 1, 1]]
    assert list(e.columns) == ["pre_id", "post_id", "n_synapses"]


def test_weight_column_and_errors():
    pred = GT.rename(columns={"n_synapses": "weight"}).astype({"weight": float})
    s = edge_scores(pred, GT.rename(columns={"n_synapses": "weight"}), weight="weight")
    assert s.f1 == 1.0
    with pytest.raises(TableFormatError, match="pred_edges lacks the weight column 'n_synapses'"):
        edge_scores(GT.drop(columns="n_synapses"), GT)
    with pytest.raises(TableFormatError, match=r"gt_edges lacks column\(s\) \['pre_id'\]"):
        edge_scores(GT, GT.drop(columns="pre_id"))
    with pytest.raises(TableFormatError, match="non-negative weights"):
        edge_scores(pred.assign(weight=-1.0), pred, weight="weight")
