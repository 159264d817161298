import numpy as np
import pytest

from connectomix.analysis import layers, reachability, shortest_path, shortest_paths


def test_shortest_paths_prefer_strong_connections(toy):
    # 1 -> 3 directly with 2 synapses (length 0.5) vs 1 -> 2 -> ... ; 3 -> 2 has 5
    d = shortest_paths(toy, ["n1"], ["n2", "n4", "n10"])
    assert d.loc["n1", "n2"] == pytest.approx(1 / 3)
    assert d.loc["n1", "n4"] == pytest.approx(1 / 3 + 1)
    hops = shortest_paths(toy, [1], weighted=False)
    assert hops.loc["n1", "n10"] == 5  # 1 -> 3 -> 7 -> 8 -> 9 -> 10
    assert np.isinf(shortest_paths(toy, [10], [1]).iloc[0, 0])


def test_shortest_path_and_layers(toy):
    assert shortest_path(toy, "n1", "n10") == [1, 3, 7, 8, 9, 10]
    assert shortest_path(toy, 10, 1) == []
    lay = layers(toy, ["n1"])
    assert lay.loc[1] == 0 and lay.loc[2] == 1 and lay.loc[3] == 1 and lay.loc[10] == 5
    assert layers(toy, [10]).loc[1] == -1
    reach = reachability(toy, ["n1"], ["n4", "n10"], max_hops=5)
    assert reach["fraction"].tolist() == [0, 0.5, 0.5, 0.5, 1.0]


def test_unknown_nodes_are_reported(toy):
    with pytest.raises(KeyError, match="unknown neuron name"):
        layers(toy, ["nobody"])
    with pytest.raises(KeyError, match="unknown segment id"):
        layers(toy, [99])
    mask = np.zeros(10, dtype=bool)
    mask[0] = True
    assert layers(toy, mask).loc[1] == 0
