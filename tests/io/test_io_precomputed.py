"""Neuroglancer precomputed writer: volumes, meshes, skeletons, synapse annotations."""

import json
import struct

import numpy as np
import pandas as pd
import pytest

from connectomix.errors import ConfigError, VolumeError
from connectomix.io import _precomputed as pc
from connectomix.shapes import Mesh, Skeleton
from connectomix.volume import Volume

VS = (40, 8, 8)


def _read_ts(path):
    import tensorstore as ts

    store = ts.open({"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": str(path)}}).result()
    return store


@pytest.mark.parametrize("kind, dtype", [("image", np.uint8), ("segmentation", np.uint64),
                                         ("segmentation", np.int32)])
def test_volume_round_trip_in_xyz_with_voxel_offset(tmp_path, kind, dtype):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 50, (10, 20, 36)).astype(dtype)
    vol = Volume(data, voxel_size=VS, offset=(80, 16, 24))
    pc.write_volume(vol, tmp_path / "v", kind=kind, chunk_size=(16, 16, 4), mesh="mesh" if kind != "image" else None)
    info = json.loads((tmp_path / "v" / "info").read_text())
    scale = info["scales"][0]
    assert info["type"] == kind
    assert scale["resolution"] == [8, 8, 40]
    assert scale["size"] == [36, 20, 10]
    assert scale["voxel_offset"] == [3, 2, 2]
    store = _read_ts(tmp_path / "v")
    back = store.translate_to[0, 0, 0, 0][:, :, :, 0].read().result()
    assert np.array_equal(back.T, data.astype(back.dtype))
    if kind == "segmentation":
        assert info["mesh"] == "mesh" and scale["encoding"] == "compressed_segmentation"


def test_volume_bad_input_is_refused(tmp_path):
    with pytest.raises(VolumeError, match="single-channel"):
        pc.write_volume(Volume(np.zeros((3, 2, 4, 4), np.uint8), voxel_size=VS), tmp_path / "v")
    with pytest.raises(VolumeError, match="integer labels"):
        pc.write_volume(Volume(np.zeros((2, 4, 4), np.float32), voxel_size=VS), tmp_path / "w",
                        kind="segmentation")
    with pytest.raises(ConfigError, match="kind"):
        pc.write_volume(Volume(np.zeros((2, 4, 4), np.uint8), voxel_size=VS), tmp_path / "x", kind="mesh")


def test_legacy_mesh_format(tmp_path):
    verts = np.array([[0, 0, 0], [0, 0, 8], [0, 8, 0], [40, 0, 0]], np.float32)  # z y x
    faces = np.array([[0, 1, 2], [0, 3, 1]], np.uint32)
    pc.write_meshes({12: Mesh(12, verts, faces)}, tmp_path / "mesh")
    assert json.loads((tmp_path / "mesh" / "info").read_text())["@type"] == "neuroglancer_legacy_mesh"
    assert json.loads((tmp_path / "mesh" / "12:0").read_text()) == {"fragments": ["12:0:0"]}
    data = (tmp_path / "mesh" / "12:0:0").read_bytes()
    (n,) = struct.unpack_from("<I", data)
    xyz = np.frombuffer(data, "<f4", n * 3, 4).reshape(n, 3)
    tri = np.frombuffer(data, "<u4", offset=4 + n * 12).reshape(-1, 3)
    assert np.array_equal(xyz, verts[:, ::-1])
    # the reflection z,y,x -> x,y,z reverses the winding, so the faces are flipped back
    assert np.array_equal(tri, faces[:, ::-1])


def test_skeleton_format(tmp_path):
    sk = Skeleton(4, np.array([[0, 0, 0], [40, 8, 16]], np.float32), np.array([[0, 1]], np.uint32),
                  np.array([5, 6], np.float32))
    pc.write_skeletons({4: sk}, tmp_path / "sk", segment_properties="../props")
    info = json.loads((tmp_path / "sk" / "info").read_text())
    assert info["@type"] == "neuroglancer_skeletons" and info["vertex_attributes"][0]["id"] == "radius"
    data = (tmp_path / "sk" / "4").read_bytes()
    nv, ne = struct.unpack_from("<II", data)
    assert (nv, ne) == (2, 1)
    xyz = np.frombuffer(data, "<f4", 6, 8).reshape(2, 3)
    assert np.array_equal(xyz[1], [16, 8, 40])
    assert np.array_equal(np.frombuffer(data, "<u4", 2, 32), [0, 1])
    assert np.array_equal(np.frombuffer(data, "<f4", 2, 40), [5, 6])
    assert len(data) == 48


