import networkx as nx
import numpy as np
import pandas as pd
import pytest

from connectomix.analysis import clustering, degrees, reciprocity, summary
from connectomix.graph import Connectome


def random_connectome(seed: int, n: int = 40, p: float = 0.08) -> Connectome:
    rng = np.random.default_rng(seed)
    a = rng.random((n, n)) < p
    mutual = rng.random((n, n)) < 0.03
    a |= mutual | mutual.T
    np.fill_diagonal(a, False)
    pre, post = np.nonzero(a)
    edges = pd.DataFrame({"pre_id": pre + 1, "post_id": post + 1,
                          "n_synapses": rng.integers(1, 9, size=pre.size)})
    return Connectome(pd.DataFrame({"segment_id": np.arange(1, n + 1)}), edges)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summary_equals_networkx(seed):
    c = random_connectome(seed)
    g = c.to_networkx()
    s = summary(c)
    assert s["n_neurons"] == g.number_of_nodes()
    assert s["n_edges"] == g.number_of_edges()
    assert s["n_synapses"] == sum(d["n_synapses"] for _, _, d in g.edges(data=True))
    assert s["reciprocity"] == pytest.approx(nx.overall_reciprocity(g))
    assert s["density"] == pytest.approx(nx.density(g))
    assert s["largest_scc"] == max(len(x) for x in nx.strongly_connected_components(g))
    assert s["largest_wcc"] == max(len(x) for x in nx.weakly_connected_components(g))
    u = g.to_undirected()
    assert s["clustering"] == pytest.approx(nx.average_clustering(u))
    assert s["transitivity"] == pytest.approx(nx.transitivity(u))


def test_degrees_and_strengths(toy):
    d = degrees(toy)
    g = toy.to_networkx()
    assert d.loc[1, "out_degree"] == g.out_degree(1) == 2
    assert d.loc[2, "in_degree"] == g.in_degree(2) == 2
    assert d.loc[1, "degree"] == 2  # partners 2 and 3 (2 is reciprocal: counted once)
    assert d.loc[1, "out_strength"] == 5 and d.loc[10, "in_strength"] == 6
    e = degrees(toy, kind="electrical")
    assert e.loc[4, "degree"] == 1 and e.loc[4, "strength"] == 2
    assert e.loc[8, "degree"] == 0  # a self-pair is no partner


def test_isolated_neurons_count_and_kinds(toy):
    s = summary(toy, kind="electrical")
    assert s["n_edges"] == 2 and s["n_synapses"] == 3 and s["n_self_loops"] == 1
    assert s["reciprocity"] == 1.0
    chem = summary(toy)
    assert chem["n_neurons"] == 10 and chem["n_isolated"] == 0
    assert reciprocity(toy) == pytest.approx(2 / 12)
    assert clustering(toy)["transitivity"] > 0


def test_reciprocity_of_a_graph_without_edges_is_nan():
    c = Connectome(pd.DataFrame({"segment_id": [1, 2]}),
                   pd.DataFrame({"pre_id": [1], "post_id": [2], "weight": [1.0],
                                 "kind": ["electrical"]}))
    assert np.isnan(reciprocity(c))
    assert summary(c)["n_edges"] == 0
