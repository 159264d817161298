"""Volume: an array with a voxel size, an offset and axis names, in nm.

A Volume wraps any array-like that supports numpy slicing (a zarr array on disk, a
numpy array in memory, an h5py dataset, a memory map). Its spatial axes are the last
``len(voxel_size)`` axes, in z, y, x order; leading axes are channels. Stored volumes
are OME-Zarr 0.5 images on zarr v3: one group per image holding the levels ``s0``,
``s1``, ... of a multiscale pyramid, with voxel size (``scale``) and offset
(``translation``) in nanometres written in the group's ``ome`` attributes, so
neuroglancer, napari and webKnossos place them correctly.

Arrays written by a block-wise job carry a completion flag; :func:`open_volume`
refuses an incomplete array by default so that no stage reads half a result.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import (
    CorruptDataError,
    IncompleteVolumeError,
    RoiError,
    VolumeError,
    VolumeNotFoundError,
)
from .geometry import Coordinate, Roi

__all__ = [
    "Volume",
    "VolumeRef",
    "open_volume",
    "create_volume",
    "write_token",
    "mark_complete",
    "is_complete",
    "DEFAULT_COMPRESSION",
    "IO_BACKEND",
    "TensorStoreArray",
]

SPATIAL_NAMES = ("z", "y", "x")
#: Blosc-zstd with byte shuffle: benchmarks/bench_storage.py found bit shuffle slower and
#: worse-compressing on both EM images and label volumes.
DEFAULT_COMPRESSION = {"cname": "zstd", "clevel": 3, "shuffle": "shuffle"}
#: Which library moves voxels: "tensorstore" (1.5x the throughput per CPU-second of
#: zarr-python in benchmarks/bench_storage.py, same files) or "zarr". zarr-python always
#: writes the metadata (groups, OME attributes).
IO_BACKEND = os.environ.get("CONNECTOMIX_IO", "tensorstore")


class TensorStoreArray:
    """numpy-style slicing of a stored zarr v3 array, with tensorstore doing the I/O.

    Parameters
    ----------
    path : str
        The array (e.g. ``.../raw/s0``).
    mode : {'r', 'r+'}
    """

    def __init__(self, path: str, mode: str = "r"):
        import tensorstore as ts
        import zarr

        meta = zarr.open_array(path, mode="r")  # chunk/shard layout, as zarr-python reads it
        self.chunks = tuple(meta.chunks)
        self.shards = tuple(meta.shards) if meta.shards else None
        self.path = path
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": os.path.abspath(path)}}
        self._store = ts.open(spec, read=True, write=mode != "r", open=True).result()
        self.shape = tuple(int(d) for d in self._store.shape)
        self.dtype = np.dtype(self._store.dtype.numpy_dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        return self._store[key].read().result()

    def __setitem__(self, key, value) -> None:
        self._store[key].write(np.asarray(value, dtype=self.dtype)).result()

    def __getstate__(self):
        raise TypeError("TensorStoreArray is not sent between processes; send a VolumeRef")


class Volume:
    """An array placed in world coordinates (nm).

    Parameters
    ----------
    data : array-like, ([C, ...], Z, Y, X)
        Anything with ``shape``, ``dtype`` and numpy-style slicing.
    voxel_size : Coordinate or sequence of int
        Size of one voxel in nm, one value per spatial axis, all > 0.
    offset : Coordinate or sequence of int, optional
        World position of the first voxel in nm (a multiple of ``voxel_size``).
    axis_names : sequence of str, optional
        One name per axis of ``data``; defaults to ``c^i, z, y, x``.
    path : str, optional
        Where the image group lives on disk, for stored volumes.
    level : int
        The pyramid level of a stored volume (0 is full resolution).

    Raises
    ------
    VolumeError
        If the voxel size is missing, non-positive or does not fit ``data``.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((4, 10, 10), np.uint8), voxel_size=(40, 8, 8))
    >>> v.roi
    Roi(offset=(0, 0, 0), shape=(160, 80, 80))
    """

    def __init__(self, data, *, voxel_size, offset=None, axis_names=None, path=None, level: int = 0):
        if voxel_size is None:
            raise VolumeError("a voxel size is required (nm per voxel along z, y, x)")
        try:
            voxel_size = Coordinate(voxel_size)
        except TypeError as e:
            raise VolumeError(f"voxel size must be whole nanometres, got {voxel_size!r}") from e
        if any(v <= 0 for v in voxel_size):
            raise VolumeError(f"voxel size must be positive, got {tuple(voxel_size)}")
        spatial = len(voxel_size)
        if len(data.shape) < spatial:
            raise VolumeError(
                f"array of shape {tuple(data.shape)} has fewer axes than its voxel size "
                f"{tuple(voxel_size)} ({spatial} spatial axes expected)"
            )
        offset = Coordinate((0,) * spatial) if offset is None else Coordinate(offset)
        if len(offset) != spatial:
            raise VolumeError(f"offset {tuple(offset)} does not match voxel size {tuple(voxel_size)}")
        if not offset.is_multiple_of(voxel_size):
            raise VolumeError(f"offset {tuple(offset)} is not a multiple of voxel size {tuple(voxel_size)}")
        n_channel = len(data.shape) - spatial
        if axis_names is None:
            axis_names = tuple(f"c^{i}" if n_channel > 1 else "c" for i in range(n_channel)) + SPATIAL_NAMES[-spatial:]
        axis_names = tuple(axis_names)
        if len(axis_names) != len(data.shape):
            raise VolumeError(f"axis names {axis_names} do not match array shape {tuple(data.shape)}")
        self.data = data
        self.voxel_size = voxel_size
        self.offset = offset
        self.axis_names = axis_names
        self.path = None if path is None else str(path)
        self.level = int(level)

    # ----------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def n_channel_axes(self) -> int:
        return len(self.shape) - len(self.voxel_size)

    @property
    def spatial_shape(self) -> Coordinate:
        return Coordinate(self.shape[self.n_channel_axes:])

    @property
    def roi(self) -> Roi:
        """The world region covered, in nm."""
        return Roi(self.offset, self.spatial_shape * self.voxel_size)

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """Storage chunk shape in voxels (the inner chunk when sharded)."""
        return tuple(self.data.chunks) if hasattr(self.data, "chunks") and self.data.chunks else None

    @property
    def shards(self) -> tuple[int, ...] | None:
        """Shard shape in voxels, or None when the array is not sharded."""
        shards = getattr(self.data, "shards", None)
        return tuple(shards) if shards else None

    @property
    def write_unit(self) -> Coordinate | None:
        """The smallest spatial shape (nm) two writers may write independently."""
        unit = self.shards or self.chunks
        if unit is None:
            return None
        return Coordinate(unit[self.n_channel_axes:]) * self.voxel_size

    @property
    def name(self) -> str | None:
        return None if self.path is None else Path(self.path).name

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else " in memory"
        return (
            f"Volume(shape={self.shape}, dtype={self.dtype}, voxel_size={tuple(self.voxel_size)}, "
            f"offset={tuple(self.offset)}{where})"
        )

    # ----------------------------------------------------------------- access
    def _slices(self, roi: Roi) -> tuple[slice, ...]:
        return (slice(None),) * self.n_channel_axes + roi.shift(-self.offset).to_slices(self.voxel_size)

    def _check_roi(self, roi: Roi) -> None:
        if not isinstance(roi, Roi):
            raise TypeError(f"index a Volume with a Roi (nm), got {type(roi).__name__}")
        if not roi.is_aligned(self.voxel_size):
            raise RoiError(f"{roi} is not aligned to voxel size {tuple(self.voxel_size)}")

    def __getitem__(self, roi: Roi) -> np.ndarray:
        """Read ``roi`` (nm) as a numpy array; it must lie inside the volume."""
        self._check_roi(roi)
        if not self.roi.contains(roi):
            raise RoiError(f"{roi} lies outside the volume {self.roi}{self._where()}")
        return self._read(self._slices(roi), roi)

    def _where(self) -> str:
        return f" of {self.path}" if self.path else ""

    def _read(self, slices, roi) -> np.ndarray:
        try:
            return np.asarray(self.data[slices])
        except (RoiError, VolumeError):
            raise
        except Exception as e:  # a decoding failure deep in a codec
            if isinstance(self.data, np.ndarray):
                raise
            raise CorruptDataError(
                f"cannot read {roi}{self._where()}: stored data is corrupt or unreadable "
                f"({type(e).__name__}: {e})"
            ) from e

    def read(self, roi: Roi, *, fill_value=0) -> np.ndarray:
        """Read ``roi``, padding the part outside the volume with ``fill_value``."""
        self._check_roi(roi)
        inside = self.roi.intersect(roi)
        out_shape = self.shape[: self.n_channel_axes] + tuple(roi.shape // self.voxel_size)
        if inside == roi:
            return self[roi]
        out = np.full(out_shape, fill_value, dtype=self.dtype)
        if not inside.empty:
            dst = (slice(None),) * self.n_channel_axes + inside.shift(-roi.offset).to_slices(self.voxel_size)
            out[dst] = self[inside]
        return out

    def __setitem__(self, roi: Roi, value) -> None:
        """Write ``value`` into ``roi`` (nm), which must lie inside the volume."""
        self._check_roi(roi)
        if not self.roi.contains(roi):
            raise RoiError(f"cannot write {roi}: outside the volume {self.roi}{self._where()}")
        value = np.asarray(value)
        expected = self.shape[: self.n_channel_axes] + tuple(roi.shape // self.voxel_size)
        if value.shape != expected:
            raise VolumeError(f"cannot write an array of shape {value.shape} into {roi}: expected {expected}")
        self.data[self._slices(roi)] = value

    def crop(self, roi: Roi) -> "Volume":
        """An in-memory Volume of ``roi``."""
        return Volume(self[roi], voxel_size=self.voxel_size, offset=roi.offset, axis_names=self.axis_names)

    def to_numpy(self) -> np.ndarray:
        return self[self.roi]

    def ref(self) -> "VolumeRef":
        """A small, picklable description that reopens this volume elsewhere."""
        if self.path is None:
            raise VolumeError("an in-memory Volume has no reference; store it with create_volume() first")
        return VolumeRef(self.path, self.level)


@dataclass(frozen=True)
class VolumeRef:
    """Where a stored volume lives: what block tasks carry instead of data."""

    path: str
    level: int = 0

    def open(self, mode: str = "r", *, require_complete: bool = False) -> Volume:
        return open_volume(self.path, mode=mode, level=self.level, require_complete=require_complete)


# ---------------------------------------------------------------------- OME-Zarr I/O
def _ome_attrs(name, axis_names, voxel_sizes, offset, units="nanometer"):
    axes = []
    for a in axis_names:
        if a in SPATIAL_NAMES:
            axes.append({"name": a, "type": "space", "unit": units})
        else:
            axes.append({"name": a, "type": "channel"})
    n_channel = len(axis_names) - len(offset)
    datasets = []
    for level, vs in enumerate(voxel_sizes):
        # OME-Zarr scales cover every axis; channels get 1.
        datasets.append(
            {
                "path": f"s{level}",
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0] * n_channel + [float(v) for v in vs]},
                    {"type": "translation", "translation": [0.0] * n_channel + [float(o) for o in offset]},
                ],
            }
        )
    return {"version": "0.5", "multiscales": [{"name": name, "axes": axes, "datasets": datasets}]}


def _open_group(path: str, mode: str):
    import zarr

    try:
        return zarr.open_group(path, mode=mode)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError if hasattr(zarr.errors, "GroupNotFoundError") else FileNotFoundError) as e:
        raise VolumeNotFoundError(f"no OME-Zarr image at {path}") from e


def write_token(vol: Volume):
    """What changes when a stored array is written anew: ``[engine token, metadata mtime]``.

    The block engine leaves a token on every array it writes; the mtime of the
    level's ``zarr.json`` also catches arrays written some other way (imports, the
    generator). Stages put it in their configuration so that a rewritten input
    re-runs them. ``None`` for an in-memory Volume.
    """
    import zarr

    if vol.path is None:
        return None
    token = zarr.open_group(str(vol.path), mode="r").attrs.get("connectomix", {}).get("token")
    try:
        stamp = os.stat(Path(vol.path) / f"s{vol.level}" / "zarr.json").st_mtime_ns
    except OSError:
        stamp = None
    return [token, stamp]


def open_volume(path, *, mode: str = "r", level: int = 0, require_complete: bool = True) -> Volume:
    """Open a stored OME-Zarr image as a :class:`Volume`.

    Parameters
    ----------
    path : str or Path
        The image group, e.g. ``run/volume.zarr/raw``.
    mode : {'r', 'r+'}
        Read only, or read and write.
    level : int
        Pyramid level (0 is full resolution).
    require_complete : bool
        Refuse an array whose writing job has not finished.

    Raises
    ------
    VolumeNotFoundError
        If there is no image at ``path``.
    VolumeError
        If the image lacks voxel sizes (OME ``scale``).
    IncompleteVolumeError
        If ``require_complete`` and the writing job did not finish.
    """
    import zarr

    path = str(path)
    if not os.path.exists(os.path.join(path, "zarr.json")):
        raise VolumeNotFoundError(f"no array at {path}")
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as e:
        raise VolumeError(f"{path} is not a zarr v3 group: {e}") from e
    attrs = group.attrs.asdict()
    ome = attrs.get("ome")
    if not ome or not ome.get("multiscales"):
        raise VolumeError(f"{path} has no OME-Zarr 'multiscales' metadata, so its voxel size is unknown")
    ms = ome["multiscales"][0]
    if level >= len(ms["datasets"]):
        raise VolumeNotFoundError(f"{path} has {len(ms['datasets'])} levels; level {level} does not exist")
    ds = ms["datasets"][level]
    scale = translation = None
    for t in ds.get("coordinateTransformations", []):
        if t["type"] == "scale":
            scale = t["scale"]
        elif t["type"] == "translation":
            translation = t["translation"]
    if scale is None:
        raise VolumeError(f"{path} level {level} has no voxel size (OME 'scale')")
    axis_names = [a["name"] for a in ms["axes"]]
    n_spatial = sum(1 for a in ms["axes"] if a.get("type") == "space")
    voxel_size = [_as_int_nm(v, path) for v in scale[-n_spatial:]]
    offset = [_as_int_nm(v, path) for v in (translation or [0] * len(scale))[-n_spatial:]]
    meta = attrs.get("connectomix", {})
    if require_complete and not meta.get("complete", True):
        raise IncompleteVolumeError(
            f"array {path} is incomplete: the job that writes it ({meta.get('task', 'unknown')}) "
            "did not finish; re-run that step to complete it"
        )
    try:
        array_path = os.path.join(path, ds["path"])
        if IO_BACKEND == "tensorstore":
            array = TensorStoreArray(array_path, mode)
        else:
            array = zarr.open_array(array_path, mode=mode)
    except Exception as e:
        raise CorruptDataError(f"cannot open level {level} of {path}: {e}") from e
    return Volume(array, voxel_size=voxel_size, offset=offset, axis_names=axis_names, path=path, level=level)


def _as_int_nm(v, path) -> int:
    if float(v) != int(float(v)):
        raise VolumeError(f"{path}: voxel size/offset {v} nm is not a whole number of nanometres")
    return int(float(v))


def create_volume(
    path,
    *,
    shape: Sequence[int],
    dtype,
    voxel_size: Sequence[int],
    offset: Sequence[int] | None = None,
    axis_names: Sequence[str] | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    levels: int = 1,
    downsample: Sequence[int] | None = None,
    fill_value: Any = 0,
    compression: dict | None = None,
    complete: bool = True,
    task: str | None = None,
    attrs: dict | None = None,
    overwrite: bool = False,
) -> Volume:
    """Create an empty OME-Zarr image and return level 0 as a writable Volume.

    Parameters
    ----------
    path : str or Path
        Where the image group goes, e.g. ``run/volume.zarr/raw``.
    shape : sequence of int
        Full array shape in voxels, channels first.
    dtype : numpy dtype
    voxel_size, offset : sequence of int
        In nm, spatial axes only.
    chunks : sequence of int, optional
        Storage chunk in voxels (spatial only, or full); default 64^3-ish, clipped.
    shards : sequence of int, optional
        Shard shape in voxels (a multiple of ``chunks``); None disables sharding.
    levels : int
        Number of pyramid levels to create (filled later by ``io.write_pyramid``).
    downsample : sequence of int, optional
        Factor between levels per spatial axis; default 1 along z, 2 in-plane.
    complete : bool
        False marks the array as being written by ``task`` until
        :func:`mark_complete` is called.

    Raises
    ------
    VolumeError
        For a non-positive shape or voxel size, or mismatching lengths.
    """
    import zarr
    from zarr.codecs import BloscCodec

    path = str(path)
    shape = tuple(int(s) for s in shape)
    vs = Coordinate(voxel_size) if voxel_size is not None else None
    if vs is None:
        raise VolumeError(f"cannot create {path}: a voxel size is required")
    if any(v <= 0 for v in vs):
        raise VolumeError(f"cannot create {path}: voxel size must be positive, got {tuple(vs)}")
    n_spatial = len(vs)
    if len(shape) < n_spatial or any(s <= 0 for s in shape):
        raise VolumeError(f"cannot create {path}: invalid shape {shape} for voxel size {tuple(vs)}")
    offset = Coordinate(offset) if offset is not None else Coordinate((0,) * n_spatial)
    n_channel = len(shape) - n_spatial
    if axis_names is None:
        axis_names = tuple(f"c^{i}" if n_channel > 1 else "c" for i in range(n_channel)) + SPATIAL_NAMES[-n_spatial:]
    spatial_shape = shape[n_channel:]
    if chunks is None:
        chunks = tuple(min(s, c) for s, c in zip(spatial_shape, (32, 128, 128)[-n_spatial:]))
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) == n_spatial:
        chunks = tuple(shape[:n_channel]) + chunks
    if shards is not None:
        shards = tuple(int(s) for s in shards)
        if len(shards) == n_spatial:
            shards = tuple(shape[:n_channel]) + shards
        if any(s % c for s, c in zip(shards, chunks)):
            raise VolumeError(f"cannot create {path}: shard shape {shards} is not a multiple of chunks {chunks}")
    factor = Coordinate(downsample) if downsample is not None else Coordinate((1,) + (2,) * (n_spatial - 1))
    comp = dict(DEFAULT_COMPRESSION if compression is None else compression)
    codec = BloscCodec(**comp) if comp else None

    voxel_sizes = [vs * Coordinate(tuple(f**lvl for f in factor)) for lvl in range(levels)]
    if os.path.exists(path):
        if not overwrite:
            raise VolumeError(f"cannot create {path}: it already exists")
        shutil.rmtree(path)
    group = zarr.open_group(path, mode="w")
    meta = {"complete": bool(complete), "downsample": list(factor)}
    if task:
        meta["task"] = task
    all_attrs = {"ome": _ome_attrs(Path(path).name, axis_names, voxel_sizes, offset), "connectomix": meta}
    if attrs:
        all_attrs.update(attrs)
    group.attrs.update(all_attrs)
    lvl_shape = shape
    arrays = []
    for lvl in range(levels):
        if lvl:
            lvl_shape = tuple(shape[:n_channel]) + tuple(
                max(1, -(-s // f)) for s, f in zip(lvl_shape[n_channel:], factor)
            )
        lvl_chunks = tuple(min(c, s) for c, s in zip(chunks, lvl_shape))
        lvl_shards = None
        if shards is not None:
            lvl_shards = tuple(min(s, -(-n // c) * c) for s, n, c in zip(shards, lvl_shape, lvl_chunks))
            lvl_shards = tuple(max(c, (s // c) * c) for s, c in zip(lvl_shards, lvl_chunks))
        arrays.append(
            group.create_array(
                f"s{lvl}",
                shape=lvl_shape,
                chunks=lvl_chunks,
                shards=lvl_shards,
                dtype=np.dtype(dtype),
                compressors=[codec] if codec else None,
                fill_value=fill_value,
                dimension_names=list(axis_names),
            )
        )
    data = TensorStoreArray(os.path.join(path, "s0"), "r+") if IO_BACKEND == "tensorstore" else arrays[0]
    return Volume(data, voxel_size=vs, offset=offset, axis_names=axis_names, path=path)


def _set_meta(path, **changes) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    meta = dict(group.attrs.get("connectomix", {}))
    meta.update(changes)
    group.attrs["connectomix"] = meta


def mark_complete(path, complete: bool = True) -> None:
    """Flag a stored image as completely written (or not)."""
    _set_meta(path, complete=bool(complete))


def is_complete(path) -> bool:
    """Whether the stored image at ``path`` was completely written."""
    with open(os.path.join(str(path), "zarr.json")) as f:
        meta = json.load(f).get("attributes", {}).get("connectomix", {})
    return bool(meta.get("complete", True))
