import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectomix.errors import TableFormatError, VolumeNotFoundError
from connectomix.graph import Connectome


def test_columns_and_dtypes_are_checked_and_filled(toy):
    n = toy.neurons
    assert list(n.columns[:5]) == ["segment_id", "name", "cell_class", "cell_type", "transmitter"]
    assert n["segment_id"].dtype == np.int64
    assert n["n_pre"].tolist()[:3] == [5, 2, 6]  # chemical synapses sent
    e = toy.edges
    assert e["pre_id"].dtype == np.int64 and e["n_synapses"].dtype == np.int64
    assert e["weight"].dtype == np.float64
    # minimal input: ids only, defaults filled
    c = Connectome(pd.DataFrame({"segment_id": [5, 6]}),
                   pd.DataFrame({"pre_id": [5], "post_id": [6], "weight": [2.0]}))
    assert c.neurons["cell_class"].tolist() == ["unknown", "unknown"]
    assert c.neurons["name"].tolist() == ["5", "6"]
    assert c.edges["kind"].tolist() == ["chemical"]
    assert c.edges["n_synapses"].tolist() == [2]


def test_repr_is_a_short_summary(toy):
    text = repr(toy)
    assert text.splitlines()[0] == "Connectome 'toy'"
    assert "chemical" in text and "12 edges" in text and "electrical" in text
    assert len(text.splitlines()) <= 6
    table = toy.summary()
    assert table.set_index(["table", "group"]).loc[("synapses", "chemical"), "count"] == 29


def test_adjacency_is_cached_csr_in_neuron_order(toy):
    a = toy.adjacency()
    assert a is toy.adjacency()
    assert a.format == "csr" and a.shape == (10, 10)
    assert a[0, 1] == 3 and a[1, 0] == 1 and a[8, 9] == 6
    assert a.sum() == 29
    e = toy.adjacency("electrical").toarray()
    assert np.array_equal(e, e.T)
    assert e[3, 4] == 2 and e[7, 7] == 1  # self-pair once on the diagonal
    assert e.sum() == 2 * 2 + 1
    combined = toy.adjacency("combined")
    assert combined.sum() == 29 + 5
    binary = toy.adjacency(weight=None)
    assert set(np.unique(binary.data)) == {1.0}


def test_networkx_and_igraph_views_match_the_tables(toy):
    g = toy.to_networkx()
    assert isinstance(g, nx.DiGraph) and g is toy.to_networkx()
    assert g.number_of_nodes() == 10 and g.number_of_edges() == 12
    assert g.edges[1, 2]["n_synapses"] == 3 and g.nodes[3]["cell_type"] == "B"
    ge = toy.to_networkx("electrical")
    assert isinstance(ge, nx.Graph) and not ge.is_directed()
    assert ge.number_of_edges() == 2 and ge.edges[4, 5]["n_synapses"] == 2
    ig = toy.to_igraph()
    assert ig.is_directed() and ig.vcount() == 10 and ig.ecount() == 12
    assert sorted(ig.es["n_synapses"]) == sorted(toy.edges.query("kind == 'chemical'")["n_synapses"])
    assert ig.vs["segment_id"] == list(range(1, 11))
    assert not toy.to_igraph("electrical").is_directed()


def test_tables_returned_do_not_change_the_object(toy):
    n = toy.neurons
    n["cell_type"] = "changed"
    assert toy.neurons["cell_type"].iloc[0] == "A"


@pytest.mark.parametrize(
    "edges, message",
    [
        (pd.DataFrame({"pre_id": [1], "post_id": [2]}), "n_synapses' or a 'weight"),
        (pd.DataFrame({"pre_id": [1], "weight": [1.0]}), "lacks required column"),
        (pd.DataFrame({"pre_id": [1], "post_id": [2], "weight": [-1.0]}), ">= 0"),
        (pd.DataFrame({"pre_id": [1], "post_id": [2], "weight": [np.nan]}), "finite"),
        (pd.DataFrame({"pre_id": [1, 1], "post_id": [2, 2], "weight": [1.0, 2.0]}), "duplicate"),
        (pd.DataFrame({"pre_id": [1], "post_id": [99], "weight": [1.0]}), "missing from the neurons"),
        (pd.DataFrame({"pre_id": ["a"], "post_id": [2], "weight": [1.0]}), "must hold integers"),
        (pd.DataFrame({"pre_id": [1.5], "post_id": [2], "weight": [1.0]}), "non-integer"),
        (pd.DataFrame({"pre_id": [2], "post_id": [1], "weight": [1.0], "kind": ["electrical"]}),
         "pre_id <= post_id"),
        (pd.DataFrame({"pre_id": [1], "post_id": [2], "weight": [1.0], "kind": ["magic"]}),
         "kind must be one of"),
    ],
)
def test_bad_edge_tables_give_clear_errors(edges, message):
    neurons = pd.DataFrame({"segment_id": [1, 2]})
    with pytest.raises(TableFormatError, match=message):
        Connectome(neurons, edges)


def test_bad_neuron_tables_give_clear_errors():
    edges = pd.DataFrame({"pre_id": [1], "post_id": [2], "weight": [1.0]})
    with pytest.raises(TableFormatError, match="unique"):
        Connectome(pd.DataFrame({"segment_id": [1, 1, 2]}), edges)
    with pytest.raises(TableFormatError, match="cell_class"):
        Connectome(pd.DataFrame({"segment_id": [1, 2], "cell_class": ["neuron", "alien"]}), edges)
    with pytest.raises(TableFormatError, match="DataFrame"):
        Connectome([[1, 2]], edges)


