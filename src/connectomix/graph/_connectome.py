"""The :class:`Connectome`: neurons, edges and (optionally) synapses as checked tables.

Column contracts follow DESIGN.md. Electrical edges (gap junctions) are undirected and
stored once per unordered pair, with ``pre_id <= post_id``; views that need both
directions (adjacency, networkx, igraph) symmetrise them, so nothing is counted twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import TableFormatError, VolumeNotFoundError
from ._deps import require

__all__ = ["Connectome", "EDGE_KINDS", "GRAPH_KINDS", "CELL_CLASSES"]

#: Values of the ``kind`` column of ``edges`` and ``synapses``.
EDGE_KINDS = ("chemical", "electrical")
#: Which edges a graph view uses: one kind, or both ("combined", electrical both ways).
GRAPH_KINDS = ("chemical", "electrical", "combined")
#: Values of the ``cell_class`` column of ``neurons``.
CELL_CLASSES = ("neuron", "glia", "muscle", "other", "unknown")

# column -> (dtype family, default or None when the column is required)
_NEURON_COLUMNS = {
    "segment_id": ("int", None),
    "name": ("str", "<segment_id>"),
    "cell_class": ("str", "unknown"),
    "cell_type": ("str", ""),
    "transmitter": ("str", ""),
}
# checked only where present
_NEURON_OPTIONAL = {
    "size_vx": "int",
    "n_pre": "int",
    "n_post": "int",
    "centroid_z": "float",
    "centroid_y": "float",
    "centroid_x": "float",
}
_EDGE_COLUMNS = {
    "pre_id": ("int", None),
    "post_id": ("int", None),
    "kind": ("str", "chemical"),
    "n_synapses": ("int", None),
    "weight": ("float", None),
}
_SYNAPSE_COLUMNS = {
    "synapse_id": ("int", "<range>"),
    "pre_id": ("int", None),
    "post_id": ("int", None),
    "kind": ("str", "chemical"),
}
_SYNAPSE_OPTIONAL = {
    "z": "float",
    "y": "float",
    "x": "float",
    "score": "float",
    "size_vx": "int",
}

_PARQUET_META_KEY = b"connectomix"


# --------------------------------------------------------------------------- checks
def _as_int(series: pd.Series, column: str, table: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        raise TableFormatError(f"{table}.{column} must hold integers, got booleans")
    if pd.api.types.is_integer_dtype(series):
        if series.isna().any():
            raise TableFormatError(
                f"{table}.{column} has {int(series.isna().sum())} missing values"
            )
        if pd.api.types.is_unsigned_integer_dtype(series) and len(series):
            if int(series.max()) > np.iinfo(np.int64).max:
                raise TableFormatError(
                    f"{table}.{column} holds ids above 2**63 - 1, which do not fit int64"
                )
        return series.astype(np.int64)
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna()
    if bad.any():
        example = series[bad].iloc[0]
        raise TableFormatError(
            f"{table}.{column} must hold integers; found {example!r} "
            f"({int(bad.sum())} bad rows, dtype {series.dtype})"
        )
    if pd.api.types.is_integer_dtype(values):
        # object columns of Python ints: stay exact (root ids exceed 2**53)
        return values.astype(np.int64)
    arr = values.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise TableFormatError(
            f"{table}.{column} must hold integers; found non-integer numbers "
            f"(dtype {series.dtype})"
        )
    return pd.Series(arr.astype(np.int64), index=series.index, name=series.name)


def _as_float(series: pd.Series, column: str, table: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        raise TableFormatError(f"{table}.{column} must hold numbers, got booleans")
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & ~series.isna()
    if bad.any():
        example = series[bad].iloc[0]
        raise TableFormatError(
            f"{table}.{column} must hold numbers; found {example!r} "
            f"({int(bad.sum())} non-numeric rows, dtype {series.dtype})"
        )
    return values.astype(np.float64)


def _as_str(series: pd.Series, default: str) -> pd.Series:
    out = series.astype("string")
    return out.fillna(default)


def _check_table(
    df: Any,
    table: str,
    columns: Mapping[str, tuple[str, Any]],
    optional: Mapping[str, str],
) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TableFormatError(
            f"{table} must be a pandas DataFrame, got {type(df).__name__}"
        )
    out = df.reset_index(drop=True).copy()
    missing = [c for c, (_, d) in columns.items() if d is None and c not in out.columns]
    if missing:
        raise TableFormatError(
            f"{table} table lacks required column(s) {missing}; "
            f"found {list(out.columns)}, expected at least "
            f"{[c for c, (_, d) in columns.items() if d is None]}"
        )
    for column, (family, default) in columns.items():
        if column not in out.columns:
            if default == "<range>":
                out[column] = np.arange(len(out), dtype=np.int64)
            elif default == "<segment_id>":
                out[column] = out["segment_id"].astype(str)
            else:
                out[column] = default
        if family == "int":
            out[column] = _as_int(out[column], column, table)
        elif family == "float":
            out[column] = _as_float(out[column], column, table)
        else:
            fill = default if isinstance(default, str) and not default.startswith("<") else ""
            out[column] = _as_str(out[column], fill)
    for column, family in optional.items():
        if column in out.columns:
            if family == "int":
                out[column] = _as_int(out[column], column, table)
            else:
                out[column] = _as_float(out[column], column, table)
    for column in [c for c in out.columns if str(c).startswith("bbox_")]:
        out[column] = _as_float(out[column], column, table)
    # standard columns first, extra columns after, in their given order
    first = list(columns) + [c for c in optional if c in out.columns]
    return out[first + [c for c in out.columns if c not in first]]


def _check_kinds(kinds: pd.Series, table: str) -> None:
    bad = ~kinds.isin(EDGE_KINDS)
    if bad.any():
        raise TableFormatError(
            f"{table}.kind must be one of {list(EDGE_KINDS)}; found "
            f"{sorted(set(kinds[bad].astype(str)))[:5]}"
        )


def _check_ids_known(ids: np.ndarray, known: np.ndarray, table: str) -> None:
    unknown = np.setdiff1d(np.unique(ids), known)
    if unknown.size:
        raise TableFormatError(
            f"{table} refers to {unknown.size} segment id(s) missing from the neurons "
            f"table, e.g. {unknown[:5].tolist()}; add them to neurons or use "
            "Connectome.from_edge_list(..., missing_nodes='add')"
        )


def _check_graph_kind(kind: str) -> str:
    if kind not in GRAPH_KINDS:
        raise ValueError(f"kind must be one of {list(GRAPH_KINDS)}, got {kind!r}")
    return kind


# ------------------------------------------------------------------------ the object
class Connectome:
    """Neurons, edges and optional synapses of a brain, as checked DataFrames.

    Parameters
    ----------
    neurons : pandas.DataFrame
        One row per neuron (or other cell). Required: ``segment_id`` (int64, unique).
        Filled where absent: ``name`` (str of the id), ``cell_class`` (one of
        :data:`CELL_CLASSES`, default ``"unknown"``), ``cell_type`` and
        ``transmitter`` (``""`` = unknown). Checked where present: ``size_vx``,
        ``n_pre``, ``n_post`` (int64), ``centroid_z/_y/_x`` and ``bbox_*`` (float64, nm).
        Other columns are kept as they are.
    edges : pandas.DataFrame
        One row per connected pair and kind: ``pre_id``, ``post_id`` (int64),
        ``kind`` (``"chemical"`` or ``"electrical"``, default chemical),
        ``n_synapses`` (int64 >= 0) and ``weight`` (float64 >= 0); at least one of the
        last two is needed, the other is copied from it. Electrical edges are
        undirected and stored once per pair with ``pre_id <= post_id``.
    synapses : pandas.DataFrame, optional
        One row per synapse: ``synapse_id``, ``pre_id``, ``post_id``, ``kind``, and
        where present ``z``, ``y``, ``x`` (nm), ``score``, ``size_vx``.
    name : str, optional
        A short label shown in the repr.
    meta : mapping, optional
        JSON-serialisable provenance: source, reference, how the input was handled.

    Raises
    ------
    TableFormatError
        If a table lacks a required column, has a wrong dtype, negative or non-finite
        weights, duplicate rows, or ids missing from ``neurons``.

    Notes
    -----
    The tables are copied on construction and returned as shallow copies, so the
    object does not change after it is made; ``adjacency()``, ``to_networkx()`` and
    ``to_igraph()`` are computed once and cached. Node order in every matrix view is
    the row order of ``neurons`` (see :meth:`node_index`).

    Examples
    --------
    >>> import pandas as pd
    >>> from connectomix.graph import Connectome
    >>> c = Connectome.from_edge_list(
    ...     pd.DataFrame({"pre": [1, 2, 3], "post": [2, 3, 1], "weight": [4, 1, 2]}),
    ...     pre="pre", post="post", weight="weight")
    >>> c.adjacency().toarray()
    array([[0., 4., 0.],
           [0., 0., 1.],
           [2., 0., 0.]])
    """

    def __init__(
        self,
        neurons: pd.DataFrame,
        edges: pd.DataFrame,
        synapses: pd.DataFrame | None = None,
        *,
        name: str = "",
        meta: Mapping[str, Any] | None = None,
    ):
        neurons = _check_table(neurons, "neurons", _NEURON_COLUMNS, _NEURON_OPTIONAL)
        dup = neurons["segment_id"].duplicated()
        if dup.any():
            raise TableFormatError(
                f"neurons.segment_id must be unique; {int(dup.sum())} duplicate(s), e.g. "
                f"{neurons.loc[dup, 'segment_id'].iloc[:5].tolist()}"
            )
        bad_class = ~neurons["cell_class"].isin(CELL_CLASSES)
        if bad_class.any():
            raise TableFormatError(
                f"neurons.cell_class must be one of {list(CELL_CLASSES)}; found "
                f"{sorted(set(neurons.loc[bad_class, 'cell_class'].astype(str)))[:5]}"
            )

        edges = self._check_edges(edges)
        known = neurons["segment_id"].to_numpy()
        _check_ids_known(
            np.concatenate([edges["pre_id"].to_numpy(), edges["post_id"].to_numpy()]),
            known,
            "edges",
        )
        if synapses is not None:
            synapses = _check_table(synapses, "synapses", _SYNAPSE_COLUMNS, _SYNAPSE_OPTIONAL)
            _check_kinds(synapses["kind"], "synapses")
            if synapses["synapse_id"].duplicated().any():
                raise TableFormatError("synapses.synapse_id must be unique")
            _check_ids_known(
                np.concatenate(
                    [synapses["pre_id"].to_numpy(), synapses["post_id"].to_numpy()]
                ),
                known,
                "synapses",
            )
        if "n_pre" not in neurons.columns or "n_post" not in neurons.columns:
            neurons = self._add_synapse_counts(neurons, edges)

        self._neurons = neurons
        self._edges = edges
        self._synapses = synapses
        self._name = str(name)
        self._meta = json.loads(json.dumps(dict(meta or {}), default=str))
        self._cache: dict[tuple, Any] = {}

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_edges(edges: Any) -> pd.DataFrame:
        if isinstance(edges, pd.DataFrame):
            edges = edges.copy()
            has_n, has_w = "n_synapses" in edges.columns, "weight" in edges.columns
            if not has_n and not has_w:
                raise TableFormatError(
                    "edges table needs an 'n_synapses' or a 'weight' column; found "
                    f"{list(edges.columns)}"
                )
            if not has_w:
                edges["weight"] = edges["n_synapses"]
            if not has_n:
                w = _as_float(edges["weight"], "weight", "edges")
                whole = np.isfinite(w) & (w == np.round(w))
                edges["n_synapses"] = np.where(whole, w, 1).astype(np.int64)
        edges = _check_table(edges, "edges", _EDGE_COLUMNS, {})
        _check_kinds(edges["kind"], "edges")
        w = edges["weight"].to_numpy()
        if np.any(~np.isfinite(w)) or np.any(w < 0):
            n_bad = int(np.sum(~np.isfinite(w) | (w < 0)))
            raise TableFormatError(
                f"edges.weight must be finite and >= 0; {n_bad} row(s) are not"
            )
        if np.any(edges["n_synapses"].to_numpy() < 0):
            raise TableFormatError("edges.n_synapses must be >= 0")
        elec = edges["kind"] == "electrical"
        if (edges.loc[elec, "pre_id"] > edges.loc[elec, "post_id"]).any():
            raise TableFormatError(
                "electrical edges are undirected and stored once per pair with "
                "pre_id <= post_id; use Connectome.from_edge_list to canonicalise them"
            )
        dup = edges.duplicated(["pre_id", "post_id", "kind"])
        if dup.any():
            raise TableFormatError(
                f"edges has {int(dup.sum())} duplicate (pre_id, post_id, kind) row(s); "
                "use Connectome.from_edge_list to sum them"
            )
        return edges

    @staticmethod
    def _add_synapse_counts(neurons: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
        chem = edges[edges["kind"] == "chemical"]
        n_pre = chem.groupby("pre_id")["n_synapses"].sum()
        n_post = chem.groupby("post_id")["n_synapses"].sum()
        out = neurons.copy()
        ids = out["segment_id"]
        if "n_pre" not in out.columns:
            out["n_pre"] = ids.map(n_pre).fillna(0).astype(np.int64)
        if "n_post" not in out.columns:
            out["n_post"] = ids.map(n_post).fillna(0).astype(np.int64)
        return out

    # ------------------------------------------------------------------ tables
    @property
    def neurons(self) -> pd.DataFrame:
        """The neurons table (a shallow copy; do not rely on mutating it)."""
        return self._neurons.copy(deep=False)

    @property
    def edges(self) -> pd.DataFrame:
        """The edges table (a shallow copy)."""
        return self._edges.copy(deep=False)

    @property
    def synapses(self) -> pd.DataFrame | None:
        """The synapses table, or None where the source has no per-synapse rows."""
        return None if self._synapses is None else self._synapses.copy(deep=False)

    @property
    def name(self) -> str:
        """A short label for the connectome."""
        return self._name

    @property
    def meta(self) -> dict:
        """Provenance and input handling notes (a copy)."""
        return json.loads(json.dumps(self._meta))

    @property
    def n_neurons(self) -> int:
        """Number of rows of ``neurons`` (isolated neurons included)."""
        return len(self._neurons)

    def __len__(self) -> int:
        return len(self._neurons)

    def node_index(self) -> pd.Series:
        """Map ``segment_id`` to its row/column in the matrix views.

        Returns
        -------
        pandas.Series
            Index ``segment_id``, values 0..n-1 in ``neurons`` row order.
        """
        key = ("node_index",)
        if key not in self._cache:
            ids = self._neurons["segment_id"].to_numpy()
            self._cache[key] = pd.Series(np.arange(len(ids)), index=pd.Index(ids, name="segment_id"))
        return self._cache[key].copy()

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        index = self._neurons["segment_id"].to_numpy()
        order = np.argsort(index, kind="stable")
        pos = np.searchsorted(index[order], ids)
        return order[pos]

    # ------------------------------------------------------------------ views
    def adjacency(self, kind: str = "chemical", *, weight: str | None = "n_synapses") -> sp.csr_matrix:
        """Return the adjacency as a sparse CSR matrix (a cached view; do not modify).

        Parameters
        ----------
        kind : {"chemical", "electrical", "combined"}
            Chemical edges are directed; electrical ones are entered in both
            directions (a symmetric matrix, self-pairs once on the diagonal);
            ``"combined"`` is their sum.
        weight : {"n_synapses", "weight"} or None
            The edge column to use; None gives a binary (0/1) matrix.

        Returns
        -------
        scipy.sparse.csr_matrix, (n, n) float64
            Row = presynaptic, column = postsynaptic, in ``neurons`` row order.
        """
        _check_graph_kind(kind)
        if weight not in ("n_synapses", "weight", None):
            raise ValueError(f"weight must be 'n_synapses', 'weight' or None, got {weight!r}")
        key = ("adjacency", kind, weight)
        if key in self._cache:
            return self._cache[key]
        n = self.n_neurons
        edges = self._edges
        if kind != "combined":
            edges = edges[edges["kind"] == kind]
        rows = self._positions(edges["pre_id"].to_numpy())
        cols = self._positions(edges["post_id"].to_numpy())
        data = (
            np.ones(len(edges)) if weight is None else edges[weight].to_numpy(dtype=np.float64)
        )
        elec = (edges["kind"] == "electrical").to_numpy() & (rows != cols)
        rows, cols, data = (
            np.concatenate([rows, cols[elec]]),
            np.concatenate([cols, rows[elec]]),
            np.concatenate([data, data[elec]]),
        )
        mat = sp.csr_matrix((data, (rows, cols)), shape=(n, n), dtype=np.float64)
        mat.sum_duplicates()
        if weight is None:
            mat.data[:] = 1.0
        else:
            mat.eliminate_zeros()
        self._cache[key] = mat
        return mat

    def to_networkx(self, kind: str = "chemical"):
        """Return a networkx graph (a cached view; copy it before changing it).

        Parameters
        ----------
        kind : {"chemical", "electrical", "combined"}
            ``"chemical"`` and ``"combined"`` give a ``DiGraph`` (combined sums both
            kinds, electrical in both directions); ``"electrical"`` gives a ``Graph``.

        Returns
        -------
        networkx.DiGraph or networkx.Graph
            Nodes are ``segment_id`` with the neurons columns as attributes; edges
            carry ``weight`` and ``n_synapses``.
        """
        _check_graph_kind(kind)
        key = ("networkx", kind)
        if key in self._cache:
            return self._cache[key]
        nx = require("networkx", feature="Connectome.to_networkx")
        graph = nx.Graph() if kind == "electrical" else nx.DiGraph()
        graph.graph["name"] = self._name
        records = self._neurons.to_dict("records")
        graph.add_nodes_from((r["segment_id"], r) for r in records)
        ids = self._neurons["segment_id"].to_numpy()
        w = self.adjacency(kind, weight="weight").tocoo()
        n = self.adjacency(kind, weight="n_synapses").tocoo()
        n_of = dict(zip(zip(n.row.tolist(), n.col.tolist()), n.data.tolist()))
        for r, c, v in zip(w.row.tolist(), w.col.tolist(), w.data.tolist()):
            if kind == "electrical" and r > c:
                continue
            graph.add_edge(
                int(ids[r]), int(ids[c]), weight=float(v), n_synapses=int(n_of.get((r, c), 0))
            )
        self._cache[key] = graph
        return graph

    def to_igraph(self, kind: str = "chemical"):
        """Return an igraph graph (a cached view; copy it before changing it).

        Parameters
        ----------
        kind : {"chemical", "electrical", "combined"}
            As in :meth:`to_networkx`: electrical gives an undirected graph.

        Returns
        -------
        igraph.Graph
            Vertex ``i`` is row ``i`` of ``neurons``, with attributes ``segment_id``,
            ``name``, ``cell_type``; edges carry ``weight`` and ``n_synapses``.
        """
        _check_graph_kind(kind)
        key = ("igraph", kind)
        if key in self._cache:
            return self._cache[key]
        ig = require("igraph", feature="Connectome.to_igraph")
        w = self.adjacency(kind, weight="weight")
        n = self.adjacency(kind, weight="n_synapses")
        if kind == "electrical":
            w, n = sp.triu(w).tocsr(), sp.triu(n).tocsr()
        w, n = w.tocoo(), n.tocsr()
        graph = ig.Graph(
            n=self.n_neurons,
            edges=np.column_stack([w.row, w.col]).tolist(),
            directed=kind != "electrical",
        )
        graph.es["weight"] = w.data.tolist()
        graph.es["n_synapses"] = np.asarray(n[w.row, w.col]).ravel().astype(int).tolist()
        graph.vs["segment_id"] = self._neurons["segment_id"].tolist()
        graph.vs["name"] = self._neurons["name"].astype(str).tolist()
        graph.vs["cell_type"] = self._neurons["cell_type"].astype(str).tolist()
        self._cache[key] = graph
        return graph

    # ------------------------------------------------------------------ derived
    def subset(self, segment_ids, *, name: str | None = None) -> "Connectome":
        """Return the connectome induced on some neurons.

        Parameters
        ----------
        segment_ids : array-like of int
            Neurons to keep; edges and synapses between kept neurons are kept.
        name : str, optional
            Name of the result (default: this one's).

        Returns
        -------
        Connectome
        """
        keep = np.asarray(segment_ids, dtype=np.int64)
        neurons = self._neurons[self._neurons["segment_id"].isin(keep)]
        neurons = neurons.drop(columns=[c for c in ("n_pre", "n_post") if c in neurons])

        def inside(df):
            return df[df["pre_id"].isin(keep) & df["post_id"].isin(keep)]

        return Connectome(
            neurons,
            inside(self._edges),
            None if self._synapses is None else inside(self._synapses),
            name=self._name if name is None else name,
            meta=self._meta,
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_edge_list(
        cls,
        edges: pd.DataFrame,
        neurons: pd.DataFrame | None = None,
        *,
        pre: str = "pre_id",
        post: str = "post_id",
        weight: str | None = None,
        kind: str | None = None,
        node_id: str = "segment_id",
        default_kind: str = "chemical",
        self_loops: str = "keep",
        missing_nodes: str = "add",
        synapse_rows: bool = False,
        name: str = "",
        meta: Mapping[str, Any] | None = None,
    ) -> "Connectome":
        """Build a connectome from an edge list (or one-row-per-synapse table).

        Parameters
        ----------
        edges : pandas.DataFrame
            One row per edge (or per synapse, with ``synapse_rows=True``).
        neurons : pandas.DataFrame, optional
            Node table; its id column is ``node_id``. Other columns are kept.
        pre, post : str
            Column names of presynaptic and postsynaptic ids. Ids may be integers or
            names (strings); names get integer ids 1..n in sorted order and keep their
            name in ``neurons.name``.
        weight : str, optional
            Column with the synapse count (or another non-negative weight). Without
            it every row counts as one synapse.
        kind : str, optional
            Column with ``chemical``/``electrical`` per row; without it every row is
            ``default_kind``.
        node_id : str
            Id column of ``neurons``.
        default_kind : {"chemical", "electrical"}
            Kind of rows when ``kind`` is None.
        self_loops : {"keep", "drop"}
            What to do with rows whose pre and post are equal.
        missing_nodes : {"add", "error"}
            What to do with ids in ``edges`` absent from ``neurons``: add them with
            ``cell_class="unknown"``, or raise.
        synapse_rows : bool
            Keep the rows as a ``synapses`` table too (one row per synapse).
        name : str
            Name of the result.
        meta : mapping, optional
            Extra provenance; the handling notes are added under ``"handling"``.

        Returns
        -------
        Connectome
            Duplicate (pre, post, kind) rows are summed; electrical rows are stored
            once per unordered pair (a table listing both directions with equal
            weights is read as symmetric and counted once, otherwise both directions
            are summed). ``meta["handling"]`` states what was done.

        Raises
        ------
        TableFormatError
            For missing columns, non-numeric or negative weights, an empty table,
            unknown kinds, or missing nodes with ``missing_nodes="error"``.
        """
        if not isinstance(edges, pd.DataFrame):
            raise TableFormatError(f"edges must be a DataFrame, got {type(edges).__name__}")
        if self_loops not in ("keep", "drop"):
            raise ValueError(f"self_loops must be 'keep' or 'drop', got {self_loops!r}")
        if missing_nodes not in ("add", "error"):
            raise ValueError(f"missing_nodes must be 'add' or 'error', got {missing_nodes!r}")
        if default_kind not in EDGE_KINDS:
            raise ValueError(f"default_kind must be one of {list(EDGE_KINDS)}")
        wanted = [c for c in (pre, post, weight, kind) if c is not None]
        missing = [c for c in wanted if c not in edges.columns]
        if missing:
            raise TableFormatError(
                f"edge table lacks column(s) {missing}; found {list(edges.columns)}"
            )
        if len(edges) == 0:
            raise TableFormatError("edge table is empty: there is no graph to build")
        handling: list[str] = []

        table = pd.DataFrame(index=edges.index)
        if weight is None:
            table["n_syn"] = 1.0
            handling.append("no weight column: every row counts as one synapse")
        else:
            w = _as_float(edges[weight], weight, "edges")
            if w.isna().any():
                raise TableFormatError(
                    f"edges.{weight} has {int(w.isna().sum())} missing values"
                )
            if (w < 0).any() or not np.all(np.isfinite(w)):
                raise TableFormatError(
                    f"edges.{weight} must be finite and >= 0; "
                    f"{int(((w < 0) | ~np.isfinite(w)).sum())} row(s) are not "
                    f"(e.g. {w[(w < 0) | ~np.isfinite(w)].iloc[0]})"
                )
            table["n_syn"] = w
        if kind is None:
            table["kind"] = default_kind
        else:
            k = edges[kind].astype("string").str.lower().str.strip()
            aliases = {"gap_junction": "electrical", "gapjunction": "electrical",
                       "gj": "electrical", "ej": "electrical", "chem": "chemical",
                       "synapse": "chemical", "cs": "chemical"}
            table["kind"] = k.replace(aliases)
            _check_kinds(table["kind"], "edges")

        # ids: integers as they are; anything else is a name that gets an integer id
        pre_raw, post_raw = edges[pre], edges[post]
        if pre_raw.isna().any() or post_raw.isna().any():
            raise TableFormatError(
                f"edges.{pre}/{post} have {int(pre_raw.isna().sum() + post_raw.isna().sum())} "
                "missing ids"
            )
        node_names = None
        try:
            table["pre"] = _as_int(pre_raw, pre, "edges")
            table["post"] = _as_int(post_raw, post, "edges")
            if neurons is not None and node_id in neurons.columns:
                _as_int(neurons[node_id], node_id, "neurons")
        except TableFormatError:
            all_names = pd.concat([pre_raw.astype(str), post_raw.astype(str)])
            if neurons is not None and node_id in neurons.columns:
                all_names = pd.concat([neurons[node_id].astype(str), all_names])
            node_names = np.array(sorted(set(all_names)))
            lookup = pd.Series(np.arange(1, len(node_names) + 1), index=node_names)
            table["pre"] = pre_raw.astype(str).map(lookup).to_numpy(np.int64)
            table["post"] = post_raw.astype(str).map(lookup).to_numpy(np.int64)
            handling.append(
                f"ids in {pre}/{post} are names: given integer ids 1..{len(node_names)} "
                "in sorted order (names kept in neurons.name)"
            )

        loops = table["pre"] == table["post"]
        if loops.any():
            if self_loops == "drop":
                table = table[~loops]
                handling.append(f"dropped {int(loops.sum())} self-loop row(s)")
            else:
                handling.append(f"kept {int(loops.sum())} self-loop row(s)")

        # electrical: one row per unordered pair
        elec = table["kind"] == "electrical"
        if elec.any():
            e = table[elec].copy()
            lo, hi = np.minimum(e["pre"], e["post"]), np.maximum(e["pre"], e["post"])
            directed = e.groupby(["pre", "post"])["n_syn"].sum()
            src = directed.index.get_level_values(0).to_numpy()
            dst = directed.index.get_level_values(1).to_numpy()
            off = src != dst
            reverse = directed.reindex(pd.MultiIndex.from_arrays([dst, src])).to_numpy()
            symmetric = bool(off.any()) and np.array_equal(
                directed.to_numpy()[off], reverse[off]
            )
            e["pre"], e["post"] = lo, hi
            if symmetric:
                # both directions listed: keep one per pair, self-pairs as they are
                agg = e.groupby(["pre", "post"])["n_syn"].sum()
                pair_off = agg.index.get_level_values(0) != agg.index.get_level_values(1)
                agg[pair_off] = agg[pair_off] / 2
                handling.append(
                    "electrical edges listed in both directions with equal weights: "
                    "counted once per pair"
                )
                e = agg.reset_index()
                e["kind"] = "electrical"
            else:
                handling.append(
                    "electrical edges are undirected: rows summed per unordered pair"
                )
            table = pd.concat([table[~elec], e], ignore_index=True)

        n_rows = len(table)
        grouped = table.groupby(["pre", "post", "kind"], sort=True)["n_syn"]
        agg = grouped.sum().reset_index()
        counts = grouped.size().reset_index(name="rows")
        if len(agg) < n_rows:
            handling.append(
                f"summed {n_rows - len(agg)} duplicate (pre, post, kind) row(s) into "
                f"{int((counts['rows'] > 1).sum())} edge(s)"
            )
        whole = np.all(agg["n_syn"].to_numpy() == np.round(agg["n_syn"].to_numpy()))
        edge_table = pd.DataFrame(
            {
                "pre_id": agg["pre"].astype(np.int64),
                "post_id": agg["post"].astype(np.int64),
                "kind": agg["kind"].astype("string"),
                "n_synapses": (
                    agg["n_syn"].round().astype(np.int64) if whole
                    else counts["rows"].astype(np.int64)
                ),
                "weight": agg["n_syn"].astype(np.float64),
            }
        )
        if not whole:
            handling.append("weights are not synapse counts: n_synapses counts rows")

        # neurons
        used = np.unique(np.concatenate([edge_table["pre_id"], edge_table["post_id"]]))
        if neurons is None:
            node_table = pd.DataFrame({"segment_id": used})
            handling.append(f"no node table: {len(used)} neurons taken from the edges")
        else:
            if node_id not in neurons.columns:
                raise TableFormatError(
                    f"node table lacks its id column {node_id!r}; found {list(neurons.columns)}"
                )
            node_table = neurons.copy()
            if node_names is not None:
                lookup = pd.Series(np.arange(1, len(node_names) + 1), index=node_names)
                if "name" not in node_table.columns:
                    node_table["name"] = node_table[node_id].astype(str)
                node_table["segment_id"] = node_table[node_id].astype(str).map(lookup)
            else:
                node_table["segment_id"] = _as_int(node_table[node_id], node_id, "neurons")
            if node_id != "segment_id":
                node_table = node_table.drop(columns=[node_id])
            known = node_table["segment_id"].to_numpy()
            absent = np.setdiff1d(used, known)
            if absent.size:
                if missing_nodes == "error":
                    raise TableFormatError(
                        f"{absent.size} id(s) in the edge table are missing from the node "
                        f"table, e.g. {absent[:5].tolist()}"
                    )
                node_table = pd.concat(
                    [node_table, pd.DataFrame({"segment_id": absent, "cell_class": "unknown"})],
                    ignore_index=True,
                )
                handling.append(
                    f"added {absent.size} neuron(s) found in the edges but not in the node table"
                )
        if node_names is not None:
            node_table["name"] = node_names[node_table["segment_id"].to_numpy() - 1]
        if "cell_class" in node_table.columns:
            node_table["cell_class"] = node_table["cell_class"].fillna("unknown")

        synapses = None
        if synapse_rows:
            synapses = pd.DataFrame(
                {
                    "synapse_id": np.arange(len(table), dtype=np.int64),
                    "pre_id": table["pre"].to_numpy(np.int64),
                    "post_id": table["post"].to_numpy(np.int64),
                    "kind": table["kind"].to_numpy(),
                }
            )
        meta = dict(meta or {})
        meta["handling"] = list(meta.get("handling", [])) + handling
        return cls(node_table, edge_table, synapses, name=name, meta=meta)

    # ------------------------------------------------------------------ disk
    def to_parquet(self, directory: str | Path) -> Path:
        """Write the tables as Parquet files in a directory.

        Parameters
        ----------
        directory : str or Path
            Created if absent. Gets ``neurons.parquet``, ``edges.parquet`` and
            (if any) ``synapses.parquet``; name and meta go in the Parquet metadata.

        Returns
        -------
        Path
            The directory.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        info = json.dumps({"name": self._name, "meta": self._meta}).encode()
        tables = {"neurons": self._neurons, "edges": self._edges, "synapses": self._synapses}
        for table_name, df in tables.items():
            path = directory / f"{table_name}.parquet"
            if df is None:
                path.unlink(missing_ok=True)
                continue
            table = pa.Table.from_pandas(df, preserve_index=False)
            metadata = dict(table.schema.metadata or {})
            metadata[_PARQUET_META_KEY] = info
            pq.write_table(table.replace_schema_metadata(metadata), path)
        return directory

    @classmethod
    def read_parquet(cls, directory: str | Path) -> "Connectome":
        """Read a connectome written by :meth:`to_parquet` (or a run's ``tables/``).

        Parameters
        ----------
        directory : str or Path
            Holds ``neurons`` and ``edges`` (and optionally ``synapses``), each a
            ``NAME.parquet`` file or a ``NAME/`` folder of Parquet parts.

        Returns
        -------
        Connectome

        Raises
        ------
        VolumeNotFoundError
            If ``neurons`` or ``edges`` is missing.
        """
        import pyarrow.parquet as pq

        directory = Path(directory)

        def find(table_name):
            for path in (directory / f"{table_name}.parquet", directory / table_name):
                if path.exists():
                    return path
            return None

        found = {t: find(t) for t in ("neurons", "edges", "synapses")}
        for required in ("neurons", "edges"):
            if found[required] is None:
                raise VolumeNotFoundError(
                    f"no {required} table in {directory} (looked for {required}.parquet "
                    f"and {required}/)"
                )
        info = {"name": "", "meta": {}}
        if found["neurons"].is_file():
            raw = pq.read_schema(found["neurons"]).metadata or {}
            if _PARQUET_META_KEY in raw:
                info = json.loads(raw[_PARQUET_META_KEY])
        frames = {t: (None if p is None else pd.read_parquet(p)) for t, p in found.items()}
        return cls(
            frames["neurons"], frames["edges"], frames["synapses"],
            name=info.get("name", ""), meta=info.get("meta", {}),
        )

    @classmethod
    def from_run(cls, run_path: str | Path) -> "Connectome":
        """Read a run's ``neurons``, ``edges`` and ``synapses`` tables (see :func:`.connectome_from_run`)."""
        from ._build import connectome_from_run

        return connectome_from_run(run_path)

    # ------------------------------------------------------------------ exports
    def to_graphml(self, path: str | Path, *, kind: str = "chemical") -> Path:
        """Write GraphML (see :func:`connectomix.graph.to_graphml`)."""
        from ._export import to_graphml

        return to_graphml(self, path, kind=kind)

    def to_neuprint_csv(self, directory: str | Path) -> dict:
        """Write neuPrint-style Neurons.csv and ConnectsTo.csv (see :func:`connectomix.graph.to_neuprint_csv`)."""
        from ._export import to_neuprint_csv

        return to_neuprint_csv(self, directory)

    def to_cave(self, path: str | Path | None = None, *, units: str = "nm", voxel_size=None) -> pd.DataFrame:
        """The CAVE-style synapse table, x y z order; also written as CSV to ``path`` when given.

        See :func:`connectomix.graph.cave_synapse_table` for columns and units.
        """
        from ._export import cave_synapse_table, write_cave_synapses

        if path is not None:
            write_cave_synapses(self, path, units=units, voxel_size=voxel_size)
        return cave_synapse_table(self, units=units, voxel_size=voxel_size)

    # ------------------------------------------------------------------ display
    def summary(self) -> pd.DataFrame:
        """Count neurons, edges and synapses by class and kind.

        Returns
        -------
        pandas.DataFrame
            Columns ``table``, ``group``, ``count``.
        """
        rows = [("neurons", "all", self.n_neurons)]
        for cls_name, count in self._neurons["cell_class"].value_counts().sort_index().items():
            rows.append(("neurons", str(cls_name), int(count)))
        for kind_name in EDGE_KINDS:
            part = self._edges[self._edges["kind"] == kind_name]
            if len(part):
                rows.append(("edges", kind_name, len(part)))
                rows.append(("synapses", kind_name, int(part["n_synapses"].sum())))
        return pd.DataFrame(rows, columns=["table", "group", "count"])

    def __repr__(self) -> str:
        title = f"Connectome {self._name!r}" if self._name else "Connectome"
        classes = self._neurons["cell_class"].value_counts()
        cls_text = ", ".join(f"{k} {v}" for k, v in classes.sort_index().items())
        lines = [title, f"  neurons   {self.n_neurons:>9,}" + (f"   ({cls_text})" if cls_text else "")]
        for kind_name in EDGE_KINDS:
            part = self._edges[self._edges["kind"] == kind_name]
            if len(part):
                lines.append(
                    f"  {kind_name:<10}{len(part):>9,} edges  {int(part['n_synapses'].sum()):>9,} synapses"
                )
        if self._synapses is not None:
            lines.append(f"  synapse rows {len(self._synapses):>6,}")
        if not len(self._edges):
            lines.append("  (no edges)")
        return "\n".join(lines)
