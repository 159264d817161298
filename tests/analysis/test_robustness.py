import numpy as np
import pandas as pd
import pytest

from connectomix import datasets
from connectomix.analysis import active_neurons, default_statistics, perturb, robustness, synthetic_edges
from connectomix.graph import Connectome


def test_zero_rates_change_nothing(toy):
    same = perturb(toy, seed=0)
    pd.testing.assert_frame_equal(same.edges.reset_index(drop=True),
                                  toy.edges.sort_values(["pre_id", "post_id", "kind"]).reset_index(drop=True),
                                  check_dtype=False)


def test_each_error_does_what_it_says():
    c = datasets.load("celegans-varshney2011")
    total = c.edges["n_synapses"].sum()
    dropped = perturb(c, dropout=0.2, seed=1)
    assert dropped.edges["n_synapses"].sum() == pytest.approx(0.8 * total, rel=0.03)
    added = perturb(c, spurious=0.1, seed=1)
    assert added.edges["n_synapses"].sum() == pytest.approx(1.1 * total, rel=0.03)
    assert len(added.edges) > len(c.edges)
    merged = perturb(c, merge=0.05, seed=1)
    assert merged.n_neurons == 280 - 14
    assert merged.edges["n_synapses"].sum() == total  # merges keep every synapse
    split = perturb(c, split=0.05, seed=1)
    assert split.n_neurons == 280 + 14
    assert split.edges["n_synapses"].sum() == total
    gj = split.edges.query("kind == 'electrical'")
    assert (gj["pre_id"] <= gj["post_id"]).all()
    with pytest.raises(ValueError, match="dropout"):
        perturb(c, dropout=1.5)


def test_robustness_reports_spread_and_is_seeded():
    c = datasets.load("celegans-witvliet2021-1")
    table = robustness(c, n=8, seed=0)
    again = robustness(c, n=8, seed=0)
    pd.testing.assert_frame_equal(table, again)
    assert {"observed", "mean", "std", "ci_low", "ci_high", "observed_in_ci"} <= set(table.columns)
    assert (table["ci_low"] <= table["ci_high"]).all()
    assert table.loc["n_synapses", "mean"] < table.loc["n_synapses", "observed"]  # net loss
    assert table.loc["n_neurons", "std"] > 0  # connected neurons: dropout isolates some
    every = robustness(c, n=4, seed=0, active_only=False)
    assert every.loc["n_neurons", "std"] == 0  # splits and merges change the count by a fixed number
    custom = robustness(c, statistics={"edges": lambda g: len(g.edges)}, n=3, dropout=0.0,
                        spurious=0.0, merge=0.0, split=0.0)
    assert custom.loc["edges", "std"] == 0 and custom.loc["edges", "observed_in_ci"]


def test_inverse_mode_moves_the_estimate_back_towards_the_truth():
    truth = datasets.load("celegans-witvliet2021-8")
    rates = dict(dropout=0.2, spurious=0.05, merge=0.0, split=0.0)
    observed = perturb(truth, seed=11, **rates)
    table = robustness(observed, n=10, mode="inverse", seed=0, **rates)
    true_syn = truth.edges.query("kind == 'chemical'")["n_synapses"].sum()
    row = table.loc["n_synapses"]
    assert abs(row["mean"] - true_syn) < abs(row["observed"] - true_syn)
    assert row["ci_low"] <= true_syn <= row["ci_high"]


def test_inverse_intervals_cover_the_truth_at_least_80_percent_of_the_time():
    # Truth: Varshney 2011. Six reconstructions of it with the default error rates
    # injected; for each, robustness(mode="inverse") sees only the reconstruction and
    # the rates. Its 95 % intervals must contain the true value of the default
    # statistics (12 of them) in >= 80 % of the 72 cases. Measured 87.5-90 % with
    # these settings on three seed blocks and 91.7 % with n=20, n_inner=5; the
    # uncorrected ratio interval of the first version reached 58-72 %.
    truth = datasets.load("celegans-varshney2011")
    rates = dict(dropout=0.1, spurious=0.05, merge=0.01, split=0.01)
    hits = []
    for s in range(6):
        observed = perturb(truth, seed=1000 + s, **rates)
        table = robustness(observed, n=10, n_inner=3, mode="inverse", seed=100 * s, **rates)
        true_values = default_statistics(observed)(truth)  # hub overlap: truth vs observed
        assert set(true_values) == set(table.index)
        for name, row in table.iterrows():
            hits.append(row["ci_low"] <= true_values[name] <= row["ci_high"])
    assert len(hits) == 72
    assert np.mean(hits) >= 0.8


def sized_graph(seed: int, n: int = 120, m: int = 300) -> Connectome:
    """A small heavy-tailed graph with multi-synapse edges and neuron sizes (voxels)."""
    rng = np.random.default_rng(seed)
    neurons, edges = synthetic_edges(n, m, exponent=2.3, reciprocity=0.15, seed=seed)
    edges = edges.assign(n_synapses=rng.geometric(0.5, len(edges)))
    edges["weight"] = edges["n_synapses"].astype(float)
    neurons = neurons.assign(size_vx=np.round(rng.lognormal(9, 0.7, len(neurons))).astype(np.int64))
    return Connectome(neurons, edges, name="sized")


