import numpy as np
import pandas as pd
import pytest

from connectomix.analysis import lif_rate, linear_response, simulate_lif
from connectomix.graph import Connectome


def test_single_neuron_matches_the_analytic_lif_rate():
    c = Connectome(pd.DataFrame({"segment_id": [1]}),
                   pd.DataFrame({"pre_id": [], "post_id": [], "weight": []}))
    for drive in (8.0, 10.0, 20.0):
        rate = simulate_lif(c, drive_mv=drive, duration_ms=2000)["rate_hz"].iloc[0]
        assert rate == pytest.approx(lif_rate(drive), rel=0.02)
    assert simulate_lif(c, drive_mv=6.0, duration_ms=500)["rate_hz"].iloc[0] == 0
    assert lif_rate(6.0) == 0


def chain(transmitter: str) -> Connectome:
    neurons = pd.DataFrame({"segment_id": [1, 2, 3], "transmitter": [transmitter, "acetylcholine", ""]})
    edges = pd.DataFrame({"pre_id": [1, 2], "post_id": [2, 3], "n_synapses": [40, 200]})
    return Connectome(neurons, edges)


def test_excitation_propagates_and_inhibition_silences():
    on = simulate_lif(chain("acetylcholine"), stimulate=[1], duration_ms=500, seed=0)
    assert on.loc[1, "rate_hz"] > 50 and on.loc[2, "rate_hz"] > 20 and on.loc[3, "rate_hz"] > 5
    assert on.loc[1, "stimulated"] and not on.loc[2, "stimulated"]
    # neuron 2 is driven tonically and inhibited by neuron 1 (GABA)
    drive = np.array([0.0, 12.0, 0.0])
    free = simulate_lif(chain("gaba"), drive_mv=drive, duration_ms=500, seed=0)
    inhibited = simulate_lif(chain("gaba"), stimulate=[1], drive_mv=drive, duration_ms=500, seed=0)
    assert inhibited.loc[2, "rate_hz"] < 0.5 * free.loc[2, "rate_hz"]
    again = simulate_lif(chain("gaba"), stimulate=[1], drive_mv=drive, duration_ms=500, seed=0)
    pd.testing.assert_frame_equal(inhibited, again)


def test_linear_response_signs(toy):
    r = linear_response(toy, ["n1"])
    assert r.loc[2] > 0 and r.loc[3] > 0  # n1 is cholinergic
    assert r.loc[1] < 1  # ... and inhibited back by n2 (GABA)
    g = linear_response(toy, ["n7"])  # n7 is GABAergic: its target goes negative
    assert g.loc[8] < 0
