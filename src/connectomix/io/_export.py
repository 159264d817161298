"""Export a run's arrays (TIFF, npy) and tables (CSV, Parquet) to single files.

Arrays are read slab by slab (one storage unit of sections at a time) and streamed
into the file, so memory stays bounded by a slab. Every export writes to a hidden
temporary file beside the target and renames it into place when complete, so a
failure leaves no partial file behind.
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path

import numpy as np

from ..errors import CorruptDataError, InputFormatError, TableNotFoundError
from ..geometry import Coordinate, Roi
from ..volume import Volume, open_volume
from ._common import open_run

__all__ = ["export_array", "export_table"]

ARRAY_SUFFIXES = (".tif", ".tiff", ".npy")
TABLE_SUFFIXES = (".csv", ".parquet")
#: Files at least this large are written as BigTIFF (classic TIFF offsets are 32-bit).
BIGTIFF_BYTES = 2**32 - 2**25
_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def _temp_beside(to: Path) -> Path:
    return to.with_name(f".{to.name}.{uuid.uuid4().hex[:8]}.part")


def export_array(run, name: str, to, *, level: int = 0) -> Path:
    """Write array ``name`` of a run to a ``.tif``/``.tiff`` or ``.npy`` file.

    Parameters
    ----------
    run : Run or str or Path
    name : str
        The array, e.g. ``raw``.
    to : str or Path
        The file to write; its extension picks the format. TIFF files get ImageJ
        metadata (z spacing and pixel size in nm) when ImageJ can read the type, and
        otherwise connectomix metadata (``voxel_size_nm``, ``offset_nm``) that
        :func:`import_volume` reads back; BigTIFF when the data exceed 4 GB.
    level : int
        Pyramid level to export.

    Returns
    -------
    Path of the written file.

    Raises
    ------
    InputFormatError
        If the extension is not one of .tif, .tiff, .npy.
    VolumeNotFoundError
        If the run has no such array (the message lists the arrays it has).
    IncompleteVolumeError
        If the array's writing job has not finished.
    RunDirectoryError
        If ``run`` is not a run directory.
    """
    run = open_run(run)
    to = Path(to)
    suffix = to.suffix.lower()
    if suffix not in ARRAY_SUFFIXES:
        raise InputFormatError(
            f"cannot export array '{name}' to {to}: unknown file type '{suffix or 'no extension'}' "
            f"(use {', '.join(ARRAY_SUFFIXES)})"
        )
    volume = run.open(name)
    if level:
        volume = open_volume(run.volume_path(name), level=level)
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(to)
    try:
        if suffix == ".npy":
            _write_npy(volume, tmp)
        else:
            _write_tiff(volume, tmp)
        os.replace(tmp, to)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return to


def _z_slabs(volume: Volume):
    """Rois of whole sections, one storage unit deep, covering the volume in z order."""
    unit = volume.shards or volume.chunks
    depth = unit[volume.n_channel_axes] if unit else 1
    roi = volume.roi
    vs = volume.voxel_size
    nz = volume.spatial_shape[0]
    for z0 in range(0, nz, depth):
        dz = min(depth, nz - z0)
        yield Roi(roi.offset + Coordinate(z0 * vs[0], 0, 0), Coordinate(dz * vs[0], *roi.shape[1:]))


def _read_channel_slab(volume: Volume, channel: tuple, roi: Roi) -> np.ndarray:
    if not channel:
        return volume[roi]
    slices = channel + roi.shift(-volume.offset).to_slices(volume.voxel_size)
    try:
        return np.asarray(volume.data[slices])
    except Exception as e:
        raise CorruptDataError(
            f"cannot read channel {channel} of {roi} of {volume.path}: stored data is corrupt or "
            f"unreadable ({type(e).__name__}: {e})"
        ) from e


def _pages(volume: Volume):
    for channel in np.ndindex(*volume.shape[: volume.n_channel_axes]):
        for roi in _z_slabs(volume):
            yield from _read_channel_slab(volume, tuple(channel), roi)


def _write_tiff(volume: Volume, path: Path) -> None:
    import tifffile

    nbytes = volume.dtype.itemsize * math.prod(volume.shape)
    bigtiff = nbytes >= BIGTIFF_BYTES
    vz, vy, vx = (int(v) for v in volume.voxel_size)
    imagej = not bigtiff and volume.n_channel_axes == 0 and volume.dtype in _IMAGEJ_DTYPES
    if imagej:
        with tifffile.TiffWriter(path, imagej=True) as tw:
            tw.write(
                _pages(volume), shape=volume.shape, dtype=volume.dtype,
                resolution=(1.0 / vx, 1.0 / vy),
                metadata={"axes": "ZYX", "spacing": vz, "unit": "nm"},
            )
        return
    axes = "C" * volume.n_channel_axes + "ZYX"
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as tw:
        tw.write(
            _pages(volume), shape=volume.shape, dtype=volume.dtype, photometric="minisblack",
            resolution=(1e7 / vx, 1e7 / vy), resolutionunit="CENTIMETER",
            metadata={
                "axes": axes,
                "voxel_size_nm": [vz, vy, vx],
                "offset_nm": [int(o) for o in volume.offset],
            },
        )


def _write_npy(volume: Volume, path: Path) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=volume.dtype, shape=volume.shape)
    try:
        z = 0
        for roi in _z_slabs(volume):
            slab = volume[roi]
            dz = slab.shape[volume.n_channel_axes]
            out[(Ellipsis, slice(z, z + dz), slice(None), slice(None))] = slab
            z += dz
        out.flush()
    finally:
        del out


def export_table(run, name: str, to) -> Path:
    """Write table ``name`` of a run's ``connectome.duckdb`` to ``.csv`` or ``.parquet``.

    Parameters
    ----------
    run : Run or str or Path
    name : str
        The table, e.g. ``synapses``.
    to : str or Path
        The file to write; its extension picks the format (DuckDB ``COPY``).

    Returns
    -------
    Path of the written file.

    Raises
    ------
    InputFormatError
        If the extension is not .csv or .parquet.
    TableNotFoundError
        If the run has no such table (the message lists the tables it has).
    RunDirectoryError
        If ``run`` is not a run directory.
    """
    run = open_run(run)
    to = Path(to)
    suffix = to.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputFormatError(
            f"cannot export table '{name}' to {to}: unknown file type '{suffix or 'no extension'}' "
            f"(use {', '.join(TABLE_SUFFIXES)})"
        )
    tables = run.tables()
    if name not in tables:
        raise TableNotFoundError(f"run {run.path} has no table '{name}' (tables: {', '.join(tables) or 'none'})")
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(to)
    options = "FORMAT csv, HEADER true" if suffix == ".csv" else "FORMAT parquet"
    target = str(tmp).replace("'", "''")
    try:
        with run.db(read_only=True) as con:
            con.execute(f"COPY \"{name}\" TO '{target}' ({options})")
        os.replace(tmp, to)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return to
