import sys

import numpy as np
import pytest

from connectomix import datasets
from connectomix.errors import DatasetNotFoundError, InputFormatError, MissingDependencyError


def test_list_datasets_names_the_required_connectomes():
    names = set(datasets.list_datasets()["name"])
    required = {"celegans-white1986", "celegans-varshney2011", "celegans-cook2019-herm",
                "celegans-cook2019-male"} | {f"celegans-witvliet2021-{i}" for i in range(1, 9)}
    assert required <= names


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(DatasetNotFoundError) as info:
        datasets.load("celegans-nope")
    text = str(info.value)
    assert "unknown dataset 'celegans-nope'" in text and "celegans-varshney2011" in text
    assert isinstance(info.value, KeyError)
    with pytest.raises(ValueError, match="cells must be one of"):
        datasets.load("celegans-varshney2011", cells="some")


def test_varshney2011_reproduces_published_counts():
    # Varshney et al. 2011 (doi:10.1371/journal.pcbi.1001066) as shipped in cect:
    # 2,194 directed chemical connections, 6,394 chemical synapses (6,393 published),
    # 514 gap-junction pairs between distinct neurons plus 3 self-pairs, 890 gap junctions.
    c = datasets.load("celegans-varshney2011")
    assert c.n_neurons == 280
    chem = c.edges.query("kind == 'chemical'")
    gj = c.edges.query("kind == 'electrical'")
    assert len(chem) == 2194 and chem["n_synapses"].sum() == 6394
    assert int((gj["pre_id"] != gj["post_id"]).sum()) == 514
    assert int((gj["pre_id"] == gj["post_id"]).sum()) == 3
    assert gj["n_synapses"].sum() == 890


def test_varshney2011_combined_network_matches_towlson2013():
    # Towlson et al. 2013 (doi:10.1523/JNEUROSCI.3784-12.2013): the undirected combined
    # chemical + electrical network has 2,287 connections among 279 non-isolated
    # neurons (one of the 280 is isolated), and exactly 11 neurons have degree > 40.
    c = datasets.load("celegans-varshney2011")
    a = c.adjacency("combined", weight=None).toarray()
    np.fill_diagonal(a, 0)
    u = (a + a.T) > 0
    degree = u.sum(axis=1)
    assert int(np.triu(u).sum()) == 2287
    assert int((degree > 0).sum()) == 279
    assert int((degree > 40).sum()) == 11
    isolated = c.neurons["name"].to_numpy()[degree == 0]
    assert isolated.tolist() == ["VC6"]


def test_cook2019_herm_has_302_neurons_in_118_classes_and_end_organs_on_request():
    # Cook et al. 2019 (doi:10.1038/s41586-019-1352-7); 302 neurons, 118 classes (WormAtlas).
    c = datasets.load("celegans-cook2019-herm")
    n = c.neurons
    assert c.n_neurons == 302 and n["cell_type"].nunique() == 118
    assert (n["cell_class"] == "neuron").all()
    assert set(n["sim_class"]) <= {"sensory", "interneuron", "motor", "other"}
    row = n.set_index("name").loc["AVAL"]
    assert row["cell_type"] == "AVA" and row["side"] == "L" and row["sim_class"] == "interneuron"
    # transmitters from the WormAtlas table in cect (243 of the 302 neurons)
    nts = n.set_index("name")["transmitter"]
    assert nts["DD1"] == "gaba" and nts["AIAL"] == "acetylcholine" and nts["ADAL"] == "glutamate"
    assert (nts != "").sum() == 243
    assert n.set_index("name").loc["IL1DL", "cell_type"] == "IL1"
    assert n.set_index("name").loc["VA12", "cell_type"] == "VA"
    everything = datasets.load("celegans-cook2019-herm", cells="all")
    classes = everything.neurons["cell_class"].value_counts()
    assert classes["neuron"] == 302 and classes["muscle"] > 100 and classes["glia"] > 0
    assert everything.edges["n_synapses"].sum() > c.edges["n_synapses"].sum()
    assert "serial sections" in c.meta["weights"]


def test_electrical_edges_are_undirected_and_counted_once():
    for name in ("celegans-white1986", "celegans-cook2019-male", "celegans-witvliet2021-1"):
        c = datasets.load(name)
        gj = c.edges.query("kind == 'electrical'")
        assert (gj["pre_id"] <= gj["post_id"]).all()
        e = c.adjacency("electrical")
        assert (e != e.T).nnz == 0


