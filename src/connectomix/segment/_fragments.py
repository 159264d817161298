"""Fragments: a seeded, bounded watershed on nearest-neighbour affinities.

Every step here is either *local* (a voxel's result depends only on the data within a
fixed number of voxels of it) or a *connected-components* step whose block-wise
pieces are joined by a union across block faces. That is what makes the block-wise
result identical to the whole-volume one (see :mod:`._blockwise`):

1. **Boundary map** ``mean_affinity``: the mean of the (up to six) nearest-neighbour
   affinities touching a voxel. Local (1 voxel).
2. **Seed mask**: a Gaussian of that map (a direct, per-voxel correlation, so the same
   arithmetic at every position), kept where it is within ``seed_delta`` of its
   maximum over ``seed_radius`` voxels (and above ``seed_threshold``). Local (the
   Gaussian's and the maximum filter's radii + 1).
3. **Seeds**: 6-connected components of the seed mask (connected-components-3d).
   Each gets the id ``1 + global raster index of its first voxel``, which does not
   depend on where a block starts.
4. **Growth**: rounds of a priority-ordered region growing. For each affinity level
   (``grow_levels``, from high to low) and each of ``grow_rounds`` rounds, every
   unlabelled voxel takes the label of the neighbour it is joined to by the
   strongest edge at or above that level, and (before the last level) within
   ``grow_slack`` of its strongest edge of all (ties go to the first of -z, +z, -y,
   +y, -x, +x; label values are never compared). A round looks one voxel away, so
   ``len(grow_levels) * grow_rounds`` rounds are local to that many voxels + 1.
5. **Leftovers**: a voxel no seed reached becomes a fragment of its own (id
   ``1 + its global raster index``), unless all its affinities are 0, which makes it
   background (0). Agglomeration joins leftovers back by their strong edges.

**Fragments in xy** (``in_xy=True``, as in the anisotropic pipelines of Funke et al.
2018): the boundary map averages the in-plane affinities only, seed components are
4-connected within a section, and growth follows in-plane edges only, so no fragment
spans two sections. Serial-section EM resolves boundaries far better in-plane than
across its 30-50 nm sections, and a 3D fragment that leaks through one weak
z-affinity is a merge no agglomeration can undo; the z-affinities are used where
they are at their best, as evidence for joining whole fragments.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._affinities import LEVELS

__all__ = [
    "mean_affinity",
    "seed_mask",
    "seed_context_vx",
    "label_seeds",
    "seed_components",
    "grow",
    "label_leftovers",
    "leftover_voxels",
    "global_index",
]

#: Neighbour order of the growth: (axis, step). Ties between equally strong edges go
#: to the first; label values are never compared, so provisional ids may differ
#: between block layouts without changing the result.
_DIRECTIONS = ((0, -1), (0, 1), (1, -1), (1, 1), (2, -1), (2, 1))
#: Label of the margin that grow() puts around its array.
_OUTSIDE = np.uint32(np.iinfo(np.uint32).max)
#: Gaussian truncation (in sigmas) of the seed map.
TRUNCATE = 2.0


def mean_affinity(q: np.ndarray, *, in_xy: bool = False) -> np.ndarray:
    """The mean of the nearest-neighbour affinities touching each voxel.

    Parameters
    ----------
    q : ndarray, (3, Z, Y, X) uint16
        Quantised nearest-neighbour affinities (:func:`quantize`).
    in_xy : bool
        Average the in-plane (y, x) affinities only.

    Returns
    -------
    ndarray, (Z, Y, X) float32 in [0, 1]
        Edges leaving the array are not counted; a lone voxel gets 1.
    """
    shape = q.shape[1:]
    # Sums of up to six uint16 levels stay below 2**24, so float32 holds them exactly
    # and the division needs no separate conversion pass.
    axes = (1, 2) if in_xy else (0, 1, 2)
    total = np.zeros(shape, np.float32)
    for d in axes:
        hi = _axis_slice(d, 1, None)
        lo = _axis_slice(d, None, -1)
        edge = q[d][hi]  # the edge between v (hi) and v - e_d (lo)
        total[hi] += edge
        total[lo] += edge
    # Edges per voxel: two along each axis, one at an end of it, none if it is 1 long;
    # a sum of three broadcast vectors instead of a full-volume count.
    count = np.zeros((1, 1, 1), np.float32)
    for d in axes:
        n = shape[d]
        c = np.zeros(n, np.float32)
        if n > 1:
            c += 2
            c[[0, -1]] = 1
        count = count + c.reshape([-1 if i == d else 1 for i in range(3)])
    if not np.all(count > 0):  # a lone voxel (1, 1, 1): no edges
        return np.ones(shape, np.float32)
    return np.divide(total, count * np.float32(LEVELS), out=total)


def _axis_slice(axis: int, start, stop) -> tuple:
    return (slice(None),) * axis + (slice(start, stop),)


def seed_context_vx(sigma: Sequence[float], radius: Sequence[int], truncate: float = TRUNCATE) -> tuple[int, int, int]:
    """Voxels of context :func:`seed_mask` needs: Gaussian radius + maximum-filter radius + 1."""
    return tuple(int(truncate * float(s) + 0.5) + int(r) + 1 for s, r in zip(sigma, radius))


def seed_mask(q: np.ndarray, *, sigma: Sequence[float], radius: Sequence[int], delta: float,
              threshold: float, truncate: float = TRUNCATE, in_xy: bool = False) -> np.ndarray:
    """Voxels deep inside objects: near-maxima of the smoothed mean affinity.

    A voxel seeds where the Gaussian-smoothed :func:`mean_affinity` ``g`` is within
    ``delta`` of the largest ``g`` within ``radius`` voxels, and at least
    ``threshold``. The relative test adapts to the level of the map (noise lowers the
    mean affinity inside objects as much as near their boundaries), so that the
    voxels next to a boundary, weak or strong, never seed. Local to
    :func:`seed_context_vx` voxels. ``in_xy``: the map averages in-plane affinities
    only (:func:`mean_affinity`).
    """
    from scipy import ndimage

    g = mean_affinity(q, in_xy=in_xy)
    if any(float(s) > 0 for s in sigma):
        g = ndimage.gaussian_filter(g, [float(s) for s in sigma], truncate=truncate, mode="nearest")
    peak = _maximum_filter(g, radius)  # a new array: updated in place below
    mask = g >= np.subtract(peak, np.float32(delta), out=peak)
    mask &= g >= np.float32(threshold)
    return mask


def _maximum_filter(g: np.ndarray, radius: Sequence[int]) -> np.ndarray:
    """Maximum over a box of ``2 * radius + 1`` voxels, clipped at the array's edge.

    The same as ``scipy.ndimage.maximum_filter(..., mode="nearest")``, four times
    faster for the small radii used here.
    """
    out = g
    for axis, r in enumerate(radius):
        if r <= 0:
            continue
        # read from the previous pass (the input itself the first time): never modified
        src, out = out, out.copy()
        for k in range(1, int(r) + 1):
            hi, lo = _axis_slice(axis, k, None), _axis_slice(axis, None, -k)
            np.maximum(out[hi], src[lo], out=out[hi])
            np.maximum(out[lo], src[hi], out=out[lo])
    return out.copy() if out is g else out


def global_index(local_flat: np.ndarray, local_shape, origin_vx, total_shape) -> np.ndarray:
    """Raster index in the whole volume of flat indices into a sub-array at ``origin_vx``."""
    z, y, x = np.unravel_index(np.asarray(local_flat, np.int64), tuple(local_shape))
    tz, ty, tx = (int(t) for t in total_shape)
    oz, oy, ox = (int(o) for o in origin_vx)
    return ((z + oz) * ty + (y + oy)) * tx + (x + ox)


def label_seeds(mask: np.ndarray, *, origin_vx=(0, 0, 0), total_shape=None, in_xy: bool = False) -> np.ndarray:
    """6-connected components of ``mask``, each named by its first voxel's global index.

    Parameters
    ----------
    mask : ndarray, (Z, Y, X) bool
    origin_vx : sequence of int
        Where ``mask`` starts in the whole volume, voxels.
    total_shape : sequence of int, optional
        Shape of the whole volume; defaults to ``mask.shape``.
    in_xy : bool
        Components within each section only (4-connected in y, x).

    Returns
    -------
    ndarray, (Z, Y, X) uint64
        0 outside the mask; otherwise ``1 + raster index (in the whole volume) of the
        first voxel of the component``.
    """
    import fastremap

    total_shape = mask.shape if total_shape is None else tuple(total_shape)
    cc = seed_components(mask, in_xy=in_xy)
    ids, first = fastremap.unique(cc, return_index=True)
    lut = np.zeros(int(ids[-1]) + 1 if len(ids) else 1, np.uint64)
    keep = ids != 0
    lut[ids[keep]] = global_index(first[keep], mask.shape, origin_vx, total_shape).astype(np.uint64) + np.uint64(1)
    return lut[cc]


def seed_components(mask: np.ndarray, *, in_xy: bool = False, out_dtype=None) -> np.ndarray:
    """Components of a seed mask (connected-components-3d), numbered 1.. in raster order.

    6-connected; with ``in_xy``, within each section only: the mask is handed to cc3d
    as a multi-label image whose label is the section's index, and voxels of
    different labels never join.
    """
    import cc3d

    kw = {} if out_dtype is None else {"out_dtype": out_dtype}
    mask = np.ascontiguousarray(mask)
    if in_xy and mask.ndim == 3 and mask.shape[0] > 1:
        dtype = np.uint16 if mask.shape[0] < 2**16 else np.uint32
        planes = np.arange(1, mask.shape[0] + 1, dtype=dtype).reshape(-1, 1, 1)
        mask = np.multiply(mask, planes, dtype=dtype)
    return np.ascontiguousarray(cc3d.connected_components(mask, connectivity=6, **kw))


def grow(labels: np.ndarray, q: np.ndarray, *, levels: Sequence[float], rounds: int,
         slack: float | None = None, in_xy: bool = False) -> np.ndarray:
    """Grow labelled regions into unlabelled voxels along strong edges, in place.

    Parameters
    ----------
    labels : ndarray, (Z, Y, X) integer
        Seeds (> 0) and unlabelled voxels (0); modified in place. uint32 labels must
        be compact (below 2**32 - 1); others are made compact internally.
    q : ndarray, (3, Z, Y, X) uint16
        Quantised nearest-neighbour affinities.
    levels : sequence of float
        Affinity levels, high to low; an edge of affinity 0 never joins.
    rounds : int
        Rounds per level; each advances every front by at most one voxel.
    slack : float, optional
        Before the last level, a voxel joins only through an edge within ``slack``
        of its strongest edge, so that a noisy edge across a faint boundary does not
        pull it into the wrong object while its own object's front is on the way.
    in_xy : bool
        Grow along in-plane (y, x) edges only: z-affinities are read as 0.

    Returns
    -------
    ndarray
        ``labels``.

    Notes
    -----
    Updates are synchronous (a round reads the labels of the previous one), so the
    result is a function of the data within ``len(levels) * rounds`` voxels. A round
    visits only the front: unlabelled voxels next to a voxel labelled in the round
    before (at a new level, every unlabelled voxel next to a labelled one).
    """
    shape = labels.shape
    # Work on compact ids (uint32) and uint16 affinities: half the memory traffic.
    # uint32 labels are taken to be compact already.
    if labels.dtype == np.uint32:
        ids, local = None, labels
        if not labels.size or labels.min() != 0 or labels.max() == 0:
            return labels  # nothing to grow into, or nothing to grow from
    else:
        from ._graph import compact_ids

        if not labels.size or labels.min() != 0 or labels.max() == 0:
            return labels  # nothing to grow into, or nothing to grow from
        ids, local = compact_ids(labels)
        assert len(ids) < int(_OUTSIDE), "a block holds fewer than 2**32 - 1 fragments"
    padded_shape = tuple(n + 2 for n in shape)
    inner = (slice(1, -1),) * 3
    # A one-voxel margin stands for "outside": it counts as labelled (so it is never
    # grown into) but its edges have affinity 0 (so it never grows): no coordinate
    # checks are needed.
    lab = np.full(padded_shape, _OUTSIDE, np.uint32)
    lab[inner] = local.reshape(shape)
    aff = np.zeros((3,) + padded_shape, np.uint16)
    for d in ((1, 2) if in_xy else (0, 1, 2)):
        aff[(d,) + inner] = q[d]
        first = [slice(1, -1)] * 3
        first[d] = slice(1, 2)
        aff[(d,) + tuple(first)] = 0  # the edge to the outside of the array
    flat = lab.reshape(-1)
    aflat = [aff[d].reshape(-1) for d in range(3)]
    stride = (padded_shape[1] * padded_shape[2], padded_shape[2], 1)
    steps = [(axis, step * stride[axis], step < 0) for axis, step in _DIRECTIONS]
    # flat offset of the neighbour that a key's low bits (7 - direction) name
    offset_of_code = np.zeros(8, np.intp)
    offset_of_code[7 - np.arange(len(steps))] = [off for _, off, _ in steps]
    mark = np.zeros(flat.size, bool)
    if slack is not None:
        strongest = aff[0].copy()
        for d in range(3):
            hi, lo = _axis_slice(d, 1, None), _axis_slice(d, None, -1)
            np.maximum(strongest[hi], aff[d][hi], out=strongest[hi])
            np.maximum(strongest[lo], aff[d][hi], out=strongest[lo])
        sflat = strongest.reshape(-1)
        slack_q = int(round(slack * LEVELS))
    # Scratch arrays for the rounds, reused (as views of their first ``front.size``
    # entries) because the first fronts hold a good part of the volume.
    buf = _Scratch()
    # unlabelled voxels (the margin is _OUTSIDE) and the others, kept up to date: a
    # one-byte look-up is cheaper than reading the uint32 label
    empty = flat == 0
    filled = ~empty
    unlabelled = int(np.count_nonzero(empty))
    for li, level in enumerate(levels):
        t = max(1, math.ceil(float(level) * LEVELS - 1e-9))
        front = _front(lab, empty, filled, unlabelled)
        for r in range(int(rounds)):
            if front.size == 0:
                break
            n = front.size
            # The winner of a voxel is the first direction (in _DIRECTIONS order) of
            # its strongest edge to a labelled neighbour, if that edge is above the
            # voxel's floor. One uint32 key per edge, ``affinity << 3 | (7 - k)`` for
            # direction k (0 if the neighbour is unlabelled), makes that a running
            # maximum: ties between equal affinities go to the smaller k, and no
            # masked copies are needed.
            best = buf.get("best", n, np.uint32)
            if slack is not None and li < len(levels) - 1:
                # the floor: the level, or (slack) the strongest edge minus the slack
                floor = np.maximum(sflat.take(front).astype(np.int32) - slack_q, t) - 1
            else:
                floor = np.full(n, t - 1, np.int32)
            np.left_shift(floor, 3, out=best, casting="unsafe")  # floor in [0, 65534]
            nb, a = buf.get("nb", n, np.intp), buf.get("a", n, np.uint16)
            key, known = buf.get("key", n, np.uint32), buf.get("known", n, bool)
            for k, (axis, off, backward) in enumerate(steps):
                np.add(front, off, out=nb)
                filled.take(nb, out=known, mode="clip")  # indices are in range: "clip" skips the check
                aflat[axis].take(front if backward else nb, out=a, mode="clip")
                np.copyto(key, a)
                key <<= 3
                key |= 7 - k
                np.multiply(key, known, out=key)  # the margin is "filled" but has affinity 0
                np.maximum(best, key, out=best)
            claimed = np.greater(best >> 3, floor)
            if not claimed.any():
                break  # nothing changes at this level any more
            newly = front[claimed]
            # labels of the winning neighbours, read before any voxel changes (the
            # update is synchronous)
            winner = offset_of_code.take(best[claimed] & 7)
            got = flat.take(np.add(winner, newly, out=winner))
            flat[newly] = got
            empty[newly] = False
            filled[newly] = True
            unlabelled -= newly.size
            if r + 1 < rounds:
                # only voxels next to a newly labelled one can change in the next round:
                # mark every neighbour, then keep the unlabelled ones
                nb = buf.get("nb", newly.size, np.intp)
                for _, off, _ in steps:
                    np.add(newly, off, out=nb)
                    mark[nb] = True
                mark &= empty
                front = np.flatnonzero(mark)  # sorted and unique, in O(voxels / 8)
                mark[front] = False
    labels[...] = lab[inner] if ids is None else ids[lab[inner]]
    return labels


class _Scratch:
    """Named 1-d work arrays that grow on demand; ``get`` returns a view of ``n`` entries."""

    def __init__(self):
        self._arrays = {}

    def get(self, name: str, n: int, dtype) -> np.ndarray:
        arr = self._arrays.get(name)
        if arr is None or arr.size < n:
            arr = self._arrays[name] = np.empty(n, dtype)
        return arr[:n]


def _front(lab: np.ndarray, empty: np.ndarray, filled: np.ndarray, unlabelled: int) -> np.ndarray:
    """Flat indices (padded array) of unlabelled inner voxels next to a labelled one.

    ``empty`` and ``filled`` (flat, padded) tell the unlabelled voxels and the others
    (the margin included), ``unlabelled`` how many are empty.
    """
    shape = lab.shape
    flat = lab.reshape(-1)
    stride = (shape[1] * shape[2], shape[2], 1)
    if 16 * unlabelled <= flat.size:
        # few left: visit only those, six look-ups each instead of six array passes
        idx = np.flatnonzero(empty)
        near = np.zeros(idx.size, bool)
        for axis, step in _DIRECTIONS:
            v = flat.take(idx + step * stride[axis])
            near |= (v != 0) & (v != _OUTSIDE)
        return idx[near]
    # Dilate the labelled inner voxels by shifting the flat array: for an inner voxel
    # a shift by a stride is a step to a face neighbour (the margin absorbs the wrap
    # from one row or plane to the next), and margin voxels are never empty.
    core = filled.reshape(shape).copy()
    for d in range(3):
        core[_axis_slice(d, 0, 1)] = False
        core[_axis_slice(d, -1, None)] = False
    core = core.reshape(-1)
    near = np.zeros(flat.size, bool)
    for s in stride:
        near[s:] |= core[:-s]
        near[:-s] |= core[s:]
    near &= empty
    return np.flatnonzero(near)


def label_leftovers(labels: np.ndarray, q: np.ndarray, *, origin_vx=(0, 0, 0), total_shape=None) -> np.ndarray:
    """Give every voxel no seed reached its own fragment id, in place.

    A voxel whose affinities are all 0 stays 0 (background); any other unlabelled
    voxel gets ``1 + its global raster index``.
    """
    if not labels.flags.c_contiguous:
        raise ValueError("label_leftovers() works in place on a C-contiguous array")
    total_shape = labels.shape if total_shape is None else tuple(total_shape)
    idx = leftover_voxels(labels, q)
    labels.reshape(-1)[idx] = global_index(idx, labels.shape, origin_vx, total_shape).astype(np.uint64) + np.uint64(1)
    return labels


def leftover_voxels(labels: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Flat indices of unlabelled voxels that have at least one non-zero affinity."""
    idx = np.flatnonzero(labels.reshape(-1) == 0)
    if idx.size:
        idx = idx[_any_edge(q).reshape(-1)[idx]]
    return idx


def _any_edge(q: np.ndarray) -> np.ndarray:
    """Whether any nearest-neighbour edge touching a voxel has a non-zero affinity."""
    out = np.zeros(q.shape[1:], bool)
    for d in range(3):
        hi, lo = _axis_slice(d, 1, None), _axis_slice(d, None, -1)
        nz = q[d][hi] > 0  # edges inside the array only, as in mean_affinity()
        out[hi] |= nz
        out[lo] |= nz
    return out
