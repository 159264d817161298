"""Export a run as a neuroglancer precomputed dataset any static file server can host."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from ..errors import ConfigError

__all__ = ["export_precomputed", "run_fingerprint"]

logger = logging.getLogger(__name__)

#: The ``base_url`` written into ``state.json`` when none is given (``python -m
#: http.server 8000`` in the export folder, or :func:`connectomix.viewer.serve_static`).
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def run_fingerprint(run) -> str:
    """A hash of what an export reads from a run (array metadata, table files), to reuse exports."""
    h = hashlib.sha256()
    for name in run.arrays():
        p = run.volume_path(name) / "zarr.json"
        h.update(f"{name}:{p.stat().st_mtime_ns}".encode())
    for sub in ("tables/synapses", "tables/gt_synapses", "tables/neurons", "tables/gt_neurons", "skeletons",
                "meshes"):
        d = run.path / sub
        if d.is_dir():
            for p in sorted(d.iterdir()):
                h.update(f"{p.name}:{p.stat().st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _segment_table(run, name: str):
    table = "gt_neurons" if name == "gt_segmentation" else "neurons"
    return run.read_table(table) if table in run.tables() else None


def _shapes_for(run, source: str, labels, vol, ids):
    """Skeletons and meshes of ``source``: the run's stored ones when made from it, else computed."""
    from .. import shapes

    stored_source = (run.read_config().get("shapes") or {}).get("source")
    if stored_source == source and (run.path / "skeletons").is_dir():
        skels, meshes = shapes.read_shapes(run.path, segment_ids=ids)
        if skels or meshes:
            return skels, meshes
    vs, off = tuple(vol.voxel_size), tuple(vol.offset)
    skels = shapes.skeletonize(labels, voxel_size=vs, offset=off, segment_ids=ids)
    meshes = shapes.mesh(labels, voxel_size=vs, offset=off, segment_ids=ids)
    return skels, meshes


def export_precomputed(run_path, out_dir, *, neurons=None, base_url: str | None = None,
                       shapes: bool = True, overwrite: bool = True) -> Path:
    """Write a run as neuroglancer precomputed data plus a viewer state.

    Parameters
    ----------
    run_path : str or Path
        A run directory.
    out_dir : str or Path
        The export folder. Gets, where the run has them: ``raw`` or ``aligned``
        (image), ``segmentation`` and ``gt_segmentation`` (with ``mesh/``,
        ``skeletons/`` and ``segment_properties/`` for the main label layer: the
        segmentation, else the ground truth), ``synapses`` (annotations; the run's
        ``synapses`` table, else ``gt_synapses``), ``state.json`` (a neuroglancer
        state whose sources point at ``base_url``) and ``export.json`` (what was
        exported, from which run).
    neurons : iterable of int, optional
        Segments to mesh, skeletonize and select (default: all).
    base_url : str, optional
        Where the folder will be served (default ``http://127.0.0.1:8000``).
    shapes : bool
        Write meshes and skeletons.
    overwrite : bool
        Replace an existing export.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ConfigError
        If the run has no image, or ``out_dir`` exists and ``overwrite`` is False.
    """
    from ..io import _precomputed as pc
    from ..run import Run

    run = Run(run_path)
    out = Path(out_dir)
    if out.exists():
        if not overwrite:
            raise ConfigError(f"export folder {out} exists; pass overwrite=True to replace it")
        if not (out / "export.json").exists() and any(out.iterdir()):
            raise ConfigError(f"export folder {out} exists, is not empty and is not a connectomix export")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    arrays = run.arrays()
    image = run.input_name()
    img = run.open(image)
    pc.write_volume(img, out / image, kind="image")
    ids = None if neurons is None else sorted({int(n) for n in neurons})
    label_names = [n for n in ("segmentation", "gt_segmentation") if n in arrays]
    main = label_names[0] if label_names else None
    written = {"image": image, "labels": [], "synapses": None, "n_meshes": 0, "n_skeletons": 0}
    segments: list[int] = []
    for name in label_names:
        vol = run.open(name)
        is_main = name == main
        extra = {"mesh": "mesh", "skeletons": "skeletons", "segment_properties": "segment_properties"} \
            if is_main else {"segment_properties": "segment_properties"}
        pc.write_volume(vol, out / name, kind="segmentation", **extra)
        table = _segment_table(run, name)
        labels = vol.to_numpy() if (is_main and shapes) or table is None else None
        if table is not None and len(table):
            seg_ids = table["segment_id"].to_numpy(np.uint64)
            cols = [c for c in ("cell_type", "cell_class") if c in table.columns]
            label = [" ".join(str(v) for v in row if v is not None and str(v) not in ("", "nan", "None", "<NA>"))
                     or str(sid) for sid, row in zip(seg_ids, table[cols].itertuples(index=False))] if cols \
                else [str(s) for s in seg_ids]
            nums = {"size_vx": table["size_vx"].to_numpy(np.float64)} if "size_vx" in table.columns else None
        else:
            seg_ids = np.unique(labels)
            seg_ids = seg_ids[seg_ids != 0]
            label, nums = [str(s) for s in seg_ids], None
        pc.write_segment_properties(out / name / "segment_properties", seg_ids, labels=label, numbers=nums)
        if is_main:
            if ids is not None:
                present = set(int(s) for s in (np.unique(labels) if labels is not None else seg_ids))
                missing = [i for i in ids if i not in present]
                if missing:
                    shutil.rmtree(out, ignore_errors=True)
                    raise ConfigError(f"neurons {missing[:10]} are not segments of '{name}' in run {run.path}")
            segments = [int(s) for s in seg_ids] if ids is None else ids
            if shapes:
                skels, meshes = _shapes_for(run, name, labels, vol, ids)
                pc.write_meshes(meshes, out / name / "mesh")
                pc.write_skeletons(skels, out / name / "skeletons", segment_properties="../segment_properties")
                written["n_meshes"], written["n_skeletons"] = len(meshes), len(skels)
        written["labels"].append(name)
    tables = run.tables()
    syn_table = "synapses" if "synapses" in tables else ("gt_synapses" if "gt_synapses" in tables else None)
    if syn_table is not None:
        syn = run.read_table(syn_table)
        pc.write_synapses(syn, out / "synapses")
        written["synapses"] = syn_table
    state = pc.viewer_state(
        base_url or DEFAULT_BASE_URL, voxel_size=img.voxel_size, shape=img.shape, offset=img.offset,
        image=image, segmentation="segmentation" if "segmentation" in label_names else None,
        ground_truth="gt_segmentation" if "gt_segmentation" in label_names else None,
        synapses="synapses" if syn_table else None,
        skeletons=f"{main}/skeletons" if (main and shapes) else None,
        segments=segments[:200])
    (out / "state.json").write_text(json.dumps(state, indent=1))
    manifest = {"run": str(run.path.resolve()), "fingerprint": run_fingerprint(run), "neurons": ids,
                "shapes": shapes, **written,
                "note": "x, y, z order; resolutions, mesh/skeleton vertices and annotation positions in nm"}
    (out / "export.json").write_text(json.dumps(manifest, indent=1))
    logger.info("exported %s to %s", run.path, out)
    return out
