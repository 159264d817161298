"""Numpy kernels of synapse detection: cleft pieces per block, their merge, partners.

The detection runs in three steps so that its result does not depend on the block
shape (DESIGN.md rule 3):

1. :func:`block_tables` (per block, no global state): threshold the cleft
   probability inside the block's write region and label it with
   connected-components-3d. Each piece is named by ``1 +`` the global C-order flat
   index of its first voxel, a name that no other block can give. For every cleft
   voxel it looks up two segments: the one the voxel lies in (``own``) and the one
   at the voxel plus its partner vector (``target``, the presynaptic side); the
   votes are summed per ``(piece, target, own)``. Pieces touching the block's
   border also list their border voxels (``shell``) and their links to cleft voxels
   just outside the block (``links``).
2. :func:`merge_tables` (once, on the driver): join links to shells, take connected
   components of the piece graph (one cleft instance each), number the instances
   by their first voxel in C order, assign partners (:func:`assign_partners`) and
   join pieces of one broken cleft (:func:`merge_nearby`).
3. :func:`relabel_block` (per block): label the block again exactly as in step 1
   and write the instance ids.

Sampling at a partner vector never reads beyond ``max_partner_nm`` from a cleft
voxel (longer vectors do not vote), so a block that reads that much context sees
every target its voxels can name.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import VolumeError

__all__ = [
    "VOTE_COLUMNS",
    "SYNAPSE_TABLE_COLUMNS",
    "cleft_probability",
    "label_clefts",
    "block_tables",
    "merge_tables",
    "assign_partners",
    "merge_nearby",
    "relabel_block",
]

#: Columns of the per-block vote table.
VOTE_COLUMNS = ("piece", "target", "own", "n", "w", "wz", "wy", "wx")
#: Columns of the synapse table this package writes (DESIGN.md plus ``cleft_id``).
SYNAPSE_TABLE_COLUMNS = ("synapse_id", "pre_id", "post_id", "z", "y", "x", "score", "size_vx", "kind",
                         "cleft_id")


# ----------------------------------------------------------------------------- basics
def cleft_probability(values: np.ndarray, *, name: str = "cleft probability") -> np.ndarray:
    """Return cleft probabilities as float32 in [0, 1].

    Parameters
    ----------
    values : ndarray, (Z, Y, X) uint8 (0..255 = 0..1) or float
    name : str
        Named in error messages.

    Raises
    ------
    VolumeError
        For another dtype, NaNs or values outside [0, 1].
    """
    if values.dtype == np.uint8:
        return values.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(values.dtype, np.floating):
        raise VolumeError(f"{name} must be uint8 (0..255) or float in [0, 1]; got dtype {values.dtype}")
    out = values.astype(np.float32, copy=False)
    if out.size and not np.isfinite(out).all():
        raise VolumeError(f"{name} holds {int((~np.isfinite(out)).sum())} NaN or infinite value(s)")
    if out.size and (out.min() < 0 or out.max() > 1):
        raise VolumeError(
            f"{name} must lie in [0, 1]; found values in [{float(out.min()):.3g}, {float(out.max()):.3g}]"
        )
    return out


def label_clefts(prob: np.ndarray, *, threshold: float, connectivity: int) -> tuple[np.ndarray, int]:
    """Threshold and label cleft pieces (cc3d: labels 1..n in order of first voxel)."""
    import cc3d

    mask = prob >= np.float32(threshold)
    labels, n = cc3d.connected_components(mask, connectivity=connectivity, return_N=True, out_dtype=np.uint32)
    return labels, int(n)


def _neighbour_offsets(connectivity: int) -> np.ndarray:
    offs = [d for d in itertools.product((-1, 0, 1), repeat=3) if any(d)]
    order = {6: 1, 18: 2, 26: 3}[connectivity]
    return np.array([d for d in offs if sum(map(abs, d)) <= order], np.int64)


def _piece_names(labels: np.ndarray, n: int, origin_vx, total_shape) -> np.ndarray:
    """``name[label]``: 1 + global flat index of each piece's first voxel (0 for background)."""
    flat = labels.reshape(-1)
    idx = np.flatnonzero(flat)
    lab, first = np.unique(flat[idx], return_index=True)
    coords = np.stack(np.unravel_index(idx[first], labels.shape), axis=1) + np.asarray(origin_vx, np.int64)
    names = np.zeros(n + 1, np.int64)
    names[lab] = np.ravel_multi_index(tuple(coords.T), tuple(total_shape)).astype(np.int64) + 1
    return names


