import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from connectomix.analysis._triads import census_from_matrix, node_triangles, triangle_codes


def random_digraph(seed: int, n: int, p: float, mutual: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = (rng.random((n, n)) < p).astype(float)
    a = np.maximum(a, a.T * (rng.random((n, n)) < mutual))  # some reciprocal pairs
    np.fill_diagonal(a, 0)
    return a


@pytest.mark.parametrize("seed", range(8))
def test_census_equals_networkx_on_random_graphs(seed):
    rng = np.random.default_rng(100 + seed)
    n, p = int(rng.integers(3, 45)), float(rng.uniform(0.03, 0.6))
    a = random_digraph(seed, n, p)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(*np.nonzero(a)))
    assert census_from_matrix(sp.csr_matrix(a)) == nx.triadic_census(g)


def test_census_with_a_hub_and_degenerate_graphs():
    # a star with a few extra edges: the hub is where the degree ordering matters
    n = 60
    a = np.zeros((n, n))
    a[0, 1:] = 1
    a[1:20, 0] = 1
    a[5, 6] = a[6, 7] = a[7, 5] = a[8, 9] = 1
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(*np.nonzero(a)))
    assert census_from_matrix(sp.csr_matrix(a)) == nx.triadic_census(g)
    empty = census_from_matrix(sp.csr_matrix((5, 5)))
    assert empty["003"] == 10 and sum(empty.values()) == 10
    assert sum(census_from_matrix(sp.csr_matrix((2, 2))).values()) == 0


def test_triangles_by_code_and_per_node():
    # one cycle 0 -> 1 -> 2 -> 0 and one transitive triple 3 -> 4 -> 5, 3 -> 5
    a = np.zeros((6, 6))
    a[0, 1] = a[1, 2] = a[2, 0] = 1
    a[3, 4] = a[4, 5] = a[3, 5] = 1
    assert triangle_codes(sp.csr_matrix(a)).sum() == 2
    census = census_from_matrix(sp.csr_matrix(a))
    assert census["030C"] == 1 and census["030T"] == 1
    u = random_digraph(3, 40, 0.3)
    u = np.maximum(u, u.T)
    expected = np.rint(np.diag(u @ u @ u) / 2).astype(int)
    np.testing.assert_array_equal(node_triangles(sp.csr_matrix(u)), expected)
