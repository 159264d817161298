"""Block kernels of the align stage: paste tiles into ``montage``, resample into ``aligned``.

Both run through :func:`connectomix.blockwise.run_blockwise`; a block gets only its
Rois, and reads what it needs (tile images, the ``transforms`` table) from the run
directory on the worker, so no voxel data passes through the scheduler.
"""

from __future__ import annotations

import functools
import os

import numpy as np
from scipy import ndimage as ndi

from ._mesh import GridMap

__all__ = ["montage_kernel", "warp_kernel", "load_gridmap", "gridmap_table", "nodata_mask", "cross_section_png"]


@functools.lru_cache(maxsize=8)
def _read_parquet(path, stamp):
    import pandas as pd

    return pd.read_parquet(path)


def _table(run_dir, name):
    import glob

    import pandas as pd

    files = sorted(glob.glob(os.path.join(run_dir, "tables", name, "*.parquet")))
    return pd.concat([_read_parquet(f, os.stat(f).st_mtime_ns) for f in files], ignore_index=True)


def gridmap_table(gmap: GridMap, voxel_size, offset=(0, 0, 0)):
    """The ``transforms`` table: one row per mesh node and section (nm, voxel centres)."""
    import pandas as pd

    Z = gmap.coords.shape[0]
    vy, vx = float(voxel_size[1]), float(voxel_size[2])
    oy, ox = float(offset[1]), float(offset[2])
    iy, ix = np.meshgrid(np.arange(len(gmap.gy)), np.arange(len(gmap.gx)), indexing="ij")
    GY, GX = np.meshgrid(gmap.gy, gmap.gx, indexing="ij")
    parts = []
    for z in range(Z):
        parts.append(pd.DataFrame({
            "section": np.full(iy.size, z, "int64"), "node_y": iy.ravel(), "node_x": ix.ravel(),
            "y": oy + (GY.ravel() + 0.5) * vy, "x": ox + (GX.ravel() + 0.5) * vx,
            "raw_y": oy + (gmap.coords[z, 0].ravel() + 0.5) * vy, "raw_x": ox + (gmap.coords[z, 1].ravel() + 0.5) * vx,
        }))
    return pd.concat(parts, ignore_index=True)


def load_gridmap(df, voxel_size, offset=(0, 0, 0)) -> GridMap:
    """Rebuild a :class:`GridMap` (pixels) from a ``transforms`` table."""
    vy, vx = float(voxel_size[1]), float(voxel_size[2])
    oy, ox = float(offset[1]), float(offset[2])
    df = df.sort_values(["section", "node_y", "node_x"])
    Z = int(df["section"].max()) + 1
    ny = int(df["node_y"].max()) + 1
    nx = int(df["node_x"].max()) + 1
    first = df[df["section"] == df["section"].min()]
    gy = (first[first["node_x"] == 0]["y"].to_numpy() - oy) / vy - 0.5
    gx = (first[first["node_y"] == 0]["x"].to_numpy() - ox) / vx - 0.5
    coords = np.zeros((Z, 2, ny, nx))
    ry = ((df["raw_y"].to_numpy() - oy) / vy - 0.5).reshape(-1, ny, nx)
    rx = ((df["raw_x"].to_numpy() - ox) / vx - 0.5).reshape(-1, ny, nx)
    secs = df["section"].to_numpy().reshape(-1, ny * nx)[:, 0]
    coords[secs, 0] = ry
    coords[secs, 1] = rx
    return GridMap(np.round(gy, 6), np.round(gx, 6), coords)


def montage_kernel(block, inputs, *, run_dir, voxel_size, offset, dtype):
    """Paste the tiles of the block's sections (positions from ``tile_positions``)."""
    from ._montage import blend_tiles
    from ._tiles import read_tile

    pos = _table(run_dir, "tile_positions")
    vs = np.asarray(voxel_size, float)
    off = np.asarray(offset, float)
    b0 = ((np.asarray(block.write_roi.begin, float) - off) / vs).astype(int)
    b1 = ((np.asarray(block.write_roi.end, float) - off) / vs).astype(int)
    out = np.zeros(tuple(b1 - b0), dtype)
    for k, z in enumerate(range(b0[0], b1[0])):
        t = pos[pos["section"] == z]
        if not len(t):
            continue
        py = t["y_vx"].to_numpy()
        px = t["x_vx"].to_numpy()
        h = t["height_vx"].to_numpy()
        w = t["width_vx"].to_numpy()
        hit = (py < b1[1]) & (py + h > b0[1]) & (px < b1[2]) & (px + w > b0[2])
        imgs = [read_tile(p) for p in t["path"].to_numpy()[hit]]
        out[k] = blend_tiles(imgs, np.stack([py[hit], px[hit]], 1), ((b0[1], b1[1]), (b0[2], b1[2])), dtype=dtype)
    return {"montage": out}


