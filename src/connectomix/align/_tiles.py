"""Tile import: validate a tiles CSV and record it as the run's ``tiles`` table."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputFormatError, VolumeError, VolumeNotFoundError

__all__ = ["import_tiles", "read_tile", "TILE_COLUMNS"]

TILE_COLUMNS = ("section", "tile", "stage_y", "stage_x", "path")


def read_tile(path) -> np.ndarray:
    """Read one tile image (TIFF via tifffile, anything else via imageio) as a 2-D array."""
    p = str(path)
    if not os.path.exists(p):
        raise VolumeNotFoundError(f"tile image {p} does not exist")
    try:
        if p.lower().endswith((".tif", ".tiff")):
            import tifffile

            img = tifffile.imread(p)
        else:
            import imageio.v3 as iio

            img = iio.imread(p)
    except Exception as e:  # unreadable file: one clear message
        raise InputFormatError(f"cannot read tile image {p}: {e}") from e
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3].mean(-1)
    if img.ndim != 2:
        raise InputFormatError(f"tile image {p} must be a 2-D grey image, got shape {img.shape}")
    return img


def import_tiles(csv_path, run_path, voxel_size):
    """Record the tiles listed in ``csv_path`` as the ``tiles`` table of a run.

    Parameters
    ----------
    csv_path : path
        CSV with columns ``section, tile, stage_y, stage_x, path`` (stage positions of
        each tile's first pixel in nm; ``path`` absolute or relative to the CSV).
    run_path : path
        The run directory (made if needed).
    voxel_size : (z, y, x) int, nm

    Returns
    -------
    DataFrame
        The ``tiles`` table as stored (``path`` made absolute, plus ``height_vx``,
        ``width_vx``).

    Raises
    ------
    InputFormatError
        Missing columns, non-numeric or NaN positions, duplicate (section, tile),
        unreadable images, images of different dtypes, tiles of one section with
        different image shapes.
    VolumeNotFoundError
        A listed image does not exist.
    """
    import pandas as pd

    from ..run import Run

    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise VolumeNotFoundError(f"tiles file {csv_path} does not exist")
    try:
        df = pd.read_csv(csv_path)
    except Exception as e:
        raise InputFormatError(f"cannot read tiles file {csv_path}: {e}") from e
    missing = [c for c in TILE_COLUMNS if c not in df.columns]
    if missing:
        raise InputFormatError(
            f"tiles file {csv_path} lacks the column(s) {missing}; expected {list(TILE_COLUMNS)} "
            "(stage positions in nm)")
    if not len(df):
        raise InputFormatError(f"tiles file {csv_path} lists no tiles")
    for c in ("section", "tile", "stage_y", "stage_x"):
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any():
            bad = df.loc[v.isna()].index[:5].tolist()
            raise InputFormatError(f"tiles file {csv_path}: column '{c}' must be numbers; rows {bad} are empty or not numeric")
        df[c] = v
    df["section"] = df["section"].astype("int64")
    df["tile"] = df["tile"].astype("int64")
    dup = df.duplicated(["section", "tile"])
    if dup.any():
        raise InputFormatError(f"tiles file {csv_path}: (section, tile) repeated in rows {df.index[dup][:5].tolist()}")
    vs = tuple(int(v) for v in voxel_size)
    if len(vs) != 3 or min(vs) <= 0:
        raise VolumeError(f"voxel_size must be three positive integers (z, y, x) in nm, got {voxel_size!r}")
    paths, hs, ws, dtypes = [], [], [], {}  # dtypes: dtype -> first tile of that dtype
    for z, t, p in zip(df["section"], df["tile"], df["path"].astype(str)):
        full = Path(p) if os.path.isabs(p) else (csv_path.parent / p)
        img = read_tile(full)
        paths.append(str(full.resolve()))
        hs.append(img.shape[0])
        ws.append(img.shape[1])
        dtypes.setdefault(img.dtype.str, f"section {z} tile {t} ({full}) is {img.dtype}")
    if len(dtypes) > 1:
        raise InputFormatError(f"tiles file {csv_path}: tile images have different dtypes {sorted(dtypes)}: "
                               + "; ".join(dtypes.values()))
    shapes = pd.DataFrame({"section": df["section"], "tile": df["tile"], "h": hs, "w": ws, "path": paths})
    for z, g in shapes.groupby("section", sort=True):
        if g["h"].nunique() > 1 or g["w"].nunique() > 1:
            a = g.iloc[0]
            b = g[(g["h"] != a["h"]) | (g["w"] != a["w"])].iloc[0]
            raise InputFormatError(
                f"tiles file {csv_path}: the tiles of section {z} have different image shapes: tile {a['tile']} "
                f"({a['path']}) is {a['h']} x {a['w']} px, tile {b['tile']} ({b['path']}) is {b['h']} x {b['w']} px; "
                "the tiles of a section must have one shape")
    df["path"] = paths
    df["height_vx"] = hs
    df["width_vx"] = ws
    run = Run.create(run_path)
    run.write_table("tiles", df)
    run.update_config("tiles", {"csv": str(csv_path.resolve()), "voxel_size": list(vs), "n_tiles": int(len(df)),
                                "dtype": next(iter(dtypes))})
    return df
