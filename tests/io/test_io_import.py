"""Import round trips: every input format gives back the same voxels and geometry."""

from __future__ import annotations

import json
import os
import pickle
import tracemalloc

import numpy as np
import pytest

from connectomix.errors import IncompleteVolumeError
from connectomix.io import (
    HDF5Source,
    MrcSource,
    NpySource,
    PrecomputedSource,
    SectionFolderSource,
    TiffStackSource,
    ZarrSource,
    import_volume,
    input_source,
)
from connectomix.io._lazy import PageStack
from connectomix.io._sources import natural_key
from connectomix.run import Run
from connectomix.volume import create_volume, open_volume

SHAPE = (12, 20, 24)  # 12 sections: natural order matters (sec2 before sec10)
VS = (40, 4, 4)


def make_data(dtype, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(100, 20, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, min(info.max, 60000), shape, endpoint=True).astype(dtype)


# ----------------------------------------------------------------- format writers
# Each writes ``data`` in one format and returns (input spec, voxel size and offset
# the file itself records, or None when the format records none).
def write_tiff(tmp_path, data):
    import tifffile

    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, data)
    return str(p), None


def write_imagej_tiff(tmp_path, data):
    import tifffile

    p = tmp_path / "imagej.tif"
    tifffile.imwrite(p, data, imagej=True, resolution=(1 / 4, 1 / 4), metadata={"spacing": 40, "unit": "nm", "axes": "ZYX"})
    return str(p), (VS, (0, 0, 0))


def _write_sections(tmp_path, data, ext):
    import imageio.v3 as iio
    import tifffile

    d = tmp_path / f"sections_{ext}"
    d.mkdir()
    for z, plane in enumerate(data):
        if ext == "tif":
            tifffile.imwrite(d / f"sec{z}.tif", plane)
        else:
            iio.imwrite(d / f"sec{z}.png", plane)
    (d / "notes.txt").write_text("not a section")
    return str(d), None


def write_tif_folder(tmp_path, data):
    return _write_sections(tmp_path, data, "tif")


def write_png_folder(tmp_path, data):
    return _write_sections(tmp_path, data, "png")


def write_hdf5(tmp_path, data):
    import h5py

    p = tmp_path / "vol.h5"
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("volumes/raw", data=data, chunks=(4, 10, 12))
        ds.attrs["resolution"] = VS
        ds.attrs["offset"] = (80, 8, 0)
        f.create_dataset("volumes/other", data=data[:2])
    return f"{p}:/volumes/raw", (VS, (80, 8, 0))


def write_npy(tmp_path, data):
    p = tmp_path / "vol.npy"
    np.save(p, data)
    return str(p), None


def write_mrc(tmp_path, data):
    import mrcfile

    p = tmp_path / "vol.mrc"
    with mrcfile.new(p) as m:
        m.set_data(data)
        m.voxel_size = (VS[2] * 10.0, VS[1] * 10.0, VS[0] * 10.0)  # x, y, z in Å
    return str(p), (VS, (0, 0, 0))


def write_precomputed(tmp_path, data):
    import tensorstore as ts

    p = tmp_path / "precomputed"
    z, y, x = data.shape
    store = ts.open(
        {
            "driver": "neuroglancer_precomputed",
            "kvstore": "file://" + str(p),
            "scale_metadata": {
                "resolution": [VS[2], VS[1], VS[0]], "encoding": "raw",
                "chunk_size": [16, 16, 4], "size": [x, y, z], "voxel_offset": [3, 5, 2],
            },
            "multiscale_metadata": {"data_type": str(data.dtype), "num_channels": 1, "type": "image"},
        },
        create=True,
    ).result()
    store[...] = data.transpose(2, 1, 0)[..., None]
    return str(p), (VS, (2 * 40, 5 * 4, 3 * 4))


def write_zarr_v2(tmp_path, data):
    import zarr

    p = tmp_path / "plain_v2.zarr"
    arr = zarr.create_array(str(p), shape=data.shape, dtype=data.dtype, chunks=(4, 8, 8), zarr_format=2)
    arr[...] = data
    return str(p), None


def write_ome_zarr_v04(tmp_path, data):
    import zarr

    p = tmp_path / "ome_v04.zarr"
    g = zarr.open_group(str(p), mode="w", zarr_format=2)
    g.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [
            {"name": "t", "type": "time"},
            {"name": "z", "type": "space", "unit": "micrometer"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"},
        ],
        "datasets": [{
            "path": "0",
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 0.04, 0.004, 0.004]},
                {"type": "translation", "translation": [0.0, 0.4, 0.0, 0.008]},
            ],
        }],
    }]
    arr = g.create_array("0", shape=(1,) + data.shape, dtype=data.dtype, chunks=(1, 4, 8, 8))
    arr[...] = data[None]
    return str(p), (VS, (400, 0, 8))


