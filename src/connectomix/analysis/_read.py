"""Read edge lists in the column conventions connectomics users have.

Recognised edge tables (column names matched case-insensitively, first match wins):

============== ===================================== ==================================
format         columns                               meaning of a row
============== ===================================== ==================================
connectomix    pre_id, post_id [n_synapses|weight]   one edge (``kind`` column optional)
codex          pre_root_id, post_root_id, syn_count  FlyWire Codex connections (one row
                                                     per pair and neuropil: summed)
cave           pre_pt_root_id, post_pt_root_id       one synapse (CAVE synapse table)
neuprint       bodyId_pre, bodyId_post, weight       neuPrint connection
pre/post       pre, post [weight]                    one edge
source/target  source, target [weight]               one edge
============== ===================================== ==================================

Node tables: ``segment_id``, ``root_id`` (Codex), ``bodyId`` (neuPrint), ``id``,
``node_id`` or ``name``; types from ``cell_type``/``type``/``primary_type``, names from
``name``/``instance``, transmitters from ``transmitter``/``nt_type``/``predictedNt``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import InputFormatError, TableFormatError, VolumeNotFoundError
from ..graph import CELL_CLASSES, Connectome

__all__ = ["read_edge_list", "detect_edge_format", "read_table"]

# name, pre, post, weight (None = rows are synapses or unweighted), rows are synapses
_EDGE_FORMATS = (
    ("connectomix", "pre_id", "post_id", ("n_synapses", "weight"), False),
    ("codex", "pre_root_id", "post_root_id", ("syn_count",), False),
    ("cave", "pre_pt_root_id", "post_pt_root_id", (), True),
    ("neuprint", "bodyId_pre", "bodyId_post", ("weight",), False),
    ("pre/post", "pre", "post", ("weight", "n_synapses", "syn_count", "count"), False),
    ("source/target", "source", "target", ("weight", "n_synapses", "syn_count", "count"), False),
)
_NODE_ID = ("segment_id", "root_id", "bodyId", "id", "node_id", "name")
_NODE_TYPE = ("cell_type", "type", "primary_type")
_NODE_NAME = ("name", "instance")
_NODE_NT = ("transmitter", "nt_type", "predictedNt", "top_nt")
_TRANSMITTERS = {
    "ach": "acetylcholine", "acetylcholine": "acetylcholine", "gaba": "gaba",
    "glut": "glutamate", "glu": "glutamate", "glutamate": "glutamate",
    "da": "dopamine", "dopamine": "dopamine", "ser": "serotonin", "5ht": "serotonin",
    "5-ht": "serotonin", "serotonin": "serotonin", "oct": "octopamine",
    "octopamine": "octopamine", "tyr": "tyramine", "tyramine": "tyramine",
}


def read_table(source, *, what: str = "table") -> pd.DataFrame:
    """Read a CSV/TSV (optionally compressed), Parquet or Feather file.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A DataFrame is returned as it is.
    what : str
        What the table is, for messages.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    VolumeNotFoundError
        If the file does not exist.
    InputFormatError
        If it cannot be parsed.
    """
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.exists():
        raise VolumeNotFoundError(f"{what} file {path} does not exist")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            return pd.read_parquet(path)
        if ".feather" in suffixes:
            return pd.read_feather(path)
        sep = "\t" if (".tsv" in suffixes or ".tab" in suffixes) else ","
        table = pd.read_csv(path, sep=sep)
        if table.shape[1] == 1 and sep == ",":
            # maybe tab- or semicolon-separated under a .csv/.txt name
            table = pd.read_csv(path, sep=None, engine="python")
        return table
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"cannot read {what} file {path}: {exc}") from exc


def _find(columns, name: str):
    lower = {str(c).lower(): c for c in columns}
    return lower.get(name.lower())


def detect_edge_format(columns) -> dict:
    """Recognise an edge table's convention from its column names.

    Parameters
    ----------
    columns : iterable of str

    Returns
    -------
    dict
        ``format``, ``pre``, ``post``, ``weight`` (None if absent), ``kind`` (None if
        absent) and ``synapse_rows`` (True when each row is one synapse).

    Raises
    ------
    TableFormatError
        If no convention matches; the message lists the columns found and expected.
    """
    columns = list(columns)
    for fmt, pre, post, weights, synapse_rows in _EDGE_FORMATS:
        p, q = _find(columns, pre), _find(columns, post)
        if p is None or q is None:
            continue
        w = next((_find(columns, c) for c in weights if _find(columns, c) is not None), None)
        return {"format": fmt, "pre": p, "post": q, "weight": w,
                "kind": _find(columns, "kind"), "synapse_rows": synapse_rows}
    expected = "; ".join(
        f"{pre}/{post}" + (f"/{'|'.join(w)}" if w else "") + f" ({fmt})"
        for fmt, pre, post, w, _ in _EDGE_FORMATS
    )
    raise TableFormatError(
        f"edge table has no recognisable columns: found {columns}; expected one of "
        f"{expected}; or name them with pre=, post=, weight= (--pre/--post/--weight)"
    )


def _normalise_nodes(nodes: pd.DataFrame, fmt: str, node_id: str | None) -> tuple[pd.DataFrame, str]:
    nodes = nodes.copy()
    if node_id is None:
        node_id = next((_find(nodes.columns, c) for c in _NODE_ID
                        if _find(nodes.columns, c) is not None), None)
        if node_id is None:
            raise TableFormatError(
                f"node table has no id column: found {list(nodes.columns)}; expected one of "
                f"{list(_NODE_ID)} (or pass node_id=)"
            )
    elif node_id not in nodes.columns:
        raise TableFormatError(f"node table lacks column {node_id!r}; found {list(nodes.columns)}")
    renames = {}
    for target, candidates in (("cell_type", _NODE_TYPE), ("name", _NODE_NAME),
                               ("transmitter", _NODE_NT)):
        if target in nodes.columns:
            continue
        found = next((_find(nodes.columns, c) for c in candidates
                      if _find(nodes.columns, c) is not None and _find(nodes.columns, c) != node_id), None)
        if found is not None:
            renames[found] = target
    nodes = nodes.rename(columns=renames)
    if "transmitter" in nodes.columns:
        nodes["transmitter"] = _normalise_nt(nodes["transmitter"])
    if "cell_class" in nodes.columns:
        cls = nodes["cell_class"].astype("string").str.lower()
        if not cls.dropna().isin(CELL_CLASSES).all():
            nodes = nodes.rename(columns={"cell_class": "source_class"})
        else:
            nodes["cell_class"] = cls
    if "cell_class" not in nodes.columns and fmt in ("codex", "neuprint", "cave"):
        nodes["cell_class"] = "neuron"  # these node tables list neurons
    return nodes, node_id


def _normalise_nt(values: pd.Series) -> pd.Series:
    low = values.astype("string").str.strip().str.lower()
    return low.map(lambda v: _TRANSMITTERS.get(v, v) if isinstance(v, str) else "").astype("string")


def read_edge_list(
    edges,
    nodes=None,
    *,
    pre: str | None = None,
    post: str | None = None,
    weight: str | None = None,
    kind: str | None = None,
    node_id: str | None = None,
    self_loops: str = "keep",
    missing_nodes: str = "add",
    name: str | None = None,
) -> Connectome:
    """Read an edge list (and optional node table) into a Connectome.

    Parameters
    ----------
    edges : str, Path or pandas.DataFrame
        CSV/TSV (``.gz`` fine), Parquet or Feather file, or a DataFrame, in one of the
        conventions of this module's table (FlyWire Codex, neuPrint, CAVE synapse
        table, generic pre/post/weight or source/target/weight, connectomix).
    nodes : str, Path or pandas.DataFrame, optional
        Node table (ids, types, names, transmitters).
    pre, post, weight, kind : str, optional
        Column names that override the recognised ones; giving ``pre`` and ``post``
        skips recognition. Without a weight column each row counts as one synapse.
    node_id : str, optional
        Id column of the node table (default: recognised).
    self_loops : {"keep", "drop"}
    missing_nodes : {"add", "error"}
        Ids in the edges but not in the node table: add them, or raise.
    name : str, optional
        Name of the result (default: the file stem).

    Returns
    -------
    Connectome
        ``meta["format"]`` is the recognised convention and ``meta["handling"]`` says
        what was done with duplicates, self-loops, missing nodes and synapse rows.

    Raises
    ------
    TableFormatError
        Unrecognisable columns, an empty table, non-numeric or negative weights,
        missing ids, or missing nodes with ``missing_nodes="error"``.
    VolumeNotFoundError, InputFormatError
        If a file does not exist or cannot be parsed.
    """
    table = read_table(edges, what="edge")
    if pre is not None and post is not None:
        found = {"format": "explicit", "pre": pre, "post": post, "weight": weight,
                 "kind": kind if kind is not None else _find(table.columns, "kind"),
                 "synapse_rows": False}
    else:
        found = detect_edge_format(table.columns)
        if pre is not None:
            found["pre"] = pre
        if post is not None:
            found["post"] = post
        if weight is not None:
            found["weight"] = weight
        if kind is not None:
            found["kind"] = kind
    if len(table) == 0:
        raise TableFormatError("edge table is empty: there is no graph to build")
    node_table = None
    handling = [f"edge columns recognised as {found['format']}: pre={found['pre']!r}, "
                f"post={found['post']!r}, weight={found['weight']!r}"]
    if nodes is not None:
        node_table, node_id = _normalise_nodes(read_table(nodes, what="node"), found["format"], node_id)
    # Codex gives transmitters per connection: the presynaptic neuron's majority
    nt_col = _find(table.columns, "nt_type")
    if nt_col is not None and (node_table is None or "transmitter" not in node_table.columns):
        w = table[found["weight"]] if found["weight"] is not None else pd.Series(1.0, index=table.index)
        votes = pd.DataFrame({"pre": table[found["pre"]], "nt": _normalise_nt(table[nt_col]),
                              "w": pd.to_numeric(w, errors="coerce")})
        votes = votes[votes["nt"] != ""]
        if len(votes):
            best = votes.groupby(["pre", "nt"])["w"].sum().reset_index()
            best = best.sort_values(["pre", "w"], ascending=[True, False]).drop_duplicates("pre")
            nt_of = dict(zip(best["pre"], best["nt"]))
            if node_table is None:
                ids = pd.unique(pd.concat([table[found["pre"]], table[found["post"]]]))
                node_table = pd.DataFrame({"segment_id": ids})
                node_id = "segment_id"
                if found["format"] in ("codex", "neuprint", "cave"):
                    node_table["cell_class"] = "neuron"
            node_table["transmitter"] = node_table[node_id].map(nt_of).fillna("")
            handling.append("transmitters taken from the edges' nt_type (majority by synapses)")
    if found["format"] == "cave":
        handling.append("one row per synapse (CAVE): aggregated to edges, rows kept as synapses")
    elif found["format"] == "codex":
        handling.append("Codex rows per neuropil: summed per neuron pair")
    stem = Path(edges).name.split(".")[0] if not isinstance(edges, pd.DataFrame) else ""
    return Connectome.from_edge_list(
        table,
        node_table,
        pre=found["pre"],
        post=found["post"],
        weight=found["weight"],
        kind=found["kind"],
        node_id=node_id if node_table is not None else "segment_id",
        self_loops=self_loops,
        missing_nodes=missing_nodes,
        synapse_rows=found["synapse_rows"],
        name=stem if name is None else name,
        meta={"format": found["format"], "handling": handling},
    )
