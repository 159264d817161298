"""Capsules on a voxel grid: the geometric kernel of the generator.

A tube is cut into capsule segments (a line segment with a radius that varies
linearly along it); :func:`capsule_values` evaluates ``distance - radius`` for many
segments on a grid, each on a tight box per section, all boxes of one size in one
array operation, and yields the values chunk by chunk with their flat voxel indices.
The callers merge them with ``numpy.minimum.at``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tube_segments", "capsule_values", "CORE_BONUS"]

#: Subtracted from core values (nm) so a tube's core wins over other tubes.
CORE_BONUS = np.float32(2048.0)


def tube_segments(points, radii, factor=3.0, lo=40.0, hi=320.0):
    """Split a polyline into capsule segments about ``factor`` x the local radius long.

    Returns ``(segments (M, 2, 3), radii (M, 2))``.
    """
    pts, rad = np.asarray(points, float), np.asarray(radii, float)
    if len(pts) == 1:
        return pts[None, [0, 0]], rad[None, [0, 0]]
    step = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(step)]).tolist()
    limit = np.clip(factor * rad, lo, hi).tolist()
    keep = [0]
    cur = limit[0]
    for i in range(1, len(pts)):
        cur = min(cur, limit[i])
        if s[i] - s[keep[-1]] >= cur or i == len(pts) - 1:
            keep.append(i)
            cur = limit[i]
    keep = np.array(keep)
    # radii between kept points: keep the largest so boutons are not lost
    r = rad[keep].copy()
    for j in range(len(keep) - 1):
        seg_max = rad[keep[j] : keep[j + 1] + 1].max()
        if seg_max > max(r[j], r[j + 1]) * 1.05:
            r[j] = max(r[j], seg_max)
    return np.stack([pts[keep[:-1]], pts[keep[1:]]], 1), np.stack([r[:-1], r[1:]], 1)


def capsule_values(A, B, RA, RB, shape, voxel_size, *, margin=0.0, shell=None, core=None, chunk=131_072,
                   coarse=False):
    """Yield ``(flat_index, value, segment)`` for voxels within ``margin`` of each capsule.

    Parameters
    ----------
    A, B : (M, 3) float
        Segment ends in nm (z, y, x); voxel i's centre lies at ``(i + 0.5) * voxel_size``.
    RA, RB : (M,) float
        Radii (nm) at A and B.
    shape : (int, int, int)
        Grid shape in voxels.
    voxel_size : (z, y, x)
        Grid spacing in nm.
    margin : float
        Keep voxels whose value ``distance - radius`` is at most this (nm).
    shell : (M,) float, optional
        Wall thickness: where > 0 the capsule is a hollow sheet of that thickness
        around radius r, with value ``|d - r - t/2| - t/2``.
    chunk : int
        Voxels evaluated per array operation (small chunks stay in cache).
    core : (float, float), optional
        ``(fraction, floor)``: voxels within ``max(fraction * r, floor)`` (at most r)
        of the centre line are the tube's core; their value is lowered by
        :data:`CORE_BONUS` so that a core beats any other tube's non-core part.
    coarse : bool
        Round box sizes up to powers of two: fewer, larger array operations, for
        calls with few segments where per-call overhead dominates.
    """
    vs = np.asarray(voxel_size, np.float64)
    shape = tuple(int(v) for v in shape)
    A, B = np.asarray(A, float).reshape(-1, 3), np.asarray(B, float).reshape(-1, 3)
    RA, RB = np.asarray(RA, float).ravel(), np.asarray(RB, float).ravel()
    TH = np.zeros(len(A)) if shell is None else np.asarray(shell, float).ravel()
    if not len(A):
        return
    R = np.maximum(RA, RB) + TH + margin
    zlo = np.maximum(np.floor((np.minimum(A[:, 0], B[:, 0]) - R) / vs[0]).astype(np.int64), 0)
    zhi = np.minimum(np.ceil((np.maximum(A[:, 0], B[:, 0]) + R) / vs[0]).astype(np.int64) + 1, shape[0])
    nz = np.maximum(zhi - zlo, 0)
    seg = np.repeat(np.arange(len(A)), nz)
    if not len(seg):
        return
    iz = np.repeat(zlo, nz) + (np.arange(len(seg)) - np.repeat(np.cumsum(nz) - nz, nz))
    # in-plane box of the part of the segment within R of this section's centre
    zc = (iz + 0.5) * vs[0]
    a, b, r = A[seg], B[seg], R[seg]
    dz = b[:, 0] - a[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = np.where(dz != 0, (zc - r - a[:, 0]) / dz, 0.0)
        t1 = np.where(dz != 0, (zc + r - a[:, 0]) / dz, 1.0)
    tlo = np.clip(np.minimum(t0, t1), 0, 1)
    thi = np.clip(np.maximum(t0, t1), 0, 1)
    p0 = a + tlo[:, None] * (b - a)
    p1 = a + thi[:, None] * (b - a)
    # a section farther from the segment cuts a smaller disc of the capsule
    dzmin = np.maximum(0.0, np.maximum(np.minimum(a[:, 0], b[:, 0]) - zc, zc - np.maximum(a[:, 0], b[:, 0])))
    r_in = np.sqrt(np.maximum(r**2 - dzmin**2, 0.0))[:, None]
    lo_yx = np.floor((np.minimum(p0[:, 1:], p1[:, 1:]) - r_in) / vs[1:] - 0.5).astype(np.int64)
    hi_yx = np.ceil((np.maximum(p0[:, 1:], p1[:, 1:]) + r_in) / vs[1:] - 0.5).astype(np.int64) + 1
    lo_yx = np.maximum(lo_yx, 0)
    hi_yx = np.minimum(hi_yx, np.array(shape[1:]))
    ext = hi_yx - lo_yx
    ok = np.all(ext > 0, axis=1)
    seg, iz, lo_yx, ext = seg[ok], iz[ok], lo_yx[ok], ext[ok]
    if not len(seg):
        return
    # group rows by box size (rounded up) so each group is one array operation
    if coarse:
        q = 1 << np.ceil(np.log2(np.maximum(ext, 1))).astype(np.int64)
    else:
        q = ((ext + 3) // 4) * 4
        q = np.where(ext > 32, ((ext + 15) // 16) * 16, q)
    key = q[:, 0] * 100_000 + q[:, 1]
    order = np.argsort(key, kind="stable")
    seg, iz, lo_yx, ext, q, key = seg[order], iz[order], lo_yx[order], ext[order], q[order], key[order]
    bounds = np.flatnonzero(np.diff(key)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(key)]])
    Y, X = shape[1], shape[2]
    abv = (B - A).astype(np.float32)
    l2 = (abv.astype(np.float64) ** 2).sum(1)
    inv = np.where(l2 > 0, 1.0 / np.maximum(l2, 1e-12), 0.0).astype(np.float32)
    vsf = vs.astype(np.float32)
    A32 = A.astype(np.float32)
    RA32, RB32, TH32 = RA.astype(np.float32), RB.astype(np.float32), TH.astype(np.float32)
    has_shell = bool(TH.any())
    for s0, s1 in zip(starts, ends):
        ny, nx = int(q[s0, 0]), int(q[s0, 1])
        per = max(1, chunk // (ny * nx))
        for c0 in range(s0, s1, per):
            c1 = min(s1, c0 + per)
            sg = seg[c0:c1]
            yi = lo_yx[c0:c1, 0:1] + np.arange(ny, dtype=np.int64)[None, :]
            xi = lo_yx[c0:c1, 1:2] + np.arange(nx, dtype=np.int64)[None, :]
            a0 = A32[sg]
            zz = ((iz[c0:c1] + 0.5).astype(np.float32) * vsf[0] - a0[:, 0])[:, None, None]
            yy = ((yi + 0.5).astype(np.float32) * vsf[1] - a0[:, 1:2])[:, :, None]
            xx = ((xi + 0.5).astype(np.float32) * vsf[2] - a0[:, 2:3])[:, None, :]
            ab = abv[sg]
            abz, aby, abx = (ab[:, k][:, None, None] for k in range(3))
            t = (zz * abz + yy * aby + xx * abx) * inv[sg][:, None, None]
            np.clip(t, 0, 1, out=t)
            d2 = (zz - t * abz) ** 2
            d2 += (yy - t * aby) ** 2
            d2 += (xx - t * abx) ** 2
            ra = RA32[sg][:, None, None]
            v = np.sqrt(d2)
            rt = ra + t * (RB32[sg][:, None, None] - ra)
            if core is not None:
                is_core = v <= np.minimum(np.maximum(rt * np.float32(core[0]), np.float32(core[1])), rt)
            v -= rt
            if core is not None:
                v[is_core & (TH32[sg] == 0)[:, None, None]] -= CORE_BONUS
            if has_shell:
                half = (TH32[sg] / 2)[:, None, None]
                v = np.where(half > 0, np.abs(v - half) - half, v)
            keep = v <= margin
            keep &= ((yi < Y) & (yi < lo_yx[c0:c1, 0:1] + ext[c0:c1, 0:1]))[:, :, None]
            keep &= ((xi < X) & (xi < lo_yx[c0:c1, 1:2] + ext[c0:c1, 1:2]))[:, None, :]
            gi, yk, xk = np.nonzero(keep)
            if not len(gi):
                continue
            idx = (iz[c0:c1][gi] * Y + yi[gi, yk]) * X + xi[gi, xk]
            yield idx, v[gi, yk, xk], sg[gi]
