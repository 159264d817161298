"""A ten-node toy connectome for tests and doctests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def toy_connectome():
    """A ten-node toy connectome: chemical edges, a gap-junction pair and a self-pair, types."""
    neurons = pd.DataFrame(
        {
            "segment_id": np.arange(1, 11),
            "name": [f"n{i}" for i in range(1, 11)],
            "cell_class": ["neuron"] * 9 + ["muscle"],
            "cell_type": ["A", "A", "B", "B", "C", "C", "D", "D", "E", "M"],
            "transmitter": ["acetylcholine", "gaba", "acetylcholine", "glutamate", "",
                            "acetylcholine", "gaba", "acetylcholine", "", ""],
        }
    )
    chem = [(1, 2, 3), (2, 1, 1), (1, 3, 2), (3, 2, 5), (2, 4, 1), (4, 5, 2), (5, 6, 1),
            (6, 4, 4), (7, 8, 2), (8, 9, 1), (9, 10, 6), (3, 7, 1)]
    edges = pd.DataFrame(chem, columns=["pre_id", "post_id", "n_synapses"])
    edges["kind"] = "chemical"
    gj = pd.DataFrame({"pre_id": [4, 8], "post_id": [5, 8], "n_synapses": [2, 1],
                       "kind": "electrical"})
    edges = pd.concat([edges, gj], ignore_index=True)
    edges["weight"] = edges["n_synapses"].astype(float)
    from ..graph import Connectome

    return Connectome(neurons, edges, name="toy")