# ----------------------------------------------------------------------------- step 1
def block_tables(
    prob: np.ndarray,
    prob_origin_vx,
    vectors: np.ndarray,
    segmentation: np.ndarray,
    seg_origin_vx,
    write_origin_vx,
    write_shape_vx,
    *,
    total_shape,
    voxel_size,
    offset,
    threshold: float,
    connectivity: int = 26,
    max_partner_nm: float = 1000.0,
):
    """Cleft pieces of one block and what they vote for.

    Parameters
    ----------
    prob : ndarray, (Z, Y, X) float32
        Cleft probability over the write region grown by one voxel (clipped at the
        volume border), starting at global voxel ``prob_origin_vx``.
    vectors : ndarray, (3, Z, Y, X) float
        Partner vectors (post -> pre, nm, z y x) over the write region exactly.
    segmentation : ndarray, (Z, Y, X) integer
        Segment ids over the write region grown by at least ``max_partner_nm`` and one
        voxel (clipped), starting at global voxel ``seg_origin_vx``.
    write_origin_vx, write_shape_vx : sequence of int
        The write region in global voxels.
    total_shape : sequence of int
        Shape of the whole volume in voxels (names are flat indices into it).
    voxel_size, offset : sequence of int
        nm, of the volume.
    threshold : float
        Voxels with ``prob >= threshold`` are cleft.
    connectivity : {6, 18, 26}
    max_partner_nm : float
        Longer (or non-finite) vectors do not vote (``target = 0``).

    Returns
    -------
    dict of DataFrame
        ``votes`` (:data:`VOTE_COLUMNS`: counts, summed probability, and
        probability-weighted positions in nm per ``(piece, target, own)``),
        ``shell`` (``flat``, ``piece``) and ``links`` (``piece``, ``flat``).
    """
    import pandas as pd

    vs = np.asarray(voxel_size, np.float64)
    off = np.asarray(offset, np.float64)
    total = np.asarray(total_shape, np.int64)
    w0 = np.asarray(write_origin_vx, np.int64)
    ws = np.asarray(write_shape_vx, np.int64)
    p0 = np.asarray(prob_origin_vx, np.int64)
    s0 = np.asarray(seg_origin_vx, np.int64)
    inner = tuple(slice(int(a), int(a + b)) for a, b in zip(w0 - p0, ws))
    pw = prob[inner]
    labels, n = label_clefts(pw, threshold=threshold, connectivity=connectivity)
    empty = {
        "votes": pd.DataFrame({c: pd.Series(dtype=np.float64 if c.startswith("w") else np.int64)
                               for c in VOTE_COLUMNS}),
        "shell": pd.DataFrame({"flat": pd.Series(dtype=np.int64), "piece": pd.Series(dtype=np.int64)}),
        "links": pd.DataFrame({"piece": pd.Series(dtype=np.int64), "flat": pd.Series(dtype=np.int64)}),
    }
    if n == 0:
        return empty
    names = _piece_names(labels, n, w0, total)
    local = np.argwhere(labels)  # (k, 3) in write-region voxels, C order
    piece = names[labels[tuple(local.T)]]
    gvx = local + w0
    p = pw[tuple(local.T)].astype(np.float64)
    pos = off + (gvx + 0.5) * vs

    # own segment and the segment at the partner vector's tip
    seg_shape = np.asarray(segmentation.shape, np.int64)
    own = segmentation[tuple((gvx - s0).T)].astype(np.int64)
    vec = np.asarray(vectors[(slice(None),) + tuple(local.T)], np.float64).T  # (k, 3)
    norm = np.sqrt((vec ** 2).sum(axis=1))
    ok = np.isfinite(norm) & (norm <= max_partner_nm)
    tip = np.floor((pos + np.where(ok[:, None], vec, 0.0) - off) / vs).astype(np.int64)
    ok &= np.all((tip >= 0) & (tip < total), axis=1)
    rel = tip - s0
    inside = np.all((rel >= 0) & (rel < seg_shape), axis=1)
    if np.any(ok & ~inside):  # the driver's context is too small: a bug, not bad input
        raise AssertionError("segmentation context smaller than max_partner_nm")
    target = np.zeros(len(p), np.int64)
    target[ok] = segmentation[tuple(rel[ok].T)].astype(np.int64)

    df = pd.DataFrame({"piece": piece, "target": target, "own": own, "n": np.ones(len(p), np.int64), "w": p,
                       "wz": p * pos[:, 0], "wy": p * pos[:, 1], "wx": p * pos[:, 2]})
    votes = df.groupby(["piece", "target", "own"], sort=True, as_index=False).sum()

    # border voxels and their cleft neighbours just outside the write region
    border = np.any((local == 0) | (local == ws - 1), axis=1)
    b_local, b_piece = local[border], piece[border]
    shell = pd.DataFrame({"flat": np.ravel_multi_index(tuple((b_local + w0).T), tuple(total)).astype(np.int64),
                          "piece": b_piece})
    mask = prob >= np.float32(threshold)
    pshape = np.asarray(prob.shape, np.int64)
    link_piece, link_flat = [], []
    for d in _neighbour_offsets(connectivity):
        q = b_local + d  # write-region frame
        outside = np.any((q < 0) | (q >= ws), axis=1)
        qp = q + (w0 - p0)  # prob frame
        inb = np.all((qp >= 0) & (qp < pshape), axis=1)
        sel = outside & inb
        if not sel.any():
            continue
        hit = mask[tuple(qp[sel].T)]
        if not hit.any():
            continue
        link_piece.append(b_piece[sel][hit])
        link_flat.append(np.ravel_multi_index(tuple((q[sel][hit] + w0).T), tuple(total)).astype(np.int64))
    if link_piece:
        links = pd.DataFrame({"piece": np.concatenate(link_piece), "flat": np.concatenate(link_flat)})
        links = links.drop_duplicates().reset_index(drop=True)
    else:
        links = empty["links"]
    return {"votes": votes, "shell": shell, "links": links}


