"""Neuroglancer precomputed writer: images, segmentations, meshes, skeletons, annotations.

Everything here writes the *unsharded* precomputed formats, which any static file
server can host and neuroglancer (and cloud-volume, igneous, webKnossos) reads:

- :func:`write_volume`        image or segmentation (tensorstore's
  ``neuroglancer_precomputed`` driver; raw or compressed_segmentation encoding),
  written slab by slab in bounded memory;
- :func:`write_meshes`        legacy single-resolution meshes (``<id>:0`` manifests);
- :func:`write_skeletons`     skeletons with a ``radius`` vertex attribute;
- :func:`write_segment_properties`  labels and tags shown beside segment ids;
- :func:`write_synapses`      synapse annotations (points at the cleft, or lines
  pre -> post), with a multi-level spatial index, a by-id index and by-segment
  relationship indices (``pre``, ``post``);
- :func:`viewer_state`        a neuroglancer state (JSON) that opens such a folder.

Frames: the package is z, y, x in nm; precomputed is x, y, z. Image resolutions are the
voxel size in nm; mesh and skeleton vertices and annotation positions are written in
nm (annotation dimensions are 1 nm). Voxel ``i`` spans ``[i, i+1) * resolution``, so
voxel centres sit at ``(i + 0.5) * resolution`` in both frames.

Format references: github.com/google/neuroglancer/tree/master/src/datasource/precomputed
(``volume.md``, ``meshes.md``, ``skeletons.md``, ``annotations.md``).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ..errors import ConfigError, VolumeError

__all__ = [
    "write_volume",
    "write_meshes",
    "write_skeletons",
    "write_segment_properties",
    "write_synapses",
    "viewer_state",
    "SYNAPSE_KINDS",
]

#: The ``kind`` enum of synapse annotations.
SYNAPSE_KINDS = ("chemical", "electrical")


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------- volumes
def write_volume(volume, path, *, kind: str = "image", chunk_size=None, mesh: str | None = None,
                 skeletons: str | None = None, segment_properties: str | None = None,
                 slab_voxels: int = 64 * 1024 * 1024) -> Path:
    """Write a 3-D :class:`~connectomix.volume.Volume` as a precomputed volume.

    Parameters
    ----------
    volume : Volume, (Z, Y, X)
        uint8/uint16/float32 for images; unsigned integers for segmentations.
    path : str or Path
        The output folder (gets ``info`` and one folder of chunks).
    kind : {"image", "segmentation"}
    chunk_size : 3 ints (x, y, z), optional
        Storage chunk in voxels; default 64 x 64 in plane and up to 16 sections.
    mesh, skeletons, segment_properties : str, optional
        Relative paths recorded in ``info`` (segmentations).
    slab_voxels : int
        Voxels read and written at once (memory bound).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    VolumeError
        For channel axes, an unsupported dtype, or an offset that is not a whole
        number of voxels.
    """
    import tensorstore as ts

    if kind not in ("image", "segmentation"):
        raise ConfigError(f"kind must be 'image' or 'segmentation', got {kind!r}")
    if volume.n_channel_axes or len(volume.shape) != 3:
        raise VolumeError(f"precomputed export takes a 3-D single-channel volume, got shape {volume.shape}")
    dtype = np.dtype(volume.dtype)
    if kind == "segmentation":
        if dtype.kind not in "ui":
            raise VolumeError(f"a segmentation must have integer labels, got dtype {dtype}")
        out_dtype = np.dtype(np.uint64)
    else:
        allowed = {np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.float32)}
        out_dtype = dtype if dtype in allowed else np.dtype(np.float32)
    vs = np.asarray(volume.voxel_size, dtype=np.int64)
    off = np.asarray(volume.offset, dtype=np.int64)
    if np.any(off % vs):
        raise VolumeError(
            f"precomputed needs an offset that is a whole number of voxels: offset {tuple(off)} nm, "
            f"voxel size {tuple(vs)} nm")
    shape_zyx = np.asarray(volume.shape, dtype=np.int64)
    if chunk_size is None:
        chunk_size = (int(min(64, shape_zyx[2])), int(min(64, shape_zyx[1])), int(min(16, shape_zyx[0])))
    chunk_size = [int(c) for c in chunk_size]
    path = Path(path)
    scale = {
        "size": [int(s) for s in shape_zyx[::-1]],
        "resolution": [float(v) for v in vs[::-1]],
        "voxel_offset": [int(o) for o in (off // vs)[::-1]],
        "chunk_size": chunk_size,
        "encoding": "compressed_segmentation" if kind == "segmentation" else "raw",
    }
    if kind == "segmentation":
        scale["compressed_segmentation_block_size"] = [8, 8, 8]
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": {"driver": "file", "path": str(path)},
        "multiscale_metadata": {"type": kind, "data_type": out_dtype.name, "num_channels": 1},
        "scale_metadata": scale,
        "create": True,
        "delete_existing": True,
    }
    store = ts.open(spec).result().translate_to[0, 0, 0, 0]
    # slabs of whole chunk layers along z, so no two writes share a chunk
    per_section = int(shape_zyx[1] * shape_zyx[2])
    step = max(chunk_size[2], (slab_voxels // max(per_section, 1)) // chunk_size[2] * chunk_size[2])
    for z0 in range(0, int(shape_zyx[0]), step):
        z1 = min(int(shape_zyx[0]), z0 + step)
        data = np.asarray(volume.data[z0:z1])
        if kind == "segmentation" and dtype.kind == "i" and data.size and data.min() < 0:
            raise VolumeError(f"segmentation labels must be non-negative, got {data.min()}")
        store[:, :, z0:z1, 0] = data.astype(out_dtype, copy=False).T
    info_path = path / "info"
    info = json.loads(info_path.read_text())
    for key, value in (("mesh", mesh), ("skeletons", skeletons), ("segment_properties", segment_properties)):
        if value is not None:
            info[key] = value
    _write_json(info_path, info)
    return path


# ---------------------------------------------------------------------- meshes
def write_meshes(meshes: Mapping[int, object], path) -> Path:
    """Write meshes in the legacy single-resolution precomputed format.

    Parameters
    ----------
    meshes : dict
        ``segment_id -> connectomix.shapes.Mesh`` (vertices nm, z y x).
    path : str or Path
        The mesh folder (referenced as ``"mesh"`` in the segmentation's info).

    Notes
    -----
    Per segment: a manifest ``<id>:0`` (JSON listing its fragments) and one fragment
    ``<id>:0:0`` = uint32 vertex count, float32 x y z per vertex (nm), uint32 triangle
    indices, little endian.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _write_json(path / "info", {"@type": "neuroglancer_legacy_mesh"})
    for sid, m in sorted(meshes.items()):
        verts, faces = m.xyz()
        frag = f"{int(sid)}:0:0"
        _write_bytes(path / frag, struct.pack("<I", len(verts)) + verts.astype("<f4").tobytes()
                     + faces.astype("<u4").tobytes())
        _write_json(path / f"{int(sid)}:0", {"fragments": [frag]})
    return path


# ---------------------------------------------------------------------- skeletons
def write_skeletons(skeletons: Mapping[int, object], path, *, segment_properties: str | None = None) -> Path:
    """Write skeletons in the precomputed (unsharded) skeleton format.

    Parameters
    ----------
    skeletons : dict
        ``segment_id -> connectomix.shapes.Skeleton`` (vertices nm, z y x; radii nm).
    path : str or Path
        The skeleton folder (referenced as ``"skeletons"`` in the segmentation's info).
    segment_properties : str, optional
        Relative path of a segment-properties folder to record in ``info``.

    Notes
    -----
    Per segment, file ``<id>``: uint32 vertex count, uint32 edge count, float32 x y z
    per vertex (nm), uint32 edge pairs, then the ``radius`` attribute (float32 per
    vertex), little endian.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    info = {
        "@type": "neuroglancer_skeletons",
        "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
        "vertex_attributes": [{"id": "radius", "data_type": "float32", "num_components": 1}],
    }
    if segment_properties is not None:
        info["segment_properties"] = segment_properties
    _write_json(path / "info", info)
    for sid, sk in sorted(skeletons.items()):
        verts = np.ascontiguousarray(np.asarray(sk.vertices)[:, ::-1], dtype="<f4")
        edges = np.ascontiguousarray(sk.edges, dtype="<u4")
        data = (struct.pack("<II", len(verts), len(edges)) + verts.tobytes() + edges.tobytes()
                + np.asarray(sk.radii, dtype="<f4").tobytes())
        _write_bytes(path / str(int(sid)), data)
    return path


def write_segment_properties(path, ids: Iterable[int], *, labels: Iterable[str] | None = None,
                             numbers: Mapping[str, Iterable[float]] | None = None,
                             tags: Iterable[str] | None = None) -> Path:
    """Write an inline ``neuroglancer_segment_properties`` folder.

    ``labels`` (one per id) are shown next to segment ids; ``numbers`` (name -> one
    value per id) become sortable numeric columns; ``tags`` (one string per id, or
    None) become filterable tags.
    """
    ids = [str(int(i)) for i in ids]
    props = []
    if labels is not None:
        labels = [str(v) for v in labels]
        props.append({"id": "label", "type": "label", "values": labels})
    for name, values in (numbers or {}).items():
        vals = [float(v) for v in values]
        props.append({"id": name, "type": "number", "data_type": "float32", "values": vals})
    if tags is not None:
        tags = [None if t is None else str(t) for t in tags]
        names = sorted({t for t in tags if t})
        props.append({"id": "tags", "type": "tags", "tags": names,
                      "values": [[names.index(t)] if t else [] for t in tags]})
    for p in props:
        if len(p["values"]) != len(ids):
            raise ConfigError(f"segment property {p['id']!r} has {len(p['values'])} values for {len(ids)} ids")
    path = Path(path)
    _write_json(path / "info", {"@type": "neuroglancer_segment_properties",
                                "inline": {"ids": ids, "properties": props}})
    return path


# ---------------------------------------------------------------------- annotations
# Property layout: 4-byte properties first, then 1-byte ones, then padding to 4 bytes
# (the order neuroglancer decodes them in).
_PROPS = [
    {"id": "score", "type": "float32", "description": "detection score"},
    # int32, not uint32: neuroglancer's Python reader/writer 2.41 misaligns uint32 properties
    {"id": "size_vx", "type": "int32", "description": "cleft size in voxels"},
    {"id": "kind", "type": "uint8", "enum_values": [0, 1], "enum_labels": list(SYNAPSE_KINDS)},
]
_RELATIONSHIPS = ("pre", "post")


def _encode(geometry: np.ndarray, synapses) -> np.ndarray:
    """One fixed-size record per annotation: geometry, score, size_vx, kind, padding."""
    n, g = geometry.shape
    dt = np.dtype([("geometry", "<f4", (g,)), ("score", "<f4"), ("size_vx", "<i4"), ("kind", "u1"),
                   ("pad", "u1", (3,))])
    rec = np.zeros(n, dtype=dt)
    rec["geometry"] = geometry
    rec["score"] = np.asarray(synapses["score"], dtype=np.float32) if "score" in synapses else 1.0
    if "size_vx" in synapses:
        rec["size_vx"] = np.clip(np.asarray(synapses["size_vx"], dtype=np.int64), 0, 2**31 - 1)
    if "kind" in synapses:
        kinds = np.asarray(synapses["kind"]).astype(str)
        bad = sorted(set(kinds) - set(SYNAPSE_KINDS))
        if bad:
            raise ConfigError(f"synapse kind must be one of {SYNAPSE_KINDS}, got {bad[:3]}")
        rec["kind"] = (kinds == "electrical").astype(np.uint8)
    return rec


def _multi(records: np.ndarray, ids: np.ndarray) -> bytes:
    """The multi-annotation encoding of spatial and relationship chunks."""
    return struct.pack("<Q", len(records)) + records.tobytes() + np.asarray(ids, dtype="<u8").tobytes()


def _synapse_geometry(synapses, geometry: str):
    cols = set(synapses.columns)
    ends = {f"{w}_{a}" for w in ("pre", "post") for a in "zyx"}
    if geometry == "auto":
        geometry = "line" if ends <= cols else "point"
    if geometry == "line":
        if not ends <= cols:
            raise ConfigError(f"synapse lines need columns {sorted(ends)}; the table has {sorted(cols)}")
        a = synapses[["pre_x", "pre_y", "pre_z"]].to_numpy(np.float64)
        b = synapses[["post_x", "post_y", "post_z"]].to_numpy(np.float64)
        return "line", np.hstack([a, b]), (a + b) / 2, np.minimum(a, b), np.maximum(a, b)
    if geometry != "point":
        raise ConfigError(f"geometry must be 'auto', 'point' or 'line', got {geometry!r}")
    missing = {"z", "y", "x"} - cols
    if missing:
        raise ConfigError(f"the synapse table lacks position columns {sorted(missing)} (nm)")
    p = synapses[["x", "y", "z"]].to_numpy(np.float64)
    return "point", p, p, p, p


def write_synapses(synapses, path, *, geometry: str = "auto", limit: int = 500, seed: int = 0) -> Path:
    """Write a synapse table as precomputed annotations.

    Parameters
    ----------
    synapses : pandas.DataFrame
        DESIGN.md's ``synapses`` columns: ``synapse_id``, ``pre_id``, ``post_id``,
        ``z``, ``y``, ``x`` (nm, cleft centre), optionally ``score``, ``size_vx``,
        ``kind``; for lines also ``pre_z/_y/_x`` and ``post_z/_y/_x`` (nm).
    path : str or Path
        The annotation folder.
    geometry : {"auto", "point", "line"}
        ``line`` draws pre -> post; ``auto`` picks lines when both ends are known.
    limit : int
        Annotations per spatial-index cell before a finer level takes the rest.
    seed : int
        Seed of the random order that picks which annotations show at coarse levels.

    Returns
    -------
    Path

    Notes
    -----
    Spatial index: level ``k`` divides the bounding box into ``2**k`` cells per axis;
    each cell keeps at most ``limit`` of the annotations not yet placed (in a random
    order), the rest move to the next level, so a zoomed-out view downloads a sample
    and a zoomed-in one all. Relationship indices ``rel_pre/<segment_id>`` and
    ``rel_post/<segment_id>`` list a neuron's output and input synapses.
    """
    import pandas as pd

    if not isinstance(synapses, pd.DataFrame):
        raise ConfigError(f"synapses must be a pandas DataFrame, got {type(synapses).__name__}")
    for col in ("synapse_id", "pre_id", "post_id"):
        if col not in synapses.columns:
            raise ConfigError(f"the synapse table lacks column {col!r} (has {list(synapses.columns)})")
    if limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit}")
    kind, geom, centre, lo, hi = _synapse_geometry(synapses, geometry)
    if not np.all(np.isfinite(geom)):
        raise ConfigError("synapse positions contain NaN or infinite values")
    n = len(synapses)
    ids = synapses["synapse_id"].to_numpy(np.uint64)
    pre = synapses["pre_id"].to_numpy(np.uint64)
    post = synapses["post_id"].to_numpy(np.uint64)
    rec = _encode(geom, synapses)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lower = lo.min(axis=0) if n else np.zeros(3)
    upper = hi.max(axis=0) + 1.0 if n else np.ones(3)
    extent = np.maximum(upper - lower, 1.0)

    # by id: record + per relationship (uint32 count, uint64 ids)
    (path / "by_id").mkdir(exist_ok=True)
    for i in range(n):
        rel = struct.pack("<IQ", 1, int(pre[i])) + struct.pack("<IQ", 1, int(post[i]))
        _write_bytes(path / "by_id" / str(int(ids[i])), rec[i:i + 1].tobytes() + rel)

    # relationship indices
    for name, seg in (("pre", pre), ("post", post)):
        d = path / f"rel_{name}"
        d.mkdir(exist_ok=True)
        order = np.argsort(seg, kind="stable")
        uniq, starts = np.unique(seg[order], return_index=True)
        for u, s, e in zip(uniq, starts, list(starts[1:]) + [n]):
            sel = order[s:e]
            _write_bytes(d / str(int(u)), _multi(rec[sel], ids[sel]))

    # multi-level spatial index
    rng = np.random.default_rng(seed)
    remaining = rng.permutation(n)
    levels = []
    level = 0
    while True:
        grid = np.full(3, 2 ** level, dtype=np.int64)
        chunk = extent / grid
        key = f"spatial{level}"
        (path / key).mkdir(exist_ok=True)
        cell = np.clip(((centre[remaining] - lower) // chunk).astype(np.int64), 0, grid - 1) if n else \
            np.zeros((0, 3), np.int64)
        flat = np.ravel_multi_index(cell.T, grid) if n else np.zeros(0, np.int64)
        last = level >= 10 or len(remaining) == 0
        keep = np.zeros(len(remaining), dtype=bool)
        max_count = 0
        for c in np.unique(flat):
            members = np.flatnonzero(flat == c)  # in the random order of ``remaining``
            take = members if last else members[:limit]
            keep[take] = True
            max_count = max(max_count, len(take))
            sel = remaining[take]
            ix, iy, iz = np.unravel_index(int(c), grid)
            _write_bytes(path / key / f"{ix}_{iy}_{iz}", _multi(rec[sel], ids[sel]))
        levels.append({"key": key, "grid_shape": [int(g) for g in grid],
                       "chunk_size": [float(c) for c in chunk], "limit": int(max(limit, max_count))})
        remaining = remaining[~keep]
        if len(remaining) == 0:
            break
        level += 1
    if n == 0:
        levels = [{"key": "spatial0", "grid_shape": [1, 1, 1], "chunk_size": [float(e) for e in extent],
                   "limit": 1}]
    info = {
        "@type": "neuroglancer_annotations_v1",
        "dimensions": {"x": [1e-9, "m"], "y": [1e-9, "m"], "z": [1e-9, "m"]},
        "lower_bound": [float(v) for v in lower],
        "upper_bound": [float(v) for v in upper],
        "annotation_type": kind.upper(),
        "properties": _PROPS,
        "relationships": [{"id": r, "key": f"rel_{r}"} for r in _RELATIONSHIPS],
        "by_id": {"key": "by_id"},
        "spatial": levels,
    }
    _write_json(path / "info", info)
    return path


# ---------------------------------------------------------------------- viewer state
def viewer_state(base_url: str, *, voxel_size, shape, offset=(0, 0, 0), image: str | None = "raw",
                 segmentation: str | None = "segmentation", ground_truth: str | None = None,
                 synapses: str | None = "synapses", skeletons: str | None = None,
                 segments: Iterable[int] = (), layout: str = "4panel") -> dict:
    """A neuroglancer viewer state (JSON-able dict) that opens an exported folder.

    Parameters
    ----------
    base_url : str
        Where the folder is served, e.g. ``http://127.0.0.1:8000`` (no trailing slash).
    voxel_size, shape, offset : 3 numbers each, z y x (nm, voxels, nm)
        Of the image: set the display scale (anisotropic) and the initial position.
    image, segmentation, ground_truth, synapses, skeletons : str or None
        Sub-folders of the export for each layer (None: no such layer).
    segments : iterable of int
        Segments selected at start (their meshes and skeletons are shown).

    Returns
    -------
    dict
        The state; ``json.dumps`` it, or append it to a neuroglancer URL after ``#!``.
    """
    base = base_url.rstrip("/")
    vs = [float(v) for v in voxel_size]
    centre_vx = [(float(o) / v + s / 2.0) for o, v, s in zip(offset, vs, shape)]
    segs = [str(int(s)) for s in segments]
    layers = []
    if image:
        layers.append({"type": "image", "source": f"precomputed://{base}/{image}", "name": image,
                       "tab": "source"})
    if segmentation:
        layers.append({"type": "segmentation", "source": f"precomputed://{base}/{segmentation}",
                       "name": "segmentation", "segments": segs, "selectedAlpha": 0.4,
                       "objectAlpha": 1.0, "tab": "segments"})
    if ground_truth:
        # shown (with the selection) only when there is no segmentation to compare it with
        gt_layer = {"type": "segmentation", "source": f"precomputed://{base}/{ground_truth}",
                    "name": "ground truth", "selectedAlpha": 0.4}
        if segmentation:
            gt_layer["visible"] = False
        else:
            gt_layer["segments"] = segs
        layers.append(gt_layer)
    if skeletons:
        layers.append({"type": "segmentation", "source": f"precomputed://{base}/{skeletons}",
                       "name": "skeletons", "segments": segs, "tab": "segments"})
    if synapses:
        link = "segmentation" if segmentation else ("ground truth" if ground_truth else None)
        layer = {"type": "annotation", "source": f"precomputed://{base}/{synapses}", "name": "synapses",
                 "annotationColor": "#ffff00", "tab": "annotations",
                 "shader": "void main() {\n  setColor(prop_kind() == 1u ? vec3(0.0, 1.0, 1.0) : "
                           "vec3(1.0, 1.0, 0.0));\n  setPointMarkerSize(8.0);\n}\n"}
        if link:
            layer["linkedSegmentationLayer"] = {"pre": link, "post": link}
            layer["filterBySegmentation"] = []
        layers.append(layer)
    return {
        "dimensions": {"x": [vs[2] * 1e-9, "m"], "y": [vs[1] * 1e-9, "m"], "z": [vs[0] * 1e-9, "m"]},
        "position": [centre_vx[2], centre_vx[1], centre_vx[0]],
        # 2D panels: the in-plane field of view fits about 400 pixels; 3D: the whole box
        "crossSectionScale": float(max(1.0, max(shape[1], shape[2]) / 400.0)),
        "projectionScale": float(max(s * v for s, v in zip(shape, vs))) / 4.0,
        "layers": layers,
        "selectedLayer": {"layer": "segmentation" if segmentation else ("ground truth" if ground_truth else image or ""),
                          "visible": False},
        "layout": layout,
    }
