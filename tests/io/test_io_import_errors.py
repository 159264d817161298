"""Bad input to import_volume: one clear message each, and nothing left behind."""

from __future__ import annotations

import os

import numpy as np
import pytest

from connectomix.errors import (
    ConnectomixError,
    CorruptDataError,
    InputFormatError,
    VolumeError,
    VolumeNotFoundError,
)
from connectomix.io import import_volume
from connectomix.run import Run

VS = (40, 4, 4)


def leaves_nothing(run_path):
    assert not os.path.exists(run_path), f"{run_path} was left behind"


def test_missing_file(tmp_path):
    with pytest.raises(VolumeNotFoundError, match=r"input .*nothere\.tif does not exist"):
        import_volume(tmp_path / "nothere.tif", tmp_path / "run", voxel_size=VS)
    with pytest.raises(VolumeNotFoundError, match=r"input .*nothere\.h5 does not exist"):
        import_volume(f"{tmp_path}/nothere.h5:/raw", tmp_path / "run", voxel_size=VS)
    leaves_nothing(tmp_path / "run")


@pytest.mark.parametrize("name,content", [
    ("volume.txt", b"hello"),
    ("volume.npz", b"PK\x03\x04 not really"),
    ("volume", b"\x00" * 300),
])
def test_unsupported_format(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputFormatError, match=rf"{name}: unsupported input format"):
        import_volume(tmp_path / name, tmp_path / "run", voxel_size=VS)
    leaves_nothing(tmp_path / "run")


def test_unreadable_file_of_a_known_format(tmp_path):
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputFormatError, match=r"broken\.tif"):
        import_volume(tmp_path / "broken.tif", tmp_path / "run", voxel_size=VS)
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputFormatError, match=r"broken\.npy is not a readable \.npy"):
        import_volume(tmp_path / "broken.npy", tmp_path / "run", voxel_size=VS)
    leaves_nothing(tmp_path / "run")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFormatError, match=r"empty is a folder without image sections"):
        import_volume(tmp_path / "empty", tmp_path / "run", voxel_size=VS)


def _png(tmp_path):
    import imageio.v3 as iio

    p = tmp_path / "one.png"
    iio.imwrite(p, np.zeros((8, 9), np.uint8))
    return p


def _single_page_tiff(tmp_path):
    import tifffile

    p = tmp_path / "one.tif"
    tifffile.imwrite(p, np.zeros((8, 9), np.uint8))
    return p


def _npy_2d(tmp_path):
    p = tmp_path / "plane.npy"
    np.save(p, np.zeros((8, 9), np.uint8))
    return p


def _h5_2d(tmp_path):
    import h5py

    p = tmp_path / "plane.h5"
    with h5py.File(p, "w") as f:
        f["img"] = np.zeros((8, 9), np.uint8)
    return f"{p}:/img"


def _mrc_2d(tmp_path):
    import mrcfile

    p = tmp_path / "plane.mrc"
    with mrcfile.new(p) as m:
        m.set_data(np.zeros((8, 9), np.float32))
    return p


@pytest.mark.parametrize("make", [_png, _single_page_tiff, _npy_2d, _h5_2d, _mrc_2d])
def test_2d_image_where_a_volume_is_needed(tmp_path, make):
    spec = make(tmp_path)
    with pytest.raises(VolumeError, match=r"2D image.*\(8, 9\).*3D volume") as err:
        import_volume(spec, tmp_path / "run", voxel_size=VS)
    assert os.path.basename(str(spec)).split(":")[0] in str(err.value)
    leaves_nothing(tmp_path / "run")


