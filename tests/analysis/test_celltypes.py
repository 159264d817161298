import numpy as np
import pandas as pd
import pytest

from connectomix import datasets
from connectomix.analysis import adjusted_rand_index, cell_types, pair_left_right
from connectomix.graph import Connectome


def test_adjusted_rand_index_matches_its_definition():
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0
    assert adjusted_rand_index(["a", "a", "b", "b"], [1, 2, 1, 2]) == pytest.approx(-0.5)
    # Hubert & Arabie 1985 example values computed by hand with the pair counts
    true = [0, 0, 0, 1, 1, 1]
    pred = [0, 0, 1, 1, 2, 2]
    # pairs: index=2, rows=6, cols=3, total=15 -> (2 - 1.2) / (4.5 - 1.2)
    assert adjusted_rand_index(true, pred) == pytest.approx(0.8 / 3.3)
    with pytest.raises(ValueError, match="differ in length"):
        adjusted_rand_index([0, 1], [0])


def mirror_graph(seed=0, n_pairs=30, n_mid=10) -> Connectome:
    """A bilateral toy brain: left and right halves wired as mirror images plus noise."""
    rng = np.random.default_rng(seed)
    half = (rng.random((n_pairs, n_pairs)) < 0.12) * rng.integers(1, 6, (n_pairs, n_pairs))
    cross = (rng.random((n_pairs, n_pairs)) < 0.04) * rng.integers(1, 4, (n_pairs, n_pairs))
    to_mid = (rng.random((n_pairs, n_mid)) < 0.2) * rng.integers(1, 4, (n_pairs, n_mid))
    from_mid = (rng.random((n_mid, n_pairs)) < 0.2) * rng.integers(1, 4, (n_mid, n_pairs))
    n = 2 * n_pairs + n_mid
    a = np.zeros((n, n), dtype=int)
    L, R, M = slice(0, n_pairs), slice(n_pairs, 2 * n_pairs), slice(2 * n_pairs, n)
    a[L, L], a[R, R] = half, half
    a[L, R], a[R, L] = cross, cross
    a[L, M], a[R, M] = to_mid, to_mid
    a[M, L], a[M, R] = from_mid, from_mid
    np.fill_diagonal(a, 0)
    noise = (rng.random((n, n)) < 0.01) * 1
    a = a + noise
    np.fill_diagonal(a, 0)
    pre, post = np.nonzero(a)
    perm = rng.permutation(n)  # node order must not give the answer away
    names = [f"c{i}L" for i in range(n_pairs)] + [f"c{i}R" for i in range(n_pairs)] + \
        [f"m{i}" for i in range(n_mid)]
    side = ["L"] * n_pairs + ["R"] * n_pairs + [""] * n_mid
    neurons = pd.DataFrame({"segment_id": np.arange(n), "name": names, "side": side,
                            "cell_type": [f"c{i}" for i in range(n_pairs)] * 2 +
                            [f"m{i}" for i in range(n_mid)]}).iloc[perm]
    edges = pd.DataFrame({"pre_id": pre, "post_id": post, "n_synapses": a[pre, post]})
    return Connectome(neurons, edges)


def test_pairing_recovers_a_mirror_image_and_beats_degree():
    c = mirror_graph()
    pairing = pair_left_right(c, kind="chemical")
    baseline = pair_left_right(c, kind="chemical", method="degree")
    assert pairing.n_scored == 30 and len(pairing.pairs) == 30
    assert pairing.accuracy >= 0.9
    assert baseline.accuracy < pairing.accuracy
    row = pairing.pairs.set_index("left_name").loc["c3L"]
    assert row["right_name"] == "c3R" and bool(row["correct"])
    assert pairing.to_dict()["n_pairs"] == 30


def test_pairing_and_typing_need_what_they_need():
    c = mirror_graph()
    plain = Connectome(c.neurons.drop(columns=["side"]), c.edges)
    with pytest.raises(KeyError, match="no 'side' column"):
        pair_left_right(plain)
    with pytest.raises(ValueError, match="method must be"):
        pair_left_right(c, method="magic")
    no_types = Connectome(c.neurons.drop(columns=["cell_type"]), c.edges)
    with pytest.raises(ValueError, match="n_types is needed"):
        cell_types(no_types)
    result = cell_types(no_types, n_types=5)
    assert np.isnan(result.ari) and result.table["cluster"].nunique() == 5
    with pytest.raises(ValueError, match="features must be"):
        cell_types(c, features="shape")


def test_connectivity_beats_degree_on_varshney2011():
    # C. elegans hermaphrodite (Varshney et al. 2011, doi:10.1371/journal.pcbi.1001066):
    # 280 neurons in 103 classes (AVAL/AVAR -> AVA); 92 left/right pairs named ...L/...R.
    c = datasets.load("celegans-varshney2011")
    types = cell_types(c)
    baseline = cell_types(c, features="degree")
    assert types.n_types == 103 and types.mirrored
    assert types.ari > 0.25 and baseline.ari < 0.1
    assert types.ari > 2 * baseline.ari
    # matched pairs share a cluster by construction
    t = types.table.set_index("name")["cluster"]
    assert t["AVAL"] == t["AVAR"]
    pairing = pair_left_right(c)
    degree = pair_left_right(c, method="degree")
    assert pairing.n_scored == 92
    assert pairing.accuracy > 0.9 and degree.accuracy < 0.3
    assert pairing.accuracy > degree.accuracy + 0.5
    unmirrored = cell_types(c, mirror=False)
    assert baseline.ari < unmirrored.ari < types.ari


def test_witvliet_adult_types_and_pairs():
    # Witvliet et al. 2021 dataset 8 (adult nerve ring, doi:10.1038/s41586-021-03778-8)
    c = datasets.load("celegans-witvliet2021-8")
    assert cell_types(c).ari > 0.5 > 0.2 > cell_types(c, features="degree").ari
    assert pair_left_right(c).accuracy > 0.9
