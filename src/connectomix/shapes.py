"""Shapes of neurons: skeletons (kimimaro) and surface meshes (zmesh) per segment.

:func:`skeletonize` and :func:`mesh` are the numpy kernels: a label array with its
voxel size and offset in, one :class:`Skeleton` or :class:`Mesh` per segment out, with
vertices in nanometres, z, y, x (the package's frame; writers convert to x, y, z at
the boundary). :func:`shapes_stage` runs both on a run's segmentation and writes

- ``RUN/skeletons/<segment_id>.swc`` (SWC, x y z in nm),
- ``RUN/meshes/<segment_id>.ply`` (binary PLY, x y z in nm),
- the ``skeletons`` table (``segment_id``, ``cable_length_nm``, ``n_nodes``,
  ``n_branch_points``, ``n_leaves``, ``mesh_vertices``, ``mesh_faces``).

Neuroglancer precomputed copies are written by :mod:`connectomix.io._precomputed`.
The volume is processed whole (in memory): large volumes need a block-wise
skeletonization that merges across block faces (igneous-style), which is not here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError, VolumeError

__all__ = ["Skeleton", "Mesh", "skeletonize", "mesh", "write_swc", "write_ply", "shapes_stage",
           "MAX_VOXELS"]

logger = logging.getLogger(__name__)

#: Largest label volume (voxels) processed in one piece.
MAX_VOXELS = 512 * 1024 * 1024

#: kimimaro TEASAR parameters in nm; ``const`` is the invalidation ball around each
#: path (a few hundred nm suits neurites of 100 nm - 1 um).
DEFAULT_TEASAR = {"scale": 1.5, "const": 300, "pdrf_scale": 100000, "pdrf_exponent": 4,
                  "soma_detection_threshold": 1100, "soma_acceptance_threshold": 3500,
                  "soma_invalidation_scale": 1.0, "soma_invalidation_const": 300}


@dataclass(frozen=True)
class Skeleton:
    """One segment's skeleton: a tree (or forest) of nodes in nm.

    Attributes
    ----------
    segment_id : int
    vertices : (N, 3) float32, nm, z y x
    edges : (M, 2) uint32, indices into ``vertices``
    radii : (N,) float32, nm (distance to the segment's boundary)
    """

    segment_id: int
    vertices: np.ndarray
    edges: np.ndarray
    radii: np.ndarray = field(repr=False)

    @property
    def n_nodes(self) -> int:
        return int(len(self.vertices))

    @property
    def cable_length(self) -> float:
        """Total length of all edges, in nm."""
        if not len(self.edges):
            return 0.0
        d = self.vertices[self.edges[:, 0]].astype(np.float64) - self.vertices[self.edges[:, 1]]
        return float(np.sqrt((d * d).sum(axis=1)).sum())

    def degrees(self) -> np.ndarray:
        return np.bincount(self.edges.ravel(), minlength=self.n_nodes) if len(self.edges) else np.zeros(
            self.n_nodes, dtype=np.int64)

    def to_swc(self) -> str:
        """SWC text: one line per node, ``id type x y z radius parent`` (nm, 1-based ids).

        Each connected component is rooted at its first node and ordered so that a
        parent always comes before its children.
        """
        n = self.n_nodes
        nbrs: list[list[int]] = [[] for _ in range(n)]
        for a, b in self.edges.tolist():
            nbrs[a].append(b)
            nbrs[b].append(a)
        order, parent = [], np.full(n, -2, dtype=np.int64)
        for root in range(n):
            if parent[root] != -2:
                continue
            parent[root] = -1
            stack = [root]
            while stack:
                v = stack.pop()
                order.append(v)
                for w in nbrs[v]:
                    if parent[w] == -2:
                        parent[w] = v
                        stack.append(w)
        new_id = np.empty(n, dtype=np.int64)
        new_id[order] = np.arange(1, n + 1)
        deg = self.degrees()
        lines = [f"# connectomix skeleton of segment {self.segment_id}; units nm; columns: "
                 "id type x y z radius parent"]
        for v in order:
            z, y, x = (float(c) for c in self.vertices[v])
            p = -1 if parent[v] < 0 else int(new_id[parent[v]])
            kind = 1 if parent[v] < 0 else (5 if deg[v] > 2 else (6 if deg[v] == 1 else 3))
            lines.append(f"{new_id[v]} {kind} {x:.1f} {y:.1f} {z:.1f} {float(self.radii[v]):.1f} {p}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Mesh:
    """One segment's surface: a triangle mesh in nm.

    Attributes
    ----------
    segment_id : int
    vertices : (N, 3) float32, nm, z y x
    faces : (M, 3) uint32, indices into ``vertices``; counter-clockwise seen from
        outside in the z, y, x frame
    """

    segment_id: int
    vertices: np.ndarray
    faces: np.ndarray

    def xyz(self) -> tuple[np.ndarray, np.ndarray]:
        """Vertices in x, y, z and faces with the winding that keeps them outward there."""
        return (np.ascontiguousarray(self.vertices[:, ::-1], dtype=np.float32),
                np.ascontiguousarray(self.faces[:, ::-1], dtype=np.uint32))


def _labels(labels, voxel_size, offset, what):
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise VolumeError(f"{what} needs a 3-D label array (z, y, x), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise VolumeError(f"{what} needs integer labels, got dtype {arr.dtype}")
    if arr.size > MAX_VOXELS:
        raise VolumeError(
            f"{what}: the label array has {arr.size} voxels, more than the {MAX_VOXELS} processed in one "
            "piece; crop it to a region of interest")
    vs = np.asarray(voxel_size, dtype=np.float64)
    off = np.zeros(3) if offset is None else np.asarray(offset, dtype=np.float64)
    if vs.shape != (3,) or np.any(vs <= 0):
        raise VolumeError(f"{what} needs a positive voxel size (z, y, x) in nm, got {voxel_size!r}")
    if off.shape != (3,):
        raise VolumeError(f"{what} needs an offset (z, y, x) in nm, got {offset!r}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise VolumeError(f"{what}: labels must be non-negative, got minimum {arr.min()}")
    return arr.astype(np.uint64, copy=False), vs, off


def skeletonize(labels, *, voxel_size, offset=None, segment_ids=None, teasar_params=None,
                dust_threshold: int = 50, parallel: int = 1) -> dict[int, Skeleton]:
    """Skeletonize every segment of a label volume with kimimaro (TEASAR).

    Parameters
    ----------
    labels : (Z, Y, X) integer ndarray
        Segment ids; 0 is background.
    voxel_size : 3 numbers, nm (z, y, x)
        Anisotropic voxel sizes are handled (distances are physical).
    offset : 3 numbers, nm (z, y, x), optional
        World position of voxel (0, 0, 0).
    segment_ids : iterable of int, optional
        Only these segments (default all).
    teasar_params : dict, optional
        Overrides for :data:`DEFAULT_TEASAR` (nm).
    dust_threshold : int
        Segments smaller than this many voxels get no skeleton.

    Returns
    -------
    dict
        ``segment_id -> Skeleton``, vertices in nm (z, y, x) at voxel centres.

    Raises
    ------
    VolumeError
        For a non-3-D, non-integer or negative label array, or a bad voxel size.
    """
    import kimimaro

    arr, vs, off = _labels(labels, voxel_size, offset, "skeletonize")
    params = dict(DEFAULT_TEASAR, **(teasar_params or {}))
    # kimimaro works in the array's own axis order; hand it x, y, z (a Fortran view, no copy)
    skels = kimimaro.skeletonize(
        arr.T, teasar_params=params, anisotropy=tuple(vs[::-1]),
        object_ids=None if segment_ids is None else [int(s) for s in segment_ids],
        dust_threshold=dust_threshold, progress=False, fix_branching=True, fix_borders=True,
        parallel=parallel)
    out = {}
    for sid, sk in sorted(skels.items()):
        if not len(sk.vertices):
            continue
        # x,y,z -> z,y,x; kimimaro puts voxel i at i * vs, the package at its centre (i + 0.5) * vs
        verts = np.asarray(sk.vertices, dtype=np.float64)[:, ::-1] + off + 0.5 * vs
        out[int(sid)] = Skeleton(int(sid), verts.astype(np.float32),
                                 np.asarray(sk.edges, dtype=np.uint32).reshape(-1, 2),
                                 np.asarray(sk.radius, dtype=np.float32))
    return out


def mesh(labels, *, voxel_size, offset=None, segment_ids=None, reduction_factor: int = 10,
         max_error: float | None = None, close: bool = True) -> dict[int, Mesh]:
    """Mesh every segment's surface with zmesh (marching cubes + simplification).

    Parameters
    ----------
    labels : (Z, Y, X) integer ndarray
    voxel_size, offset : 3 numbers, nm (z, y, x)
    segment_ids : iterable of int, optional
        Only these segments (default all).
    reduction_factor : int
        Simplify to about 1/reduction_factor of the triangles (0: none).
    max_error : float, optional
        Largest vertex displacement allowed by simplification, nm (default one voxel).
    close : bool
        Close meshes where they touch the volume's border.

    Returns
    -------
    dict
        ``segment_id -> Mesh`` with vertices in nm (z, y, x); voxel ``i`` spans
        ``[i, i + 1) * voxel_size + offset``, so surfaces lie on the objects' faces.
    """
    import zmesh

    arr, vs, off = _labels(labels, voxel_size, offset, "mesh")
    mesher = zmesh.Mesher(tuple(vs[::-1]))
    mesher.mesh(np.asfortranarray(arr.T), close=close)
    wanted = None if segment_ids is None else {int(s) for s in segment_ids}
    out = {}
    for sid in sorted(int(s) for s in mesher.ids()):
        if sid == 0 or (wanted is not None and sid not in wanted):
            mesher.erase(sid)
            continue
        m = mesher.get(sid, normals=False, reduction_factor=reduction_factor,
                       max_error=max_error if max_error is not None else float(vs.max()),
                       voxel_centered=True)
        mesher.erase(sid)
        if not len(m.faces):
            continue
        # x,y,z -> z,y,x is a reflection: reverse the winding to keep faces outward
        # voxel_centered puts voxel i's centre at (i + 0.5) * vs; closing pads one voxel
        verts = np.asarray(m.vertices, dtype=np.float64)[:, ::-1] + off - (vs if close else 0.0)
        out[sid] = Mesh(sid, verts.astype(np.float32), np.asarray(m.faces, dtype=np.uint32)[:, ::-1].copy())
    mesher.clear()
    return out


def write_swc(skeleton: Skeleton, path) -> Path:
    """Write a skeleton as SWC (x y z radius in nm)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(skeleton.to_swc())
    return path


def write_ply(m: Mesh, path) -> Path:
    """Write a mesh as binary little-endian PLY (x y z in nm)."""
    verts, faces = m.xyz()
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"comment connectomix mesh of segment {m.segment_id}; units nm\n"
              f"element vertex {len(verts)}\nproperty float x\nproperty float y\nproperty float z\n"
              f"element face {len(faces)}\nproperty list uchar uint vertex_indices\nend_header\n")
    rec = np.empty(len(faces), dtype=[("n", "u1"), ("i", "<u4", 3)])
    rec["n"] = 3
    rec["i"] = faces
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header.encode())
        f.write(verts.astype("<f4").tobytes())
        f.write(rec.tobytes())
    return path


