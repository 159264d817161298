"""The ``graph`` stage: neurons and edges in DuckDB from a run's synapses, thresholds, bad input."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from connectomix.errors import ConfigError, TableFormatError, TableNotFoundError
from connectomix.graph import Connectome, build_edges, graph_stage
from connectomix.run import Run
from connectomix.testing import blobs
from connectomix.volume import create_volume

VS = (40, 8, 8)
SHAPE = (8, 32, 32)  # (320, 256, 256) nm


def quiet(_):
    pass


def synapse_rows(rows):
    df = pd.DataFrame(rows, columns=["synapse_id", "pre_id", "post_id", "score", "kind"])
    rng = np.random.default_rng(0)
    df["z"] = rng.uniform(0, 320, len(df))
    df["y"] = rng.uniform(0, 256, len(df))
    df["x"] = rng.uniform(0, 256, len(df))
    df["size_vx"] = 50
    return df


SYNAPSES = [
    (1, 1, 2, 0.9, "chemical"),
    (2, 1, 2, 0.8, "chemical"),
    (3, 1, 2, 0.1, "chemical"),  # below min_score 0.5
    (4, 2, 3, 0.9, "chemical"),
    (5, 3, 1, 0.7, "chemical"),
    (6, 0, 4, 0.9, "chemical"),  # presynaptic partner unknown
    (7, 4, 2, 0.9, "electrical"),  # stored as (2, 4)
]


def make_run(tmp_path, *, synapses=SYNAPSES, segmentation=True):
    run = Run.create(tmp_path / "run")
    if segmentation:
        labels = blobs(SHAPE, n=6, seed=0)
        vol = create_volume(run.volume_path("segmentation"), shape=SHAPE, dtype=np.uint64, voxel_size=VS,
                            chunks=(4, 16, 16))
        vol[vol.roi] = labels
    if synapses is not None:
        run.write_table("synapses", synapse_rows(synapses))
    return run


def test_neurons_and_edges(tmp_path):
    run = make_run(tmp_path)
    res = graph_stage(run.path, say=quiet)
    labels = blobs(SHAPE, n=6, seed=0)
    ids = np.unique(labels)
    n = run.read_table("neurons").set_index("segment_id")
    assert list(n.index) == ids.tolist() and res.n_neurons == len(ids)
    z, y, x = np.indices(SHAPE)
    for sid in ids:
        m = labels == sid
        assert n.loc[sid, "size_vx"] == m.sum()
        assert n.loc[sid, "centroid_y"] == pytest.approx(((y[m] + 0.5) * 8).mean())
        assert n.loc[sid, "bbox_z0"] == z[m].min() * 40 and n.loc[sid, "bbox_x1"] == (x[m].max() + 1) * 8
    assert n["skeleton_length_nm"].isna().all()
    assert (n["cell_class"] == "unknown").all()
    assert n.loc[1, "n_pre"] == 3 and n.loc[2, "n_post"] == 3 and n.loc[4, "n_pre"] == 0
    e = run.read_table("edges")
    assert e[["pre_id", "post_id", "kind", "n_synapses"]].values.tolist() == [
        [1, 2, "chemical", 3], [2, 3, "chemical", 1], [2, 4, "electrical", 1], [3, 1, "chemical", 1]]
    assert (e["weight"] == e["n_synapses"]).all()
    # the Parquet mirror holds the same tables
    pd.testing.assert_frame_equal(pd.read_parquet(run.table_dir("edges")), e, check_dtype=False)
    assert len(pd.read_parquet(run.table_dir("neurons"))) == len(ids)


def test_thresholds_rebuild_edges_without_detection(tmp_path):
    run = make_run(tmp_path)
    graph_stage(run.path, say=quiet)
    synapses_before = run.read_table("synapses")
    assert graph_stage(run.path, say=quiet) is None  # same thresholds: skipped
    res = graph_stage(run.path, min_score=0.5, min_synapses=2, say=quiet)
    assert res.geometry_reused
    assert run.read_config()["graph"]["min_score"] == 0.5
    assert run.read_config()["graph"]["min_synapses"] == 2
    e = run.read_table("edges")
    assert e[["pre_id", "post_id", "n_synapses"]].values.tolist() == [[1, 2, 2]]
    n = run.read_table("neurons").set_index("segment_id")
    assert n.loc[1, "n_pre"] == 2  # the low-score synapse no longer counts
    pd.testing.assert_frame_equal(run.read_table("synapses"), synapses_before)
    with pytest.raises(ConfigError, match="min_synapses"):
        graph_stage(run.path, min_synapses=0, say=quiet)


def test_skeleton_length_column(tmp_path):
    run = make_run(tmp_path)
    run.write_table("skeletons", pd.DataFrame({"segment_id": np.array([1, 3], np.uint64),
                                               "cable_length_nm": [1500.0, 250.5]}))
    graph_stage(run.path, say=quiet)
    n = run.read_table("neurons").set_index("segment_id")
    assert n.loc[1, "skeleton_length_nm"] == 1500.0 and n.loc[3, "skeleton_length_nm"] == 250.5
    assert np.isnan(n.loc[2, "skeleton_length_nm"])


def test_without_segmentation_neurons_come_from_synapses(tmp_path):
    run = make_run(tmp_path, segmentation=False)
    graph_stage(run.path, say=quiet)
    n = run.read_table("neurons")
    assert n["segment_id"].tolist() == [1, 2, 3, 4] and n["size_vx"].isna().all()
    c = Connectome.from_run(run.path)
    assert "size_vx" not in c.neurons.columns and len(c.edges) == 4
    assert len(c.synapses) == 6 and any("without a known partner" in h for h in c.meta["handling"])


def test_missing_synapses_names_the_stage(tmp_path):
    run = make_run(tmp_path, synapses=None)
    with pytest.raises(TableNotFoundError, match="`synapses` stage"):
        graph_stage(run.path, say=quiet)
    with pytest.raises(TableNotFoundError, match="`graph` stage"):
        Connectome.from_run(run.path)


def test_duplicate_synapse_ids(tmp_path):
    run = make_run(tmp_path, synapses=SYNAPSES + [(4, 1, 3, 0.9, "chemical")])
    with pytest.raises(TableFormatError, match=r"synapse_id must be unique; 1 duplicate.*\[4\]"):
        graph_stage(run.path, say=quiet)


def test_synapses_outside_the_volume(tmp_path):
    run = make_run(tmp_path, synapses=None)
    df = synapse_rows(SYNAPSES)
    df.loc[2, "x"] = 256.0  # the end is exclusive
    run.write_table("synapses", df)
    with pytest.raises(TableFormatError, match=r"1 synapse\(s\) lie outside the volume.*synapse 3"):
        graph_stage(run.path, say=quiet)


def test_synapse_partner_unknown_to_segmentation(tmp_path):
    run = make_run(tmp_path, synapses=SYNAPSES + [(8, 99, 1, 0.9, "chemical")])
    with pytest.raises(TableFormatError, match=r"1 segment id\(s\) absent from the segmentation.*\[99\]"):
        graph_stage(run.path, say=quiet)


def test_bad_kind_and_negative_ids(tmp_path):
    run = make_run(tmp_path, synapses=SYNAPSES + [(8, 1, 2, 0.9, "gap")])
    with pytest.raises(TableFormatError, match="kind must be"):
        graph_stage(run.path, say=quiet)
    run.write_table("synapses", synapse_rows(SYNAPSES + [(8, -1, 2, 0.9, "chemical")]))
    with pytest.raises(TableFormatError, match="pre_id has 1 missing or negative"):
        graph_stage(run.path, say=quiet)


def test_from_run_and_unknown_ids_in_edges(tmp_path):
    run = make_run(tmp_path)
    graph_stage(run.path, say=quiet)
    c = Connectome.from_run(run.path)
    assert c.name == "run" and c.meta["graph"]["min_synapses"] == 1
    assert c.n_neurons == len(np.unique(blobs(SHAPE, n=6, seed=0)))
    assert c.adjacency()[c.node_index()[1], c.node_index()[2]] == 3
    edges = run.read_table("edges")
    run.write_table("edges", pd.concat([edges, pd.DataFrame(
        {"pre_id": [1], "post_id": [77], "kind": ["chemical"], "n_synapses": [1], "weight": [1.0]})]))
    with pytest.raises(TableFormatError, match=r"edges refers to 1 segment id\(s\) missing from the neurons"):
        Connectome.from_run(run.path)


def test_build_edges_sql():
    con = duckdb.connect()
    con.execute("CREATE TABLE s (pre_id BIGINT, post_id BIGINT, kind VARCHAR, score DOUBLE)")
    con.execute("INSERT INTO s VALUES (1, 2, 'chemical', NULL), (1, 2, 'chemical', 0.9), (2, 1, 'chemical', 0.9),"
                "(0, 2, 'chemical', 1.0), (5, 3, 'electrical', 1.0), (3, 5, 'electrical', 1.0),"
                "(1, 2, 'chemical', 0.1)")
    assert build_edges(con, min_score=0.5, synapses="s", out="e") == 3
    rows = con.execute("SELECT pre_id, post_id, kind, n_synapses, weight FROM e").fetchall()
    assert rows == [(1, 2, "chemical", 2, 2.0), (2, 1, "chemical", 1, 1.0), (3, 5, "electrical", 2, 2.0)]
    assert build_edges(con, min_synapses=3, synapses="s", out="e") == 1
