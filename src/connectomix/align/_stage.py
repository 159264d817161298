"""``align_stage``: the align stage of a run (montage, register, warp, record)."""

from __future__ import annotations

import functools
import logging
import math
import shutil
import time
from dataclasses import asdict

import numpy as np

from ..errors import ConfigError, ConnectomixError, VolumeError
from ..geometry import Coordinate, Roi

__all__ = ["align_stage", "map_points", "resolve_reference"]

logger = logging.getLogger(__name__)


def resolve_reference(reference, n_sections: int) -> int:
    """Section index of ``reference``: 'middle' (Z // 2, the generator's), 'first' or an index."""
    if reference in (None, "middle"):
        return n_sections // 2
    if reference == "first":
        return 0
    try:
        ref = int(reference)
    except (TypeError, ValueError):
        raise ConfigError(f"reference must be 'middle', 'first' or a section index, got {reference!r}") from None
    if not 0 <= ref < n_sections:
        raise ConfigError(f"reference section {ref} is outside the stack of {n_sections} sections")
    return ref


def _scheduler(cluster):
    if cluster is None:
        return "synchronous", 1
    if isinstance(cluster, str):
        return cluster, 1
    if hasattr(cluster, "scheduler"):
        return (cluster.scheduler or None), int(getattr(cluster, "workers", 1))
    return cluster, 1  # an open distributed.Client


def _montage(run, tiles, voxel_size, shape_yx, scheduler, workers, progress, say):
    """Stitch every section's tiles; write ``tile_positions`` and the ``montage`` array."""
    import pandas as pd

    from ..blockwise import run_blockwise
    from ..volume import create_volume
    from ._montage import place_tiles
    from ._tiles import read_tile
    from ._warp import montage_kernel

    vz, vy, vx = voxel_size
    tiles = tiles.copy()
    if "height_vx" not in tiles or "width_vx" not in tiles:
        tiles["height_vx"] = 0
        tiles["width_vx"] = 0
    rows = []
    n_unplaced = 0
    for z, t in tiles.groupby("section", sort=True):
        t = t.sort_values("tile")
        paths = [p if str(p).startswith("/") else str(run.path / p) for p in t["path"]]
        imgs = [read_tile(p) for p in paths]
        stage = np.stack([t["stage_y"].to_numpy() / vy, t["stage_x"].to_numpy() / vx], 1)
        pos, pairs, unplaced = place_tiles(imgs, stage, names=[str(v) for v in t["tile"]], section=int(z))
        n_unplaced += len(unplaced)
        for k, (tile, p, img) in enumerate(zip(t["tile"], paths, imgs)):
            rows.append(dict(section=int(z), tile=int(tile), path=p, y_vx=int(round(pos[k, 0])), x_vx=int(round(pos[k, 1])),
                             y=float(pos[k, 0] * vy), x=float(pos[k, 1] * vx), height_vx=img.shape[0],
                             width_vx=img.shape[1], placed=k not in unplaced, dtype=img.dtype.str))
    tp = pd.DataFrame(rows)
    run.write_table("tile_positions", tp)
    if shape_yx is None:
        shape_yx = (int((tp["y_vx"] + tp["height_vx"]).max()), int((tp["x_vx"] + tp["width_vx"]).max()))
    Z = int(tiles["section"].max()) + 1
    dtype = np.dtype(tp["dtype"].iloc[0])
    chunks = (1, min(shape_yx[0], 512), min(shape_yx[1], 512))
    out = create_volume(run.volume_path("montage"), shape=(Z,) + tuple(shape_yx), dtype=dtype,
                        voxel_size=voxel_size, chunks=chunks, complete=False, task="align-montage", overwrite=True)
    kern = functools.partial(montage_kernel, run_dir=str(run.path), voxel_size=tuple(voxel_size), offset=(0, 0, 0),
                             dtype=dtype.str)
    run_blockwise(kern, task="align-montage", outputs={"montage": out}, block_shape=Coordinate(chunks) * Coordinate(voxel_size),
                  run_dir=run.path, scheduler=scheduler, workers=workers, config={"n_tiles": len(tp)},
                  on_block_done=progress)
    say(f"  montage: {len(tp)} tiles in {tp['section'].nunique()} sections stitched"
        + (f", {n_unplaced} kept at stage positions" if n_unplaced else ""))
    return run.open("montage"), tp


