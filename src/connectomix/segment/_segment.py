"""Whole-array segmentation: the numpy kernels, chained the way the blocks chain them.

These functions take in-memory arrays. They are the reference that the block-wise
driver (:func:`segment_affinities`) must reproduce label for label, and they are what
a user calls on a volume that fits in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._affinities import quantize
from ._agglomerate import agglomerate_graph, canonical_segments
from ._config import SegmentConfig
from ._fragments import grow, label_leftovers, label_seeds, leftover_voxels, seed_components, seed_mask
from ._graph import edge_contributions, scores

__all__ = ["watershed", "region_graph", "agglomerate", "segment", "Segmentation"]


def _config(config: SegmentConfig | None, **changes) -> SegmentConfig:
    return (config or SegmentConfig()).replace(**changes)


def _provisional(q: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    """Seeds, growth and leftovers on one array: ids are ``1 + global raster index``."""
    xy = cfg.fragments_in_xy
    labels = label_seeds(seed_mask(q, sigma=cfg.seed_sigma, radius=cfg.seed_radius, delta=cfg.seed_delta,
                                   threshold=cfg.seed_threshold, in_xy=xy), in_xy=xy)
    grow(labels, q, levels=cfg.grow_levels, rounds=cfg.grow_rounds, slack=cfg.grow_slack, in_xy=xy)
    return label_leftovers(labels, q)


def _renumber(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids 1..N in increasing order of the old ids; also the voxel count per new id."""
    import fastremap

    ids, counts = fastremap.unique(labels, return_counts=True)
    if len(ids) and ids[0] == 0:
        ids, counts = ids[1:], counts[1:]
    sizes = np.zeros(len(ids) + 1, np.int64)
    sizes[1:] = counts
    table = {int(i): n for n, i in enumerate(ids.tolist(), start=1)}
    table[0] = 0
    return fastremap.remap(labels, table, preserve_missing_labels=False).astype(np.uint64), sizes