def write_ome_zarr_v05(tmp_path, data):
    vol = create_volume(
        tmp_path / "other_run.zarr" / "img", shape=data.shape, dtype=data.dtype,
        voxel_size=VS, offset=(40, 40, 80), chunks=(4, 8, 8),
    )
    vol[vol.roi] = data
    return str(tmp_path / "other_run.zarr" / "img"), (VS, (40, 40, 80))


WRITERS = {
    "tiff": write_tiff,
    "imagej-tiff": write_imagej_tiff,
    "tif-folder": write_tif_folder,
    "png-folder": write_png_folder,
    "hdf5": write_hdf5,
    "npy": write_npy,
    "mrc": write_mrc,
    "precomputed": write_precomputed,
    "zarr-v2": write_zarr_v2,
    "ome-zarr-v0.4": write_ome_zarr_v04,
    "ome-zarr-v0.5": write_ome_zarr_v05,
}
DTYPES = {
    "tiff": [np.uint8, np.uint16, np.float32],
    "imagej-tiff": [np.uint16],
    "tif-folder": [np.uint8, np.uint16],
    "png-folder": [np.uint8, np.uint16],
    "hdf5": [np.uint8, np.float64, np.int32],
    "npy": [np.uint8, np.uint64, np.float32],
    "mrc": [np.int16, np.float32],
    "precomputed": [np.uint8, np.uint64],
    "zarr-v2": [np.uint16],
    "ome-zarr-v0.4": [np.uint8],
    "ome-zarr-v0.5": [np.float32],
}
CASES = [(fmt, dt) for fmt, dts in DTYPES.items() for dt in dts]


@pytest.mark.parametrize("fmt,dtype", CASES, ids=[f"{f}-{np.dtype(d).name}" for f, d in CASES])
def test_round_trip_given_geometry(tmp_path, fmt, dtype):
    data = make_data(dtype)
    spec, _ = WRITERS[fmt](tmp_path, data)
    vol = import_volume(spec, tmp_path / "run", voxel_size=(30, 6, 6), offset=(60, 0, 12), chunks=(4, 8, 16))
    assert vol.dtype == data.dtype
    assert tuple(vol.voxel_size) == (30, 6, 6)
    assert tuple(vol.offset) == (60, 0, 12)
    np.testing.assert_array_equal(vol.to_numpy(), data)
    again = Run(tmp_path / "run").open("raw")
    np.testing.assert_array_equal(again.to_numpy(), data)


@pytest.mark.parametrize("fmt", [f for f in WRITERS if f not in ("tiff", "tif-folder", "png-folder", "npy", "zarr-v2")])
def test_geometry_from_the_file(tmp_path, fmt):
    data = make_data(DTYPES[fmt][0])
    spec, (vs, offset) = WRITERS[fmt](tmp_path, data)
    vol = import_volume(spec, tmp_path / "run")
    assert tuple(vol.voxel_size) == vs
    assert tuple(vol.offset) == offset
    np.testing.assert_array_equal(vol.to_numpy(), data)


def test_given_voxel_size_wins_over_metadata(tmp_path):
    data = make_data(np.uint8)
    spec, _ = write_ome_zarr_v05(tmp_path, data)  # voxel size (40, 4, 4), offset (40, 40, 80)
    vol = import_volume(spec, tmp_path / "run", voxel_size=(50, 5, 5))
    assert tuple(vol.voxel_size) == (50, 5, 5)
    assert tuple(vol.offset) == (50, 50, 100)  # the same first voxel (1, 10, 20)
    vol = import_volume(spec, tmp_path / "run", voxel_size=(50, 5, 5), offset=(0, 0, 0), name="b")
    assert tuple(vol.offset) == (0, 0, 0)


def test_format_detection(tmp_path):
    data = make_data(np.uint8)
    kinds = {
        "tiff": TiffStackSource, "tif-folder": SectionFolderSource, "hdf5": HDF5Source,
        "npy": NpySource, "mrc": MrcSource, "precomputed": PrecomputedSource, "zarr-v2": ZarrSource,
        "ome-zarr-v0.5": ZarrSource,
    }
    for fmt, cls in kinds.items():
        sub = tmp_path / fmt
        sub.mkdir()
        spec, _ = WRITERS[fmt](sub, data if fmt != "mrc" else data.astype(np.int16))
        assert type(input_source(spec)) is cls, fmt
    # content decides when the extension says nothing
    os.rename(tmp_path / "tiff" / "stack.tif", tmp_path / "tiff" / "stack.data")
    assert type(input_source(tmp_path / "tiff" / "stack.data")) is TiffStackSource
    os.rename(tmp_path / "npy" / "vol.npy", tmp_path / "npy" / "vol")
    assert type(input_source(tmp_path / "npy" / "vol")) is NpySource