def _synapses(n=40, seed=0, lines=False):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "synapse_id": np.arange(1, n + 1), "pre_id": rng.integers(1, 6, n), "post_id": rng.integers(6, 9, n),
        "z": rng.uniform(0, 400, n), "y": rng.uniform(0, 800, n), "x": rng.uniform(0, 800, n),
        "score": rng.random(n), "size_vx": rng.integers(10, 500, n),
        "kind": np.where(rng.random(n) < 0.2, "electrical", "chemical"),
    })
    if lines:
        for w, d in (("pre", -20.0), ("post", 20.0)):
            for a in "zyx":
                df[f"{w}_{a}"] = df[a] + d
    return df


@pytest.mark.parametrize("lines", [False, True])
def test_synapse_annotations_read_back_with_neuroglancer(tmp_path, lines):
    from neuroglancer.read_precomputed_annotations import AnnotationReader

    syn = _synapses(lines=lines)
    pc.write_synapses(syn, tmp_path / "syn", limit=7)
    info = json.loads((tmp_path / "syn" / "info").read_text())
    assert info["annotation_type"] == ("LINE" if lines else "POINT")
    assert len(info["spatial"]) > 1  # a multi-level index: 40 > 7 per cell
    reader = AnnotationReader(f"file://{tmp_path / 'syn'}/")
    for _, r in syn.iloc[[0, 5, 17]].iterrows():
        a = reader.by_id[int(r["synapse_id"])]
        if lines:
            assert np.allclose(a.point_a, [r["pre_x"], r["pre_y"], r["pre_z"]], atol=1e-3)
            assert np.allclose(a.point_b, [r["post_x"], r["post_y"], r["post_z"]], atol=1e-3)
        else:
            assert np.allclose(a.point, [r["x"], r["y"], r["z"]], atol=1e-3)
        assert a.props[0] == pytest.approx(r["score"], rel=1e-6)
        assert a.props[1] == r["size_vx"]
        assert a.props[2] == (1 if r["kind"] == "electrical" else 0)
        assert [int(s) for s in a.segments[0]] == [r["pre_id"]]
        assert [int(s) for s in a.segments[1]] == [r["post_id"]]
    # by-segment index: a neuron's outputs
    seg = int(syn["pre_id"].iloc[0])
    outs = reader.relationships["pre"][seg]
    assert sorted(int(a.id) for a in outs) == sorted(syn.loc[syn["pre_id"] == seg, "synapse_id"].tolist())
    # spatial index: every annotation exactly once over all levels and cells
    seen = []
    for level in info["spatial"]:
        for f in (tmp_path / "syn" / level["key"]).iterdir():
            data = f.read_bytes()
            (count,) = struct.unpack_from("<Q", data)
            assert count <= level["limit"]
            seen += np.frombuffer(data, "<u8", count, len(data) - 8 * count).tolist()
    assert sorted(seen) == syn["synapse_id"].tolist()


def test_synapse_table_errors(tmp_path):
    with pytest.raises(ConfigError, match="synapse_id"):
        pc.write_synapses(pd.DataFrame({"x": [1.0]}), tmp_path / "a")
    bad = _synapses(3)
    bad.loc[0, "x"] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        pc.write_synapses(bad, tmp_path / "b")
    with pytest.raises(ConfigError, match="pre_x"):
        pc.write_synapses(_synapses(3), tmp_path / "c", geometry="line")


def test_viewer_state_has_the_layers_and_anisotropic_scales():
    state = pc.viewer_state("http://127.0.0.1:9000/", voxel_size=VS, shape=(10, 100, 200),
                            ground_truth="gt_segmentation", skeletons="segmentation/skeletons", segments=[3, 4])
    names = [layer["name"] for layer in state["layers"]]
    assert names == ["raw", "segmentation", "ground truth", "skeletons", "synapses"]
    assert state["dimensions"] == {"x": [8e-9, "m"], "y": [8e-9, "m"], "z": [4e-8, "m"]}
    assert state["layers"][0]["source"] == "precomputed://http://127.0.0.1:9000/raw"
    assert state["layers"][1]["segments"] == ["3", "4"]
    assert state["layers"][4]["linkedSegmentationLayer"] == {"pre": "segmentation", "post": "segmentation"}
    json.dumps(state)