def test_parquet_round_trip_keeps_everything(toy, tmp_path):
    toy.to_parquet(tmp_path / "c")
    back = Connectome.read_parquet(tmp_path / "c")
    pd.testing.assert_frame_equal(back.neurons, toy.neurons)
    pd.testing.assert_frame_equal(back.edges, toy.edges)
    assert back.name == "toy" and back.synapses is None
    with pytest.raises(VolumeNotFoundError, match="no neurons table"):
        Connectome.read_parquet(tmp_path / "missing")


def test_read_parquet_accepts_a_folder_of_parts(toy, tmp_path):
    for table, df in (("neurons", toy.neurons), ("edges", toy.edges)):
        (tmp_path / table).mkdir()
        half = len(df) // 2
        df.iloc[:half].to_parquet(tmp_path / table / "block-0.parquet")
        df.iloc[half:].to_parquet(tmp_path / table / "block-1.parquet")
    back = Connectome.read_parquet(tmp_path)
    assert back.adjacency().sum() == toy.adjacency().sum()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 50)),
             min_size=1, max_size=30),
    st.booleans(),
)
def test_round_trip_property(tmp_path_factory, rows, electrical):
    edges = pd.DataFrame(rows, columns=["pre", "post", "w"])
    edges["k"] = "electrical" if electrical else "chemical"
    c = Connectome.from_edge_list(edges, pre="pre", post="post", weight="w", kind="k")
    with_synapses = Connectome(c.neurons, c.edges,
                               pd.DataFrame({"pre_id": edges["pre"], "post_id": edges["post"],
                                             "z": 1.0, "y": 2.0, "x": 3.0}))
    out = tmp_path_factory.mktemp("rt")
    with_synapses.to_parquet(out)
    back = Connectome.read_parquet(out)
    pd.testing.assert_frame_equal(back.edges, with_synapses.edges)
    pd.testing.assert_frame_equal(back.synapses, with_synapses.synapses)
    assert (back.adjacency("combined") != with_synapses.adjacency("combined")).nnz == 0


def test_from_edge_list_states_its_handling():
    edges = pd.DataFrame({"a": [1, 1, 2, 3, 3], "b": [2, 2, 3, 3, 1], "w": [1, 2, 4, 1, 5]})
    c = Connectome.from_edge_list(edges, pre="a", post="b", weight="w")
    handling = " | ".join(c.meta["handling"])
    assert "summed 1 duplicate" in handling and "kept 1 self-loop" in handling
    assert c.adjacency()[0, 1] == 3
    dropped = Connectome.from_edge_list(edges, pre="a", post="b", weight="w", self_loops="drop")
    assert dropped.adjacency().diagonal().sum() == 0
    assert "dropped 1 self-loop" in " ".join(dropped.meta["handling"])
    unweighted = Connectome.from_edge_list(edges, pre="a", post="b")
    assert unweighted.adjacency()[0, 1] == 2  # two rows = two synapses


def test_from_edge_list_names_and_missing_nodes():
    edges = pd.DataFrame({"pre": ["AVAL", "AVAR", "RIML"], "post": ["AVAR", "AVAL", "AVAL"],
                          "weight": [2, 2, 1], "kind": ["gap_junction", "gap_junction", "chemical"]})
    nodes = pd.DataFrame({"name": ["AVAL", "AVAR"], "cell_type": ["AVA", "AVA"]})
    c = Connectome.from_edge_list(edges, nodes, pre="pre", post="post", weight="weight",
                                  kind="kind", node_id="name")
    n = c.neurons.set_index("name")
    assert set(n.index) == {"AVAL", "AVAR", "RIML"}
    assert n.loc["RIML", "cell_class"] == "unknown" and n.loc["AVAL", "cell_type"] == "AVA"
    gj = c.edges.query("kind == 'electrical'")
    assert len(gj) == 1 and gj["n_synapses"].iloc[0] == 2  # symmetric listing, not 4
    assert any("added 1 neuron" in h for h in c.meta["handling"])
    with pytest.raises(TableFormatError, match="missing from the node table"):
        Connectome.from_edge_list(edges, nodes, pre="pre", post="post", weight="weight",
                                  kind="kind", node_id="name", missing_nodes="error")


def test_from_edge_list_rejects_bad_tables():
    with pytest.raises(TableFormatError, match="empty"):
        Connectome.from_edge_list(pd.DataFrame({"pre_id": [], "post_id": []}))
    with pytest.raises(TableFormatError, match="non-numeric"):
        Connectome.from_edge_list(pd.DataFrame({"pre_id": [1], "post_id": [2], "w": ["lots"]}),
                                  weight="w")
    with pytest.raises(TableFormatError, match=">= 0"):
        Connectome.from_edge_list(pd.DataFrame({"pre_id": [1], "post_id": [2], "w": [-3]}),
                                  weight="w")
    with pytest.raises(TableFormatError, match="lacks column"):
        Connectome.from_edge_list(pd.DataFrame({"x": [1], "y": [2]}))


def test_subset_keeps_inner_edges(toy):
    sub = toy.subset([1, 2, 3])
    assert sub.n_neurons == 3
    assert sub.adjacency().sum() == 3 + 1 + 2 + 5
    assert sub.neurons["n_pre"].tolist() == [5, 1, 5]
