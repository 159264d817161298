"""Real connectomes that ship offline, loaded as :class:`~connectomix.graph.Connectome`.

The C. elegans wiring diagrams come from the data files of the ``cect`` package
(OpenWorm's ConnectomeToolbox, an optional dependency: ``pip install cect``), read
through its cached readers, so no network is needed. Chemical and electrical edges
are kept apart; the source's gap-junction matrices are symmetric, so each electrical
pair is taken once (upper triangle with the diagonal). Neuron names, classes
(``cell_type``, e.g. ``AVA`` for AVAL/AVAR), sensory/inter/motor class (``sim_class``),
side (``L``/``R``) and neurotransmitters (``transmitter``, from the WormAtlas table that
ships with ``cect``) are filled in where the source gives them.
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

from .errors import DatasetNotFoundError, MissingDependencyError
from .graph import Connectome

__all__ = ["list_datasets", "load"]


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
    """List the shipped datasets that :func:`load` accepts.

    Returns
    -------
    pandas.DataFrame
        One row per dataset: ``name``, ``description``, ``reference``, ``doi``,
        ``requires`` (the optional package that holds the data).

    Examples
    --------
    >>> from connectomix.datasets import list_datasets
    >>> "celegans-varshney2011" in set(list_datasets()["name"])
    True
    """
    return pd.DataFrame(
        [
            {"name": name, "description": d.description, "reference": d.reference,
             "doi": d.doi, "requires": "cect"}
            for name, d in _DATASETS.items()
        ]
    )


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
    MissingDependencyError
        If the ``cect`` package that holds the data is not installed.
    """
    if name not in _DATASETS:
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}; known datasets: {', '.join(_DATASETS)}"
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