def _summary(skels: dict[int, Skeleton], meshes: dict[int, Mesh]):
    import pandas as pd

    ids = sorted(set(skels) | set(meshes))
    rows = []
    for sid in ids:
        sk, m = skels.get(sid), meshes.get(sid)
        deg = sk.degrees() if sk is not None else np.zeros(0)
        rows.append({
            "segment_id": np.uint64(sid),
            "cable_length_nm": sk.cable_length if sk is not None else 0.0,
            "n_nodes": sk.n_nodes if sk is not None else 0,
            "n_branch_points": int((deg > 2).sum()),
            "n_leaves": int((deg == 1).sum()),
            "mesh_vertices": len(m.vertices) if m is not None else 0,
            "mesh_faces": len(m.faces) if m is not None else 0,
        })
    df = pd.DataFrame(rows, columns=["segment_id", "cable_length_nm", "n_nodes", "n_branch_points",
                                     "n_leaves", "mesh_vertices", "mesh_faces"])
    return df.astype({"segment_id": "uint64", "n_nodes": "int64", "n_branch_points": "int64",
                      "n_leaves": "int64", "mesh_vertices": "int64", "mesh_faces": "int64"})


def shapes_stage(run_path, *, source: str | None = None, segment_ids=None, teasar_params=None,
                 dust_threshold: int = 50, reduction_factor: int = 10, meshes: bool = True,
                 force: bool = False):
    """Skeletons and meshes of a run's segments (the ``shapes`` stage).

    Parameters
    ----------
    run_path : str or Path
        A run directory.
    source : str, optional
        The label array: default ``segmentation``, else ``gt_segmentation``.
    segment_ids : iterable of int, optional
        Only these segments.

    Returns
    -------
    pandas.DataFrame
        The ``skeletons`` table (also written to the run), or the stored table when
        the stage already ran with this configuration.

    Raises
    ------
    ConfigError
        If the run has no label array to work on.
    """
    import shutil

    from .run import Run

    run = Run(run_path)
    if source is None:
        have = run.arrays()
        source = next((n for n in ("segmentation", "gt_segmentation") if n in have), None)
        if source is None:
            raise ConfigError(f"run {run.path} has no 'segmentation' (nor 'gt_segmentation') to skeletonize; "
                              "run `connectomix segment` first")
    vol = run.open(source)
    if vol.n_channel_axes:
        raise VolumeError(f"'{source}' has channel axes (shape {vol.shape}); shapes need one label per voxel")
    ids = None if segment_ids is None else sorted(int(s) for s in segment_ids)
    cfg = {"source": source, "segment_ids": ids, "teasar_params": teasar_params,
           "dust_threshold": dust_threshold, "reduction_factor": reduction_factor, "meshes": meshes}
    with run.stage("shapes", cfg, force=force) as st:
        if st.skipped and "skeletons" in run.tables():
            return run.read_table("skeletons")
        labels = vol.to_numpy()
        vs, off = tuple(vol.voxel_size), tuple(vol.offset)
        skels = skeletonize(labels, voxel_size=vs, offset=off, segment_ids=ids,
                            teasar_params=teasar_params, dust_threshold=dust_threshold)
        ms = mesh(labels, voxel_size=vs, offset=off, segment_ids=ids,
                  reduction_factor=reduction_factor) if meshes else {}
        for sub in ("skeletons", "meshes"):
            shutil.rmtree(run.path / sub, ignore_errors=True)
        for sid, sk in skels.items():
            write_swc(sk, run.path / "skeletons" / f"{sid}.swc")
        for sid, m in ms.items():
            write_ply(m, run.path / "meshes" / f"{sid}.ply")
        df = _summary(skels, ms)
        run.write_table("skeletons", df)
        logger.info("shapes: %d skeletons, %d meshes from '%s'", len(skels), len(ms), source)
        return df


