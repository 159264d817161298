"""Real connectomes and neurons that ship offline.

:func:`load` returns a connectome as a :class:`~connectomix.graph.Connectome`;
:func:`load_neurons` returns reconstructed neurons (skeletons, meshes, synapse
positions) as a :class:`NeuronSet`. :func:`list_datasets` lists both kinds.

The C. elegans wiring diagrams come from the data files of the ``cect`` package
(OpenWorm's ConnectomeToolbox, an optional dependency: ``pip install cect``), read
through its cached readers, so no network is needed. Chemical and electrical edges
are kept apart; the source's gap-junction matrices are symmetric, so each electrical
pair is taken once (upper triangle with the diagonal). Neuron names, classes
(``cell_type``, e.g. ``AVA`` for AVAL/AVAR), sensory/inter/motor class (``sim_class``),
side (``L``/``R``) and neurotransmitters (``transmitter``, from the WormAtlas table that
ships with ``cect``) are filled in where the source gives them.

The five Drosophila hemibrain DA1 projection neurons come from ``navis`` (an optional
dependency: ``pip install navis``), which ships their SWC skeletons, meshes and
synapse tables; they are converted to nanometres and z, y, x order.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DatasetNotFoundError, InputFormatError, MissingDependencyError
from .graph import Connectome

__all__ = ["list_datasets", "load", "load_neurons", "NeuronSet"]


@dataclass(frozen=True)
class _Dataset:
    reader: str  # module under cect.readers
    reference: str
    doi: str
    description: str


_WHITE = ("White JG, Southgate E, Thomson JN, Brenner S (1986) Phil Trans R Soc B 314:1-340",
          "10.1098/rstb.1986.0056")
_VARSHNEY = ("Varshney LR, Chen BL, Paniagua E, Hall DH, Chklovskii DB (2011) "
             "PLoS Comput Biol 7:e1001066", "10.1371/journal.pcbi.1001066")
_COOK = ("Cook SJ et al. (2019) Nature 571:63-71", "10.1038/s41586-019-1352-7")
_WITVLIET = ("Witvliet D et al. (2021) Nature 596:257-261", "10.1038/s41586-021-03778-8")
_WITVLIET_STAGES = {1: "L1", 2: "L1", 3: "L1", 4: "L1", 5: "L2", 6: "L3", 7: "adult", 8: "adult"}

_DATASETS: dict[str, _Dataset] = {
    "celegans-white1986": _Dataset(
        "White_whole", *_WHITE,
        "C. elegans hermaphrodite, whole animal (White et al. 1986, 'Mind of a Worm')"),
    "celegans-varshney2011": _Dataset(
        "VarshneyDataReader", *_VARSHNEY,
        "C. elegans hermaphrodite somatic nervous system, corrected White 1986 data"),
    "celegans-cook2019-herm": _Dataset(
        "Cook2019HermReader", *_COOK,
        "C. elegans adult hermaphrodite, whole animal; weights are EM section counts"),
    "celegans-cook2019-male": _Dataset(
        "Cook2019MaleReader", *_COOK,
        "C. elegans adult male, whole animal; weights are EM section counts"),
}
for _i, _stage in _WITVLIET_STAGES.items():
    _DATASETS[f"celegans-witvliet2021-{_i}"] = _Dataset(
        f"WitvlietDataReader{_i}", *_WITVLIET,
        f"C. elegans brain (nerve ring), developmental series dataset {_i} ({_stage})")

_CELL_CHOICES = ("neurons", "all")
_SIM = {"Sensory": "sensory", "Interneuron": "interneuron", "Motorneuron": "motor", "Other": "other"}
# Neuron classes whose members differ by a dorsal/ventral letter before L/R (IL1DL -> IL1).
_DV_CLASSES = {"CEP", "IL1", "IL2", "OLQ", "RMD", "RME", "SAA", "SAB", "SIA", "SIB", "SMB",
               "SMD", "URA", "URY", "GLR"}
# Ventral cord (and male-specific) classes numbered along the body (VA1..VA12 -> VA).
_NUMBERED = ("VA", "VB", "VC", "VD", "DA", "DB", "DD", "AS", "CA", "CP")
_TRANSMITTER_ORDER = ("acetylcholine", "gaba", "glutamate", "dopamine", "serotonin",
                      "octopamine", "tyramine")


def list_datasets() -> pd.DataFrame:
    """List the shipped datasets that :func:`load` and :func:`load_neurons` accept.

    Returns
    -------
    pandas.DataFrame
        One row per dataset: ``name``, ``kind`` (``"connectome"`` for :func:`load`,
        ``"neurons"`` for :func:`load_neurons`), ``description``, ``reference``,
        ``doi``, ``requires`` (the optional package that holds the data).

    Examples
    --------
    >>> from connectomix.datasets import list_datasets
    >>> "celegans-varshney2011" in set(list_datasets()["name"])
    True
    """
    rows = [
        {"name": name, "kind": "connectome", "description": d.description,
         "reference": d.reference, "doi": d.doi, "requires": "cect"}
        for name, d in _DATASETS.items()
    ]
    rows += [
        {"name": name, "kind": "neurons", "description": d.description,
         "reference": d.reference, "doi": d.doi, "requires": "navis"}
        for name, d in _NEURON_DATASETS.items()
    ]
    return pd.DataFrame(rows)


def load(name: str, *, cells: str = "neurons") -> Connectome:
    """Load a shipped connectome by name.

    Parameters
    ----------
    name : str
        One of ``list_datasets()["name"]``, e.g. ``"celegans-varshney2011"`` or
        ``"celegans-witvliet2021-8"``.
    cells : {"neurons", "all"}
        ``"neurons"`` keeps neurons only; ``"all"`` adds muscles, glia and other end
        organs (``cell_class`` says which).

    Returns
    -------
    Connectome
        ``segment_id`` is a stable CRC-32 of the cell name, so the same neuron has the
        same id in every dataset; ``meta`` holds reference, DOI, weights and source.

    Raises
    ------
    DatasetNotFoundError
        If ``name`` is unknown (the message lists the known names).
    InputFormatError
        If ``name`` is a neurons dataset (use :func:`load_neurons`).
    MissingDependencyError
        If the ``cect`` package that holds the data is not installed.
    """
    if name in _NEURON_DATASETS:
        raise InputFormatError(
            f"dataset {name!r} holds neuron morphologies and synapse positions, not a "
            f"connectome (its synapses have no partners); load it with "
            f"connectomix.datasets.load_neurons({name!r})"
        )
    if name not in _DATASETS:
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}; known datasets: "
            f"{', '.join(list(_DATASETS) + list(_NEURON_DATASETS))}"
        )
    if cells not in _CELL_CHOICES:
        raise ValueError(f"cells must be one of {list(_CELL_CHOICES)}, got {cells!r}")
    return _load_cached(name, cells)


@functools.lru_cache(maxsize=16)
def _load_cached(name: str, cells: str) -> Connectome:
    spec = _DATASETS[name]
    nodes, chemical, electrical, weights_note, version = _read_cect(spec.reader)
    neurons = _cell_table(nodes)
    keep = (neurons["cell_class"] == "neuron").to_numpy() if cells == "neurons" else np.ones(len(nodes), bool)
    neurons = neurons[keep].reset_index(drop=True)
    chemical = chemical[np.ix_(keep, keep)]
    electrical = electrical[np.ix_(keep, keep)]
    ids = neurons["segment_id"].to_numpy()

    pre, post = np.nonzero(chemical)
    gj_pre, gj_post = np.nonzero(np.triu(electrical))  # symmetric: each pair once
    counts = np.concatenate([chemical[pre, post], electrical[gj_pre, gj_post]])
    if not np.all(counts == np.round(counts)):
        raise RuntimeError(f"cect data for {name} holds non-integer counts")
    edges = pd.DataFrame(
        {
            "pre_id": np.concatenate([ids[pre], ids[gj_pre]]),
            "post_id": np.concatenate([ids[post], ids[gj_post]]),
            "kind": ["chemical"] * len(pre) + ["electrical"] * len(gj_pre),
            "n_synapses": counts.astype(np.int64),
            "weight": counts.astype(np.float64),
        }
    )
    # electrical pairs are stored with pre_id <= post_id (ids are not in node order)
    elec = edges["kind"] == "electrical"
    lo = np.minimum(edges["pre_id"], edges["post_id"])
    hi = np.maximum(edges["pre_id"], edges["post_id"])
    edges.loc[elec, "pre_id"], edges.loc[elec, "post_id"] = lo[elec], hi[elec]
    meta = {
        "dataset": name,
        "description": spec.description,
        "reference": spec.reference,
        "doi": spec.doi,
        "source": f"cect {version}, reader cect.readers.{spec.reader} (cached data)",
        "weights": weights_note,
        "cells": cells,
    }
    if name.startswith("celegans-witvliet2021-"):
        meta["stage"] = _WITVLIET_STAGES[int(name.rsplit("-", 1)[1])]
    return Connectome(neurons, edges, name=name, meta=meta)


def _cect():
    try:
        return importlib.import_module("cect")
    except ImportError as exc:
        raise MissingDependencyError(
            "the C. elegans datasets ship in the optional package 'cect', which is not "
            f"installed ({exc}); install it with `pip install cect` or "
            "`pip install connectomix[datasets]`"
        ) from exc


def _read_cect(reader: str):
    cect = _cect()
    module = importlib.import_module(f"cect.readers.{reader}")
    with contextlib.redirect_stdout(io.StringIO()):  # cect prints progress
        data = module.get_instance(from_cache=True)
    nodes = [str(n) for n in data.nodes]
    n = len(nodes)
    chemical = np.asarray(data.connections.get("Generic_CS", np.zeros((n, n))), dtype=np.float64)
    electrical = np.asarray(data.connections.get("Generic_GJ", np.zeros((n, n))), dtype=np.float64)
    if not np.array_equal(electrical, electrical.T):
        raise RuntimeError(f"cect gap-junction matrix of {reader} is not symmetric")
    weights = getattr(module, "WEIGHTS", None)
    if weights is None and reader.startswith("Cook2019"):
        weights = importlib.import_module("cect.readers.Cook2019DataReader").WEIGHTS
    if weights is None:
        weights = "Weights are numbers of synaptic contacts (gap junctions: per pair, once)."
    return nodes, chemical, electrical, weights, getattr(cect, "__version__", "?")


def _segment_id(name: str) -> int:
    return zlib.crc32(name.encode()) + 1  # +1: 0 means "no object"


@functools.lru_cache(maxsize=1)
def _transmitters() -> dict[str, list[str]]:
    cect = _cect()
    path = Path(cect.__file__).parent / "data" / "Modified celegans db dump.csv"
    if not path.exists():
        return {}
    table = pd.read_csv(path)
    table = table[table["Relationship"] == "Neurotransmitter"]
    out: dict[str, list[str]] = {}
    for cell, nt in zip(table["Entity1"].astype(str), table["Entity2"].astype(str)):
        nt = nt.strip().lower()
        out.setdefault(cell, [])
        if nt not in out[cell]:
            out[cell].append(nt)
    return out


def _neuron_class(name: str, known: set[str]) -> str:
    base = name
    for prefix in _NUMBERED:
        if base.startswith(prefix) and base[len(prefix):].isdigit():
            return prefix
    if base[-1:] in ("L", "R") and (base[:-1] + ("R" if base[-1] == "L" else "L")) in known:
        base = base[:-1]
    if base[-1:] in ("D", "V") and base[:-1] in _DV_CLASSES:
        base = base[:-1]
    return base


def _cell_table(nodes: list[str]) -> pd.DataFrame:
    from cect import Cells

    known = set(Cells.ALL_PREFERRED_CELL_NAMES) | set(nodes)
    glia = set(Cells.GLIAL_CELLS)
    pharyngeal_muscles = set(Cells.PHARYNGEAL_MUSCLE_NAMES)
    nts = _transmitters()
    rows = []
    for cell in nodes:
        if Cells.is_any_neuron(cell):
            cls, ctype = "neuron", _neuron_class(cell, known)
        elif cell in glia or cell.startswith(("GLR", "CEPsh")):
            cls, ctype = "glia", "GLR" if cell.startswith("GLR") else "CEPsh"
        elif Cells.is_known_muscle(cell):
            cls = "muscle"
            if Cells.is_known_body_wall_muscle(cell) or cell == "BWM":
                ctype = "body wall muscle"
            elif cell in pharyngeal_muscles:
                ctype = "pharyngeal muscle"
            else:
                ctype = "muscle"
        else:
            cls, ctype = "other", cell
        transmitters = sorted(nts.get(cell, []), key=lambda t: (
            _TRANSMITTER_ORDER.index(t) if t in _TRANSMITTER_ORDER else len(_TRANSMITTER_ORDER)))
        side = ("L" if Cells.is_bilateral_left(cell) else
                "R" if Cells.is_bilateral_right(cell) else "")
        rows.append(
            {
                "segment_id": _segment_id(cell),
                "name": cell,
                "cell_class": cls,
                "cell_type": ctype,
                "transmitter": transmitters[0] if transmitters else "",
                "transmitters": ";".join(transmitters),
                "sim_class": _SIM.get(Cells.get_SIM_class(cell), "other") if cls == "neuron" else "",
                "side": side,
            }
        )
    table = pd.DataFrame(rows)
    if table["segment_id"].duplicated().any():  # CRC-32 collision: never seen, but check
        raise RuntimeError("two cell names share a segment id")
    return table


# --------------------------------------------------------------------------- neurons
_HEMIBRAIN = ("Scheffer LK et al. (2020) A connectome and analysis of the adult Drosophila "
              "central brain. eLife 9:e57443", "10.7554/eLife.57443")
_NEURON_DATASETS: dict[str, _Dataset] = {
    "hemibrain-da1": _Dataset(
        "navis.example_neurons", *_HEMIBRAIN,
        "Drosophila hemibrain: five DA1 uniglomerular projection neurons (right side), "
        "skeletons, meshes and synapse positions, from navis"),
}


@dataclass(frozen=True)
class NeuronSet:
    """Reconstructed neurons: morphologies and synapse positions, in nanometres.

    Attributes
    ----------
    neurons : pandas.DataFrame
        One row per neuron: ``segment_id`` (the source's body id), ``name``,
        ``cell_class``, ``cell_type``, ``side``, ``soma_z/_y/_x`` (nm),
        ``n_nodes``, ``cable_length_nm``, ``n_pre``, ``n_post``.
    skeletons : pandas.DataFrame
        One row per skeleton node: ``segment_id``, ``node_id``, ``parent_id``
        (-1 at the root), ``z``, ``y``, ``x``, ``radius`` (nm), ``node_type``
        (root/slab/branch/end).
    synapses : pandas.DataFrame
        One row per synapse site on these neurons: ``synapse_id``, ``segment_id``,
        ``direction`` (``"pre"``: output site, ``"post"``: input site), ``node_id``
        (nearest skeleton node), ``z``, ``y``, ``x`` (nm), ``confidence``, ``roi``.
        Partners are not part of the source, so these are positions, not edges.
    meshes : dict of int to (vertices, faces), or None
        Per neuron: vertices (k, 3) float64 in nm, z, y, x order, and faces (f, 3).
    meta : dict
        Name, reference, DOI, source and the unit conversion applied.
    """

    neurons: pd.DataFrame
    skeletons: pd.DataFrame
    synapses: pd.DataFrame
    meshes: dict | None
    meta: dict

    def skeleton(self, segment_id: int) -> pd.DataFrame:
        """Return the nodes of one neuron's skeleton.

        Raises
        ------
        KeyError
            If ``segment_id`` is not one of these neurons.
        """
        nodes = self.skeletons[self.skeletons["segment_id"] == segment_id]
        if nodes.empty:
            raise KeyError(
                f"no neuron {segment_id} here; have {self.neurons['segment_id'].tolist()}"
            )
        return nodes.reset_index(drop=True)

    def __repr__(self) -> str:
        pre = int((self.synapses["direction"] == "pre").sum())
        post = int((self.synapses["direction"] == "post").sum())
        return "\n".join([
            f"NeuronSet {self.meta.get('dataset', '')!r}",
            f"  neurons   {len(self.neurons):>9,}   "
            f"({', '.join(sorted(set(self.neurons['cell_type'].astype(str))))})",
            f"  nodes     {len(self.skeletons):>9,}",
            f"  synapses  {len(self.synapses):>9,}   (pre {pre:,}, post {post:,}; positions in nm)",
            f"  meshes    {'yes' if self.meshes else 'not loaded'}",
        ])


def load_neurons(name: str, *, meshes: bool = False) -> NeuronSet:
    """Load shipped reconstructed neurons by name.

    Parameters
    ----------
    name : str
        A name with ``kind == "neurons"`` in :func:`list_datasets`, e.g.
        ``"hemibrain-da1"``.
    meshes : bool
        Also load the neurons' surface meshes.

    Returns
    -------
    NeuronSet
        Skeletons, synapse positions and (optionally) meshes, in nm, z, y, x.

    Raises
    ------
    DatasetNotFoundError
        If ``name`` is not a neurons dataset (the message lists those there are).
    MissingDependencyError
        If ``navis``, which holds the data, is not installed.
    """
    if name not in _NEURON_DATASETS:
        hint = " (a connectome: use datasets.load)" if name in _DATASETS else ""
        raise DatasetNotFoundError(
            f"unknown neurons dataset {name!r}{hint}; known neurons datasets: "
            f"{', '.join(_NEURON_DATASETS)}"
        )
    return _load_neurons_cached(name, bool(meshes))


def _navis():
    try:
        return importlib.import_module("navis")
    except ImportError as exc:
        raise MissingDependencyError(
            "the hemibrain neurons ship in the optional package 'navis', which is not "
            f"installed ({exc}); install it with `pip install navis` or "
            "`pip install connectomix[datasets]`"
        ) from exc


def _nm_per_unit(neuron) -> float:
    units = getattr(neuron, "units", None)
    try:
        return float(units.to("nm").magnitude)
    except Exception as exc:  # an unexpected unit must not pass silently
        raise RuntimeError(f"cannot convert units {units!r} of neuron {neuron.id} to nm") from exc


@functools.lru_cache(maxsize=4)
def _load_neurons_cached(name: str, with_meshes: bool) -> NeuronSet:
    navis = _navis()
    spec = _NEURON_DATASETS[name]
    with contextlib.redirect_stdout(io.StringIO()):
        skeletons = navis.example_neurons(kind="skeleton", synapses=True)
        mesh_list = navis.example_neurons(kind="mesh", synapses=False) if with_meshes else None
    rows, node_tables, synapse_tables = [], [], []
    for neuron in skeletons:
        scale = _nm_per_unit(neuron)
        sid = int(neuron.id)
        nodes = neuron.nodes
        node_tables.append(pd.DataFrame({
            "segment_id": sid,
            "node_id": nodes["node_id"].to_numpy(np.int64),
            "parent_id": nodes["parent_id"].to_numpy(np.int64),
            "z": nodes["z"].to_numpy(np.float64) * scale,
            "y": nodes["y"].to_numpy(np.float64) * scale,
            "x": nodes["x"].to_numpy(np.float64) * scale,
            "radius": nodes["radius"].to_numpy(np.float64) * scale,
            "node_type": nodes["type"].astype(str).to_numpy(),
        }))
        conn = neuron.connectors
        synapse_tables.append(pd.DataFrame({
            "segment_id": sid,
            "direction": conn["type"].astype(str).to_numpy(),
            "node_id": conn["node_id"].to_numpy(np.int64),
            "z": conn["z"].to_numpy(np.float64) * scale,
            "y": conn["y"].to_numpy(np.float64) * scale,
            "x": conn["x"].to_numpy(np.float64) * scale,
            "confidence": conn["confidence"].to_numpy(np.float64),
            "roi": conn["roi"].astype(str).to_numpy(),
        }))
        soma = nodes.loc[nodes["node_id"] == neuron.soma] if neuron.soma is not None else nodes.iloc[:0]
        full_name = str(neuron.name)  # e.g. DA1_lPN_R: type, then side
        cell_type, _, side = full_name.rpartition("_")
        rows.append({
            "segment_id": sid,
            "name": full_name,
            "cell_class": "neuron",
            "cell_type": cell_type if side in ("L", "R") else full_name,
            "side": side if side in ("L", "R") else "",
            "soma_z": float(soma["z"].iloc[0]) * scale if len(soma) else np.nan,
            "soma_y": float(soma["y"].iloc[0]) * scale if len(soma) else np.nan,
            "soma_x": float(soma["x"].iloc[0]) * scale if len(soma) else np.nan,
            "n_nodes": int(len(nodes)),
            "cable_length_nm": float(neuron.cable_length) * scale,
            "n_pre": int((conn["type"] == "pre").sum()),
            "n_post": int((conn["type"] == "post").sum()),
        })
    synapses = pd.concat(synapse_tables, ignore_index=True)
    synapses.insert(0, "synapse_id", np.arange(len(synapses), dtype=np.int64))
    meshes = None
    if mesh_list is not None:
        meshes = {}
        for mesh in mesh_list:
            scale = _nm_per_unit(mesh)
            vertices = np.asarray(mesh.vertices, dtype=np.float64)[:, ::-1] * scale
            meshes[int(mesh.id)] = (vertices, np.asarray(mesh.faces, dtype=np.int64))
    meta = {
        "dataset": name,
        "description": spec.description,
        "reference": spec.reference,
        "doi": spec.doi,
        "source": f"navis {getattr(navis, '__version__', '?')}, navis.example_neurons()",
        "units": "nm; coordinates in z, y, x order (the source is x, y, z in 8 nm voxels)",
    }
    return NeuronSet(
        neurons=pd.DataFrame(rows),
        skeletons=pd.concat(node_tables, ignore_index=True),
        synapses=synapses,
        meshes=meshes,
        meta=meta,
    )
