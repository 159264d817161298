import numpy as np
import pytest

from connectomix.analysis import powerlaw_exponent, synthetic_connectome, synthetic_edges


def test_synthetic_graph_has_the_requested_shape_and_is_seeded():
    n, m = 8_000, 120_000
    neurons, edges = synthetic_edges(n, m, seed=3)
    again = synthetic_edges(n, m, seed=3)[1]
    assert edges.equals(again)
    assert len(neurons) == n and len(edges) == m
    assert not edges.duplicated(["pre_id", "post_id"]).any()
    assert (edges["pre_id"] != edges["post_id"]).all()
    assert (edges["n_synapses"] >= 1).all()
    key = set(zip(edges["pre_id"], edges["post_id"]))
    reciprocity = np.mean([(b, a) in key for a, b in key])
    assert 0.1 <= reciprocity <= 0.2
    pre, post = edges["pre_id"].to_numpy() - 1, edges["post_id"].to_numpy() - 1
    degree = np.bincount(pre, minlength=n) + np.bincount(post, minlength=n)
    gamma, k_min = powerlaw_exponent(degree)
    assert 2.1 <= gamma <= 2.5, gamma
    assert degree.max() > 20 * degree.mean()  # hubs
    assert set(neurons["transmitter"]) == {"acetylcholine", "gaba", "glutamate"}


def test_powerlaw_fit_recovers_a_known_exponent():
    rng = np.random.default_rng(0)
    k = np.floor(5 * (1 - rng.random(200_000)) ** (-1 / 1.3)).astype(int)  # gamma = 2.3
    gamma, k_min = powerlaw_exponent(k)
    assert gamma == pytest.approx(2.3, abs=0.1) and k_min >= 5


def test_synthetic_connectome_and_bad_arguments():
    c = synthetic_connectome(500, 3_000, seed=0)
    assert c.n_neurons == 500 and len(c.edges) == 3_000 and c.meta["params"]["m"] == 3_000
    with pytest.raises(ValueError, match="exponent"):
        synthetic_edges(100, 500, exponent=1.9)
    with pytest.raises(ValueError, match="too dense"):
        synthetic_edges(10, 40)