def align_stage(run_path, *, elastic: bool = True, reference="middle", cluster=None, progress=None, say=print,
                fill_missing: bool = True, model: str = "rigid", settings=None, order: int = 1,
                force: bool = False, block_shape=None, device: str = "cpu") -> dict:
    """Stitch, register and warp a run's sections into ``aligned``.

    Parameters
    ----------
    run_path : path
        A run with a ``raw`` array or a ``tiles`` table (``connectomix import --tiles``).
    elastic : bool
        Refine the global rigid alignment with the elastic mesh.
    reference : 'middle', 'first' or int
        The section that keeps its frame (default the middle one, as the generator).
    cluster : None, 'synchronous', ClusterConfig, scheduler address or distributed.Client
        Where the block-wise montage and warp run (default: in this process).
    progress : callable ``(n_done, n_total)``, optional
        Called after each block.
    say : callable
        One line per step.
    fill_missing : bool
        Fill missing sections in ``aligned`` by interpolating their neighbours.
    model : {'translation', 'rigid', 'affine'}
        Coarse model.
    settings : RegisterSettings, optional
        Every registration parameter.
    order : int
        Interpolation order of the warp (1: linear).
    block_shape : (z, y, x) ints, optional
        Write shape of a warp block in voxels (default 4 x 256 x 256, clipped to the
        stack); smaller blocks need less memory. The result does not depend on it.
    device : str
        Where the defect network runs (``cpu`` or ``cuda``).

    An interrupted warp (Ctrl-C, a killed process) resumes on the next call: blocks
    finished under the same transforms are kept and only the others are computed.

    Returns
    -------
    dict
        Summary: reference, sections, missing/damaged, match statistics,
        ``min_jacobian``, NCC of adjacent sections before/after (no ground truth),
        residuals against ``gt_transforms`` when the run has them, time, PNG path.

    Raises
    ------
    VolumeError
        Fewer than two sections, sections too small, every section empty.
    ConfigError
        Bad reference, model or block shape.
    """
    import hashlib

    import pandas as pd

    from ..blockwise import Input, run_blockwise
    from ..evaluate import section_ncc
    from ..pipeline import _reusable
    from ..run import Run
    from ..volume import create_volume
    from ._register import RegisterSettings, damage_method, register_stack
    from ._score import transform_residuals
    from ._warp import cross_section_png, gridmap_table, warp_kernel

    t0 = time.perf_counter()
    run = Run(run_path)
    settings = settings or RegisterSettings(model=model)
    settings.validate()
    if damage_method(settings) == "network":
        from ..models._unet import check_device

        check_device(device)  # before the montage writes anything
    if block_shape is not None:
        try:
            block_shape = tuple(int(v) for v in block_shape)
        except (TypeError, ValueError):
            block_shape = ()
        if len(block_shape) != 3 or min(block_shape) <= 0:
            raise ConfigError("block_shape must be three positive integers (z, y, x) in voxels")
    scheduler, workers = _scheduler(cluster)
    have_tiles = "tiles" in run.tables()
    have_raw = "raw" in run.arrays()
    if not have_tiles and not have_raw:
        raise VolumeError(f"run {run.path} has neither a 'raw' array nor a 'tiles' table: import data first")
    cfg = {"elastic": bool(elastic), "reference": str(reference), "fill_missing": bool(fill_missing), "order": int(order),
           "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()},
           "source": "tiles" if have_tiles else "raw",
           # a run aligned without the defect network is not "done" once torch is installed
           "damage_method": damage_method(settings)}
    with run.stage("align", cfg, force=force) as st:
        if st.skipped:
            say("align: already done with this configuration, skipped")
            return {"skipped": True}
        if have_tiles:
            tiles = run.read_table("tiles")
            if have_raw:
                raw = run.open("raw")
                vs, shape_yx = tuple(raw.voxel_size), tuple(raw.shape[-2:])
            else:
                vs = tuple(int(v) for v in (run.read_config().get("tiles") or {}).get("voxel_size") or ())
                if len(vs) != 3:
                    raise VolumeError(f"run {run.path}: the tiles table has no voxel size (import it with import_tiles)")
                shape_yx = None
            src, tile_pos = _montage(run, tiles, vs, shape_yx, scheduler, workers, progress, say)
            source = "montage"
        else:
            src = run.open("raw")
            source = "raw"
        if src.n_channel_axes or len(src.shape) != 3:
            raise VolumeError(f"align needs a single-channel 3-D stack, '{source}' has shape {src.shape}")
        Z, Y, X = src.shape
        vs = tuple(int(v) for v in src.voxel_size)
        off = tuple(int(v) for v in src.offset)
        ref = resolve_reference(reference, Z)
        say(f"align: {Z} sections of {Y} x {X} px from '{source}', reference section {ref}")
        stack = np.asarray(src.data[:])
        if np.issubdtype(stack.dtype, np.floating) and not np.all(np.isfinite(stack)):
            n_bad = int((~np.isfinite(stack)).sum())
            say(f"  warning: '{source}' holds {n_bad} NaN/inf pixels; they are treated as missing data")
        res = register_stack(stack, reference=ref, elastic=elastic, settings=settings, log=lambda m: say("  " + m),
                             device=device)
        gmap = res["map"]
        ref = res["reference"]
        # tables: transforms (mesh nodes, nm) and section_quality
        run.write_table("transforms", gridmap_table(gmap, vs, off))
        status = np.where(res["missing"], "missing", np.where(res["damaged_fraction"] >= settings.damage_min_fraction,
                                                              "damaged", "ok"))
        score = np.where(res["missing"], 0.0, 1.0 - res["damaged_fraction"])
        sq = pd.DataFrame({"section": np.arange(Z, dtype="int64"), "status": status, "score": score,
                           "contrast": res["contrast"], "damaged_fraction": res["damaged_fraction"]})
        run.write_table("section_quality", sq)
        # warp through the block engine
        shift = 0.0
        for z in range(Z):
            qy, qx = gmap.coords[z]
            GY, GX = np.meshgrid(gmap.gy, gmap.gx, indexing="ij")
            shift = max(shift, float(np.max(np.abs(qy - GY))), float(np.max(np.abs(qx - GX))))
        ctx_px = int(math.ceil(shift)) + 4
        missing = [int(z) for z in np.flatnonzero(res["missing"])]
        gap = 0
        for z in missing:
            good = [g for g in range(Z) if g not in missing]
            if good:
                gap = max(gap, min(abs(g - z) for g in good))
        context = Coordinate((gap * vs[0], ctx_px * vs[1], ctx_px * vs[2]))
        bz, by, bx = block_shape or (4, 256, 256)
        bz = min(Z, bz)
        chunks = (1, min(Y, by), min(X, bx))
        # keep an interrupted warp's output (and so its done blocks) when its layout fits
        existing = _reusable(run.volume_path("aligned"), src, chunks)
        if existing is not None and tuple(int(v) for v in existing.offset) != off:
            existing = None
        out = existing or create_volume(run.volume_path("aligned"), shape=(Z, Y, X), dtype=src.dtype, voxel_size=vs,
                                        offset=off, chunks=chunks, complete=False, task="align-warp", overwrite=True)
        # blocks done under other transforms must not be reused
        digest = hashlib.sha256()
        for a in (gmap.gy, gmap.gx, gmap.coords):
            digest.update(np.ascontiguousarray(a, np.float64).tobytes())
        warp_cfg = dict(cfg, transforms=digest.hexdigest(), missing=missing)
        kern = functools.partial(warp_kernel, run_dir=str(run.path), source=source, voxel_size=vs, offset=off,
                                 fill=bool(fill_missing), order=int(order), missing=tuple(missing))
        try:
            wr = run_blockwise(kern, task="align-warp", inputs={source: Input(src.ref(), context=context, boundary="pad")},
                               outputs={"aligned": out}, block_shape=Coordinate((bz, chunks[1], chunks[2])) * Coordinate(vs),
                               run_dir=run.path, scheduler=scheduler, workers=workers, config=warp_cfg,
                               on_block_done=progress)
        except ConnectomixError:
            shutil.rmtree(run.volume_path("aligned"), ignore_errors=True)
            raise
        aligned = run.open("aligned")
        after = np.asarray(aligned.data[:])
        png = cross_section_png(stack, after, run.path / "align" / "cross_section_xz.png", voxel_size=vs)
        usable = ~res["missing"]
        summary = dict(
            source=source, reference=int(ref), sections=int(Z), elastic=bool(elastic),
            missing=missing, fill_missing=bool(fill_missing),
            damaged=[int(z) for z in np.flatnonzero(status == "damaged")], min_jacobian=float(res["min_jacobian"]), stats=res["stats"], blocks=wr.n_blocks, png=str(png),
        )
        if usable.sum() >= 2:
            nb = section_ncc(np.nan_to_num(stack[usable].astype(np.float32)), voxel_size=vs, chunk_shape_vx=(64, 64))
            na = section_ncc(after[usable].astype(np.float32), voxel_size=vs, chunk_shape_vx=(64, 64))
            summary["ncc_before"] = {"mean": nb.mean, "min": nb.min}
            summary["ncc_after"] = {"mean": na.mean, "min": na.min}
            summary["worst_chunks"] = na.worst.head(5).to_dict("records")
        if "gt_transforms" in run.tables() and source == "raw":
            good = [z for z in range(Z) if usable[z] and status[z] != "missing"]
            r = transform_residuals(gmap, run.read_table("gt_transforms"), vs, sections=good)
            if r["all"] is not None:
                summary["residual_px"] = {"median": r["all"].median_nm, "p95": r["all"].p95_nm, "max": r["all"].max_nm}
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        run.update_config("align_result", {k: v for k, v in summary.items() if k not in ("worst_chunks",)})
        say(f"  aligned: min Jacobian {summary['min_jacobian']:.2f}"
            + (f", adjacent-section NCC {summary['ncc_before']['mean']:.3f} -> {summary['ncc_after']['mean']:.3f}"
               if "ncc_after" in summary else "")
            + (f", residual vs truth median {summary['residual_px']['median']:.2f} px, "
               f"95th {summary['residual_px']['p95']:.2f} px" if "residual_px" in summary else "")
            + f", {summary['seconds']} s; picture {png}")
        return summary