def test_witvliet_stages_load_with_stable_ids():
    stages = [datasets.load(f"celegans-witvliet2021-{i}") for i in range(1, 9)]
    assert [c.meta["stage"] for c in stages] == ["L1"] * 4 + ["L2", "L3", "adult", "adult"]
    counts = [len(c.edges.query("kind == 'chemical'")) for c in stages]
    assert counts[0] < counts[-1]  # synapses are added during development
    first, last = stages[0].neurons.set_index("name"), stages[-1].neurons.set_index("name")
    assert first.loc["AVAL", "segment_id"] == last.loc["AVAL", "segment_id"]


def test_missing_cect_gives_a_clear_error(monkeypatch):
    datasets._load_cached.cache_clear()
    monkeypatch.setitem(sys.modules, "cect", None)  # import cect now raises ImportError
    try:
        with pytest.raises(MissingDependencyError, match="pip install cect"):
            datasets.load("celegans-varshney2011")
    finally:
        datasets._load_cached.cache_clear()


def test_hemibrain_da1_neurons_load_offline_in_nanometres():
    # navis.example_neurons(): five DA1 lPNs from the hemibrain (Scheffer et al. 2020,
    # doi:10.7554/eLife.57443), shipped inside navis; SWC units are 8 nm voxels, x, y, z.
    import navis
    listed = datasets.list_datasets().set_index("name")
    assert listed.loc["hemibrain-da1", "kind"] == "neurons"
    assert listed.loc["hemibrain-da1", "requires"] == "navis"
    assert (listed.loc[listed["requires"] == "cect", "kind"] == "connectome").all()
    ns = datasets.load_neurons("hemibrain-da1")
    assert len(ns.neurons) == 5
    assert set(ns.neurons["cell_type"]) == {"DA1_lPN"} and set(ns.neurons["side"]) == {"R"}
    source = navis.example_neurons()
    for neuron in source:
        row = ns.neurons.set_index("segment_id").loc[int(neuron.id)]
        assert row["n_nodes"] == neuron.n_nodes
        assert row["n_pre"] == (neuron.connectors["type"] == "pre").sum()
        assert row["n_post"] == (neuron.connectors["type"] == "post").sum()
        nodes = ns.skeleton(int(neuron.id))
        np.testing.assert_allclose(nodes["x"], neuron.nodes["x"].to_numpy() * 8.0)
        np.testing.assert_allclose(nodes["z"], neuron.nodes["z"].to_numpy() * 8.0)
        syn = ns.synapses[ns.synapses["segment_id"] == int(neuron.id)]
        np.testing.assert_allclose(syn["y"], neuron.connectors["y"].to_numpy() * 8.0)
    # positions are nm: the neurons span ~100 um, and every synapse lies near its node
    extent = ns.skeletons[["z", "y", "x"]].max() - ns.skeletons[["z", "y", "x"]].min()
    assert 30_000 < extent.max() < 400_000
    nodes = ns.skeletons.set_index(["segment_id", "node_id"])[["z", "y", "x"]]
    at = nodes.loc[list(zip(ns.synapses["segment_id"], ns.synapses["node_id"]))].to_numpy()
    gap = np.linalg.norm(at - ns.synapses[["z", "y", "x"]].to_numpy(), axis=1)
    assert np.median(gap) < 2_000
    assert ns.synapses["synapse_id"].is_unique and set(ns.synapses["direction"]) == {"pre", "post"}
    assert "nm" in ns.meta["units"] and "neurons" in repr(ns)
    with pytest.raises(KeyError, match="no neuron 1"):
        ns.skeleton(1)


def test_hemibrain_meshes_and_wrong_loader_messages():
    ns = datasets.load_neurons("hemibrain-da1", meshes=True)
    assert set(ns.meshes) == set(ns.neurons["segment_id"])
    vertices, faces = next(iter(ns.meshes.values()))
    assert vertices.shape[1] == 3 and faces.max() < len(vertices)
    with pytest.raises(InputFormatError, match="load_neurons"):
        datasets.load("hemibrain-da1")
    with pytest.raises(DatasetNotFoundError, match="use datasets.load"):
        datasets.load_neurons("celegans-varshney2011")
    with pytest.raises(DatasetNotFoundError, match="hemibrain-da1"):
        datasets.load("nope")


def test_missing_navis_gives_a_clear_error(monkeypatch):
    datasets._load_neurons_cached.cache_clear()
    monkeypatch.setitem(sys.modules, "navis", None)
    try:
        with pytest.raises(MissingDependencyError, match="pip install navis"):
            datasets.load_neurons("hemibrain-da1")
    finally:
        datasets._load_neurons_cached.cache_clear()
