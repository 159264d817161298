import numpy as np
import pandas as pd
import pytest

from connectomix import datasets
from connectomix.analysis import default_statistics, perturb, robustness


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
    assert table.loc["n_neurons", "std"] == 0
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
