"""Helpers shared by import, pyramid and export: runs, block shapes, pyramid levels."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import VolumeError
from ..geometry import Coordinate, Roi
from ..run import Run
from ..volume import Volume, VolumeRef, open_volume

#: Bytes one block of an import, pyramid or export holds at most (beyond one storage unit).
BLOCK_BYTES = 64 * 2**20
#: The same for inputs that decode whole sections (TIFF pages, image files): cutting
#: a section into tiles would decode it once per tile, so blocks may be larger.
SECTION_BLOCK_BYTES = 1024 * 2**20


def open_run(run) -> Run:
    """A :class:`Run` from a Run or the path of an existing run directory."""
    return run if isinstance(run, Run) else Run(run)


def slab_block_shape(volume: Volume, *, target_bytes: int = BLOCK_BYTES) -> Coordinate:
    """A block shape (nm): one storage unit deep in z, whole sections in y and x.

    The block is a slab of whole shards (or chunks), so no two blocks write the same
    stored object. When a whole-section slab would exceed ``target_bytes``, y and x
    are halved (in whole units) until it fits or is a single unit.
    """
    unit = volume.shards or volume.chunks
    n_ch = volume.n_channel_axes
    if unit is None:
        raise VolumeError(f"{volume.path} has no storage grid to align blocks to")
    unit = Coordinate(unit[n_ch:])
    shape = volume.spatial_shape
    per_voxel = volume.dtype.itemsize * math.prod(volume.shape[:n_ch])
    counts = [math.ceil(s / u) for s, u in zip(shape, unit)]
    counts[0] = 1
    while math.prod(c * u for c, u in zip(counts, unit)) * per_voxel > target_bytes and max(counts[1:]) > 1:
        i = 1 if counts[1] >= counts[2] else 2
        counts[i] = math.ceil(counts[i] / 2)
    return Coordinate(c * u for c, u in zip(counts, unit)) * volume.voxel_size


def n_blocks(total_roi: Roi, block_shape: Coordinate) -> int:
    """How many blocks ``run_blockwise`` makes of ``total_roi`` with ``block_shape``."""
    return math.prod(total_roi.shape.ceil_div(block_shape))


def open_level(path, level: int, *, mode: str = "r") -> Volume:
    return open_volume(path, mode=mode, level=level, require_complete=False)


def group_meta(path) -> dict:
    """The OME multiscales entry and connectomix attributes of an image group."""
    with open(os.path.join(str(path), "zarr.json")) as f:
        attrs = json.load(f).get("attributes", {})
    ms = (attrs.get("ome") or {}).get("multiscales") or [{}]
    return {"multiscales": ms[0], "connectomix": attrs.get("connectomix", {})}


def n_levels(path) -> int:
    return len(group_meta(path)["multiscales"].get("datasets", [])) or 1


def downsample_factor(path, n_spatial: int = 3) -> Coordinate:
    meta = group_meta(path)["connectomix"]
    return Coordinate(meta.get("downsample") or (1,) + (2,) * (n_spatial - 1))


def blocks_dir(run_dir, task: str) -> Path:
    return Path(run_dir) / ".blocks" / task


def forget_open(*paths) -> None:
    """Drop the block engine's cached open volumes that mention any of ``paths``.

    ``run_blockwise`` keeps opened sources per process, keyed by their repr. An array
    that was deleted and made anew under the same path (``overwrite=True``), or an
    input file replaced in place, would otherwise be served stale from that cache.
    """
    from .. import blockwise

    cache = getattr(blockwise, "_OPEN_CACHE", None)
    if not cache:
        return
    needles = [str(p) for p in paths if p is not None]
    for key in list(cache):
        text = key[0] if isinstance(key, tuple) else str(key)
        if any(n in text for n in needles):
            vol = cache.pop(key, None)
            close = getattr(getattr(vol, "data", None), "close", None)
            if callable(close) and not hasattr(getattr(vol, "data", None), "store"):
                try:
                    close()
                except Exception:  # closing a reader must never mask the real outcome
                    pass
