"""Synapse detection on in-memory arrays (whole volume or tiled in memory).

The same three steps as the block-wise stage (:mod:`._kernels`), run in this process
on numpy arrays: the reference the stage is tested against, and the simplest way to
detect synapses in a small volume.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import VolumeError
from ._kernels import block_tables, cleft_probability, merge_tables, relabel_block

__all__ = ["detect_synapses", "context_vx"]


def context_vx(max_partner_nm: float, voxel_size) -> tuple[int, ...]:
    """Voxels of segmentation context a block needs around its write region."""
    return tuple(int(np.ceil(max_partner_nm / v)) + 1 for v in voxel_size)


def detect_synapses(
    prob,
    vectors,
    segmentation,
    *,
    voxel_size,
    offset=(0, 0, 0),
    threshold: float = 0.5,
    connectivity: int = 26,
    max_partner_nm: float = 1000.0,
    min_size_vx: int = 20,
    partner_fraction: float = 0.2,
    min_partner_weight: float = 10.0,
    merge_distance_nm: float = 250.0,
    block_shape=None,
):
    """Detect synapses: cleft instances and their pre- and postsynaptic segments.

    Parameters
    ----------
    prob : ndarray, (Z, Y, X) float in [0, 1] or uint8
        Cleft probability.
    vectors : ndarray, (3, Z, Y, X) float
        Partner vector of each voxel, from the postsynaptic side to the presynaptic
        partner, in nm (z, y, x). NaN means "no vector".
    segmentation : ndarray, (Z, Y, X) integer
        Segment ids (0 = none).
    voxel_size, offset : sequence of int
        nm, z y x.
    threshold : float in (0, 1]
        Cleft voxels have ``prob >= threshold``.
    connectivity : {6, 18, 26}
        Voxel neighbourhood of the connected components.
    max_partner_nm : float
        Longer vectors are not trusted and do not vote.
    min_size_vx : int
        Smaller cleft instances are dropped.
    partner_fraction, min_partner_weight : float
        When a cleft counts as several synapses, see
        :func:`connectomix.synapses.assign_partners`.
    merge_distance_nm : float
        Pieces of one broken cleft (same partners, centres this close) are one
        synapse, see :func:`connectomix.synapses.merge_nearby`; 0 merges nothing.
    block_shape : sequence of int, optional
        Process in blocks of this many voxels (the result is the same; for tests).

    Returns
    -------
    synapses : DataFrame
        ``synapse_id, pre_id, post_id, z, y, x`` (nm, cleft centre), ``score``
        (mean cleft probability), ``size_vx``, ``kind`` (``"chemical"``),
        ``cleft_id``.
    clefts : ndarray, (Z, Y, X) uint64
        Cleft instance ids (``cleft_id``).

    Raises
    ------
    VolumeError
        For mismatched shapes, bad dtypes or values.

    Examples
    --------
    >>> import numpy as np
    >>> seg = np.zeros((4, 8, 8), np.uint64); seg[:, :, :4] = 1; seg[:, :, 4:] = 2
    >>> prob = np.zeros(seg.shape, np.float32); prob[1:3, 2:6, 3:5] = 1.0
    >>> vec = np.zeros((3,) + seg.shape, np.float32); vec[2] = -16.0   # post (2) -> pre (1), along -x
    >>> syn, clefts = detect_synapses(prob, vec, seg, voxel_size=(40, 8, 8), min_size_vx=1,
    ...                               min_partner_weight=1)
    >>> syn[["synapse_id", "pre_id", "post_id", "size_vx"]].values.tolist()
    [[1, 1, 2, 16]]
    """
    import pandas as pd

    prob, vectors, segmentation = check_arrays(prob, vectors, segmentation)
    check_options(threshold=threshold, connectivity=connectivity, max_partner_nm=max_partner_nm,
                  min_size_vx=min_size_vx, partner_fraction=partner_fraction, min_partner_weight=min_partner_weight,
                  merge_distance_nm=merge_distance_nm)
    total = np.array(prob.shape, np.int64)
    bs = total if block_shape is None else np.asarray(block_shape, np.int64)
    ctx = np.array(context_vx(max_partner_nm, voxel_size), np.int64)
    starts = [range(0, int(t), int(b)) for t, b in zip(total, bs)]
    parts = {"votes": [], "shell": [], "links": []}
    blocks = []
    for w0 in itertools.product(*starts):
        w0 = np.array(w0, np.int64)
        w1 = np.minimum(w0 + bs, total)
        p0, p1 = np.maximum(w0 - 1, 0), np.minimum(w1 + 1, total)
        s0, s1 = np.maximum(w0 - ctx, 0), np.minimum(w1 + ctx, total)
        sl = lambda a, b: tuple(slice(int(i), int(j)) for i, j in zip(a, b))  # noqa: E731
        out = block_tables(prob[sl(p0, p1)], p0, vectors[(slice(None),) + sl(w0, w1)], segmentation[sl(s0, s1)],
                           s0, w0, w1 - w0, total_shape=total, voxel_size=voxel_size, offset=offset,
                           threshold=threshold, connectivity=connectivity, max_partner_nm=max_partner_nm)
        for k in parts:
            parts[k].append(out[k])
        blocks.append((w0, w1))
    cat = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
    pieces, cleft_of_piece, synapses = merge_tables(cat["votes"], cat["shell"], cat["links"], min_size_vx=min_size_vx,
                                                    partner_fraction=partner_fraction,
                                                    min_partner_weight=min_partner_weight,
                                                    merge_distance_nm=merge_distance_nm)
    clefts = np.zeros(prob.shape, np.uint64)
    for w0, w1 in blocks:
        sl = tuple(slice(int(i), int(j)) for i, j in zip(w0, w1))
        clefts[sl] = relabel_block(prob[sl], w0, total_shape=total, threshold=threshold, connectivity=connectivity,
                                   pieces=pieces, cleft_of_piece=cleft_of_piece)
    return synapses, clefts


def check_arrays(prob, vectors, segmentation):
    """Validate and convert the three inputs of :func:`detect_synapses`."""
    prob = np.asarray(prob)
    vectors = np.asarray(vectors)
    segmentation = np.asarray(segmentation)
    if prob.ndim != 3:
        raise VolumeError(f"cleft probability must be (Z, Y, X); got shape {prob.shape}")
    if vectors.shape != (3,) + prob.shape:
        raise VolumeError(
            f"partner vectors must be (3, Z, Y, X) = {(3,) + prob.shape} to match the cleft probability; "
            f"got shape {vectors.shape}"
        )
    if segmentation.shape != prob.shape:
        raise VolumeError(
            f"segmentation shape {segmentation.shape} does not match the cleft probability {prob.shape}"
        )
    if not np.issubdtype(vectors.dtype, np.floating):
        raise VolumeError(f"partner vectors must be float (nm); got dtype {vectors.dtype}")
    if not np.issubdtype(segmentation.dtype, np.integer):
        raise VolumeError(f"segmentation must hold integer ids; got dtype {segmentation.dtype}")
    return cleft_probability(prob), vectors, segmentation


def check_options(*, threshold, connectivity, max_partner_nm, min_size_vx=0, partner_fraction=0.0,
                  min_partner_weight=0.0, merge_distance_nm=0.0):
    """Raise ConfigError for option values the detection cannot use."""
    from ..errors import ConfigError

    if not (0.0 < float(threshold) <= 1.0):
        raise ConfigError(f"synapses.threshold must be in (0, 1]; got {threshold}")
    if connectivity not in (6, 18, 26):
        raise ConfigError(f"synapses.connectivity must be 6, 18 or 26; got {connectivity}")
    if not (np.isfinite(max_partner_nm) and max_partner_nm > 0):
        raise ConfigError(f"synapses.max_partner_nm must be a positive number of nm; got {max_partner_nm}")
    if int(min_size_vx) < 0:
        raise ConfigError(f"synapses.min_size_vx must be >= 0; got {min_size_vx}")
    if not (0.0 <= float(partner_fraction) <= 1.0):
        raise ConfigError(f"synapses.partner_fraction must be in [0, 1]; got {partner_fraction}")
    if float(min_partner_weight) < 0:
        raise ConfigError(f"synapses.min_partner_weight must be >= 0; got {min_partner_weight}")
    if not (np.isfinite(merge_distance_nm) and merge_distance_nm >= 0):
        raise ConfigError(f"synapses.merge_distance_nm must be a number of nm >= 0; got {merge_distance_nm}")