def test_split_cuts_neurons_into_many_pieces_along_their_size():
    c = sized_graph(1)
    total = c.edges["n_synapses"].sum()
    cut = perturb(c, split=3.0, seed=2)  # 3 extra pieces per neuron of mean size
    assert cut.n_neurons == 4 * c.n_neurons
    assert cut.edges["n_synapses"].sum() == total
    assert cut.neurons["size_vx"].sum() == pytest.approx(c.neurons["size_vx"].sum(), rel=1e-3)
    base = cut.neurons["name"].str.replace("#split", "", regex=False)
    pieces = base.value_counts()
    big = c.neurons.nlargest(10, "size_vx")["name"]
    small = c.neurons.nsmallest(10, "size_vx")["name"]
    assert pieces.reindex(big).mean() > pieces.reindex(small).mean()  # cuts fall per voxel
    # a larger unit means fewer neurons' worth of volume: fewer cuts
    fewer = perturb(c, split=3.0, size_unit=2 * c.neurons["size_vx"].mean(), seed=2)
    assert fewer.n_neurons == c.n_neurons + round(1.5 * c.n_neurons)
    # merges above one per neuron fuse pieces
    both = perturb(c, split=3.0, merge=2.0, seed=2)
    assert both.n_neurons == 4 * c.n_neurons - 2 * c.n_neurons
    assert both.edges["n_synapses"].sum() == total
    assert both.neurons["size_vx"].sum() == pytest.approx(c.neurons["size_vx"].sum(), rel=1e-3)
    with pytest.raises(ValueError, match="split"):
        perturb(c, split=-1)


def test_false_synapses_land_on_large_neurons():
    c = sized_graph(3)
    sizes = c.neurons["size_vx"].to_numpy().copy()
    sizes[0] = sizes.sum() * 4  # one neuron holds 80 % of the volume
    big = Connectome(c.neurons.assign(size_vx=sizes), c.edges, name="big")
    added = perturb(big, spurious=1.0, seed=0)
    hub = int(big.neurons["segment_id"].iloc[0])
    before = big.edges.query("pre_id == @hub or post_id == @hub")["n_synapses"].sum()
    after = added.edges.query("pre_id == @hub or post_id == @hub")["n_synapses"].sum()
    new = added.edges["n_synapses"].sum() - big.edges["n_synapses"].sum()
    assert (after - before) > 0.6 * new  # ~ 1 - 0.2 ** 2 of them touch it


def test_statistics_count_only_neurons_with_synapses():
    c = sized_graph(4)
    ids = active_neurons(c)
    dust = c.neurons.assign(segment_id=c.neurons["segment_id"] + 10_000, name="dust")
    with_dust = Connectome(pd.concat([c.neurons, dust]), c.edges, name="with dust")
    assert default_statistics(c)(with_dust)["n_neurons"] == len(ids)
    assert default_statistics(c, active_only=False)(with_dust)["n_neurons"] == 2 * c.n_neurons


def test_inverse_intervals_are_calibrated_on_a_fragmented_reconstruction():
    # Truth: small synthetic graphs with neuron sizes (120 neurons, 300 edges of
    # 1-6 synapses). Each is perturbed with reconstruction-like rates (3 pieces per
    # neuron, half a merge per neuron, 30 % false and 20 % missed synapses), and
    # robustness(mode="inverse") sees only that graph and the rates. Measured 77 %
    # and 80 % on two seed blocks (66 cases each, nominal 95 %); n_edges is the
    # statistic that misses (0-1 of 6): splits turn a true edge of several synapses
    # into several single-synapse edges, and the extrapolation cannot see how many
    # synapses a true edge had. At the pipeline's rates (10 pieces per neuron) this
    # graph's coverage drops to about 50 %; see benchmarks/bench_error_model.py.
    rates = dict(dropout=0.2, spurious=0.3, merge=0.5, split=2.0)
    hits = []
    for s in range(6):
        truth = sized_graph(10 + s)
        unit = float(truth.neurons["size_vx"].mean())
        observed = perturb(truth, seed=s, size_unit=unit, **rates)
        table = robustness(observed, n=10, n_inner=3, mode="inverse", seed=100 * s, size_unit=unit, **rates)
        true_values = default_statistics(observed)(truth)
        for name, row in table.drop(index="top_hub_overlap").iterrows():
            if np.isfinite(true_values[name]):
                hits.append(row["ci_low"] <= true_values[name] <= row["ci_high"])
        row = table.loc["n_synapses"]  # splits undone: the estimate moves back
        true_syn = truth.edges["n_synapses"].sum()
        assert abs(row["mean"] - true_syn) < abs(row["observed"] - true_syn)
    assert len(hits) >= 60
    assert np.mean(hits) >= 0.7
