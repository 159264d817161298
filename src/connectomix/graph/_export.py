"""Exports of a :class:`~connectomix.graph.Connectome` to the formats other tools read.

- GraphML (networkx writer): nodes are segment ids with the neurons columns as
  attributes, edges carry ``weight`` and ``n_synapses``;
- neuPrint-style CSV for ``neo4j-admin import``: ``Neurons.csv`` (``:ID(Body-ID)``,
  ``bodyId:long``, ``pre:int``, ``post:int``, ``size:long``, ``type``, ``instance``,
  ...) and ``ConnectsTo.csv`` (``:START_ID(Body-ID)``, ``weight:int``,
  ``:END_ID(Body-ID)``, ``:TYPE``), weight = number of synapses as in neuPrint;
- a CAVE-style synapse table: ``id, valid, pre_pt_root_id, post_pt_root_id, size,
  score, kind, ctr_pt_position_x/_y/_z``. Positions are in **x, y, z order** (CAVE's,
  not connectomix's z, y, x) and in the units chosen: ``nm`` (float) or ``voxel``
  (integers, at a given voxel size). The units go in ``DataFrame.attrs`` and, for a
  written file, in a JSON file beside it.

Frames and units are converted here, at the boundary, and nowhere else.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TableFormatError
from ._deps import require

__all__ = ["to_graphml", "to_neuprint_csv", "cave_synapse_table", "write_cave_synapses"]


def _plain(value):
    """A GraphML-writable Python value, or None to leave the attribute out."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return str(value)


def to_graphml(connectome, path, *, kind: str = "chemical") -> Path:
    """Write the connectome as GraphML.

    Parameters
    ----------
    connectome : Connectome
    path : str or Path
        The ``.graphml`` file written.
    kind : {"chemical", "electrical", "combined"}
        Which edges (see :meth:`Connectome.to_networkx`).

    Returns
    -------
    Path
    """
    nx = require("networkx", feature="GraphML export")
    g = connectome.to_networkx(kind)
    out = g.__class__()
    out.graph.update({"name": connectome.name, "kind": kind, "units": "nm, z y x"})
    for node, data in g.nodes(data=True):
        out.add_node(int(node), **{k: v for k, v in ((k, _plain(v)) for k, v in data.items()) if v is not None})
    for u, v, data in g.edges(data=True):
        out.add_edge(int(u), int(v), **{k: x for k, x in ((k, _plain(x)) for k, x in data.items()) if x is not None})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nx.write_graphml(out, path)
    return path


