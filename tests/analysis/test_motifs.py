import itertools

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from connectomix.analysis import TRIAD_TYPES, motifs, transmitter_signs, triad_census
from connectomix.analysis._common import binary, rewired
from connectomix.graph import Connectome

from test_summary import random_connectome


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_triad_census_equals_networkx(seed):
    c = random_connectome(seed, n=35, p=0.12)
    assert triad_census(c) == nx.triadic_census(c.to_networkx())


def test_triad_census_of_toy_and_edge_cases(toy):
    census = triad_census(toy)
    assert list(census) == list(TRIAD_TYPES)
    assert sum(census.values()) == 120  # C(10, 3)
    assert census == nx.triadic_census(toy.to_networkx())
    # self-loops are ignored
    loops = Connectome(pd.DataFrame({"segment_id": [1, 2, 3]}),
                       pd.DataFrame({"pre_id": [1, 1], "post_id": [1, 2], "weight": [1.0, 1.0]}))
    assert triad_census(loops)["012"] == 1


def brute_force(a: np.ndarray, inhibitory: np.ndarray) -> dict:
    n = len(a)
    ffl = sum(a[i, j] and a[j, k] and a[i, k]
              for i, j, k in itertools.permutations(range(n), 3))
    bifan = 0
    for s1, s2 in itertools.combinations(range(n), 2):
        for t1, t2 in itertools.combinations(set(range(n)) - {s1, s2}, 2):
            bifan += a[s1, t1] and a[s1, t2] and a[s2, t1] and a[s2, t2]
    dis = sum(inhibitory[i] and inhibitory[j] and a[i, j] and a[j, k]
              for i, j, k in itertools.permutations(range(n), 3))
    return {"feed_forward_loop": ffl, "bi_fan": bifan, "disinhibitory_chain": dis,
            "reciprocal_pair": int(np.sum(a * a.T) // 2)}


def test_named_motifs_match_brute_force():
    c = random_connectome(5, n=14, p=0.25)
    rng = np.random.default_rng(5)
    neurons = c.neurons.assign(transmitter=rng.choice(["gaba", "acetylcholine"], size=14))
    c = Connectome(neurons, c.edges)
    table = motifs(c, n_null=0)
    a = binary(c, "chemical").toarray().astype(bool)
    expected = brute_force(a, transmitter_signs(c) < 0)
    for name, count in expected.items():
        assert table.loc[name, "count"] == count, name
    assert table.loc["300", "induced"] and not table.loc["feed_forward_loop", "induced"]


def test_motif_zscores_are_seeded_and_nulls_keep_degrees(toy):
    c = random_connectome(7, n=40, p=0.1)
    first = motifs(c, n_null=20, seed=3)
    again = motifs(c, n_null=20, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert set(first.columns) >= {"count", "null_mean", "null_std", "z", "p_greater", "p_less"}
    a = binary(c, "chemical")
    for r in rewired(a, n_null=3, seed=1, directed=True):
        assert np.array_equal(np.asarray(r.sum(0)).ravel(), np.asarray(a.sum(0)).ravel())
        assert np.array_equal(np.asarray(r.sum(1)).ravel(), np.asarray(a.sum(1)).ravel())
        assert r.diagonal().sum() == 0 and r.max() == 1
    # a reciprocal-rich graph: mutual dyads far above the degree-preserving null
    n = 30
    pairs = [(i, (i + 1) % n) for i in range(n)] + [((i + 1) % n, i) for i in range(n)]
    pairs += [(i, (i + 7) % n) for i in range(n)]
    edges = pd.DataFrame(pairs, columns=["pre_id", "post_id"]).assign(weight=1.0)
    ring = Connectome(pd.DataFrame({"segment_id": range(n)}), edges)
    z = motifs(ring, n_null=30, seed=0).loc["reciprocal_pair", "z"]
    assert z > 3


def test_motifs_on_celegans_are_fast_and_show_known_structure():
    import time

    from connectomix import datasets

    c = datasets.load("celegans-varshney2011")
    t0 = time.perf_counter()
    table = motifs(c, n_null=20, seed=0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 30
    # C. elegans: reciprocal pairs and feed-forward loops are over-represented
    # (Milo et al. 2002, doi:10.1126/science.298.5594.824; Varshney et al. 2011)
    assert table.loc["reciprocal_pair", "z"] > 5
    assert table.loc["feed_forward_loop", "z"] > 2
    assert table.loc[list(TRIAD_TYPES), "count"].sum() == 280 * 279 * 278 // 6
