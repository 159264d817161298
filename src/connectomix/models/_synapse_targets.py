"""Training targets of the synapse network: cleft masks and partner vectors.

The synapse network predicts, per voxel, the probability of lying in a synaptic cleft
(channel 0) and, at cleft voxels, the vector (nm, z y x) to a point inside the
presynaptic neurite (channels 1-3, in units of :data:`VECTOR_SCALE_NM`), as Synful
does (Buhmann et al. 2021). Following the vector from any cleft voxel lands in the
presynaptic segment; the cleft voxels not in that segment lie in the postsynaptic one.

The point inside the presynaptic neurite is found from the ground truth: the centroid
of the synapse's presynaptic cleft voxels, pushed further into the neurite along the
post-to-pre direction while it stays inside the presynaptic label.
"""

from __future__ import annotations

import numpy as np

__all__ = ["VECTOR_SCALE_NM", "synapse_targets", "flip_vectors"]

#: Network output units of the partner vector: 100 nm (so targets are of order 1).
VECTOR_SCALE_NM = 100.0


def _pre_point(coords_nm, labels_at, pre_id, post_id, labels, voxel_size, push_nm=(80.0, 40.0, 0.0)):
    pre = coords_nm[labels_at == pre_id]
    post = coords_nm[labels_at == post_id]
    if not len(pre):
        return None
    c_pre = pre.mean(axis=0)
    if len(post):
        n = c_pre - post.mean(axis=0)
        norm = np.linalg.norm(n)
        n = n / norm if norm > 1e-6 else np.zeros(3)
    else:
        n = np.zeros(3)
    vs = np.asarray(voxel_size, float)
    for push in push_nm:
        p = c_pre + push * n
        v = np.floor(p / vs).astype(np.int64)
        if np.all(v >= 0) and np.all(v < labels.shape) and labels[tuple(v)] == pre_id:
            return p
    # the centroid itself may fall outside a curved neurite: use the nearest pre voxel
    return pre[np.argmin(np.linalg.norm(pre - c_pre, axis=1))]


def synapse_targets(labels: np.ndarray, clefts: np.ndarray, synapses, voxel_size) -> tuple[np.ndarray, np.ndarray]:
    """Cleft mask (uint8) and partner vectors (3, Z, Y, X) float16 in VECTOR_SCALE_NM units.

    Parameters
    ----------
    labels : (Z, Y, X) int array
        Ground-truth neuron labels.
    clefts : (Z, Y, X) int array
        Synapse id per cleft voxel, 0 elsewhere.
    synapses : DataFrame
        ``synapse_id``, ``pre_id``, ``post_id`` per synapse (the ``gt_synapses`` table).
    voxel_size : (z, y, x) nm
    """
    mask = (clefts > 0).astype(np.uint8)
    vectors = np.zeros((3,) + labels.shape, np.float16)
    if not mask.any() or not len(synapses):
        return mask, vectors
    vs = np.asarray(voxel_size, float)
    idx = np.nonzero(clefts)
    ids = clefts[idx]
    order = np.argsort(ids, kind="stable")
    ids_sorted = ids[order]
    uniq, starts = np.unique(ids_sorted, return_index=True)
    ends = np.append(starts[1:], len(ids_sorted))
    table = {int(r.synapse_id): (int(r.pre_id), int(r.post_id)) for r in synapses.itertuples()}
    coords = np.stack(idx, axis=1)
    for sid, a, b in zip(uniq, starts, ends):
        if int(sid) not in table:
            continue
        pre_id, post_id = table[int(sid)]
        sel = order[a:b]
        vox = coords[sel]
        nm = (vox + 0.5) * vs
        p = _pre_point(nm, labels[tuple(vox.T)], pre_id, post_id, labels, vs)
        if p is None:
            mask[tuple(vox.T)] = 0  # a cleft without a visible presynaptic side teaches nothing
            continue
        vec = (p - nm) / VECTOR_SCALE_NM
        for c in range(3):
            vectors[(c,) + tuple(vox.T)] = vec[:, c]
    return mask, vectors


def flip_vectors(vectors: np.ndarray, axis: int) -> np.ndarray:
    """Vectors of a patch flipped along spatial ``axis`` (0, 1 or 2): flip and negate that component."""
    v = np.flip(vectors, axis=axis + 1).copy()
    v[axis] *= -1
    return v