def warp_kernel(block, inputs, *, run_dir, source, voxel_size, offset, fill, order, missing):
    """Resample the block's sections with their maps; fill missing sections by interpolation."""
    vol = inputs[source]
    vs = np.asarray(voxel_size, float)
    off = np.asarray(offset, float)
    gmap = load_gridmap(_table(run_dir, "transforms"), voxel_size, offset)
    b0 = ((np.asarray(block.write_roi.begin, float) - off) / vs).astype(int)
    b1 = ((np.asarray(block.write_roi.end, float) - off) / vs).astype(int)
    in0 = ((np.asarray(vol.offset, float) - off) / vs).astype(int)
    data = vol.data
    ys = np.arange(b0[1], b1[1])
    xs = np.arange(b0[2], b1[2])
    missing = set(missing)
    good = [z for z in range(gmap.coords.shape[0]) if z not in missing]

    def warp(z):
        qy, qx = gmap.dense(z, ys, xs)
        sec = np.asarray(data[z - in0[0]], np.float32)
        return ndi.map_coordinates(sec, [qy - in0[1], qx - in0[2]], order=order, mode="constant", cval=0.0,
                                   prefilter=order > 1)

    out = np.zeros(tuple(b1 - b0), np.float32)
    for k, z in enumerate(range(b0[0], b1[0])):
        if z not in missing:
            out[k] = warp(z)
        elif fill:
            lo = [g for g in good if g < z]
            hi = [g for g in good if g > z]
            if lo and hi and in0[0] <= lo[-1] and hi[0] < in0[0] + data.shape[0]:
                t = (z - lo[-1]) / (hi[0] - lo[-1])
                out[k] = (1 - t) * warp(lo[-1]) + t * warp(hi[0])
            elif lo or hi:
                g = lo[-1] if lo else hi[0]
                if in0[0] <= g < in0[0] + data.shape[0]:
                    out[k] = warp(g)
    if np.issubdtype(vol.dtype, np.integer):
        info = np.iinfo(vol.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return {"aligned": out.astype(vol.dtype)}


def nodata_mask(run_dir, offset_nm, shape) -> np.ndarray:
    """Where an aligned run's ``aligned`` array shows no data, over ``shape`` voxels from ``offset_nm``.

    A voxel shows no data where its raw position (the ``transforms`` map) lies more
    than half a pixel outside its section; a missing section, filled from its
    neighbours (the nearest usable one on each side, as :func:`warp_kernel` does),
    where all the sections it is filled from do, everywhere when the run was aligned
    without filling (``align_stage(fill_missing=False)``). The warp fills such
    voxels with 0, which a network cannot tell from dark tissue, and so must not join
    neurons across them.

    Returns
    -------
    (Z, Y, X) bool array, True where there is no data.
    """
    from ..run import Run

    run = Run(run_dir)
    res = run.read_config().get("align_result") or {}
    src = run.open(res.get("source", "raw"))
    vs = np.asarray(src.voxel_size, float)
    off = np.asarray(src.offset, float)
    gmap = load_gridmap(_table(str(run_dir), "transforms"), src.voxel_size, src.offset)
    _, Ys, Xs = (int(n) for n in src.spatial_shape)
    begin = np.rint((np.asarray(offset_nm, float) - off) / vs).astype(int)
    ys = np.arange(begin[1], begin[1] + shape[1])
    xs = np.arange(begin[2], begin[2] + shape[2])
    missing = {int(z) for z in res.get("missing", ())}
    fill = bool(res.get("fill_missing", True))  # recorded since 2026-11-27; the default before
    good = [z for z in range(gmap.coords.shape[0]) if z not in missing]

    def outside(z):
        qy, qx = gmap.dense(z, ys, xs)
        return (qy < -0.5) | (qy > Ys - 0.5) | (qx < -0.5) | (qx > Xs - 0.5)

    out = np.ones(tuple(shape), bool)
    for k, z in enumerate(range(begin[0], begin[0] + shape[0])):
        if z not in missing:
            out[k] = outside(z)
            continue
        sources = [g for g in good if g < z][-1:] + [g for g in good if g > z][:1]
        if fill and sources:
            out[k] = np.logical_and.reduce([outside(g) for g in sources])
    return out


def cross_section_png(before, after, path, *, voxel_size, y_index=None, title=""):
    """Write an x-z cross-section of the stack before and after alignment (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Z, Y, X = before.shape
    y = Y // 2 if y_index is None else int(y_index)
    aspect = float(voxel_size[0]) / float(voxel_size[2])
    fig, axes = plt.subplots(2, 1, figsize=(8, max(2.5, 2 * Z * aspect / X * 8 + 1)), constrained_layout=True)
    for ax, img, name in zip(axes, (before, after), ("before", "after")):
        ax.imshow(np.asarray(img[:, y, :], np.float32), cmap="gray", aspect=aspect, interpolation="nearest")
        ax.set_title(f"{name} alignment: x-z section at y = {y} px {title}".strip(), fontsize=9)
        ax.set_xlabel("x (px)")
        ax.set_ylabel("z (section)")
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
