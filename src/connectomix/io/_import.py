"""Import an input volume into a run's OME-Zarr store, block by block.

Everything that can be checked before writing is checked first (the input exists and
is a readable 3D volume of a known format, the voxel size is known and positive, the
target array fits), so a bad input creates nothing. The copy then runs through the
block engine: each block reads one slab of whole output shards (or chunks) from the
lazy input and writes it, so memory is bounded by the block, not the volume. Float
input is checked for NaN and infinity in each block; any failure removes the array
(and a run directory this call made). An interruption (Ctrl-C, a killed process)
keeps the partial array flagged incomplete, and importing again resumes it.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from ..blockwise import Input, run_blockwise
from ..errors import BlockError, ConnectomixError, InputFormatError, VolumeError
from ..geometry import Coordinate
from ..run import Run
from ..volume import Volume, create_volume, open_volume
from ._common import BLOCK_BYTES, SECTION_BLOCK_BYTES, blocks_dir, forget_open, n_blocks, n_levels, slab_block_shape
from ._pyramid import _offset_progress, pyramid_plan, write_pyramid
from ._sources import InputSource, Native, input_source

__all__ = ["import_volume"]

_MARKER = ".connectomix-run"


def import_volume(
    input,
    run,
    *,
    voxel_size: Sequence[int] | None = None,
    offset: Sequence[int] | None = None,
    name: str = "raw",
    dataset: str | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    pyramid_levels: int = 1,
    kind: Literal["image", "labels"] = "image",
    overwrite: bool = False,
    scheduler="synchronous",
    workers: int = 1,
    on_block_done: Callable[[int, int], None] | None = None,
) -> Volume:
    """Copy an input volume into ``RUN/volume.zarr/<name>``, block-wise.

    Parameters
    ----------
    input : str or Path or InputSource
        A multi-page TIFF, a folder of 2D TIFF/PNG sections (natural order: sec2
        before sec10), an HDF5 dataset (``file.h5:/path``), a ``.npy`` file, an MRC
        file, a local neuroglancer precomputed folder, or a zarr / OME-Zarr array or
        image (v2 or v3). The format follows from the extension, then the content.
    run : Run or str or Path
        The run directory; a path that is not a run yet is made into one.
    voxel_size : sequence of 3 int, optional
        nm per voxel along z, y, x. Required unless the input says it (OME-Zarr
        scale, precomputed resolution, HDF5 ``resolution``, ImageJ/connectomix TIFF
        metadata, MRC header); when given it wins.
    offset : sequence of 3 int, optional
        World position of the first voxel, nm; default the input's own, else 0.
    name : str
        The array to write.
    dataset : str, optional
        Dataset inside an HDF5 file or zarr group, instead of ``file.h5:/path``.
    chunks, shards : sequence of int, optional
        Storage layout of the new array (voxels, z, y, x); see ``create_volume``.
    pyramid_levels : int
        Levels to write (1: full resolution only); levels s1.. are filled with
        :func:`write_pyramid`.
    kind : {'image', 'labels'}
        How pyramid levels downsample (mean, or label mode).
    overwrite : bool
        Replace an existing array ``name``. Without it, an existing array of the same
        shape, type and geometry is written into (an interrupted import resumes);
        one that differs is an error.
    scheduler, workers, on_block_done
        As for :func:`connectomix.blockwise.run_blockwise`; ``on_block_done`` counts
        the blocks of the copy and of every pyramid level together.

    Returns
    -------
    Volume
        The imported array, complete, opened read-only.

    Raises
    ------
    VolumeNotFoundError
        If the input, or the dataset named inside it, does not exist.
    InputFormatError
        If the format is unsupported or the file cannot be read as its format.
    VolumeError
        For a 2D or empty input, a missing or non-positive voxel size, NaN or
        infinity in float input, sections of different shapes, or an existing array
        of another shape.
    """
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise VolumeError(f"invalid array name {name!r}: use letters, digits, _ and -")
    if kind not in ("image", "labels"):
        raise VolumeError(f"kind must be 'image' or 'labels', got {kind!r}")
    if isinstance(pyramid_levels, bool) or not isinstance(pyramid_levels, (int, np.integer)) or pyramid_levels < 1:
        raise VolumeError(f"pyramid_levels must be a positive integer, got {pyramid_levels!r}")

    # ---- check everything that can be checked before anything is written
    source = input if isinstance(input, InputSource) else input_source(input, dataset=dataset)
    desc = source.describe()
    array, native = source.probe()
    try:
        shape, dtype = tuple(int(s) for s in array.shape), _native_dtype(array.dtype)
    finally:
        if hasattr(array, "close"):
            array.close()
    _check_array(desc, shape, dtype, native)
    vs = _resolve_voxel_size(desc, voxel_size, native)
    off = _resolve_offset(desc, offset, native, vs)
    if pyramid_levels > 1:
        _check_pyramid_offset(desc, vs, off, pyramid_levels)
    source = source.placed(vs, off)
    chunks = _check_layout("chunks", chunks, len(shape))
    shards = _check_layout("shards", shards, len(shape))

    handle = _RunHandle(run)
    path = handle.volume_path(name)
    existing = (path / "zarr.json").exists()
    if existing and not overwrite:
        _check_existing(desc, handle, name, path, shape, dtype, vs, off, pyramid_levels)

    task = f"import-{name}"
    touched = False
    forget_open(path, source.path)
    try:
        run_obj = handle.ensure()
        if existing and not overwrite:
            out = open_volume(path, mode="r+", require_complete=False)
        else:
            touched = True
            shutil.rmtree(blocks_dir(run_obj.path, task), ignore_errors=True)
            out = create_volume(
                path, shape=shape, dtype=dtype, voxel_size=vs, offset=off,
                axis_names=native.axis_names, chunks=chunks, shards=shards,
                levels=pyramid_levels, complete=False, task=task, overwrite=overwrite,
                attrs={"source": {"input": desc, "format": source.format}},
            )
        block_shape = slab_block_shape(out, target_bytes=SECTION_BLOCK_BYTES if source.whole_sections else BLOCK_BYTES)
        plan = pyramid_plan(out, pyramid_levels) if pyramid_levels > 1 else []
        n_copy = n_blocks(out.roi, block_shape)
        total = n_copy + sum(p[3] for p in plan)
        progress = None
        if on_block_done is not None:
            progress = functools.partial(_offset_progress, on_block_done, 0, total)
        touched = True
        run_blockwise(
            functools.partial(_copy_block, desc=desc, origin=tuple(off)),
            task=task,
            inputs={"src": Input(source)},
            outputs={"out": out},
            block_shape=block_shape,
            run_dir=run_obj.path,
            scheduler=scheduler,
            workers=workers,
            config={"input": repr(source), "fingerprint": source.fingerprint(), "dtype": dtype.str},
            on_block_done=progress,
        )
        if plan:
            if on_block_done is not None:
                progress = functools.partial(_offset_progress, on_block_done, n_copy, total)
            write_pyramid(
                out, levels=pyramid_levels, kind=kind, scheduler=scheduler, workers=workers,
                on_block_done=progress, run_dir=run_obj.path,
            )
    except Exception as e:
        forget_open(path, source.path)
        if touched:
            _remove_array(path, handle, name)
        handle.rollback()
        cause = e.__cause__
        if isinstance(e, BlockError) and isinstance(cause, ConnectomixError) and not isinstance(cause, BlockError):
            if desc not in str(cause):  # e.g. a page that cannot be decoded: say which input
                cause = type(cause)(f"cannot import {desc}: {cause}")
            raise cause from None  # the block's own clear message, without the engine's wrapper
        raise
    forget_open(source.path)  # close the input files this process opened
    return open_volume(path)


def _copy_block(block, inputs, *, desc: str, origin):
    src = inputs["src"]
    data = src.data
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            bad = ~finite
            first = np.argwhere(bad)[0][-3:]
            start = (src.offset - Coordinate(origin)) // src.voxel_size
            at = tuple(int(s + f) for s, f in zip(start, first))
            raise VolumeError(
                f"{desc} contains {int(bad.sum())} NaN or infinite value(s) in sections "
                f"{start[0]}-{start[0] + data.shape[-3] - 1} (first at voxel z={at[0]}, y={at[1]}, x={at[2]}); "
                "float input must be finite: replace them (e.g. numpy.nan_to_num) before importing"
            )
    return {"out": data}


# ------------------------------------------------------------------------ checks
def _native_dtype(dtype) -> np.dtype:
    """The stored type: native byte order, plain numpy name (``uint64``, not ``ulonglong``)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "uifb":
        dtype = dtype.newbyteorder("=")
    return np.dtype(dtype.str)