def read_shapes(run_path, *, segment_ids=None) -> tuple[dict[int, Skeleton], dict[int, Mesh]]:
    """Read the SWC skeletons and PLY meshes :func:`shapes_stage` wrote."""
    run_path = Path(run_path)
    wanted = None if segment_ids is None else {int(s) for s in segment_ids}
    skels, meshes = {}, {}
    for p in sorted((run_path / "skeletons").glob("*.swc")):
        sid = int(p.stem)
        if wanted is None or sid in wanted:
            skels[sid] = _read_swc(p, sid)
    for p in sorted((run_path / "meshes").glob("*.ply")):
        sid = int(p.stem)
        if wanted is None or sid in wanted:
            meshes[sid] = _read_ply(p, sid)
    return skels, meshes


def _read_swc(path, sid) -> Skeleton:
    rows = np.loadtxt(path, comments="#", ndmin=2)
    if not len(rows):
        return Skeleton(sid, np.zeros((0, 3), np.float32), np.zeros((0, 2), np.uint32), np.zeros(0, np.float32))
    index = {int(i): k for k, i in enumerate(rows[:, 0])}
    edges = [(index[int(c)], index[int(p)]) for c, p in zip(rows[:, 0], rows[:, 6]) if p >= 0]
    return Skeleton(sid, rows[:, [4, 3, 2]].astype(np.float32), np.asarray(edges, np.uint32).reshape(-1, 2),
                    rows[:, 5].astype(np.float32))


def _read_ply(path, sid) -> Mesh:
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    head = data[:end].decode().splitlines()
    nv = int(next(h for h in head if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in head if h.startswith("element face")).split()[-1])
    verts = np.frombuffer(data, "<f4", nv * 3, end).reshape(nv, 3)
    rec = np.frombuffer(data, [("n", "u1"), ("i", "<u4", 3)], nf, end + nv * 12)
    return Mesh(sid, verts[:, ::-1].astype(np.float32), rec["i"][:, ::-1].astype(np.uint32))
