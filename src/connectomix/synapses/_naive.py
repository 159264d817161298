"""A naive synapse detector without learning: the baseline the synapse network must beat.

"Threshold the darkest membrane spots, nearest segments as partners": synaptic
membranes are thicker and darker than plain ones, so the darkest voxels near segment
boundaries are taken as cleft, and each of them is paired with the nearest other
segment. :func:`naive_predictions` writes this as an array shaped like the synapse
network's output (``synapse_pred``, channels :data:`PREDICTION_CHANNELS`), so the same
detection code (:func:`connectomix.synapses.detect_synapses`, or
:func:`connectomix.synapses.synapses_stage` with ``cleft=`` the array's name) turns it
into synapse instances and partners.

How partners come out: every dark voxel points at the nearest voxel of another
segment, so it votes for ``(pre = that segment, post = its own)``. The voxels on both
sides of a contact vote for opposite directions; the detection keeps the stronger
direction (the side with more and darker voxels is taken as postsynaptic). Nothing
here knows which side is really pre- or postsynaptic.
"""

from __future__ import annotations

import numpy as np

from ..errors import VolumeError

__all__ = ["naive_predictions"]


def naive_predictions(
    raw,
    segmentation,
    voxel_size,
    *,
    percentile: float = 3.0,
    sigma_nm=(0.0, 12.0, 12.0),
    band_nm: float = 24.0,
    search_nm: float | None = None,
) -> np.ndarray:
    """Make a ``synapse_pred``-like array from darkness and segment boundaries alone.

    Parameters
    ----------
    raw : ndarray, (Z, Y, X)
        The image (membranes dark), any real dtype.
    segmentation : ndarray, (Z, Y, X) integer
        Segment ids (0 = none: never a partner, never a cleft).
    voxel_size : sequence of 3 numbers
        nm, z y x.
    percentile : float in (0, 50)
        Voxels near boundaries whose smoothed intensity lies at or below this
        percentile (of all such voxels) get cleft probability >= 0.5; the
        probability falls linearly to 0 at twice the percentile.
    sigma_nm : sequence of 3 numbers
        Gaussian smoothing of ``raw`` before thresholding, in nm (0 = none).
    band_nm : float
        Only voxels at most this far from a segment boundary can be cleft.
    search_nm : float, optional
        How far to look for the nearest other segment; default ``band_nm`` plus the
        largest voxel size. Dark voxels with no other segment in reach get
        probability 0.

    Returns
    -------
    ndarray, (4, Z, Y, X) float32
        Channel 0 the cleft probability in [0, 1]; channels 1..3 the partner vector
        (z, y, x, nm) from each voxel to the centre of the nearest voxel of another
        non-zero segment (0 where the probability is 0).

    Raises
    ------
    VolumeError
        For mismatched shapes, a non-integer segmentation or bad options.

    Examples
    --------
    >>> import numpy as np
    >>> seg = np.zeros((3, 16, 16), np.uint64); seg[:, :, :8] = 1; seg[:, :, 8:] = 2
    >>> raw = np.full(seg.shape, 200.0); raw[:, :, 7:9] = 120.0; raw[:, 6:10, 7:9] = 20.0
    >>> pred = naive_predictions(raw, seg, (40, 8, 8), sigma_nm=(0, 0, 0), percentile=20)
    >>> pred.shape, bool(pred[0, 1, 8, 8] >= 0.5), float(pred[3, 1, 8, 7])  # left of the contact: points +x
    ((4, 3, 16, 16), True, 8.0)
    """
    import edt
    from scipy import ndimage as ndi

    raw = np.asarray(raw)
    seg = np.asarray(segmentation)
    if raw.ndim != 3 or seg.shape != raw.shape:
        raise VolumeError(f"raw {raw.shape} and segmentation {seg.shape} must be equal (Z, Y, X) shapes")
    if not np.issubdtype(seg.dtype, np.integer):
        raise VolumeError(f"segmentation must hold integer ids; got dtype {seg.dtype}")
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise VolumeError(f"raw must be a real-valued image; got dtype {raw.dtype}")
    vs = np.asarray(voxel_size, np.float64)
    if vs.shape != (3,) or not np.all(np.isfinite(vs) & (vs > 0)):
        raise VolumeError(f"voxel_size must be 3 positive numbers (nm, z y x); got {voxel_size!r}")
    if not (0.0 < float(percentile) < 50.0):
        raise VolumeError(f"percentile must be in (0, 50); got {percentile}")
    if not (np.isfinite(band_nm) and band_nm >= 0):
        raise VolumeError(f"band_nm must be a number of nm >= 0; got {band_nm}")
    search = float(band_nm + vs.max()) if search_nm is None else float(search_nm)
    if not (np.isfinite(search) and search > 0):
        raise VolumeError(f"search_nm must be a positive number of nm; got {search_nm}")

    out = np.zeros((4,) + raw.shape, np.float32)
    if raw.size == 0:
        return out
    sigma_vx = np.asarray(sigma_nm, np.float64) / vs
    smooth = ndi.gaussian_filter(raw.astype(np.float32), sigma_vx) if np.any(sigma_vx > 0) else raw.astype(np.float32)

    # voxels next to another segment (6-neighbourhood), then the band around them
    boundary = np.zeros(seg.shape, bool)
    for axis in range(3):
        if seg.shape[axis] < 2:
            continue
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        diff = seg[tuple(a)] != seg[tuple(b)]
        boundary[tuple(a)] |= diff
        boundary[tuple(b)] |= diff
    boundary &= seg != 0
    if not boundary.any():
        return out
    dist = edt.edt(np.ascontiguousarray(~boundary).view(np.uint8), anisotropy=tuple(float(v) for v in vs),
                   black_border=False)
    band = (dist <= band_nm) & (seg != 0)
    del dist, boundary

    values = smooth[band]
    lo, hi = np.percentile(values, [percentile, 2 * percentile])
    width = max(float(hi - lo), 1e-6 * max(float(np.abs(values).max()), 1.0))
    prob = np.zeros(raw.shape, np.float32)
    prob[band] = np.clip(0.5 + 0.5 * (float(lo) - values) / width, 0.0, 1.0)
    del values, band, smooth

    # partner vectors: from each candidate voxel to the nearest voxel of another segment
    coords = np.argwhere(prob > 0)
    own = seg[tuple(coords.T)]
    vec = np.zeros((len(coords), 3), np.float32)
    found = np.zeros(len(coords), bool)
    shape = np.asarray(seg.shape, np.int64)
    for off in _offsets(vs, search):
        todo = np.flatnonzero(~found)
        if not len(todo):
            break
        q = coords[todo] + off
        inside = np.all((q >= 0) & (q < shape), axis=1)
        todo, q = todo[inside], q[inside]
        lab = seg[tuple(q.T)]
        hit = (lab != own[todo]) & (lab != 0)
        vec[todo[hit]] = (off * vs).astype(np.float32)
        found[todo[hit]] = True
    p = prob[tuple(coords.T)]
    p[~found] = 0.0
    out[0][tuple(coords.T)] = p
    for c in range(3):
        out[c + 1][tuple(coords.T)] = vec[:, c]
    return out


def _offsets(voxel_size: np.ndarray, radius_nm: float) -> np.ndarray:
    """Voxel offsets within ``radius_nm`` (not 0), nearest first (ties in C order)."""
    r = np.floor(radius_nm / voxel_size).astype(np.int64)
    grids = np.meshgrid(*[np.arange(-k, k + 1) for k in r], indexing="ij")
    offs = np.stack([g.ravel() for g in grids], axis=1)
    d = np.sqrt((((offs * voxel_size) ** 2).sum(axis=1)))
    keep = (d > 0) & (d <= radius_nm)
    offs, d = offs[keep], d[keep]
    return offs[np.argsort(d, kind="stable")]