def map_points(run_path, points, *, to="raw"):
    """Map points between the aligned frame and the raw (or montage) frame of a run.

    Parameters
    ----------
    run_path : path
        An aligned run (has the ``transforms`` table).
    points : (N, 3) array, nm (z, y, x)
    to : {'raw', 'aligned'}

    Returns
    -------
    (N, 3) float ndarray, nm
    """
    from ..run import Run
    from ._warp import load_gridmap

    if to not in ("raw", "aligned"):
        raise ValueError(f"to must be 'raw' or 'aligned', got {to!r}")
    run = Run(run_path)
    vol = run.open("aligned")
    vs = np.asarray(vol.voxel_size, float)
    off = np.asarray(vol.offset, float)
    g = load_gridmap(run.read_table("transforms"), vs, off)
    pts = np.asarray(points, float).reshape(-1, 3)
    out = pts.copy()
    sec = np.floor((pts[:, 0] - off[0]) / vs[0]).astype(int)
    if np.any((sec < 0) | (sec >= g.coords.shape[0])):
        raise VolumeError(f"points lie outside the {g.coords.shape[0]} aligned sections")
    for z in np.unique(sec):
        m = sec == z
        px = (pts[m, 1:] - off[1:]) / vs[1:] - 0.5
        q = g.apply(int(z), px) if to == "raw" else g.invert(int(z), px)
        out[m, 1:] = (q + 0.5) * vs[1:] + off[1:]
    return out