def test_no_voxel_size(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(VolumeError, match=r"no voxel size for .*v\.npy.*voxel_size=\(z, y, x\)"):
        import_volume(tmp_path / "v.npy", tmp_path / "run")
    leaves_nothing(tmp_path / "run")


@pytest.mark.parametrize("vs,message", [
    ((0, 4, 4), r"voxel size for .*v\.npy must be positive, got \(0, 4, 4\)"),
    ((40, -4, 4), r"must be positive, got \(40, -4, 4\)"),
    ((40, 4.5, 4), r"must be whole nanometres"),
    ((40, 4), r"must be three numbers"),
    ((40, float("nan"), 4), r"must be whole nanometres"),
])
def test_bad_voxel_size(tmp_path, vs, message):
    np.save(tmp_path / "v.npy", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(VolumeError, match=message):
        import_volume(tmp_path / "v.npy", tmp_path / "run", voxel_size=vs)
    leaves_nothing(tmp_path / "run")


def test_offset_off_the_voxel_grid(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(VolumeError, match=r"offset \(0, 2, 0\) nm of .* is not a multiple of its voxel size"):
        import_volume(tmp_path / "v.npy", tmp_path / "run", voxel_size=VS, offset=(0, 2, 0))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_float_input_removes_the_new_run(tmp_path, bad):
    data = np.ones((16, 8, 8), np.float32)
    data[13, 2, 5] = bad  # in the last block: earlier blocks were already written
    np.save(tmp_path / "f.npy", data)
    with pytest.raises(VolumeError, match=r"f\.npy contains 1 NaN or infinite value.*z=13, y=2, x=5"):
        import_volume(tmp_path / "f.npy", tmp_path / "run", voxel_size=VS, chunks=(4, 8, 8))
    leaves_nothing(tmp_path / "run")


def test_nan_in_an_existing_run_removes_only_the_array(tmp_path):
    good = np.ones((4, 8, 8), np.uint8)
    np.save(tmp_path / "good.npy", good)
    import_volume(tmp_path / "good.npy", tmp_path / "run", voxel_size=VS)
    data = np.ones((8, 8, 8), np.float64)
    data[6, 0, 0] = np.nan
    np.save(tmp_path / "f.npy", data)
    with pytest.raises(VolumeError, match="NaN"):
        import_volume(tmp_path / "f.npy", tmp_path / "run", voxel_size=VS, name="probability", chunks=(2, 8, 8))
    run = Run(tmp_path / "run")
    assert run.arrays() == ["raw"]
    assert not (run.path / ".blocks" / "import-probability").exists()
    np.testing.assert_array_equal(run.open("raw").to_numpy(), good)


def test_nan_found_by_dask_workers(tmp_path):
    data = np.zeros((8, 8, 8), np.float32)
    data[7, 7, 7] = np.nan
    np.save(tmp_path / "f.npy", data)
    with pytest.raises(ConnectomixError, match=r"f\.npy contains 1 NaN"):
        import_volume(tmp_path / "f.npy", tmp_path / "run", voxel_size=VS, chunks=(4, 8, 8), scheduler="threads")
    leaves_nothing(tmp_path / "run")


def test_shape_mismatch_with_an_existing_array(tmp_path):
    a = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", np.zeros((5, 8, 8), np.uint16))
    import_volume(tmp_path / "a.npy", tmp_path / "run", voxel_size=VS)
    with pytest.raises(VolumeError, match=r"array 'raw' .*shape \(4, 8, 8\).*input is shape \(5, 8, 8\).*overwrite=True"):
        import_volume(tmp_path / "b.npy", tmp_path / "run", voxel_size=VS)
    with pytest.raises(VolumeError, match=r"voxel size \(40, 4, 4\).*voxel size \(40, 8, 8\)"):
        import_volume(tmp_path / "a.npy", tmp_path / "run", voxel_size=(40, 8, 8))
    np.testing.assert_array_equal(Run(tmp_path / "run").open("raw").to_numpy(), a)


def test_sections_of_different_shapes(tmp_path):
    import imageio.v3 as iio

    d = tmp_path / "sections"
    d.mkdir()
    for z in range(12):
        shape = (10, 12) if z != 10 else (10, 13)
        iio.imwrite(d / f"s{z}.png", np.zeros(shape, np.uint8))
    with pytest.raises(VolumeError, match=r"sections in .*sections differ in shape: s0\.png is \(10, 12\).*s10\.png is \(10, 13\)"):
        import_volume(d, tmp_path / "run", voxel_size=VS)
    leaves_nothing(tmp_path / "run")


def test_colour_sections(tmp_path):
    import imageio.v3 as iio

    d = tmp_path / "rgb"
    d.mkdir()
    for z in range(3):
        iio.imwrite(d / f"s{z}.png", np.zeros((6, 7, 3), np.uint8))
    with pytest.raises(InputFormatError, match=r"s0\.png is a colour image"):
        import_volume(d, tmp_path / "run", voxel_size=VS)


def test_hdf5_path_that_does_not_exist(tmp_path):
    import h5py

    p = tmp_path / "v.h5"
    with h5py.File(p, "w") as f:
        f["volumes/raw"] = np.zeros((4, 8, 8), np.uint8)
    with pytest.raises(VolumeNotFoundError, match=r"v\.h5 has no dataset '/volumes/labels' \(datasets: /volumes/raw \(4, 8, 8\) uint8\)"):
        import_volume(f"{p}:/volumes/labels", tmp_path / "run", voxel_size=VS)
    with pytest.raises(InputFormatError, match=r"'/volumes' in .*v\.h5 is a group"):
        import_volume(p, tmp_path / "run", voxel_size=VS, dataset="volumes")
    leaves_nothing(tmp_path / "run")


def test_hdf5_with_several_volumes_needs_a_path(tmp_path):
    import h5py

    p = tmp_path / "v.h5"
    with h5py.File(p, "w") as f:
        f["raw"] = np.zeros((4, 8, 8), np.uint8)
        f["labels"] = np.zeros((4, 8, 8), np.uint64)
    with pytest.raises(InputFormatError, match=r"holds 2 datasets .*name one as"):
        import_volume(p, tmp_path / "run", voxel_size=VS)


def test_zarr_dataset_that_does_not_exist(tmp_path):
    import zarr

    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("raw", shape=(4, 8, 8), dtype="uint8")
    with pytest.raises(VolumeNotFoundError, match=r"g\.zarr has no array 'labels' \(arrays: raw \(4, 8, 8\) uint8\)"):
        import_volume(tmp_path / "g.zarr", tmp_path / "run", voxel_size=VS, dataset="labels")


@pytest.mark.parametrize("dtype", [np.complex64, object])
def test_unsupported_voxel_types(tmp_path, dtype):
    if dtype is object:
        np.save(tmp_path / "v.npy", np.empty((2, 3, 4), object), allow_pickle=True)
        match = r"v\.npy is not a readable \.npy array"
    else:
        np.save(tmp_path / "v.npy", np.zeros((2, 3, 4), dtype))
        match = r"v\.npy holds complex64 values"
    with pytest.raises(InputFormatError, match=match):
        import_volume(tmp_path / "v.npy", tmp_path / "run", voxel_size=VS)


def test_empty_volume(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(VolumeError, match=r"v\.npy is empty"):
        import_volume(tmp_path / "v.npy", tmp_path / "run", voxel_size=VS)


def test_existing_non_run_folder_is_refused_and_kept(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    np.save(tmp_path / "v.npy", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(ConnectomixError, match="not a run"):
        import_volume(tmp_path / "v.npy", tmp_path / "busy", voxel_size=VS)
    assert os.listdir(tmp_path / "busy") == ["keep.txt"]


def test_failure_in_an_empty_existing_folder_empties_it_again(tmp_path):
    (tmp_path / "out").mkdir()
    data = np.zeros((4, 8, 8), np.float32)
    data[3, 0, 0] = np.inf
    np.save(tmp_path / "f.npy", data)
    with pytest.raises(VolumeError, match="infinite"):
        import_volume(tmp_path / "f.npy", tmp_path / "out", voxel_size=VS, chunks=(2, 8, 8))
    assert os.listdir(tmp_path / "out") == []


def test_tiff_pages_of_different_shapes(tmp_path):
    import tifffile

    for shape in [(4, 5), (4, 5), (4, 6)]:
        tifffile.imwrite(tmp_path / "mixed.tif", np.zeros(shape, np.uint8), append=True)
    with pytest.raises(VolumeError, match=r"mixed\.tif has pages of different shapes.*page 2 is \(4, 6\)"):
        import_volume(tmp_path / "mixed.tif", tmp_path / "run", voxel_size=VS)
    leaves_nothing(tmp_path / "run")


def test_tiff_with_channels_is_not_taken_for_a_stack(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "czyx.tif", np.zeros((2, 3, 4, 5), np.uint8), photometric="minisblack", metadata={"axes": "CZYX"})
    with pytest.raises(InputFormatError, match=r"czyx\.tif is a 4D TIFF \(axes CZYX"):
        import_volume(tmp_path / "czyx.tif", tmp_path / "run", voxel_size=VS)


def test_undecodable_page_in_the_middle_of_a_copy(tmp_path):
    import tifffile

    data = np.random.default_rng(0).integers(0, 255, (8, 16, 16)).astype(np.uint8)
    path = tmp_path / "damaged.tif"
    tifffile.imwrite(path, data, compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[6].dataoffsets[0]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 16)
    with pytest.raises(CorruptDataError, match=r"cannot import .*damaged\.tif: .*corrupt"):
        import_volume(path, tmp_path / "run", voxel_size=VS, chunks=(2, 16, 16))
    leaves_nothing(tmp_path / "run")
