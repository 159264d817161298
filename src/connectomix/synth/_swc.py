"""Real neuron morphologies (SWC) placed among the procedural neuropil.

:func:`read_swc` reads one SWC file robustly: comments and blank lines are skipped,
parents listed after their children are fine (the nodes are reordered), a node with
no positive radius gets the neuron's median radius; duplicate node ids, parents that
do not exist, cycles, too few columns and non-numbers are rejected with the file and
line named. :func:`place_morphologies` converts every neuron to nm (with its radii),
picks the box of the volume's size where most of them run together, moves that box
onto the canvas and turns the neurons into tubes of a :class:`Neuropil`, around which
the procedural neurites then grow.

Sources: ``"hemibrain"`` (the five DA1 projection neurons of the Janelia hemibrain
shipped inside the ``navis`` package, SWC in 8-nm voxels; their SWC files are read
directly, navis is not imported) or a folder of ``*.swc`` files with ``units`` one of
``nm``, ``um`` or ``voxel:Z,Y,X`` (nm per voxel along z, y, x; ``voxel:8`` for
isotropic 8 nm). SWC x, y, z become connectomix x, y, z (sections are z).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputFormatError, VolumeNotFoundError
from ._neurites import Bouton, Neuropil, Tube

__all__ = ["SwcNeuron", "read_swc", "parse_units", "load_morphologies", "place_morphologies"]

MIN_RADIUS = 30.0  # nm: thinner SWC radii are raised to this


@dataclass
class SwcNeuron:
    """One neuron: nodes in parent-first order, positions (z, y, x) and radii in nm."""

    name: str
    ids: np.ndarray
    points: np.ndarray  # (N, 3) nm, z y x
    radii: np.ndarray  # (N,) nm
    parent: np.ndarray  # (N,) index of the parent node, -1 for a root
    cell_type: str = "swc"
    transmitter: str = "unknown"
    source: str = "swc"


def parse_units(units) -> np.ndarray:
    """nm per SWC unit along (z, y, x) for ``'nm'``, ``'um'`` or ``'voxel:Z,Y,X'``."""
    if isinstance(units, str):
        u = units.strip().lower()
        if u == "nm":
            return np.ones(3)
        if u in ("um", "µm", "micron", "microns"):
            return np.full(3, 1000.0)
        if u.startswith("voxel:"):
            try:
                vals = [float(v) for v in u[6:].split(",")]
            except ValueError:
                vals = []
            if len(vals) == 1:
                vals = vals * 3
            if len(vals) == 3 and all(v > 0 for v in vals):
                return np.array(vals)
    raise ConfigError(f"SWC units must be 'nm', 'um' or 'voxel:Z,Y,X' (nm per voxel), got {units!r}")


def read_swc(path, *, units="nm", name=None) -> SwcNeuron:
    """Read an SWC file into an :class:`SwcNeuron` (nm, parent-first order).

    Raises
    ------
    VolumeNotFoundError
        If the file does not exist.
    InputFormatError
        For a malformed file: too few columns, non-numbers, duplicate node ids,
        missing parents, cycles, or no nodes at all.
    """
    path = Path(path)
    scale = parse_units(units)
    if not path.is_file():
        raise VolumeNotFoundError(f"SWC file {path} does not exist")
    ids, xyz, rad, par = [], [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            cols = line.split()
            if len(cols) < 7:
                raise InputFormatError(f"{path}:{lineno}: an SWC node needs 7 columns (id type x y z radius parent), "
                                       f"got {len(cols)}: {line[:60]!r}")
            try:
                i, p = int(float(cols[0])), int(float(cols[6]))
                x, y, z, r = (float(c) for c in cols[2:6])
            except ValueError:
                raise InputFormatError(f"{path}:{lineno}: not a number in SWC node {line[:60]!r}") from None
            if not np.all(np.isfinite([x, y, z, r])):
                raise InputFormatError(f"{path}:{lineno}: non-finite coordinate or radius in {line[:60]!r}")
            ids.append(i)
            xyz.append((z, y, x))
            rad.append(r)
            par.append(p)
    if not ids:
        raise InputFormatError(f"{path}: no SWC nodes")
    ids = np.array(ids, np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][:5].tolist()
        raise InputFormatError(f"{path}: duplicate SWC node id(s) {dup}")
    index = {int(i): k for k, i in enumerate(ids)}
    parent = np.full(len(ids), -1, np.int64)
    for k, p in enumerate(par):
        if p < 0:
            continue
        if p not in index:
            raise InputFormatError(f"{path}: node {ids[k]} names parent {p}, which does not exist")
        parent[k] = index[p]
    # order parents first (repairs unsorted files); nodes never reached lie on a cycle
    children = [[] for _ in ids]
    roots = []
    for k, p in enumerate(parent):
        (roots if p < 0 else children[p]).append(k)
    order = []
    stack = list(reversed(roots))
    while stack:
        k = stack.pop()
        order.append(k)
        stack.extend(reversed(children[k]))
    if len(order) != len(ids):
        seen = np.zeros(len(ids), bool)
        seen[order] = True
        bad = ids[~seen][:5].tolist()
        raise InputFormatError(f"{path}: the SWC parent links form a cycle (through node(s) {bad})")
    order = np.array(order)
    new_of = np.empty(len(ids), np.int64)
    new_of[order] = np.arange(len(ids))
    parent = np.where(parent[order] >= 0, new_of[np.maximum(parent[order], 0)], -1)
    pts = np.array(xyz, float)[order] * scale
    r = np.array(rad, float)[order] * scale[2]
    good = r > 0
    r[~good] = np.median(r[good]) if good.any() else MIN_RADIUS
    return SwcNeuron(name or path.stem, ids[order], pts, np.maximum(r, MIN_RADIUS), parent)


def _unbranched_paths(neuron: SwcNeuron):
    """Split a tree into unbranched paths (each starts at its parent branch point)."""
    n = len(neuron.ids)
    n_children = np.bincount(neuron.parent[neuron.parent >= 0], minlength=n)
    starts = [k for k in range(n) if neuron.parent[k] < 0 or n_children[neuron.parent[k]] != 1]
    child_of = {}
    for k in range(n):
        p = neuron.parent[k]
        if p >= 0 and n_children[p] == 1:
            child_of[int(p)] = k
    paths = []
    for s in starts:
        path = [int(neuron.parent[s])] if neuron.parent[s] >= 0 else []
        k = s
        path.append(k)
        while k in child_of:
            k = child_of[k]
            path.append(k)
        paths.append(np.array(path))
    return paths


def load_morphologies(morphology, *, units="nm"):
    """The neurons of ``'hemibrain'`` or of a folder (or single file) of SWC files."""
    parse_units(units)  # reject bad units before touching any file
    if isinstance(morphology, str) and morphology == "hemibrain":
        import importlib.util

        spec = importlib.util.find_spec("navis")
        if spec is None or spec.origin is None:
            raise ConfigError("morphology='hemibrain' needs the navis package (pip install navis), which ships "
                              "the five hemibrain DA1 neurons")
        folder = Path(spec.origin).parent / "data" / "swc"
        meta = {}
        if (folder.parent / "meta.json").exists():
            meta = json.loads((folder.parent / "meta.json").read_text())
        neurons = []
        for f in sorted(folder.glob("*.swc")):
            nrn = read_swc(f, units="voxel:8,8,8")
            nrn.cell_type = meta.get(f.stem, {}).get("type", "DA1_lPN")
            nrn.transmitter = "acetylcholine"  # DA1 projection neurons are cholinergic
            nrn.source = f"hemibrain:{f.stem}"
            neurons.append(nrn)
        if not neurons:
            raise VolumeNotFoundError(f"no hemibrain SWC files in {folder}")
        return neurons
    path = Path(os.fspath(morphology))
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("*.swc"))
        if not files:
            raise VolumeNotFoundError(f"morphology folder {path} holds no *.swc files")
    else:
        raise VolumeNotFoundError(f"morphology {morphology!r} is neither 'hemibrain' nor an existing SWC file or folder")
    neurons = []
    for f in files:
        nrn = read_swc(f, units=units)
        nrn.source = f"swc:{f.name}"
        nrn.cell_type = f.stem
        neurons.append(nrn)
    return neurons


def _choose_box(neurons, extent, rng, n_candidates=600):
    """Lower corner (nm) of the extent-sized box where most neurons run together."""
    pts = np.concatenate([n.points for n in neurons])
    owner = np.concatenate([np.full(len(n.points), i) for i, n in enumerate(neurons)])
    cand = pts[rng.choice(len(pts), size=min(n_candidates, len(pts)), replace=False)]
    best, best_score = None, (-1, -1)
    half = extent / 2
    for c in cand:
        inside = np.all(np.abs(pts - c) <= half, axis=1)
        per = np.bincount(owner[inside], minlength=len(neurons))
        score = (int((per >= 20).sum()), int(per.sum()))
        if score > best_score:
            best, best_score = c, score
    return best - half, best_score[0]


def place_morphologies(morphology, settings, rng, *, units="nm", canvas_shape=None) -> Neuropil:
    """A Neuropil holding the real neurons, cropped to where most run together.

    Raises
    ------
    ConfigError, InputFormatError, VolumeNotFoundError
        For an unknown source, bad units or malformed files.
    """
    neurons = load_morphologies(morphology, units=units)
    vs = np.asarray(settings.voxel_size, float)
    shape = np.asarray(canvas_shape if canvas_shape is not None else settings.shape, float)
    extent = shape * vs
    corner, n_together = _choose_box(neurons, extent, rng)
    npl = Neuropil()
    for nrn in neurons:
        pts = nrn.points - corner
        inside = np.all((pts > -500) & (pts < extent + 500), axis=1)
        if inside.sum() < 2:
            continue
        label = npl.new_cell("neuron", nrn.cell_type, nrn.transmitter, nrn.source)
        for path in _unbranched_paths(nrn):
            keep = inside[path]
            if keep.sum() < 2:
                continue
            # keep the runs of the path that lie in (or near) the canvas
            runs = np.split(np.arange(len(path)), np.flatnonzero(np.diff(keep.astype(int)) != 0) + 1)
            for run in runs:
                if keep[run[0]] and len(run) >= 2:
                    npl.tubes.append(Tube(label, pts[path[run]], nrn.radii[path[run]]))
        # presynaptic sites along the neuron, every few micrometres inside the canvas
        on = np.flatnonzero(np.all((pts > 0) & (pts < extent), axis=1))
        if len(on):
            picks = on[rng.random(len(on)) < 0.02]
            for k in picks:
                npl.boutons.append(Bouton(label, pts[k].copy(), float(nrn.radii[k]) * 1.2))
    npl.n_together = n_together
    return npl
