import numpy as np
import pandas as pd
import pytest

from connectomix.analysis import detect_edge_format, read_edge_list
from connectomix.errors import InputFormatError, TableFormatError, VolumeNotFoundError


def test_codex_connections_and_neurons(tmp_path):
    edges = pd.DataFrame({
        "pre_root_id": [720575940600000001, 720575940600000001, 720575940600000002],
        "post_root_id": [720575940600000002, 720575940600000002, 720575940600000003],
        "neuropil": ["AL_L", "LH_L", "AL_L"],
        "syn_count": [7, 5, 10],
        "nt_type": ["ACH", "ACH", "GABA"],
    })
    nodes = pd.DataFrame({"root_id": [720575940600000001, 720575940600000002, 720575940600000003],
                          "cell_type": ["DA1_lPN", "lLN2T", "KC"]})
    edges.to_csv(tmp_path / "connections.csv.gz", index=False)
    nodes.to_csv(tmp_path / "neurons.csv", index=False)
    c = read_edge_list(tmp_path / "connections.csv.gz", tmp_path / "neurons.csv")
    assert c.meta["format"] == "codex" and c.name == "connections"
    e = c.edges.set_index(["pre_id", "post_id"])
    assert e.loc[(720575940600000001, 720575940600000002), "n_synapses"] == 12  # neuropils summed
    n = c.neurons.set_index("segment_id")
    assert n.loc[720575940600000003, "cell_type"] == "KC"
    assert n.loc[720575940600000001, "transmitter"] == "acetylcholine"
    assert (n["cell_class"] == "neuron").all()


def test_neuprint_and_generic_conventions(tmp_path):
    neuprint = pd.DataFrame({"bodyId_pre": [1, 2], "bodyId_post": [2, 3], "weight": [4, 9],
                             "roi": ["EB", "FB"]})
    nodes = pd.DataFrame({"bodyId": [1, 2, 3], "type": ["EPG", "PEN", "EPG"],
                          "instance": ["EPG_R", "PEN_L", "EPG_L"]})
    neuprint.to_parquet(tmp_path / "conn.parquet")
    c = read_edge_list(tmp_path / "conn.parquet", nodes)
    assert c.meta["format"] == "neuprint"
    assert c.neurons.set_index("segment_id").loc[2, "name"] == "PEN_L"
    assert c.neurons.set_index("segment_id").loc[2, "cell_type"] == "PEN"
    generic = pd.DataFrame({"Source": ["a", "b"], "Target": ["b", "c"], "Weight": [1.5, 2.0]})
    generic.to_csv(tmp_path / "g.tsv", sep="\t", index=False)
    g = read_edge_list(tmp_path / "g.tsv")
    assert g.meta["format"] == "source/target"
    assert sorted(g.neurons["name"]) == ["a", "b", "c"]
    assert g.edges["weight"].tolist() == [1.5, 2.0]
    pp = read_edge_list(pd.DataFrame({"pre": [1, 1], "post": [2, 2]}))
    assert pp.meta["format"] == "pre/post" and pp.edges["n_synapses"].tolist() == [2]


def test_cave_synapse_rows_are_aggregated():
    syn = pd.DataFrame({"id": range(6), "pre_pt_root_id": [1, 1, 1, 2, 2, 3],
                        "post_pt_root_id": [2, 2, 3, 3, 3, 1], "size": [10] * 6})
    c = read_edge_list(syn)
    assert c.meta["format"] == "cave"
    assert len(c.synapses) == 6
    assert dict(zip(zip(c.edges["pre_id"], c.edges["post_id"]), c.edges["n_synapses"])) == {
        (1, 2): 2, (1, 3): 1, (2, 3): 2, (3, 1): 1}


def test_explicit_columns_override_recognition():
    df = pd.DataFrame({"from_cell": [5, 6], "to_cell": [6, 7], "strength": [3, 4], "pre": [0, 0]})
    c = read_edge_list(df, pre="from_cell", post="to_cell", weight="strength")
    assert c.meta["format"] == "explicit" and c.edges["n_synapses"].sum() == 7


def test_bad_tables_give_readable_errors(tmp_path):
    with pytest.raises(TableFormatError) as info:
        detect_edge_format(["a", "b", "c"])
    text = str(info.value)
    assert "found ['a', 'b', 'c']" in text and "pre_root_id" in text and "bodyId_pre" in text
    with pytest.raises(TableFormatError, match="empty"):
        read_edge_list(pd.DataFrame({"pre": [], "post": []}))
    with pytest.raises(TableFormatError, match=">= 0"):
        read_edge_list(pd.DataFrame({"pre": [1], "post": [2], "weight": [-2]}))
    with pytest.raises(TableFormatError, match="non-numeric"):
        read_edge_list(pd.DataFrame({"pre": [1], "post": [2], "weight": ["many"]}))
    with pytest.raises(VolumeNotFoundError, match="does not exist"):
        read_edge_list(tmp_path / "nothing.csv")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputFormatError, match="cannot read"):
        read_edge_list(tmp_path / "broken.parquet")
    with pytest.raises(TableFormatError, match="no id column"):
        read_edge_list(pd.DataFrame({"pre": [1], "post": [2]}), pd.DataFrame({"what": [1]}))
    with pytest.raises(TableFormatError, match="missing from the node table"):
        read_edge_list(pd.DataFrame({"pre": [1], "post": [2]}), pd.DataFrame({"id": [1]}),
                       missing_nodes="error")