# ----------------------------------------------------------------------------- step 2
def merge_tables(votes, shell, links, *, min_size_vx: int = 0, partner_fraction: float = 0.2,
                 min_partner_weight: float = 10.0, merge_distance_nm: float = 0.0):
    """Join cleft pieces into instances and turn each into synapse rows.

    Parameters
    ----------
    votes, shell, links : DataFrame
        The concatenated block tables of :func:`block_tables`.
    min_size_vx : int
        Instances with fewer voxels are dropped.
    partner_fraction, min_partner_weight : float
        See :func:`assign_partners`.
    merge_distance_nm : float
        See :func:`merge_nearby`.

    Returns
    -------
    pieces : ndarray, (P,) int64
        Sorted piece names.
    cleft_of_piece : ndarray, (P,) int64
        Instance (``cleft_id``) of each piece, 0 where dropped.
    synapses : DataFrame
        :data:`SYNAPSE_TABLE_COLUMNS`.
    """
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    pieces = np.unique(np.asarray(votes["piece"], np.int64))
    n_p = len(pieces)
    if n_p == 0:
        return pieces, np.zeros(0, np.int64), _empty_synapses()
    # links -> piece pairs through the shell of the neighbouring block
    sh_flat = np.asarray(shell["flat"], np.int64)
    order = np.argsort(sh_flat, kind="stable")
    sh_flat, sh_piece = sh_flat[order], np.asarray(shell["piece"], np.int64)[order]
    l_flat = np.asarray(links["flat"], np.int64)
    l_piece = np.asarray(links["piece"], np.int64)
    at = np.searchsorted(sh_flat, l_flat)
    found = (at < len(sh_flat)) & (sh_flat[np.minimum(at, len(sh_flat) - 1)] == l_flat)
    if not np.all(found):  # every cleft voxel next to a block lies in that block's shell
        raise AssertionError(f"{int((~found).sum())} cleft links point at no shell voxel")
    a = np.searchsorted(pieces, l_piece)
    b = np.searchsorted(pieces, sh_piece[at])
    graph = coo_array((np.ones(len(a)), (a, b)), shape=(n_p, n_p))
    n_comp, comp = connected_components(graph, directed=False)
    # components numbered by their first voxel in C order: pieces are sorted by their
    # first voxel, so the first piece of each component decides
    first_piece = np.full(n_comp, n_p, np.int64)
    np.minimum.at(first_piece, comp, np.arange(n_p))
    rank = np.empty(n_comp, np.int64)
    rank[np.argsort(first_piece, kind="stable")] = np.arange(n_comp)
    inst_of_piece = rank[comp]

    v = votes.copy()
    v["inst"] = inst_of_piece[np.searchsorted(pieces, np.asarray(v["piece"], np.int64))]
    agg = v.drop(columns="piece").groupby(["inst", "target", "own"], sort=True, as_index=False).sum()
    size = agg.groupby("inst")["n"].sum()
    keep_inst = size.index[size.to_numpy() >= max(int(min_size_vx), 1)].to_numpy()
    cleft_of_inst = np.zeros(n_comp, np.int64)
    cleft_of_inst[keep_inst] = np.arange(1, len(keep_inst) + 1)
    agg = agg[cleft_of_inst[agg["inst"].to_numpy()] > 0].copy()
    agg["cleft_id"] = cleft_of_inst[agg["inst"].to_numpy()]
    synapses = assign_partners(agg.drop(columns="inst"), partner_fraction=partner_fraction,
                               min_partner_weight=min_partner_weight)
    synapses = merge_nearby(synapses, distance_nm=merge_distance_nm)
    return pieces, cleft_of_inst[inst_of_piece], synapses


