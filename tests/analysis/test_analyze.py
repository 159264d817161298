import json
from math import comb

import pandas as pd
import pytest

from connectomix import datasets
from connectomix.analysis import analyze
from connectomix.errors import TableFormatError
from connectomix.graph import Connectome

REQUIRED = {"n_neurons", "n_edges", "n_synapses", "reciprocity", "largest_scc",
            "largest_wcc", "triad_census"}


def test_analyze_toy_writes_json_tables_and_figures(toy, tmp_path):
    result = analyze(toy, tmp_path / "out", n_null=5, n_perturb=3, seed=0)
    on_disk = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert on_disk == result
    assert REQUIRED <= set(result)
    assert result["n_neurons"] == 10 and result["n_edges"] == 12 and result["n_synapses"] == 29
    assert sum(result["triad_census"].values()) == comb(10, 3)
    for rel in result["figures"] + result["tables"]:
        assert (tmp_path / "out" / rel).stat().st_size > 0
    assert (tmp_path / "out" / "figures" / "rich_club.png").read_bytes()[:4] == b"\x89PNG"
    assert "figures/adjacency_by_type.png" in result["figures"]
    assert result["cell_types"]["types"]["connectivity"]["n_types"] == 6  # A..E and M
    assert "skipped" in result["cell_types"]["pairing"]  # the toy has no sides
    neurons = pd.read_parquet(tmp_path / "out" / "tables" / "neurons.parquet")
    assert {"degree", "pagerank", "module", "role"} <= set(neurons.columns)


def test_analyze_varshney2011(tmp_path):
    c = datasets.load("celegans-varshney2011")
    result = analyze(c, tmp_path, n_null=10, n_perturb=2, figures=False)
    assert result["n_neurons"] == 280 and result["n_edges"] == 2194
    assert result["n_synapses"] == 6394
    assert result["largest_wcc"] == 279  # VC6 is isolated
    assert 0.1 < result["reciprocity"] < 0.4
    assert result["by_kind"]["electrical"]["n_edges"] == 517
    assert result["pathways"]["reachable_fraction_by_hops"]["3"] > 0.9
    assert result["modules"]["n_modules"] >= 3
    types = result["cell_types"]["types"]
    assert types["beats_baseline"] and types["connectivity"]["n_types"] == 103
    assert types["connectivity"]["ari"] > types["degree_baseline"]["ari"]
    pairing = result["cell_types"]["pairing"]
    assert pairing["beats_baseline"] and pairing["connectivity"]["accuracy"] > 0.9
    neurons = pd.read_parquet(tmp_path / "tables" / "neurons.parquet").set_index("segment_id")
    assert {"cell_cluster", "lr_mate"} <= set(neurons.columns)
    assert (neurons.set_index("name").loc["AVAL", "lr_mate"]) == "AVAR"
    assert (tmp_path / "tables" / "cell_pairs.parquet").exists()


def test_analyze_refuses_an_empty_graph(tmp_path):
    c = Connectome(pd.DataFrame({"segment_id": [1, 2]}),
                   pd.DataFrame({"pre_id": [1], "post_id": [2], "weight": [1.0],
                                 "kind": ["electrical"]}))
    with pytest.raises(TableFormatError, match="no chemical edges"):
        analyze(c, tmp_path)
    result = analyze(c, tmp_path, kind="electrical", n_null=2, n_perturb=0, figures=False)
    assert result["n_edges"] == 1
