import networkx as nx
import numpy as np
import pytest

from connectomix import datasets
from connectomix.analysis import hubs, rich_club
from connectomix.analysis._common import rewired, undirected

from test_summary import random_connectome


def test_hub_measures_equal_networkx():
    c = random_connectome(11, n=40, p=0.1)
    table = hubs(c).sort_index()
    g = c.to_networkx()
    pr = nx.pagerank(g, weight="n_synapses")
    bc = nx.betweenness_centrality(g, normalized=True)
    assert table["pagerank"].to_numpy() == pytest.approx([pr[i] for i in table.index], abs=1e-6)
    assert table["betweenness"].to_numpy() == pytest.approx([bc[i] for i in table.index], abs=1e-9)
    assert table["is_hub"].dtype == bool


def test_sampled_betweenness_is_close_to_exact():
    c = random_connectome(12, n=60, p=0.08)
    exact = hubs(c)["betweenness"].sort_index()
    approx = hubs(c, betweenness_sources=30, seed=1)["betweenness"].sort_index()
    assert np.corrcoef(exact, approx)[0, 1] > 0.8


def test_rich_club_equals_networkx_and_nulls_keep_degrees():
    c = random_connectome(13, n=50, p=0.12)
    rc = rich_club(c, kind="chemical", n_null=10, seed=0)
    u = nx.Graph(undirected(c, "chemical"))
    ref = nx.rich_club_coefficient(u, normalized=False)
    for k, row in rc.iterrows():
        assert row["phi"] == pytest.approx(ref[k])
    a = undirected(c, "chemical")
    for r in rewired(a, n_null=2, seed=0, directed=False):
        assert np.array_equal(np.asarray(r.sum(1)).ravel(), np.asarray(a.sum(1)).ravel())
        assert (r != r.T).nnz == 0


def test_rich_club_of_varshney2011_matches_towlson2013():
    # Towlson et al. 2013 (doi:10.1523/JNEUROSCI.3784-12.2013): 11 neurons of degree > 40
    # in the combined undirected network form a significant rich club.
    c = datasets.load("celegans-varshney2011")
    rc = rich_club(c, kind="combined", n_null=20, seed=0)
    assert rc.loc[40, "n_nodes"] == 11
    assert rc.loc[40, "phi_norm"] > 1.2 and rc.loc[40, "p_value"] < 0.1
    top = hubs(c, kind="combined").head(5)["name"].tolist()
    assert {"AVAL", "AVAR"} <= set(top)  # command interneurons are the largest hubs