def _empty_synapses():
    import pandas as pd

    dtypes = {"synapse_id": np.int64, "pre_id": np.int64, "post_id": np.int64, "z": np.float64, "y": np.float64,
              "x": np.float64, "score": np.float64, "size_vx": np.int64, "kind": object, "cleft_id": np.int64}
    return pd.DataFrame({c: pd.Series(dtype=dtypes[c]) for c in SYNAPSE_TABLE_COLUMNS})


def assign_partners(votes, *, partner_fraction: float = 0.2, min_partner_weight: float = 10.0):
    """Turn each cleft instance's votes into one or more synapses (polyadic clefts).

    Parameters
    ----------
    votes : DataFrame
        ``cleft_id, target, own, n, w, wz, wy, wx`` summed per instance, target
        segment (at the partner vector's tip) and own segment (under the voxel).
    partner_fraction : float
        A (pre, post) pair is a synapse when its weight (summed probability of the
        voxels lying in ``post`` whose vectors point into ``pre``) reaches this
        fraction of the instance's strongest pair ...
    min_partner_weight : float
        ... and at least this weight.

    Returns
    -------
    DataFrame
        :data:`SYNAPSE_TABLE_COLUMNS`, ordered by ``cleft_id, pre_id, post_id``.

    Notes
    -----
    The cleft straddles the contact: its voxels on the post side lie in ``post`` and
    point into ``pre``; those on the pre side lie in ``pre`` and point into ``pre``
    too. So every voxel with ``target != own`` (both non-zero) votes for the pair
    ``(pre=target, post=own)``. Touching clefts of one bouton onto several partners
    (or of two boutons) form one instance and are separated here. Of two opposite
    pairs (A, B) and (B, A) only the stronger is kept. An instance with one pair
    is placed at its probability-weighted centroid, with all its voxels; with
    several, each pair is placed at the centroid of its post-side voxels and gets
    those voxels plus a weight-proportional share of the pre-side voxels. An
    instance without any pair gives one synapse with the best guesses it has
    (``0`` where a partner is unknown), so detections are never lost silently.
    """
    import pandas as pd

    if len(votes) == 0:
        return _empty_synapses()
    v = votes
    inst = v.groupby("cleft_id")[["n", "w", "wz", "wy", "wx"]].sum()
    pair = v[(v["target"] != 0) & (v["own"] != 0) & (v["target"] != v["own"])]
    pair = pair.rename(columns={"target": "pre_id", "own": "post_id"})
    if len(pair):
        best = pair.groupby("cleft_id")["w"].transform("max")
        pair = pair[pair["w"] >= np.maximum(min_partner_weight, partner_fraction * best)]
        # drop the weaker of two opposite pairs (ties: keep the smaller pre id)
        rev = pair.merge(pair[["cleft_id", "pre_id", "post_id", "w"]], left_on=["cleft_id", "pre_id", "post_id"],
                         right_on=["cleft_id", "post_id", "pre_id"], how="left", suffixes=("", "_rev"))
        lose = (rev["w_rev"] > rev["w"]) | ((rev["w_rev"] == rev["w"]) & (rev["pre_id"] > rev["post_id"]))
        pair = pair[~lose.to_numpy()]
    rows = []
    if len(pair):
        n_pairs = pair.groupby("cleft_id")["w"].transform("size").to_numpy()
        single = n_pairs == 1
        ps = pair[single]
        t = inst.loc[ps["cleft_id"].to_numpy()]
        rows.append(pd.DataFrame({
            "cleft_id": ps["cleft_id"].to_numpy(), "pre_id": ps["pre_id"].to_numpy(),
            "post_id": ps["post_id"].to_numpy(), "z": (t["wz"] / t["w"]).to_numpy(),
            "y": (t["wy"] / t["w"]).to_numpy(), "x": (t["wx"] / t["w"]).to_numpy(),
            "score": (t["w"] / t["n"]).to_numpy(), "size_vx": t["n"].to_numpy(),
        }))
        pm = pair[~single]
        if len(pm):
            pre_side = v[(v["target"] == v["own"]) & (v["own"] != 0)].rename(columns={"own": "pre_id"})
            pre_side = pre_side.groupby(["cleft_id", "pre_id"], as_index=False)[["n", "w"]].sum()
            share = pm["w"] / pm.groupby(["cleft_id", "pre_id"])["w"].transform("sum")
            m = pm.merge(pre_side, on=["cleft_id", "pre_id"], how="left", suffixes=("", "_pre")).fillna(
                {"n_pre": 0, "w_pre": 0.0})
            share = share.to_numpy()
            n_all = m["n"].to_numpy() + share * m["n_pre"].to_numpy()
            w_all = m["w"].to_numpy() + share * m["w_pre"].to_numpy()
            rows.append(pd.DataFrame({
                "cleft_id": m["cleft_id"].to_numpy(), "pre_id": m["pre_id"].to_numpy(),
                "post_id": m["post_id"].to_numpy(), "z": (m["wz"] / m["w"]).to_numpy(),
                "y": (m["wy"] / m["w"]).to_numpy(), "x": (m["wx"] / m["w"]).to_numpy(),
                "score": w_all / np.maximum(n_all, 1e-12), "size_vx": np.round(n_all).astype(np.int64),
            }))
    lone = inst.index.difference(pair["cleft_id"].unique() if len(pair) else [])
    if len(lone):
        lv = v[v["cleft_id"].isin(lone)]
        pre = _argmax_vote(lv[lv["target"] != 0], "target")
        lv = lv.assign(pre=pre.reindex(lv["cleft_id"]).fillna(0).to_numpy())
        post = _argmax_vote(lv[(lv["own"] != 0) & (lv["own"] != lv["pre"])], "own")
        t = inst.loc[lone]
        rows.append(pd.DataFrame({
            "cleft_id": lone.to_numpy(), "pre_id": pre.reindex(lone).fillna(0).to_numpy(),
            "post_id": post.reindex(lone).fillna(0).to_numpy(), "z": (t["wz"] / t["w"]).to_numpy(),
            "y": (t["wy"] / t["w"]).to_numpy(), "x": (t["wx"] / t["w"]).to_numpy(),
            "score": (t["w"] / t["n"]).to_numpy(), "size_vx": t["n"].to_numpy(),
        }))
    out = pd.concat(rows, ignore_index=True)
    out = out.astype({"cleft_id": np.int64, "pre_id": np.int64, "post_id": np.int64, "size_vx": np.int64})
    out = out.sort_values(["cleft_id", "pre_id", "post_id"], kind="stable").reset_index(drop=True)
    out["synapse_id"] = np.arange(1, len(out) + 1, dtype=np.int64)
    out["kind"] = "chemical"
    return out[list(SYNAPSE_TABLE_COLUMNS)]