def _check_array(desc: str, shape, dtype: np.dtype, native: Native) -> None:
    n_ch = native.n_channel
    if len(shape) == 2:
        raise VolumeError(
            f"{desc} is a 2D image of shape {shape}; a 3D volume (z, y, x) is needed: use a "
            "stack of sections (a folder, a multi-page TIFF or a 3D array)"
        )
    if len(shape) - n_ch != 3:
        expected = "(c, z, y, x)" if n_ch else "(z, y, x)"
        raise VolumeError(f"{desc} has shape {shape}; expected a 3D volume {expected}")
    if any(s == 0 for s in shape):
        raise VolumeError(f"{desc} is empty (shape {shape})")
    if dtype.kind not in "uifb" or dtype.itemsize > 8:
        raise InputFormatError(
            f"{desc} holds {dtype} values; connectomix imports integer, float or boolean voxels"
        )


def _triplet(values, what: str, desc: str) -> tuple[int, int, int]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise VolumeError(f"{what} for {desc} must be three numbers (z, y, x) in nm, got {values!r}")
    vals = list(values)
    if len(vals) != 3:
        raise VolumeError(f"{what} for {desc} must be three numbers (z, y, x) in nm, got {tuple(vals)}")
    out = []
    for v in vals:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise VolumeError(f"{what} for {desc} must be numbers, got {tuple(vals)}") from None
        if not math.isfinite(f) or f != int(f):
            raise VolumeError(f"{what} for {desc} must be whole nanometres, got {tuple(vals)}")
        out.append(int(f))
    return tuple(out)


