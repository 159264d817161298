import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from connectomix.errors import CorruptDataError, IncompleteVolumeError, RoiError, VolumeError, VolumeNotFoundError
from connectomix.geometry import Coordinate, Roi
from connectomix.testing import random_volume, stored_volume
from connectomix.volume import Volume, create_volume, is_complete, mark_complete, open_volume

VS = (40, 8, 8)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint64", "float32"])
def test_round_trip_and_world_placement(tmp_path, dtype):
    data = random_volume((10, 30, 20), dtype=dtype, seed=1)
    vol = stored_volume(tmp_path / "img", data, voxel_size=VS, offset=(400, 80, 16), chunks=(4, 16, 16))
    back = open_volume(tmp_path / "img")
    assert back.voxel_size == Coordinate(VS) and back.offset == Coordinate(400, 80, 16)
    assert back.roi == Roi((400, 80, 16), (400, 240, 160))
    np.testing.assert_array_equal(back.to_numpy(), data)
    sub = Roi((440, 96, 24), (80, 16, 8))
    np.testing.assert_array_equal(back[sub], data[1:3, 2:4, 1:2])


@given(hnp.arrays(np.uint16, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=9)))
@settings(max_examples=20, deadline=None)
def test_zarr_write_and_read_back_is_identical(tmp_path_factory, arr):
    path = tmp_path_factory.mktemp("h") / "img"
    vol = stored_volume(path, arr, voxel_size=(4, 4, 4), chunks=(2, 4, 4))
    np.testing.assert_array_equal(open_volume(path).to_numpy(), arr)


def test_ome_zarr_metadata_is_explicit(tmp_path):
    create_volume(tmp_path / "aff", shape=(3, 4, 16, 16), dtype="float32", voxel_size=VS, offset=(40, 0, 0), levels=2)
    meta = json.loads((tmp_path / "aff" / "zarr.json").read_text())
    assert meta["zarr_format"] == 3
    ome = meta["attributes"]["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"]
    assert ms["axes"][1] == {"name": "z", "type": "space", "unit": "nanometer"}
    s0, s1 = ms["datasets"]
    assert s0["coordinateTransformations"][0] == {"type": "scale", "scale": [1.0, 40.0, 8.0, 8.0]}
    assert s0["coordinateTransformations"][1]["translation"] == [0.0, 40.0, 0.0, 0.0]
    assert s1["coordinateTransformations"][0]["scale"] == [1.0, 40.0, 16.0, 16.0]
    assert open_volume(tmp_path / "aff", level=1).shape == (3, 4, 8, 8)


def test_read_pads_and_getitem_refuses_outside(tmp_path):
    data = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4) + 1
    vol = Volume(data, voxel_size=(1, 1, 1))
    roi = Roi((0, -1, 0), (2, 3, 4))
    with pytest.raises(RoiError, match="outside"):
        vol[roi]
    got = vol.read(roi, fill_value=0)
    assert (got[:, 0] == 0).all() and (got[:, 1:] == data[:, :2]).all()


def test_bad_voxel_sizes_and_shapes(tmp_path):
    with pytest.raises(VolumeError, match="voxel size is required"):
        Volume(np.zeros((2, 2, 2)), voxel_size=None)
    with pytest.raises(VolumeError, match="positive"):
        Volume(np.zeros((2, 2, 2)), voxel_size=(0, 8, 8))
    with pytest.raises(VolumeError, match="fewer axes"):
        Volume(np.zeros((2, 2)), voxel_size=(40, 8, 8))
    with pytest.raises(VolumeError, match="positive"):
        create_volume(tmp_path / "x", shape=(2, 2, 2), dtype="uint8", voxel_size=(-1, 8, 8))
    vol = create_volume(tmp_path / "y", shape=(2, 4, 4), dtype="uint8", voxel_size=(1, 1, 1))
    with pytest.raises(VolumeError, match=r"shape \(3, 3, 3\)"):
        vol[vol.roi] = np.zeros((3, 3, 3), np.uint8)
    with pytest.raises(VolumeError, match="already exists"):
        create_volume(tmp_path / "y", shape=(2, 4, 4), dtype="uint8", voxel_size=(1, 1, 1))


def test_missing_and_metadata_less_arrays(tmp_path):
    with pytest.raises(VolumeNotFoundError, match="no array"):
        open_volume(tmp_path / "nothing")
    import zarr

    zarr.open_group(str(tmp_path / "plain"), mode="w")
    with pytest.raises(VolumeError, match="voxel size is unknown"):
        open_volume(tmp_path / "plain")


def test_incomplete_arrays_are_refused(tmp_path):
    create_volume(tmp_path / "seg", shape=(2, 4, 4), dtype="uint64", voxel_size=(1, 1, 1), complete=False, task="segment")
    assert not is_complete(tmp_path / "seg")
    with pytest.raises(IncompleteVolumeError, match="segment"):
        open_volume(tmp_path / "seg")
    open_volume(tmp_path / "seg", require_complete=False)
    mark_complete(tmp_path / "seg")
    open_volume(tmp_path / "seg")


def test_corrupt_chunk_gives_a_clear_error(tmp_path):
    data = random_volume((4, 16, 16), seed=2)
    stored_volume(tmp_path / "img", data, voxel_size=VS, chunks=(4, 8, 8))
    chunk = tmp_path / "img" / "s0" / "c" / "0" / "1" / "0"
    assert chunk.exists()
    chunk.write_bytes(b"this is not a blosc frame")
    vol = open_volume(tmp_path / "img")
    with pytest.raises(CorruptDataError, match="corrupt"):
        vol.to_numpy()
    # the intact chunk still reads
    np.testing.assert_array_equal(vol[Roi((0, 0, 0), (160, 64, 64))], data[:, :8, :8])
