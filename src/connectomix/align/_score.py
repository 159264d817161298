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

__all__ = ["transform_residuals"]


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
