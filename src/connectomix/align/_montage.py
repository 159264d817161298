"""Montage: stitch the overlapping tiles of each section into one image.

1. Tiles whose stage rectangles (grown by the search range) overlap form pairs. The
   offset of each pair is the peak of the masked normalised cross-correlation of
   the two tiles over every shift that leaves enough overlap
   (:func:`skimage.registration.phase_cross_correlation` with masks); a pair is
   kept when the offset lies within ``max_stage_error_px`` of the stage offset and
   the NCC of the overlap at that offset is at least ``min_ncc``.
2. One least-squares problem per section places all tiles (``P_b - P_a = d_ab``
   weighted by the pair's NCC, plus a weak pull to the stage positions that fixes
   the free translation), iteratively reweighted (Huber) so that a bad pair that
   slipped through loses its weight. The first weights come from the residuals of
   a placement along a spanning tree of pairs (the maximum-NCC tree, with pairs left
   out while that makes more pairs agree with it), not from an unweighted first
   solve: two wrong pairs of corner-overlapping tiles (NCC ~0.4)
   otherwise pulled every residual of a 2 x 2 section above the cut, and all its
   tiles fell back to their stage positions (sections 32 and 33 of ``hard`` seed 0).
3. Tiles left without a usable pair keep their stage position, with a warning
   naming them.
4. Seams are blended by feathering: each tile's weight falls linearly to its edges.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as splinalg

__all__ = ["MontageSettings", "tile_offset", "place_tiles", "blend_tiles", "StitchWarning"]

logger = logging.getLogger(__name__)


class StitchWarning(UserWarning):
    """A tile could not be placed from image content (kept at its stage position)."""


@dataclass(frozen=True)
class MontageSettings:
    max_stage_error_px: float = 64.0
    min_ncc: float = 0.3
    min_overlap_px: int = 8
    huber_px: float = 1.0
    stage_weight: float = 1e-4


def tile_offset(a, b, d0, *, settings: MontageSettings = MontageSettings()):
    """Offset ``P_b - P_a`` (pixels) of two tiles from their image content.

    Parameters
    ----------
    a, b : 2-D arrays
    d0 : (2,) expected offset from the stage positions (pixels)

    Returns
    -------
    (offset (2,) or None, ncc float)
    """
    from skimage.registration import phase_cross_correlation

    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    ha, wa = a.shape
    hb, wb = b.shape
    # expected overlap as a fraction of the largest possible overlap
    ov = (min(ha, d0[0] + hb) - max(0, d0[0])) * (min(wa, d0[1] + wb) - max(0, d0[1]))
    frac = ov / float(min(ha * wa, hb * wb))
    ratio = float(np.clip(0.5 * frac, 0.01, 0.9))
    res = phase_cross_correlation(a, b, reference_mask=np.ones(a.shape, bool), moving_mask=np.ones(b.shape, bool),
                                  overlap_ratio=ratio)
    d = np.asarray(res[0] if isinstance(res, tuple) else res, float)
    if np.any(np.abs(d - d0) > settings.max_stage_error_px):
        return None, 0.0
    dy, dx = int(round(d[0])), int(round(d[1]))
    y0, y1 = max(0, dy), min(ha, dy + hb)
    x0, x1 = max(0, dx), min(wa, dx + wb)
    if y1 - y0 < settings.min_overlap_px or x1 - x0 < settings.min_overlap_px:
        return None, 0.0
    pa = a[y0:y1, x0:x1].ravel()
    pb = b[y0 - dy : y1 - dy, x0 - dx : x1 - dx].ravel()
    pa = pa - pa.mean()
    pb = pb - pb.mean()
    den = float(np.sqrt((pa * pa).sum() * (pb * pb).sum()))
    ncc = float((pa * pb).sum() / den) if den > 0 else 0.0
    if ncc < settings.min_ncc:
        return None, ncc
    return d, ncc


def place_tiles(images, stage_px, *, settings: MontageSettings = MontageSettings(), names=None, section=None):
    """Tile positions (pixels) for one section by robust global least squares.

    Parameters
    ----------
    images : list of 2-D arrays
    stage_px : (T, 2) stage positions of each tile's first pixel, pixels
    names : list of str, optional
        Tile names for the warning.

    Returns
    -------
    positions (T, 2) float, pairs DataFrame (a, b, dy, dx, ncc, used, residual_px), unplaced list
    """
    import pandas as pd

    T = len(images)
    stage = np.asarray(stage_px, float).reshape(T, 2)
    names = names or [str(t) for t in range(T)]
    m = settings.max_stage_error_px
    rows = []
    for i in range(T):
        hi, wi = images[i].shape
        for j in range(i + 1, T):
            hj, wj = images[j].shape
            d0 = stage[j] - stage[i]
            if d0[0] >= hi + m or -d0[0] >= hj + m or d0[1] >= wi + m or -d0[1] >= wj + m:
                continue
            d, ncc = tile_offset(images[i], images[j], d0, settings=settings)
            rows.append(dict(a=i, b=j, dy=np.nan if d is None else d[0], dx=np.nan if d is None else d[1], ncc=ncc,
                             used=d is not None))
    pairs = pd.DataFrame(rows, columns=["a", "b", "dy", "dx", "ncc", "used"])
    good = pairs[pairs["used"]] if len(pairs) else pairs
    linked = set(good["a"]).union(good["b"]) if len(good) else set()
    unplaced = [t for t in range(T) if t not in linked]
    if unplaced and T > 1:
        where = f"section {section}: " if section is not None else ""
        msg = (f"{where}tile(s) {', '.join(names[t] for t in unplaced)} have no usable overlap with a neighbour; "
               "kept at their stage positions")
        warnings.warn(msg, StitchWarning, stacklevel=2)
        logger.warning(msg)
    pos = stage.copy()
    pairs["residual_px"] = np.nan
    if len(good):
        n = len(good)
        r = np.repeat(np.arange(n), 2)
        c = np.stack([good["a"].to_numpy(), good["b"].to_numpy()], 1).ravel()
        v = np.tile([-1.0, 1.0], n)
        D = sparse.csr_matrix((v, (r, c)), shape=(n, T))
        w0 = np.clip(good["ncc"].to_numpy(), 0.05, 1.0)
        start = _tree_placement(T, good, stage, tol=3 * settings.huber_px)
        res = np.hypot(D @ start[:, 0] - good["dy"].to_numpy(), D @ start[:, 1] - good["dx"].to_numpy())
        w = _huber(w0, res, settings.huber_px)
        eps = settings.stage_weight
        for _ in range(5):
            N = (D.T @ sparse.diags(w) @ D + eps * sparse.eye(T)).tocsc()
            lu = splinalg.splu(N)
            sol = [lu.solve(D.T @ (w * good[k].to_numpy()) + eps * stage[:, a]) for a, k in enumerate(("dy", "dx"))]
            pos = np.stack(sol, 1)
            res = np.hypot(D @ pos[:, 0] - good["dy"].to_numpy(), D @ pos[:, 1] - good["dx"].to_numpy())
            w = _huber(w0, res, settings.huber_px)
        pairs.loc[good.index, "residual_px"] = res
    return pos, pairs, unplaced


def _huber(w0, res, huber_px):
    """Pair weights for residuals ``res``: Huber, and 0 for a pair this far off it is wrong, not noisy."""
    w = w0 * np.where(res <= huber_px, 1.0, huber_px / np.maximum(res, 1e-12))
    w[res > 3 * huber_px] = 0.0
    return w


def _tree_placement(T, good, stage, *, tol, rounds: int = 5):
    """Tile positions chained along a spanning tree of the pairs that most pairs agree with.

    The tree starts as the maximum-NCC spanning tree; then, while leaving one of its
    pairs out (the tree re-grown from the rest) makes more pairs agree with the
    placement to within ``tol`` pixels, that pair is left out: a wrong pair with the
    highest NCC does not decide the start. Each connected group of tiles starts at
    its first tile's stage position; a tile in no pair keeps its own. Where the pairs
    cannot decide (a ring of four tiles with one wrong pair and no matched diagonal:
    either side of the ring agrees with three pairs) the most confident tree stays.
    """
    from scipy.sparse import csgraph

    a, b = good["a"].to_numpy(), good["b"].to_numpy()
    d = good[["dy", "dx"]].to_numpy(float)
    cost = 2.0 - np.clip(good["ncc"].to_numpy(float), -1.0, 1.0)  # > 0: the tree keeps the most confident pairs
    index = {}
    for k in range(len(a)):
        index[(a[k], b[k])] = (k, 1.0)
        index[(b[k], a[k])] = (k, -1.0)

    def place(keep):
        tree = csgraph.minimum_spanning_tree(sparse.coo_matrix((cost[keep], (a[keep], b[keep])), shape=(T, T)).tocsr())
        tree = tree + tree.T
        pos = np.asarray(stage, float).copy()
        seen = np.zeros(T, bool)
        used = []
        for root in range(T):
            if seen[root]:
                continue
            order, pred = csgraph.breadth_first_order(tree, root, directed=False, return_predecessors=True)
            seen[order] = True
            for t in order[1:]:
                k, sign = index[(pred[t], t)]
                pos[t] = pos[pred[t]] + sign * d[k]
                used.append(k)
        agree = int(np.sum(np.hypot(*(pos[b] - pos[a] - d).T) <= tol))
        return pos, agree, used

    keep = np.ones(len(a), bool)
    pos, agree, used = place(keep)
    for _ in range(rounds):
        best = None
        for k in used:
            trial = keep.copy()
            trial[k] = False
            p, n, u = place(trial)
            if n > agree and (best is None or n > best[1]):
                best = (trial, n, p, u)
        if best is None:
            break
        keep, agree, pos, used = best[0], best[1], best[2], best[3]
    return pos


def feather(shape):
    """Blending weight of a tile: 1 + distance to its nearest edge (pixels)."""
    h, w = shape
    wy = np.minimum(np.arange(h), np.arange(h)[::-1]) + 1.0
    wx = np.minimum(np.arange(w), np.arange(w)[::-1]) + 1.0
    return np.minimum(wy[:, None], wx[None, :]).astype(np.float32)


def blend_tiles(images, positions_px, region, *, dtype=np.uint8):
    """Paste tiles at (rounded) positions into ``region`` = ((y0, y1), (x0, x1)), feathered.

    Pixels no tile covers are 0.
    """
    (y0, y1), (x0, x1) = region
    acc = np.zeros((y1 - y0, x1 - x0), np.float64)
    wsum = np.zeros_like(acc)
    for img, p in zip(images, positions_px):
        py, px = int(round(p[0])), int(round(p[1]))
        h, w = img.shape
        ya, yb = max(y0, py), min(y1, py + h)
        xa, xb = max(x0, px), min(x1, px + w)
        if ya >= yb or xa >= xb:
            continue
        wt = feather((h, w))[ya - py : yb - py, xa - px : xb - px]
        acc[ya - y0 : yb - y0, xa - x0 : xb - x0] += wt * img[ya - py : yb - py, xa - px : xb - px]
        wsum[ya - y0 : yb - y0, xa - x0 : xb - x0] += wt
    out = np.where(wsum > 0, acc / np.maximum(wsum, 1e-12), 0)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(dtype)