def test_hdf5_dataset_keyword_and_single_dataset(tmp_path):
    import h5py

    data = make_data(np.uint16)
    p = tmp_path / "one.hdf5"
    with h5py.File(p, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("meta/labels2d", data=data[0])
    a = import_volume(p, tmp_path / "r1", voxel_size=VS)  # the only 3D dataset
    np.testing.assert_array_equal(a.to_numpy(), data)
    b = import_volume(p, tmp_path / "r2", voxel_size=VS, dataset="/data")
    np.testing.assert_array_equal(b.to_numpy(), data)


def test_zarr_dataset_inside_group(tmp_path):
    data = make_data(np.uint8)
    spec, _ = write_ome_zarr_v05(tmp_path, data)
    root = tmp_path / "other_run.zarr"
    vol = import_volume(f"{root}:img", tmp_path / "run")
    np.testing.assert_array_equal(vol.to_numpy(), data)
    vol = import_volume(root, tmp_path / "run", dataset="img/s0", name="again")
    assert tuple(vol.voxel_size) == VS
    np.testing.assert_array_equal(vol.to_numpy(), data)


def test_natural_order_of_sections(tmp_path):
    names = ["sec10.png", "sec2.png", "sec1.png", "SEC003.png", "sec20.png"]
    assert sorted(names, key=natural_key) == ["sec1.png", "sec2.png", "SEC003.png", "sec10.png", "sec20.png"]
    data = make_data(np.uint8)
    spec, _ = write_png_folder(tmp_path, data)
    src = input_source(spec)
    assert [os.path.basename(f) for f in src.files] == [f"sec{z}.png" for z in range(SHAPE[0])]


def test_precomputed_with_channels(tmp_path):
    import tensorstore as ts

    data = make_data(np.uint8, shape=(3, 6, 10, 12))  # (c, z, y, x)
    p = tmp_path / "aff"
    store = ts.open(
        {
            "driver": "neuroglancer_precomputed", "kvstore": "file://" + str(p),
            "scale_metadata": {"resolution": [4, 4, 40], "encoding": "raw", "chunk_size": [8, 8, 4], "size": [12, 10, 6]},
            "multiscale_metadata": {"data_type": "uint8", "num_channels": 3, "type": "image"},
        },
        create=True,
    ).result()
    store[...] = data.transpose(3, 2, 1, 0)
    vol = import_volume(f"precomputed://{p}", tmp_path / "run", name="affinities")
    assert vol.axis_names == ("c", "z", "y", "x")
    np.testing.assert_array_equal(vol.to_numpy(), data)


def test_sources_pickle_and_read_lazily(tmp_path):
    data = make_data(np.uint16)
    for fmt in ("tiff", "png-folder", "hdf5", "npy", "mrc", "precomputed", "ome-zarr-v0.4"):
        sub = tmp_path / fmt
        sub.mkdir()
        spec, _ = WRITERS[fmt](sub, data if fmt != "mrc" else data.astype(np.int16))
        src = input_source(spec).placed(VS, (0, 0, 0))
        clone = pickle.loads(pickle.dumps(src))
        assert clone == src and repr(clone) == repr(src)
        vol = clone.open()
        expected = data if fmt != "mrc" else data.astype(np.int16)
        np.testing.assert_array_equal(vol.data[3:7:2, 5:9, -4:], expected[3:7:2, 5:9, -4:])
        np.testing.assert_array_equal(vol.data[5], expected[5])


def test_tiff_reads_page_by_page_in_bounded_memory(tmp_path, monkeypatch):
    import tifffile

    shape = (64, 256, 256)  # 4 MiB, 16 blocks of 4 sections
    rng = np.random.default_rng(3)
    path = tmp_path / "big.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write((rng.integers(0, 256, shape[1:], dtype=np.uint8) for _ in range(shape[0])), shape=shape, dtype=np.uint8)
    reads = []
    original = PageStack._read

    def spy(self, slices):
        reads.append(len(range(slices[0].start, slices[0].stop, slices[0].step)))
        return original(self, slices)

    monkeypatch.setattr(PageStack, "_read", spy)
    # warm up: the libraries' first import would count against the peak otherwise
    tifffile.imwrite(tmp_path / "tiny.tif", np.zeros((2, 8, 8), np.uint8))
    import_volume(tmp_path / "tiny.tif", tmp_path / "warm", voxel_size=VS)
    reads.clear()
    ticks = []
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        vol = import_volume(path, tmp_path / "run", voxel_size=VS, chunks=(4, 64, 64), on_block_done=lambda d, t: ticks.append((d, t)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole = int(np.prod(shape))
    assert ticks[-1] == (16, 16)
    assert max(reads) == 4  # never more than one block of pages at a time
    assert peak < whole / 2, f"peak traced memory {peak} B for a {whole} B volume"
    with tifffile.TiffFile(path) as tif:
        np.testing.assert_array_equal(vol.to_numpy(), tif.asarray())


def test_pyramid_on_import(tmp_path):
    data = make_data(np.uint8, shape=(6, 33, 40))
    np.save(tmp_path / "v.npy", data)
    ticks = []
    vol = import_volume(tmp_path / "v.npy", tmp_path / "run", voxel_size=VS, pyramid_levels=3, chunks=(2, 8, 8),
                        on_block_done=lambda d, t: ticks.append((d, t)))
    s2 = open_volume(vol.path, level=2)
    assert s2.shape == (6, 9, 10) and tuple(s2.voxel_size) == (40, 16, 16)
    done, total = ticks[-1]
    assert done == total and all(t == total for _, t in ticks)


def test_interrupted_import_resumes(tmp_path):
    data = make_data(np.uint16, shape=(16, 16, 16))
    np.save(tmp_path / "v.npy", data)

    def interrupt_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_volume(tmp_path / "v.npy", tmp_path / "run", voxel_size=VS, chunks=(4, 16, 16), on_block_done=interrupt_after_two)
    run = Run(tmp_path / "run")
    with pytest.raises(IncompleteVolumeError):
        run.open("raw")
    ticks = []
    vol = import_volume(tmp_path / "v.npy", tmp_path / "run", voxel_size=VS, chunks=(4, 16, 16), on_block_done=lambda d, t: ticks.append((d, t)))
    assert ticks[0] == (2, 4)  # two blocks were already done
    np.testing.assert_array_equal(vol.to_numpy(), data)
    # importing the same input again does nothing and keeps the array
    ticks.clear()
    import_volume(tmp_path / "v.npy", tmp_path / "run", voxel_size=VS, on_block_done=lambda d, t: ticks.append((d, t)))
    assert ticks[0] == (4, 4)


def test_overwrite_replaces_an_array_of_another_shape(tmp_path):
    a, b = make_data(np.uint8), make_data(np.uint8, shape=(5, 7, 9), seed=1)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    import_volume(tmp_path / "a.npy", tmp_path / "run", voxel_size=VS)
    vol = import_volume(tmp_path / "b.npy", tmp_path / "run", voxel_size=VS, overwrite=True)
    np.testing.assert_array_equal(vol.to_numpy(), b)


def test_import_on_a_dask_cluster(tmp_path):
    data = make_data(np.uint8)
    spec, _ = write_tif_folder(tmp_path, data)
    vol = import_volume(spec, tmp_path / "run", voxel_size=VS, chunks=(4, 8, 8), scheduler="local", workers=1)
    np.testing.assert_array_equal(vol.to_numpy(), data)
    meta = json.loads((tmp_path / "run" / "volume.zarr" / "raw" / "zarr.json").read_text())
    assert meta["attributes"]["connectomix"]["complete"] is True


def test_big_endian_input_is_stored_native(tmp_path):
    data = make_data(np.uint16).astype(">u2")
    np.save(tmp_path / "be.npy", data)
    vol = import_volume(tmp_path / "be.npy", tmp_path / "run", voxel_size=VS)
    assert vol.dtype == np.dtype("=u2")
    np.testing.assert_array_equal(vol.to_numpy(), data)


def test_tiff_written_page_by_page(tmp_path):
    import tifffile

    data = make_data(np.uint16, shape=(5, 6, 7))
    for plane in data:  # tifffile makes one series per appended page
        tifffile.imwrite(tmp_path / "appended.tif", plane, append=True)
    vol = import_volume(tmp_path / "appended.tif", tmp_path / "run", voxel_size=VS)
    np.testing.assert_array_equal(vol.to_numpy(), data)


def test_blocks_are_slabs_of_whole_storage_units(tmp_path):
    from connectomix.io._common import BLOCK_BYTES, SECTION_BLOCK_BYTES, slab_block_shape

    vol = create_volume(tmp_path / "big", shape=(64, 4096, 4096), dtype=np.uint8, voxel_size=VS,
                        chunks=(32, 128, 128), shards=(32, 512, 512))
    vs = np.array(VS)
    small = np.array(slab_block_shape(vol, target_bytes=BLOCK_BYTES)) // vs
    assert small[0] == 32 and (small[1:] % 512 == 0).all()
    assert np.prod(small) <= BLOCK_BYTES and np.prod(small) * 4 > BLOCK_BYTES  # tiled, but not too small
    whole = np.array(slab_block_shape(vol, target_bytes=SECTION_BLOCK_BYTES)) // vs
    assert tuple(whole) == (32, 4096, 4096)  # whole sections when a reader decodes them anyway
