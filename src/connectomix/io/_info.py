"""What a run holds: its arrays and tables, as plain data (the CLI prints it)."""

from __future__ import annotations

import os

from ..errors import ConnectomixError
from ..volume import is_complete, open_volume
from ._common import group_meta, open_run

__all__ = ["info"]


def info(run) -> dict:
    """Describe the arrays and tables of a run.

    Parameters
    ----------
    run : Run or str or Path

    Returns
    -------
    dict
        ``{"path": str, "arrays": {name: {...}}, "tables": {name: {...}}}``. An array
        entry has ``shape``, ``dtype``, ``voxel_size`` and ``offset`` (nm, z, y, x),
        ``axis_names``, ``chunks``, ``shards``, ``complete``, ``levels`` (how many) and
        ``scales`` (path, shape and voxel size of each level); an array that cannot be
        read has an ``error`` message instead. A table entry has ``rows``, ``columns``
        and ``types``.

    Raises
    ------
    RunDirectoryError
        If ``run`` is not a run directory.
    """
    run = open_run(run)
    arrays = {name: _array_info(run.volume_path(name)) for name in run.arrays()}
    tables = {}
    names = run.tables()
    if names:
        with run.db(read_only=True) as con:
            for name in names:
                rows = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                described = con.execute(f'DESCRIBE "{name}"').fetchall()
                tables[name] = {
                    "rows": int(rows),
                    "columns": [d[0] for d in described],
                    "types": [str(d[1]) for d in described],
                }
    return {"path": str(run.path), "arrays": arrays, "tables": tables}


def _array_info(path) -> dict:
    try:
        vol = open_volume(path, require_complete=False)
        ms = group_meta(path)["multiscales"]
        scales = []
        for level, ds in enumerate(ms.get("datasets", [])):
            lvl = vol if level == 0 else open_volume(path, level=level, require_complete=False)
            scales.append({
                "path": ds.get("path", f"s{level}"),
                "shape": list(lvl.shape),
                "voxel_size": list(lvl.voxel_size),
            })
        return {
            "shape": list(vol.shape),
            "dtype": str(vol.dtype),
            "voxel_size": list(vol.voxel_size),
            "offset": list(vol.offset),
            "axis_names": list(vol.axis_names),
            "chunks": None if vol.chunks is None else list(vol.chunks),
            "shards": None if vol.shards is None else list(vol.shards),
            "complete": is_complete(path),
            "levels": len(scales),
            "scales": scales,
        }
    except (ConnectomixError, OSError, ValueError, KeyError) as e:
        return {"error": f"cannot read array {os.path.basename(str(path))}: {e}"}
