"""Do true neurons stay one segment across missing and damaged sections?

Issue #4 asks that at least 90 % of the ground-truth neurons that cross a missing
section or a damaged strip stay one segment across it. A neuron *crosses* section
``z`` when it has at least ``min_voxels`` voxels in both ``z - 1`` and ``z + 1`` (and,
for a damaged section, at least ``min_voxels`` inside the damaged strip at ``z``). It
*stays one segment* when the predicted segment holding most of its voxels is the same
on both sides.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["SectionContinuity", "section_continuity", "damage_strip"]


class SectionContinuity(NamedTuple):
    """What :func:`section_continuity` returns.

    Attributes
    ----------
    n_crossing : int
        (neuron, section) pairs where a true neuron crosses a listed section.
    n_kept : int
        Those where it stays one segment across.
    fraction : float
        ``n_kept / n_crossing`` (NaN when nothing crosses).
    per_section : pandas.DataFrame
        ``section``, ``n_crossing``, ``n_kept``.
    """

    n_crossing: int
    n_kept: int
    fraction: float
    per_section: object


def _majority(pred_slice: np.ndarray, gt_slice: np.ndarray, min_voxels: int) -> dict:
    """``gt id -> predicted id holding most of its voxels`` for ids with >= min_voxels voxels."""
    g = gt_slice.ravel().astype(np.uint64)
    p = pred_slice.ravel().astype(np.uint64)
    keep = g != 0
    g, p = g[keep], p[keep]
    if g.size == 0:
        return {}
    pairs, counts = np.unique(np.stack([g, p]), axis=1, return_counts=True)
    order = np.lexsort((-counts, pairs[0]))  # by gt id, largest overlap first
    pairs, counts = pairs[:, order], counts[order]
    first = np.r_[True, pairs[0, 1:] != pairs[0, :-1]]
    sizes = np.add.reduceat(counts, np.flatnonzero(first))
    ids, best = pairs[0, first], pairs[1, first]
    return {int(i): int(b) for i, b, n in zip(ids, best, sizes) if n >= min_voxels}


def damage_strip(row, shape_yx, voxel_size_yx) -> np.ndarray:
    """The damaged strip of one ``gt_section_quality`` row as a (Y, X) boolean mask."""
    vy, vx = (float(v) for v in voxel_size_yx)
    yy, xx = np.meshgrid((np.arange(shape_yx[0]) + 0.5) * vy, (np.arange(shape_yx[1]) + 0.5) * vx, indexing="ij")
    th = np.deg2rad(float(row["damage_angle_deg"]))
    dist = -(yy - float(row["damage_y"])) * np.cos(th) + (xx - float(row["damage_x"])) * np.sin(th)
    return np.abs(dist) <= float(row["damage_width"]) / 2


def section_continuity(pred, gt, sections, *, strips=None, min_voxels: int = 50) -> SectionContinuity:
    """Score how many true neurons stay one segment across the given sections.

    Parameters
    ----------
    pred, gt : ndarray (Z, Y, X) integer
        Predicted segmentation and ground truth on the same grid (0 in ``gt`` is
        ignored).
    sections : iterable of int
        The sections to cross (e.g. the missing or damaged ones); the first and last
        section of the volume cannot be crossed and are skipped.
    strips : dict, optional
        ``section -> (Y, X) bool mask``: for these sections only neurons with at
        least ``min_voxels`` voxels inside the mask count (damaged strips).
    min_voxels : int
        Voxels a neuron needs on each side (and in the strip) to count.

    Returns
    -------
    SectionContinuity

    Examples
    --------
    >>> gt = np.ones((3, 8, 8), np.uint32)
    >>> pred = gt.copy(); pred[2] = 2            # split across section 1
    >>> section_continuity(pred, gt, [1], min_voxels=10).fraction
    0.0
    """
    import pandas as pd

    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must be 3D arrays of one shape")
    strips = strips or {}
    rows = []
    for z in sorted({int(s) for s in sections}):
        if not 0 < z < gt.shape[0] - 1:
            continue
        below = _majority(pred[z - 1], gt[z - 1], min_voxels)
        above = _majority(pred[z + 1], gt[z + 1], min_voxels)
        ids = set(below) & set(above)
        if z in strips:
            inside, counts = np.unique(gt[z][strips[z]], return_counts=True)
            ids &= {int(i) for i, n in zip(inside, counts) if i != 0 and n >= min_voxels}
        kept = sum(below[i] == above[i] for i in ids)
        rows.append({"section": z, "n_crossing": len(ids), "n_kept": int(kept)})
    table = pd.DataFrame(rows, columns=["section", "n_crossing", "n_kept"])
    n = int(table["n_crossing"].sum())
    k = int(table["n_kept"].sum())
    return SectionContinuity(n, k, k / n if n else float("nan"), table)