def _resolve_voxel_size(desc: str, voxel_size, native: Native) -> Coordinate:
    if voxel_size is None:
        if native.voxel_size is None:
            why = f" ({native.note})" if native.note else ""
            raise VolumeError(
                f"no voxel size for {desc}{why}: give it as voxel_size=(z, y, x) in nm "
                "(--voxel-size Z Y X)"
            )
        return Coordinate(native.voxel_size)
    vs = _triplet(voxel_size, "the voxel size", desc)
    if any(v <= 0 for v in vs):
        raise VolumeError(f"the voxel size for {desc} must be positive, got {vs} nm")
    return Coordinate(vs)


def _resolve_offset(desc: str, offset, native: Native, vs: Coordinate) -> Coordinate:
    if offset is None:
        off = Coordinate(native.offset) if native.offset is not None else Coordinate(0, 0, 0)
        nvs = None if native.voxel_size is None else Coordinate(native.voxel_size)
        if native.offset is not None and nvs is not None and nvs != vs and off.is_multiple_of(nvs):
            off = off // nvs * vs  # a given voxel size keeps the file's offset in voxels
    else:
        off = Coordinate(_triplet(offset, "the offset", desc))
    if not off.is_multiple_of(vs):
        raise VolumeError(f"the offset {tuple(off)} nm of {desc} is not a multiple of its voxel size {tuple(vs)} nm")
    return off


def _check_pyramid_offset(desc, vs, off, levels) -> None:
    top = vs * Coordinate(1, 2 ** (levels - 1), 2 ** (levels - 1))
    if not off.is_multiple_of(top):
        raise VolumeError(
            f"cannot build {levels} pyramid levels for {desc}: its offset {tuple(off)} nm is not a "
            f"multiple of the coarsest voxel size {tuple(top)} nm"
        )


def _check_layout(what: str, values, ndim: int):
    if values is None:
        return None
    vals = tuple(values)
    if len(vals) not in (3, ndim) or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0 for v in vals
    ):
        raise VolumeError(f"{what} must be 3 positive integers (z, y, x voxels), got {vals}")
    return tuple(int(v) for v in vals)


def _check_existing(desc, handle, name, path, shape, dtype, vs, off, levels) -> None:
    try:
        cur = open_volume(path, require_complete=False)
    except ConnectomixError as e:
        raise VolumeError(
            f"run {handle.path} already has an array '{name}' that cannot be opened ({e}); "
            "pass overwrite=True (--overwrite) to replace it"
        ) from e
    have = (cur.shape, cur.dtype, tuple(cur.voxel_size), tuple(cur.offset), n_levels(path))
    want = (shape, dtype, tuple(vs), tuple(off), levels)
    if have != want:
        raise VolumeError(
            f"cannot import {desc} into array '{name}' of run {handle.path}: it already holds "
            f"shape {cur.shape} {cur.dtype}, voxel size {tuple(cur.voxel_size)}, offset "
            f"{tuple(cur.offset)}, {have[4]} level(s); the input is shape {shape} {dtype}, voxel size "
            f"{tuple(vs)}, offset {tuple(off)}, {levels} level(s). Pass overwrite=True (--overwrite) "
            "to replace it, or import under another name"
        )


def _remove_array(path: Path, handle: "_RunHandle", name: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if handle.run is not None:
        root = handle.run.path / ".blocks"
        if root.is_dir():
            for d in root.iterdir():
                if d.name == f"import-{name}" or d.name.startswith(f"pyramid-{name}-s"):
                    shutil.rmtree(d, ignore_errors=True)


class _RunHandle:
    """The target run: opened when it exists, made on first write, undone on failure."""

    def __init__(self, run):
        self.run: Run | None = None
        self._before: set[str] | None = None  # entries of an existing folder made into a run
        self._made_dir = False
        if isinstance(run, Run):
            self.run = run
            self.path = run.path
        else:
            self.path = Path(run)
            if (self.path / _MARKER).exists():
                self.run = Run(self.path)

    def volume_path(self, name: str) -> Path:
        return self.path / "volume.zarr" / name

    def ensure(self) -> Run:
        if self.run is None:
            existed = self.path.exists()
            before = set(os.listdir(self.path)) if existed and self.path.is_dir() else set()
            self.run = Run.create(self.path)
            if existed:
                self._before = before
            else:
                self._made_dir = True
        return self.run

    def rollback(self) -> None:
        """Remove what :meth:`ensure` made, so a failed import leaves no run behind."""
        if self._made_dir:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self._before is not None and self.path.is_dir():
            for n in os.listdir(self.path):
                if n not in self._before:
                    p = self.path / n
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink(missing_ok=True)