def _fragments(q: np.ndarray, cfg: SegmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Fragment ids 1..N (uint32 where they fit) and the voxel count of each id.

    The same as ``_renumber(_provisional(q, cfg))`` without its full-volume uint64
    passes: seeds keep their compact connected-component ids through the growth,
    leftovers get the next compact ids, and one look-up table turns compact ids into
    ranks of the provisional ids (``1 + raster index`` of a seed's first voxel or of
    the leftover voxel), which is the order :func:`_renumber` numbers them in.
    """
    import fastremap

    xy = cfg.fragments_in_xy
    mask = seed_mask(q, sigma=cfg.seed_sigma, radius=cfg.seed_radius, delta=cfg.seed_delta,
                     threshold=cfg.seed_threshold, in_xy=xy)
    local = seed_components(mask, in_xy=xy, out_dtype=np.uint32)
    del mask
    seed_ids, first = fastremap.unique(local, return_index=True)
    if local.size and seed_ids[0] == 0:
        seed_ids, first = seed_ids[1:], first[1:]
    n_seeds = len(seed_ids)
    if n_seeds and int(seed_ids[-1]) != n_seeds:  # cc3d numbers components 1..n
        return _renumber(_provisional(q, cfg))
    grow(local, q, levels=cfg.grow_levels, rounds=cfg.grow_rounds, slack=cfg.grow_slack, in_xy=xy)
    left = leftover_voxels(local, q)
    n = n_seeds + left.size
    if n >= np.iinfo(np.uint32).max:  # more fragments than compact uint32 ids
        return _renumber(_provisional(q, cfg))
    local.reshape(-1)[left] = np.arange(n_seeds + 1, n + 1, dtype=np.uint32)
    # provisional id - 1 of compact ids 1..n: distinct (a leftover is no seed voxel)
    name = np.concatenate([np.asarray(first, np.int64), left.astype(np.int64)])
    rank = np.zeros(n + 1, np.uint32)
    rank[1 + np.argsort(name, kind="stable")] = np.arange(1, n + 1, dtype=np.uint32)
    ids, counts = fastremap.unique(local, return_counts=True)
    sizes = np.zeros(n + 1, np.int64)
    sizes[rank[ids]] = counts
    sizes[0] = 0
    if np.array_equal(rank, np.arange(n + 1)):
        return local, sizes  # compact ids are ranks already (cc3d numbers in raster order)
    return rank[local], sizes


def watershed(affinities, *, config: SegmentConfig | None = None, seed_sigma=None, seed_radius=None,
              seed_delta=None, seed_threshold=None, grow_levels=None, grow_rounds=None,
              grow_slack=None, fragments_in_xy=None) -> np.ndarray:
    """Split affinities into fragments: seeds deep inside objects, grown along strong edges.

    Parameters
    ----------
    affinities : ndarray, (C, Z, Y, X) uint8 or float in [0, 1]
        Channel-first; the first three channels are the nearest neighbours at -1
        along z, y, x.
    config : SegmentConfig, optional
        Options; the keyword arguments below override its fields.
    seed_sigma, seed_radius, seed_delta, seed_threshold, grow_levels, grow_rounds, grow_slack, fragments_in_xy
        See :class:`SegmentConfig`.

    Returns
    -------
    ndarray, (Z, Y, X) uint64
        Fragment ids 1..N (0 only where every affinity of a voxel is 0), numbered in
        the raster order of each fragment's first seed voxel.

    Raises
    ------
    VolumeError
        On a wrong shape or dtype, NaNs, or floats outside [0, 1].

    Examples
    --------
    >>> from connectomix.testing import blobs
    >>> from connectomix.segment import affinities_from_labels
    >>> truth = blobs((8, 32, 32), n=6, seed=2)
    >>> frags = watershed(affinities_from_labels(truth))
    >>> frags.shape, int(frags.min()) >= 1
    ((8, 32, 32), True)

    Notes
    -----
    See :mod:`connectomix.segment._fragments`: every step is local or a connected
    component, which is why the block-wise driver reproduces this exactly.
    """
    cfg = _config(config, seed_sigma=seed_sigma, seed_radius=seed_radius, seed_delta=seed_delta,
                  seed_threshold=seed_threshold, grow_levels=grow_levels, grow_rounds=grow_rounds,
                  grow_slack=grow_slack, fragments_in_xy=fragments_in_xy)
    q = quantize(affinities)
    return _fragments(q, cfg)[0].astype(np.uint64)


def _graph_of(fragments: np.ndarray, q: np.ndarray) -> dict:
    if fragments.shape != q.shape[1:]:
        from ..errors import VolumeError

        raise VolumeError(f"fragments of shape {fragments.shape} do not match affinities of shape {q.shape}")
    return edge_contributions(np.ascontiguousarray(fragments, dtype=np.uint64), q)


def region_graph(fragments, affinities):
    """The region adjacency graph: one row per pair of touching fragments.

    Parameters
    ----------
    fragments : ndarray, (Z, Y, X) integer
        Fragment ids; 0 takes part in no edge.
    affinities : ndarray, (C, Z, Y, X) uint8 or float
        The affinities the fragments came from.

    Returns
    -------
    pandas.DataFrame
        ``u < v`` (uint64), ``score`` (mean nearest-neighbour affinity across the
        contact, float64) and ``area_vx`` (voxel faces in the contact, int64): the
        ``fragments_edges`` table of DESIGN.md.
    """
    import pandas as pd

    g = _graph_of(np.asarray(fragments), quantize(affinities))
    return pd.DataFrame({"u": g["u"], "v": g["v"], "score": scores(g["aff_sum"], g["area_vx"]),
                         "area_vx": g["area_vx"]})


def agglomerate(edges, *, threshold: float = 0.5, sizes=None, min_size: int = 0) -> np.ndarray:
    """Merge fragments by mean affinity; return the segment id of each fragment id.

    Parameters
    ----------
    edges : pandas.DataFrame
        A region graph with columns ``u``, ``v``, ``score``, ``area_vx``
        (:func:`region_graph`, or the run's ``fragments_edges`` table).
    threshold : float
        Merge while the mean affinity of the best contact is at least this.
    sizes : array of int, optional
        Voxels per fragment id (index = id); needed for ``min_size``.
    min_size : int
        Afterwards, segments smaller than this join their best neighbour.

    Returns
    -------
    ndarray uint64
        ``lut[fragment_id]`` is the segment id; segments are numbered 1, 2, ... in
        the order of their smallest fragment id, so ``lut[fragments]`` is the
        segmentation.
    """
    cfg = SegmentConfig(threshold=threshold, min_size=min_size)
    u = np.asarray(edges["u"], np.int64)
    v = np.asarray(edges["v"], np.int64)
    area = np.asarray(edges["area_vx"], np.int64)
    aff_sum = np.asarray(edges["score"], np.float64) * area
    n = int(max(u.max(initial=0), v.max(initial=0), 0 if sizes is None else len(sizes) - 1))
    if sizes is not None and len(sizes) < n + 1:
        raise ValueError(f"sizes has {len(sizes)} entries but fragment ids go up to {n}")
    rep = agglomerate_graph(n, u, v, aff_sum, area, threshold=cfg.threshold, sizes=sizes, min_size=cfg.min_size,
                            scale=1.0)
    return canonical_segments(rep)


@dataclass(frozen=True)
class Segmentation:
    """What :func:`segment` returns.

    Attributes
    ----------
    segmentation : ndarray (Z, Y, X) uint64
        Segment ids 1..M (0 = background).
    fragments : ndarray (Z, Y, X) uint64
        Fragment ids 1..N.
    edges : pandas.DataFrame
        The region graph of the fragments (``u``, ``v``, ``score``, ``area_vx``).
    segment_of : ndarray uint64
        Segment id of each fragment id.
    """

    segmentation: np.ndarray
    fragments: np.ndarray
    edges: object
    segment_of: np.ndarray


def segment(affinities, *, threshold: float | None = None, config: SegmentConfig | None = None) -> Segmentation:
    """Fragments, region graph and agglomeration of an in-memory affinity array.

    Parameters
    ----------
    affinities : ndarray, (C, Z, Y, X) uint8 or float in [0, 1]
    threshold : float, optional
        Agglomeration threshold (overrides ``config.threshold``).
    config : SegmentConfig, optional

    Returns
    -------
    Segmentation

    Examples
    --------
    >>> from connectomix.testing import blobs
    >>> from connectomix.segment import affinities_from_labels
    >>> truth = blobs((8, 32, 32), n=6, seed=2)
    >>> result = segment(affinities_from_labels(truth), threshold=0.5)
    >>> int(result.segmentation.max())
    6
    """
    import pandas as pd

    cfg = _config(config, threshold=threshold)
    q = quantize(affinities)
    fragments, sizes = _fragments(q, cfg)
    # the graph on the compact ids: the same rows as on uint64, half the memory traffic
    g = edge_contributions(fragments, q)
    rep = agglomerate_graph(len(sizes) - 1, g["u"].astype(np.int64), g["v"].astype(np.int64), g["aff_sum"],
                            g["area_vx"], threshold=cfg.threshold, sizes=sizes, min_size=cfg.min_size)
    segment_of = canonical_segments(rep)
    edges = pd.DataFrame({"u": g["u"], "v": g["v"], "score": scores(g["aff_sum"], g["area_vx"]), "area_vx": g["area_vx"]})
    return Segmentation(segment_of[fragments], fragments.astype(np.uint64), edges, segment_of)
