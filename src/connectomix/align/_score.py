"""Accuracy of estimated section maps against the generator's true transforms.

The estimated map ``T_s`` and the true transform (``gt_transforms``, see
:mod:`connectomix.synth._artifacts`) both send a point of the aligned (= true)
frame to where that tissue lies in the raw section. Their difference at sample
points is the residual, scored with
:func:`connectomix.evaluate.alignment_residuals` (in pixels here).
"""

from __future__ import annotations

import numpy as np

from ..evaluate import alignment_residuals

__all__ = ["transform_residuals", "labels_to_aligned"]


def transform_residuals(gmap, transforms, voxel_size, *, sections=None, step: int = 8, border_px: int = 8,
                        offset=(0, 0, 0)):
    """Residuals (pixels) between estimated maps and the true transforms.

    Parameters
    ----------
    gmap : GridMap
        Estimated maps, aligned pixel -> raw pixel.
    transforms : DataFrame
        ``gt_transforms``.
    voxel_size : (z, y, x) nm
    sections : iterable of int, optional
        Sections to score (default all).
    step : int
        Sample every ``step`` pixels.
    border_px : int
        Only points whose true raw position lies this far inside the raw image (where
        there is tissue to align) are scored.

    Returns
    -------
    dict: ``all`` (AlignmentResiduals over every point, pixels), ``per_section`` {z: AlignmentResiduals}.
    """
    from ..synth._artifacts import _forward, _rows_by_section

    rows = _rows_by_section(transforms)
    vy, vx = float(voxel_size[1]), float(voxel_size[2])
    oy, ox = float(offset[1]), float(offset[2])
    Y, X = int(gmap.gy[-1]) + 1, int(gmap.gx[-1]) + 1
    ys = np.arange(0, Y, step, dtype=float)
    xs = np.arange(0, X, step, dtype=float)
    P = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    est_all, true_all, per = [], [], {}
    for z in (range(gmap.coords.shape[0]) if sections is None else sections):
        z = int(z)
        q_est = gmap.apply(z, P)
        p_nm = np.stack([(P[:, 0] + 0.5) * vy + oy, (P[:, 1] + 0.5) * vx + ox], 1)
        q_nm = _forward(rows[z], p_nm)
        q_true = np.stack([(q_nm[:, 0] - oy) / vy - 0.5, (q_nm[:, 1] - ox) / vx - 0.5], 1)
        inside = ((q_true[:, 0] >= border_px) & (q_true[:, 0] <= Y - 1 - border_px)
                  & (q_true[:, 1] >= border_px) & (q_true[:, 1] <= X - 1 - border_px))
        if not inside.any():
            continue
        per[z] = alignment_residuals(q_est[inside], q_true[inside])
        est_all.append(q_est[inside])
        true_all.append(q_true[inside])
    total = alignment_residuals(np.concatenate(est_all), np.concatenate(true_all)) if est_all else None
    return {"all": total, "per_section": per}


def labels_to_aligned(labels, gmap, transforms, voxel_size, *, offset=(0, 0, 0), missing=()) -> np.ndarray:
    """Ground-truth labels of the tissue each voxel of an aligned stack shows.

    An aligned voxel ``p`` of section ``z`` shows the raw pixel ``T_z(p)`` (the
    estimated map), which shows the true-frame point ``G_z^-1(T_z(p))`` (the
    generator's true transform). Where the alignment is exact the two cancel and the
    labels come back unchanged; where the aligned frame drifts from the true one
    (the tissue's own lateral motion through the stack is indistinguishable from
    misalignment, see issue #5), this is the ground truth of what the aligned
    volume actually shows, so a segmentation of it is scored for what it segments
    and not for the frame it was given.

    A ``missing`` section has no data of its own: ``align`` interpolates its map (and
    fills its image) from the nearest usable sections, so its true-frame positions are
    interpolated from theirs the same way.

    Parameters
    ----------
    labels : (Z, Y, X) integer array
        Ground truth in the true frame (``gt_segmentation``).
    gmap : GridMap
        Estimated maps, aligned pixel -> raw pixel.
    transforms : DataFrame
        ``gt_transforms``.
    voxel_size, offset : (z, y, x) nm
    missing : iterable of int
        Sections that ``align`` found missing (``section_quality``).

    Returns
    -------
    (Z, Y, X) array of ``labels.dtype``
        Nearest-neighbour samples; 0 (unlabelled, not scored) where the aligned voxel
        shows no data (its raw position lies outside the raw section, which has the
        shape of ``labels``) or tissue outside the true frame.
    """
    from ..synth._artifacts import _inverse, _rows_by_section

    labels = np.asarray(labels)
    Z, Y, X = labels.shape
    rows = _rows_by_section(transforms)
    v = np.array([float(voxel_size[1]), float(voxel_size[2])])
    o = np.array([float(offset[1]), float(offset[2])])
    missing = {int(z) for z in missing}
    good = [z for z in range(Z) if z in rows and z not in missing]

    def true_px(z):
        """True-frame pixel positions (Y*X, 2) of section z's aligned pixels, and where they show data."""
        q = np.stack([c.ravel() for c in gmap.dense(z, np.arange(Y), np.arange(X))], 1)
        # map_coordinates (the warp) has data for raw positions in [0, n - 1] only
        shows = (q[:, 0] >= 0) & (q[:, 0] <= Y - 1) & (q[:, 1] >= 0) & (q[:, 1] <= X - 1)
        return (_inverse(rows[z], (q + 0.5) * v + o) - o) / v - 0.5, shows

    out = np.zeros_like(labels)
    for z in range(Z):
        if z not in rows:
            out[z] = labels[z]
            continue
        lo = [g for g in good if g < z]
        hi = [g for g in good if g > z]
        if z in missing and lo and hi:
            a, b = lo[-1], hi[0]
            (pa, sa), (pb, sb) = true_px(a), true_px(b)
            t = (z - a) / (b - a)
            pos, shows = (1 - t) * pa + t * pb, sa & sb
        elif z in missing and (lo or hi):
            pos, shows = true_px(lo[-1] if lo else hi[0])
        else:
            pos, shows = true_px(z)
        ty = np.round(pos[:, 0]).astype(np.int64)
        tx = np.round(pos[:, 1]).astype(np.int64)
        inside = shows & (ty >= 0) & (ty < Y) & (tx >= 0) & (tx < X)
        sec = np.zeros(Y * X, labels.dtype)
        sec[inside] = labels[z][ty[inside], tx[inside]]
        out[z] = sec.reshape(Y, X)
    return out
