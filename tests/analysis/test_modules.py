import networkx as nx
import numpy as np
import pandas as pd
import pytest

from connectomix.analysis import modules
from connectomix.graph import Connectome


def two_cliques() -> Connectome:
    pairs = []
    for block in (range(0, 6), range(6, 12)):
        pairs += [(i, j) for i in block for j in block if i != j]
    pairs.append((0, 6))
    edges = pd.DataFrame(pairs, columns=["pre_id", "post_id"]).assign(n_synapses=1)
    return Connectome(pd.DataFrame({"segment_id": range(12)}), edges)


@pytest.mark.parametrize("method", ["leiden", "louvain"])
def test_two_cliques_give_two_modules(method):
    c = two_cliques()
    result = modules(c, kind="chemical", method=method, seed=0)
    assert result.n_modules == 2
    m = result.table["module"]
    assert m.loc[0:5].nunique() == 1 and m.loc[6:11].nunique() == 1 and m[0] != m[6]
    g = nx.Graph()
    for (u, v), w in c.adjacency(weight="n_synapses").todok().items():
        g.add_edge(u, v, weight=g.get_edge_data(u, v, {"weight": 0})["weight"] + w)
    communities = [set(np.flatnonzero(m.to_numpy() == k)) for k in range(2)]
    assert result.modularity == pytest.approx(nx.community.modularity(g, communities, weight="weight"))
    # participation: node 0 has 5 links inside, 1 outside
    assert result.table.loc[0, "participation"] == pytest.approx(1 - (5 / 6) ** 2 - (1 / 6) ** 2)
    assert result.table.loc[1, "participation"] == 0
    assert (result.table["within_module_z"] == 0).all()  # every clique member has 5 inside
    assert result.to_dict()["module_sizes"] == [6, 6]


def test_modules_are_seeded_and_reject_unknown_method(toy):
    a, b = modules(toy, seed=4), modules(toy, seed=4)
    pd.testing.assert_frame_equal(a.table, b.table)
    with pytest.raises(ValueError, match="leiden"):
        modules(toy, method="spectral")
