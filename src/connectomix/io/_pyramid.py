"""Multiscale pyramids: fill levels s1, s2, ... of a stored image from the level above.

The kernel :func:`downsample` works on numpy arrays; :func:`write_pyramid` runs it
block by block through the block engine, one level after the other, each level read
from the one before.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from ..blockwise import Input, run_blockwise
from ..errors import VolumeError
from ..geometry import Coordinate
from ..volume import Volume, VolumeRef, open_volume
from ._common import downsample_factor, forget_open, n_blocks, n_levels, open_level, slab_block_shape

__all__ = ["downsample", "write_pyramid"]


def downsample(
    array: np.ndarray,
    factor,
    *,
    kind: Literal["image", "labels"] = "image",
    method: Literal["mode", "pick"] = "mode",
) -> np.ndarray:
    """Downsample the trailing ``len(factor)`` axes of ``array`` by whole factors.

    Parameters
    ----------
    array : ndarray, ([C, ...], Z, Y, X)
    factor : sequence of int
        Factor per spatial axis, e.g. ``(1, 2, 2)``.
    kind : {'image', 'labels'}
        ``image`` averages each window (rounded back to integer types); ``labels``
        keeps a label that occurs in the window (see ``method``).
    method : {'mode', 'pick'}
        For labels: the most frequent label of the window (ties go to the first in C
        order), or the window's first voxel (strided pick, fastest).

    Returns
    -------
    ndarray, same dtype, spatial shape ``ceil(shape / factor)``.

    Notes
    -----
    Windows cut off by the far border hold fewer voxels; the mean and the mode use only
    the voxels that exist. Cost is O(n) for the mean and pick and O(n k) for the mode,
    with k voxels per window.
    """
    factor = tuple(int(f) for f in factor)
    if any(f < 1 for f in factor) or len(factor) > array.ndim:
        raise VolumeError(f"invalid downsampling factor {factor} for an array of shape {array.shape}")
    if kind not in ("image", "labels"):
        raise VolumeError(f"kind must be 'image' or 'labels', got {kind!r}")
    if kind == "labels" and method not in ("mode", "pick"):
        raise VolumeError(f"label method must be 'mode' or 'pick', got {method!r}")
    n_ch = array.ndim - len(factor)
    if all(f == 1 for f in factor):
        return array.copy()
    if kind == "labels" and method == "pick":
        return np.ascontiguousarray(array[(Ellipsis,) + tuple(slice(None, None, f) for f in factor)])
    spatial = array.shape[n_ch:]
    out_shape = tuple(-(-s // f) for s, f in zip(spatial, factor))
    pad = [(0, 0)] * n_ch + [(0, o * f - s) for o, f, s in zip(out_shape, factor, spatial)]
    padded = any(p[1] for p in pad)
    split = array.shape[:n_ch] + tuple(x for o, f in zip(out_shape, factor) for x in (o, f))
    if kind == "image":
        a = np.pad(array, pad) if padded else array
        acc = np.float64 if array.dtype.itemsize > 2 else np.float32
        axes = tuple(n_ch + 2 * i + 1 for i in range(len(factor)))
        total = a.reshape(split).sum(axis=axes, dtype=acc)
        counts = functools.reduce(
            np.multiply.outer,
            [np.minimum(f, s - np.arange(o) * f) for o, f, s in zip(out_shape, factor, spatial)],
        )
        mean = total / counts.astype(acc)
        if array.dtype == bool:
            return mean >= 0.5
        if np.issubdtype(array.dtype, np.integer):
            info = np.iinfo(array.dtype)
            return np.clip(np.rint(mean), info.min, info.max).astype(array.dtype)
        return mean.astype(array.dtype)
    # labels, mode: gather each window into a trailing axis of k values
    a = np.pad(array, pad, mode="edge") if padded else array
    valid = np.pad(np.ones(spatial, bool), pad[n_ch:]) if padded else np.ones(
        tuple(o * f for o, f in zip(out_shape, factor)), bool
    )
    k = math.prod(factor)
    order = tuple(range(n_ch)) + tuple(n_ch + 2 * i for i in range(len(factor))) + tuple(
        n_ch + 2 * i + 1 for i in range(len(factor))
    )
    windows = a.reshape(split).transpose(order).reshape(array.shape[:n_ch] + out_shape + (k,))
    vsplit = tuple(x for o, f in zip(out_shape, factor) for x in (o, f))
    vorder = tuple(2 * i for i in range(len(factor))) + tuple(2 * i + 1 for i in range(len(factor)))
    vwin = valid.reshape(vsplit).transpose(vorder).reshape(out_shape + (k,))
    counts = np.zeros(windows.shape, np.int16)
    for j in range(k):
        counts += (windows == windows[..., j : j + 1]) & vwin[..., j : j + 1]
    counts = np.where(vwin, counts, -1)
    best = counts.argmax(axis=-1)
    return np.take_along_axis(windows, best[..., None], axis=-1)[..., 0]


def _downsample_block(block, inputs, *, factor, kind, method):
    return {"out": downsample(inputs["src"].data, factor, kind=kind, method=method)}


def pyramid_plan(volume: Volume, levels: int | None) -> list[tuple[int, Volume, Coordinate, int]]:
    """Check a pyramid can be built and list (level, output, block shape, n blocks)."""
    path = volume.path
    if path is None:
        raise VolumeError("write_pyramid needs a stored volume (made with create_volume), not an in-memory one")
    have = n_levels(path)
    levels = have if levels is None else levels
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise VolumeError(f"levels must be a positive integer, got {levels!r}")
    if levels > have:
        raise VolumeError(
            f"{path} has {have} pyramid level(s), so levels={levels} cannot be written; "
            f"create it with create_volume(..., levels={levels})"
        )
    factor = downsample_factor(path, len(volume.voxel_size))
    plan = []
    for level in range(1, levels):
        vs = volume.voxel_size * Coordinate(tuple(f**level for f in factor))
        if not volume.offset.is_multiple_of(vs):
            raise VolumeError(
                f"cannot build level s{level} of {path}: the offset {tuple(volume.offset)} nm is not a "
                f"multiple of that level's voxel size {tuple(vs)} nm"
            )
        out = open_level(path, level, mode="r+")
        bs = slab_block_shape(out)
        plan.append((level, out, bs, n_blocks(out.roi, bs)))
    return plan


def write_pyramid(
    volume: Volume,
    *,
    levels: int | None = None,
    kind: Literal["image", "labels"] = "image",
    label_method: Literal["mode", "pick"] = "mode",
    scheduler="synchronous",
    workers: int = 1,
    on_block_done: Callable[[int, int], None] | None = None,
    run_dir=None,
) -> list[Volume]:
    """Fill the pyramid levels ``s1 .. s{levels-1}`` of a stored image, block-wise.

    Parameters
    ----------
    volume : Volume
        Level 0 of an image made with ``create_volume(..., levels=n)``; the factor
        between levels is the group's ``connectomix.downsample`` attribute (default
        1 x 2 x 2).
    levels : int, optional
        Total number of levels to have filled, counting s0; default all there are.
    kind : {'image', 'labels'}
        Mean of each window for images; for labels see ``label_method``.
    label_method : {'mode', 'pick'}
        Most frequent label, or strided pick.
    scheduler, workers, on_block_done
        As for :func:`connectomix.blockwise.run_blockwise`; ``on_block_done`` counts
        the blocks of all levels together.
    run_dir : path, optional
        Where done-records go; default the run that holds ``volume.zarr``.

    Returns
    -------
    list of Volume
        Every level, s0 first, opened read-only.

    Raises
    ------
    VolumeError
        If the image has fewer levels than asked for, or its offset does not fit a
        level's voxel grid.
    """
    if kind not in ("image", "labels"):
        raise VolumeError(f"kind must be 'image' or 'labels', got {kind!r}")
    if label_method not in ("mode", "pick"):
        raise VolumeError(f"label_method must be 'mode' or 'pick', got {label_method!r}")
    plan = pyramid_plan(volume, levels)
    path = volume.path
    if run_dir is None:
        parent = Path(path).parent
        run_dir = parent.parent if parent.suffix == ".zarr" else parent
    factor = tuple(downsample_factor(path, len(volume.voxel_size)))
    total = sum(p[3] for p in plan)
    done_before = 0
    name = Path(path).name
    forget_open(path)
    for level, out, bs, n in plan:
        progress = None
        if on_block_done is not None:
            progress = functools.partial(_offset_progress, on_block_done, done_before, total)
        run_blockwise(
            functools.partial(_downsample_block, factor=factor, kind=kind, method=label_method),
            task=f"pyramid-{name}-s{level}",
            inputs={"src": Input(VolumeRef(path, level=level - 1))},
            outputs={"out": out},
            block_shape=bs,
            run_dir=run_dir,
            scheduler=scheduler,
            workers=workers,
            config={"kind": kind, "method": label_method, "factor": list(factor), "level": level},
            on_block_done=progress,
        )
        done_before += n
    n_total = len(plan) + 1
    return [open_volume(path, level=k) for k in range(n_total)]


def _offset_progress(callback, before: int, total: int, done: int, _n: int) -> None:
    callback(before + done, total)
