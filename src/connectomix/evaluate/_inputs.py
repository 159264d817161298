"""Input checks shared by the metrics: label volumes, point arrays and tables.

Every public metric converts its inputs here, once, at the boundary, so that bad
input fails with one message that names the argument and says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..errors import TableFormatError, VolumeError
from ..volume import Volume

__all__: list[str] = []

#: Voxels read per step when streaming label volumes (2**23: 64 MB of uint64).
DEFAULT_CHUNK_VOXELS = 2**23


@dataclass(frozen=True)
class LabelSource:
    """A checked label volume: an array-like read in slabs, never all at once.

    ``data`` supports numpy slicing (numpy, zarr, h5py, dask); ``voxel_size`` and
    ``offset`` are set when the input was a :class:`~connectomix.volume.Volume`.
    """

    name: str
    data: Any
    shape: tuple[int, ...]
    dtype: np.dtype
    voxel_size: tuple[int, ...] | None = None
    offset: tuple[int, ...] | None = None


def label_source(labels, name: str) -> LabelSource:
    """Check one label volume: integer dtype, at least one voxel, no channel axis.

    Parameters
    ----------
    labels : numpy.ndarray, Volume or array-like
        An array-like needs ``shape``, ``dtype`` and numpy slicing (zarr, h5py, dask).
    name : str
        The argument's name, used in error messages.

    Raises
    ------
    VolumeError
        For a non-integer dtype, no voxels, or a Volume with channel axes.
    TypeError
        For anything that is not array-like.
    """
    voxel_size = offset = None
    if isinstance(labels, Volume):
        if labels.n_channel_axes:
            raise VolumeError(
                f"{name} must be a label volume without channel axes, got a Volume of shape "
                f"{labels.shape} with axes {labels.axis_names}"
            )
        voxel_size, offset = tuple(labels.voxel_size), tuple(labels.offset)
        data = labels.data
    else:
        data = labels
    if not (hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__")):
        raise TypeError(
            f"{name} must be a numpy array, a Volume or an array-like with shape, dtype and "
            f"slicing (zarr, h5py, dask), got {type(labels).__name__}"
        )
    shape = tuple(int(s) for s in data.shape)
    dtype = np.dtype(data.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise VolumeError(
            f"{name} must hold integer labels, got dtype {dtype} (shape {shape}); "
            "cast a float label array with .astype(np.uint64) after checking it is integral"
        )
    if len(shape) == 0:
        raise VolumeError(f"{name} must have at least one axis, got a 0-d array")
    if int(np.prod(shape, dtype=np.int64)) == 0:
        raise VolumeError(f"{name} is empty (shape {shape}): there is nothing to score")
    return LabelSource(name, data, shape, dtype, voxel_size, offset)


def label_pair(pred_labels, gt_labels) -> tuple[LabelSource, LabelSource]:
    """Check two label volumes that are scored against each other.

    Raises
    ------
    VolumeError
        If either is invalid, their shapes differ, or (for two Volumes) their voxel
        sizes or offsets differ.
    """
    pred = label_source(pred_labels, "pred_labels")
    gt = label_source(gt_labels, "gt_labels")
    if pred.shape != gt.shape:
        raise VolumeError(
            f"pred_labels and gt_labels must have the same shape, got {pred.shape} and {gt.shape}"
        )
    if pred.voxel_size is not None and gt.voxel_size is not None:
        if pred.voxel_size != gt.voxel_size or pred.offset != gt.offset:
            raise VolumeError(
                f"pred_labels (voxel size {pred.voxel_size}, offset {pred.offset}) and gt_labels "
                f"(voxel size {gt.voxel_size}, offset {gt.offset}) are not on the same grid; "
                "crop both to their common Roi first"
            )
    return pred, gt


def slabs(shape: tuple[int, ...], chunk_voxels: int) -> Iterator[tuple[slice | int, ...]]:
    """Index tuples that cover ``shape`` in C order, each about ``chunk_voxels`` voxels.

    The leading axes are split until one slab of the remaining axes fits, so a
    (1, 10000, 10000) image is read row block by row block, not as one piece.
    """
    if chunk_voxels < 1:
        raise ValueError(f"chunk_voxels must be >= 1, got {chunk_voxels}")
    k = 0  # the axis along which slabs are cut
    while k < len(shape) - 1 and int(np.prod(shape[k + 1 :], dtype=np.int64)) > chunk_voxels:
        k += 1
    inner = int(np.prod(shape[k + 1 :], dtype=np.int64))
    step = max(1, chunk_voxels // inner)
    for lead in np.ndindex(*shape[:k]):
        for start in range(0, shape[k], step):
            yield tuple(int(i) for i in lead) + (slice(start, min(start + step, shape[k])),)


def read_flat(source: LabelSource, index) -> np.ndarray:
    """Read ``source[index]`` as a flat, non-negative integer numpy array.

    Raises
    ------
    VolumeError
        If a signed label array holds negative values.
    """
    block = np.asarray(source.data[index])
    if block.dtype == np.bool_:
        block = block.view(np.uint8)
    block = block.reshape(-1)
    if np.issubdtype(block.dtype, np.signedinteger) and block.size and block.min() < 0:
        raise VolumeError(
            f"{source.name} holds negative labels (minimum {block.min()} in {_where(index)}); "
            "labels must be >= 0, with 0 meaning 'no object'"
        )
    return block


def _where(index) -> str:
    parts = [f"{i.start}:{i.stop}" if isinstance(i, slice) else str(i) for i in index]
    return "[" + ", ".join(parts) + "]"


def as_uint64(values: np.ndarray) -> np.ndarray:
    """Non-negative integer labels as uint64 (no copy when already uint64)."""
    return values.astype(np.uint64, copy=False)


def check_voxel_size(voxel_size, ndim: int, name: str = "voxel_size") -> np.ndarray:
    """Voxel size (nm per voxel, one positive value per axis) as a float array."""
    if voxel_size is None:
        raise VolumeError(f"{name} is required (nm per voxel along each of the {ndim} axes)")
    vs = np.asarray(voxel_size, dtype=np.float64).reshape(-1)
    if vs.size != ndim or not np.all(np.isfinite(vs)) or np.any(vs <= 0):
        raise VolumeError(f"{name} must be {ndim} positive numbers (nm), got {voxel_size!r}")
    return vs


def points(values, name: str, *, dims: int | None = None) -> np.ndarray:
    """An (N, D) array of finite coordinates in nm.

    Raises
    ------
    VolumeError
        If the array is not 2-D, has the wrong number of columns, or holds NaN/inf.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or (dims is not None and arr.shape[1] != dims):
        want = f"(N, {dims})" if dims is not None else "(N, D)"
        raise VolumeError(f"{name} must be an array of shape {want} (nm), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise VolumeError(f"{name} holds {int((~np.isfinite(arr)).any(axis=1).sum())} points with NaN or inf")
    return arr


def table(df, name: str, columns: tuple[str, ...]):
    """Check that ``df`` is a DataFrame with ``columns`` (extra columns are fine).

    Coordinates (z, y, x) must be finite and id columns non-negative integers.

    Raises
    ------
    TableFormatError
        Naming the table and the missing or bad columns.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TableFormatError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise TableFormatError(
            f"{name} lacks column(s) {missing}; it has {list(df.columns)} (expected at least {list(columns)})"
        )
    for c in columns:
        col = df[c]
        if c in ("z", "y", "x"):
            if not pd.api.types.is_numeric_dtype(col) or not np.all(np.isfinite(col.to_numpy(np.float64))):
                raise TableFormatError(f"{name}.{c} must hold finite coordinates in nm")
        elif c.endswith("_id") or c == "n_synapses":
            if not pd.api.types.is_integer_dtype(col):
                raise TableFormatError(f"{name}.{c} must be an integer column, got dtype {col.dtype}")
            if len(col) and pd.api.types.is_signed_integer_dtype(col) and col.min() < 0:
                raise TableFormatError(f"{name}.{c} holds negative ids (minimum {col.min()})")
    return df