def merge_nearby(synapses, *, distance_nm: float):
    """Merge synapses of the same (pre, post) pair whose centres lie within ``distance_nm``.

    A cleft that thresholding breaks into pieces (a curved or faint contact) gives
    several rows with the same partners a few voxels apart; they are one synapse.
    Pieces are joined transitively (single linkage). The merged row has the
    size-weighted centre and score, the summed size and the smallest ``cleft_id``;
    rows with an unknown partner (0) are never merged. ``synapse_id`` is renumbered
    1..n in the order ``cleft_id, pre_id, post_id``.

    Parameters
    ----------
    synapses : DataFrame
        :data:`SYNAPSE_TABLE_COLUMNS`.
    distance_nm : float
        0 merges nothing.

    Returns
    -------
    DataFrame
    """
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if distance_nm <= 0 or len(synapses) < 2:
        return synapses
    pts = synapses[["z", "y", "x"]].to_numpy(np.float64)
    pre, post = synapses["pre_id"].to_numpy(), synapses["post_id"].to_numpy()
    pairs = cKDTree(pts).query_pairs(distance_nm, output_type="ndarray")
    if len(pairs):
        a, b = pairs[:, 0], pairs[:, 1]
        same = (pre[a] == pre[b]) & (post[a] == post[b]) & (pre[a] != 0) & (post[a] != 0)
        a, b = a[same], b[same]
    else:
        a = b = np.zeros(0, np.int64)
    if not len(a):
        return synapses
    n = len(synapses)
    _, comp = connected_components(coo_array((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    df = synapses.assign(group=comp, sw=synapses["score"] * synapses["size_vx"])
    for c in "zyx":
        df[f"m{c}"] = df[c] * df["size_vx"]
    g = df.groupby("group", sort=False)
    out = g.agg(pre_id=("pre_id", "first"), post_id=("post_id", "first"), kind=("kind", "first"),
                cleft_id=("cleft_id", "min"), size_vx=("size_vx", "sum"), sw=("sw", "sum"), mz=("mz", "sum"),
                my=("my", "sum"), mx=("mx", "sum"))
    size = out["size_vx"].to_numpy(np.float64)
    out["z"], out["y"], out["x"] = out["mz"] / size, out["my"] / size, out["mx"] / size
    out["score"] = out["sw"] / size
    out = out.sort_values(["cleft_id", "pre_id", "post_id"], kind="stable").reset_index(drop=True)
    out["synapse_id"] = np.arange(1, len(out) + 1, dtype=np.int64)
    return out[list(SYNAPSE_TABLE_COLUMNS)].astype({"size_vx": np.int64, "cleft_id": np.int64})


def _argmax_vote(v, column: str):
    """Per ``cleft_id`` the ``column`` value with the largest summed weight (ties: smallest id)."""
    import pandas as pd

    if len(v) == 0:
        return pd.Series(dtype=np.int64)
    s = v.groupby(["cleft_id", column], as_index=False)["w"].sum()
    s = s.sort_values(["cleft_id", "w", column], ascending=[True, False, True], kind="stable")
    return s.drop_duplicates("cleft_id").set_index("cleft_id")[column].astype(np.int64)


# ----------------------------------------------------------------------------- step 3
def relabel_block(prob: np.ndarray, write_origin_vx, *, total_shape, threshold: float, connectivity: int,
                  pieces: np.ndarray, cleft_of_piece: np.ndarray) -> np.ndarray:
    """Instance ids (``cleft_id``, uint64) of one write region, labelled as in step 1."""
    labels, n = label_clefts(prob, threshold=threshold, connectivity=connectivity)
    if n == 0:
        return np.zeros(prob.shape, np.uint64)
    names = _piece_names(labels, n, write_origin_vx, total_shape)
    at = np.searchsorted(pieces, names)
    at = np.minimum(at, max(len(pieces) - 1, 0))
    ids = np.where((len(pieces) > 0) & (pieces[at] == names), cleft_of_piece[at], 0).astype(np.uint64)
    ids[0] = 0
    return ids[labels]