def to_neuprint_csv(connectome, directory) -> dict:
    """Write neuPrint-style ``Neurons.csv`` and ``ConnectsTo.csv`` (neo4j-admin import headers).

    Parameters
    ----------
    connectome : Connectome
    directory : str or Path
        Created if absent.

    Returns
    -------
    dict
        ``{"Neurons": path, "ConnectsTo": path}``.

    Notes
    -----
    Only chemical edges become ``ConnectsTo`` (neuPrint's model), with
    ``weight`` = number of synapses. Neurons get the label ``Neuron;Segment`` when
    their ``cell_class`` is ``neuron``, else ``Segment``. Centroids are written in
    x, y, z order, in nm.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = connectome.neurons
    labels = np.where(n["cell_class"].astype(str) == "neuron", "Neuron;Segment", "Segment")
    neurons = pd.DataFrame({
        ":ID(Body-ID)": n["segment_id"].to_numpy(np.int64),
        "bodyId:long": n["segment_id"].to_numpy(np.int64),
        "pre:int": n["n_pre"].to_numpy(np.int64),
        "post:int": n["n_post"].to_numpy(np.int64),
    })
    if "size_vx" in n.columns:
        neurons["size:long"] = n["size_vx"].to_numpy(np.int64)
    neurons["type:string"] = n["cell_type"].astype(str).to_numpy()
    neurons["instance:string"] = n["name"].astype(str).to_numpy()
    neurons["class:string"] = n["cell_class"].astype(str).to_numpy()
    neurons["transmitter:string"] = n["transmitter"].astype(str).to_numpy()
    for axis in "xyz":
        if f"centroid_{axis}" in n.columns:
            neurons[f"centroid_{axis}_nm:double"] = n[f"centroid_{axis}"].to_numpy(np.float64)
    neurons[":LABEL"] = labels
    e = connectome.edges
    e = e[e["kind"] == "chemical"]
    connects = pd.DataFrame({
        ":START_ID(Body-ID)": e["pre_id"].to_numpy(np.int64),
        "weight:int": e["n_synapses"].to_numpy(np.int64),
        ":END_ID(Body-ID)": e["post_id"].to_numpy(np.int64),
        ":TYPE": "ConnectsTo",
    })
    paths = {"Neurons": directory / "Neurons.csv", "ConnectsTo": directory / "ConnectsTo.csv"}
    neurons.to_csv(paths["Neurons"], index=False)
    connects.to_csv(paths["ConnectsTo"], index=False)
    return paths


def cave_synapse_table(connectome, *, units: str = "nm", voxel_size=None) -> pd.DataFrame:
    """The synapses as a CAVE-style table, positions in x, y, z order.

    Parameters
    ----------
    connectome : Connectome
        Needs a ``synapses`` table with ``z, y, x`` (nm).
    units : {"nm", "voxel"}
        ``nm``: float positions in nanometres; ``voxel``: integer voxel indices at
        ``voxel_size`` (the voxel containing the position).
    voxel_size : sequence of 3 numbers, optional
        nm per voxel in **z, y, x** order (connectomix's); required for ``voxel``.

    Returns
    -------
    DataFrame
        ``id, valid, pre_pt_root_id, post_pt_root_id, size, score, kind,
        ctr_pt_position_x, ctr_pt_position_y, ctr_pt_position_z``; ``attrs`` holds
        ``units``, ``axis_order`` (``"x, y, z"``) and ``voxel_size_xyz``.

    Raises
    ------
    TableFormatError
        Without synapse rows or positions.
    ValueError
        For unknown units or a missing/invalid voxel size.
    """
    syn = connectome.synapses
    if syn is None:
        raise TableFormatError("this connectome has no synapses table: a CAVE synapse table needs one row per synapse")
    missing = [c for c in "zyx" if c not in syn.columns]
    if missing:
        raise TableFormatError(f"synapses lack position column(s) {missing} (nm, z y x)")
    if units not in ("nm", "voxel"):
        raise ValueError(f"units must be 'nm' or 'voxel', got {units!r}")
    zyx = syn[["z", "y", "x"]].to_numpy(np.float64)
    vs_xyz = None
    if units == "voxel":
        if voxel_size is None or len(voxel_size) != 3 or any(float(v) <= 0 for v in voxel_size):
            raise ValueError(f"units='voxel' needs voxel_size = 3 positive nm values (z, y, x); got {voxel_size!r}")
        vs = np.asarray(voxel_size, np.float64)
        zyx = np.floor(zyx / vs).astype(np.int64)
        vs_xyz = [float(v) for v in vs[::-1]]
    out = pd.DataFrame({
        "id": syn["synapse_id"].to_numpy(np.int64),
        "valid": True,
        "pre_pt_root_id": syn["pre_id"].to_numpy(np.int64),
        "post_pt_root_id": syn["post_id"].to_numpy(np.int64),
        "size": syn["size_vx"].to_numpy(np.int64) if "size_vx" in syn.columns else 0,
        "score": syn["score"].to_numpy(np.float64) if "score" in syn.columns else np.nan,
        "kind": syn["kind"].astype(str).to_numpy(),
        "ctr_pt_position_x": zyx[:, 2],
        "ctr_pt_position_y": zyx[:, 1],
        "ctr_pt_position_z": zyx[:, 0],
    })
    out.attrs.update({"units": units, "axis_order": "x, y, z", "voxel_size_xyz": vs_xyz,
                      "size_units": "voxels of the segmentation"})
    return out


def write_cave_synapses(connectome, path, *, units: str = "nm", voxel_size=None) -> Path:
    """Write :func:`cave_synapse_table` as CSV, with its units in ``<path>.json`` beside it.

    Returns
    -------
    Path
        The CSV file.
    """
    table = cave_synapse_table(connectome, units=units, voxel_size=voxel_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    Path(f"{path}.json").write_text(json.dumps(table.attrs, indent=2) + "\n")
    return path
