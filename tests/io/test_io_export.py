"""Export of arrays (TIFF, npy) and tables (CSV, Parquet), and what goes wrong."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import connectomix.io._export as export_module
from connectomix.errors import (
    CorruptDataError,
    IncompleteVolumeError,
    InputFormatError,
    RunDirectoryError,
    TableNotFoundError,
    VolumeNotFoundError,
)
from connectomix.io import export_array, export_table, import_volume
from connectomix.run import Run
from connectomix.volume import create_volume


@pytest.fixture
def run(tmp_path):
    return Run.create(tmp_path / "run")


def store(run, name, data, *, voxel_size=(40, 4, 4), offset=None, chunks=(3, 8, 8)):
    vol = create_volume(run.volume_path(name), shape=data.shape, dtype=data.dtype, voxel_size=voxel_size,
                        offset=offset, chunks=chunks)
    vol[vol.roi] = data
    return vol


def only_file(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.uint64, np.int16])
@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_array_round_trip(run, tmp_path, dtype, suffix):
    data = (np.random.default_rng(0).random((7, 12, 10)) * 100).astype(dtype)
    store(run, "raw", data, offset=(80, 8, 0))
    out = export_array(run, "raw", tmp_path / "out" / f"raw{suffix}")
    assert only_file(tmp_path / "out") == [f"raw{suffix}"]
    if suffix == ".npy":
        np.testing.assert_array_equal(np.load(out), data)
    else:
        import tifffile

        np.testing.assert_array_equal(tifffile.imread(out), data)
    # the file carries its voxel size (and, outside ImageJ files, its offset) back in
    back = import_volume(out, tmp_path / "back", voxel_size=None if suffix == ".tif" else (40, 4, 4))
    np.testing.assert_array_equal(back.to_numpy(), data)
    assert tuple(back.voxel_size) == (40, 4, 4)
    if suffix == ".tif" and np.dtype(dtype) in (np.uint64, np.int16):
        assert tuple(back.offset) == (80, 8, 0)


def test_imagej_metadata(run, tmp_path):
    import tifffile

    store(run, "raw", np.zeros((3, 4, 5), np.uint8), voxel_size=(50, 5, 5))
    out = export_array(str(run.path), "raw", tmp_path / "raw.tiff")
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["spacing"] == 50 and tif.imagej_metadata["unit"] == "nm"


def test_large_arrays_become_bigtiff(run, tmp_path, monkeypatch):
    import tifffile

    monkeypatch.setattr(export_module, "BIGTIFF_BYTES", 0)
    data = np.arange(4 * 6 * 5, dtype=np.uint16).reshape(4, 6, 5)
    store(run, "raw", data)
    out = export_array(run, "raw", tmp_path / "big.tif")
    with tifffile.TiffFile(out) as tif:
        assert tif.is_bigtiff
        np.testing.assert_array_equal(tif.asarray(), data)


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_channel_array(run, tmp_path, suffix):
    data = np.random.default_rng(1).random((3, 5, 6, 7)).astype(np.float32)
    store(run, "affinities", data, chunks=(2, 6, 7))
    out = export_array(run, "affinities", tmp_path / f"aff{suffix}")
    if suffix == ".npy":
        back = np.load(out)
    else:
        import tifffile

        back = tifffile.imread(out)
    np.testing.assert_array_equal(back, data)


def test_pyramid_level(run, tmp_path):
    data = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    import_volume_data = tmp_path / "d.npy"
    np.save(import_volume_data, data)
    import_volume(import_volume_data, run, voxel_size=(40, 4, 4), pyramid_levels=2, chunks=(1, 4, 4))
    out = export_array(run, "raw", tmp_path / "s1.npy", level=1)
    assert np.load(out).shape == (2, 4, 4)


def test_unknown_extension(run, tmp_path):
    store(run, "raw", np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(InputFormatError, match=r"cannot export array 'raw' to .*raw\.png: unknown file type '\.png' \(use \.tif, \.tiff, \.npy\)"):
        export_array(run, "raw", tmp_path / "raw.png")
    assert not (tmp_path / "raw.png").exists()


def test_unknown_array(run, tmp_path):
    store(run, "raw", np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(VolumeNotFoundError, match=r"has no array 'segmentation' \(arrays: raw\)"):
        export_array(run, "segmentation", tmp_path / "seg.tif")
    assert only_file(tmp_path) == ["run"]


def test_incomplete_array(run, tmp_path):
    vol = create_volume(run.volume_path("raw"), shape=(2, 3, 4), dtype=np.uint8, voxel_size=(40, 4, 4),
                        complete=False, task="import-raw")
    assert vol.shape == (2, 3, 4)
    with pytest.raises(IncompleteVolumeError, match="incomplete"):
        export_array(run, "raw", tmp_path / "raw.npy")
    assert only_file(tmp_path) == ["run"]


def test_not_a_run(tmp_path):
    with pytest.raises(RunDirectoryError, match="does not exist"):
        export_array(tmp_path / "nope", "raw", tmp_path / "raw.npy")
    with pytest.raises(RunDirectoryError):
        export_table(tmp_path / "nope", "neurons", tmp_path / "n.csv")


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_corrupt_chunk_leaves_no_partial_file(run, tmp_path, suffix):
    data = np.random.default_rng(2).integers(0, 255, (9, 8, 8)).astype(np.uint8)
    store(run, "raw", data, chunks=(3, 8, 8))
    chunk = run.volume_path("raw") / "s0" / "c" / "2" / "0" / "0"  # the last slab
    assert chunk.exists()
    chunk.write_bytes(b"this is not a blosc frame")
    (tmp_path / "out").mkdir()
    with pytest.raises(CorruptDataError, match="corrupt"):
        export_array(run, "raw", tmp_path / "out" / f"raw{suffix}")
    assert only_file(tmp_path / "out") == []


@pytest.fixture
def run_with_tables(run):
    run.write_table("neurons", pd.DataFrame({"segment_id": np.array([3, 1, 2], np.uint64), "size_vx": [10, 20, 30],
                                             "cell_type": ["a", "b", None]}))
    run.write_table("edges", pd.DataFrame({"pre_id": [1, 2], "post_id": [2, 3], "weight": [0.5, 1.5]}))
    return run


def test_table_round_trip(run_with_tables, tmp_path):
    expected = run_with_tables.read_table("neurons")
    csv = export_table(run_with_tables, "neurons", tmp_path / "n.csv")
    pq = export_table(run_with_tables, "neurons", tmp_path / "n.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(pq), expected)
    back = pd.read_csv(csv)
    assert list(back.columns) == ["segment_id", "size_vx", "cell_type"]
    np.testing.assert_array_equal(back["segment_id"], expected["segment_id"].astype(np.int64))
    assert back["cell_type"].isna().tolist() == [False, False, True]


def test_table_errors(run_with_tables, tmp_path):
    with pytest.raises(TableNotFoundError, match=r"has no table 'synapses' \(tables: edges, neurons\)"):
        export_table(run_with_tables, "synapses", tmp_path / "s.csv")
    with pytest.raises(InputFormatError, match=r"unknown file type '\.xlsx' \(use \.csv, \.parquet\)"):
        export_table(run_with_tables, "edges", tmp_path / "e.xlsx")
    assert only_file(tmp_path) == ["run"]


def test_table_in_a_run_without_database(run, tmp_path):
    with pytest.raises(TableNotFoundError, match=r"has no table 'edges' \(tables: none\)"):
        export_table(run, "edges", tmp_path / "e.csv")
