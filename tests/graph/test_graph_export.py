"""Exports of a Connectome: GraphML, neuPrint-style CSV, CAVE-style synapse table."""

import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from connectomix.errors import TableFormatError
from connectomix.graph import Connectome


@pytest.fixture
def with_synapses():
    neurons = pd.DataFrame({"segment_id": [10, 20, 30], "cell_class": ["neuron", "neuron", "glia"],
                            "size_vx": [100, 200, 300], "centroid_z": [40.0, 80.0, 120.0],
                            "centroid_y": [8.0, 16.0, 24.0], "centroid_x": [800.0, 1600.0, 2400.0]})
    synapses = pd.DataFrame({"synapse_id": [1, 2, 3], "pre_id": [10, 10, 20], "post_id": [20, 20, 30],
                             "z": [400.0, 440.0, 81.0], "y": [16.0, 24.0, 7.9], "x": [1000.0, 1008.0, 4.0],
                             "score": [0.9, 0.8, 0.7], "size_vx": [40, 50, 60], "kind": "chemical"})
    edges = synapses.groupby(["pre_id", "post_id"]).size().rename("n_synapses").reset_index()
    return Connectome(neurons, edges, synapses, name="tiny")


def test_graphml_round_trip(toy, tmp_path):
    path = toy.to_graphml(tmp_path / "toy.graphml")
    g = nx.read_graphml(path, node_type=int)
    assert g.is_directed() and g.number_of_nodes() == toy.n_neurons
    chem = toy.edges[toy.edges["kind"] == "chemical"]
    assert g.number_of_edges() == len(chem)
    assert g[9][10]["weight"] == 6.0 and g[9][10]["n_synapses"] == 6
    assert g.nodes[1]["cell_type"] == "A" and g.nodes[10]["cell_class"] == "muscle"
    und = nx.read_graphml(toy.to_graphml(tmp_path / "gj.graphml", kind="electrical"), node_type=int)
    assert not und.is_directed() and und[4][5]["n_synapses"] == 2


def test_neuprint_csv(toy, tmp_path):
    paths = toy.to_neuprint_csv(tmp_path / "np")
    neurons = pd.read_csv(paths["Neurons"], keep_default_na=False)
    assert list(neurons.columns[:4]) == [":ID(Body-ID)", "bodyId:long", "pre:int", "post:int"]
    assert neurons["bodyId:long"].tolist() == list(range(1, 11))
    assert neurons.set_index("bodyId:long").loc[9, "pre:int"] == 6
    assert neurons.set_index("bodyId:long").loc[10, ":LABEL"] == "Segment"
    assert neurons.set_index("bodyId:long").loc[1, ":LABEL"] == "Neuron;Segment"
    conn = pd.read_csv(paths["ConnectsTo"])
    assert list(conn.columns) == [":START_ID(Body-ID)", "weight:int", ":END_ID(Body-ID)", ":TYPE"]
    chem = toy.edges[toy.edges["kind"] == "chemical"]
    assert len(conn) == len(chem) and conn["weight:int"].sum() == chem["n_synapses"].sum()
    assert (conn[":TYPE"] == "ConnectsTo").all()


def test_neuprint_centroids_in_xyz(with_synapses, tmp_path):
    neurons = pd.read_csv(with_synapses.to_neuprint_csv(tmp_path)["Neurons"])
    row = neurons.iloc[0]
    assert (row["centroid_x_nm:double"], row["centroid_y_nm:double"], row["centroid_z_nm:double"]) == (800, 8, 40)
    assert row["size:long"] == 100


def test_cave_table_nm_and_voxels(with_synapses, tmp_path):
    t = with_synapses.to_cave()
    assert list(t.columns) == ["id", "valid", "pre_pt_root_id", "post_pt_root_id", "size", "score", "kind",
                               "ctr_pt_position_x", "ctr_pt_position_y", "ctr_pt_position_z"]
    assert t.attrs["units"] == "nm" and t.attrs["axis_order"] == "x, y, z"
    assert t.loc[0, ["ctr_pt_position_x", "ctr_pt_position_y", "ctr_pt_position_z"]].tolist() == [1000, 16, 400]
    v = with_synapses.to_cave(tmp_path / "cave.csv", units="voxel", voxel_size=(40, 8, 8))
    assert v.loc[2, ["ctr_pt_position_x", "ctr_pt_position_y", "ctr_pt_position_z"]].tolist() == [0, 0, 2]
    assert v["ctr_pt_position_x"].dtype == np.int64
    meta = json.loads((tmp_path / "cave.csv.json").read_text())
    assert meta == {"units": "voxel", "axis_order": "x, y, z", "voxel_size_xyz": [8.0, 8.0, 40.0],
                    "size_units": "voxels of the segmentation"}
    back = pd.read_csv(tmp_path / "cave.csv")
    assert back["pre_pt_root_id"].tolist() == [10, 10, 20]


def test_cave_bad_input(toy, with_synapses):
    with pytest.raises(TableFormatError, match="no synapses table"):
        toy.to_cave()
    with pytest.raises(ValueError, match="voxel_size"):
        with_synapses.to_cave(units="voxel")
    with pytest.raises(ValueError, match="units"):
        with_synapses.to_cave(units="um")
