import pandas as pd
import pytest

from connectomix import datasets
from connectomix.analysis import compare, developmental_summary, perturb
from connectomix.graph import Connectome


def test_compare_counts_shared_gained_lost(toy):
    edges = toy.edges
    chem = edges[edges["kind"] == "chemical"]
    changed = pd.concat([chem.iloc[1:],  # lose 1 -> 2
                         pd.DataFrame({"pre_id": [10], "post_id": [1], "kind": ["chemical"],
                                       "n_synapses": [4], "weight": [4.0]})])
    other = Connectome(toy.neurons.drop(columns=["n_pre", "n_post"]), changed)
    result = compare(toy, other, seed=0)
    s = result.stats
    assert (s["shared"], s["gained"], s["lost"]) == (11, 1, 1)
    assert s["jaccard"] == pytest.approx(11 / 13)
    assert s["weight_pearson"] == pytest.approx(1.0)
    status = result.edges.set_index(["pre", "post"])["status"]
    assert status[("n1", "n2")] == "lost" and status[("n10", "n1")] == "gained"
    assert result.degrees.loc["n1", "change"] == 1  # keeps 2 (via 2 -> 1), gains 10


def test_identical_connectomes_have_no_change(toy):
    s = compare(toy, toy).stats
    assert s["jaccard"] == 1 and s["mean_log2_ratio"] == 0 and s["p_value"] == 1


def test_weight_loss_is_detected_by_the_permutation_test():
    c = datasets.load("celegans-witvliet2021-8")
    thinned = perturb(c, dropout=0.5, seed=0)
    s = compare(c, thinned, n_permutations=200, seed=0).stats
    assert s["mean_log2_ratio"] < 0 and s["p_value"] < 0.01
    assert s["lost"] > 0 and s["gained"] == 0


def test_developmental_summary_across_witvliet_stages():
    series = {f"stage {i}": datasets.load(f"celegans-witvliet2021-{i}") for i in (1, 5, 8)}
    table = developmental_summary(series)
    assert list(table.index) == ["stage 1", "stage 5", "stage 8"]
    assert table["n_edges"].is_monotonic_increasing
    assert table.loc["stage 8", "fraction_in_last"] == 1.0
    assert 0 < table.loc["stage 5", "jaccard_with_previous"] < 1
