"""Section artifacts with exact records: misalignment, missing and damaged sections, tiles.

Frames
------
Ground truth lives in the *true* frame: the undistorted volume, origin at the corner
of the first voxel, coordinates (z, y, x) in nm, voxel ``i`` covering
``[i * v, (i + 1) * v)`` (centre at ``(i + 0.5) * v``). The raw images live in the
*raw* frame, which differs section by section. The middle section
(``Z // 2``) is the reference: its transform is the identity, so an alignment that
registers every section to it recovers the true frame.

``gt_transforms`` (one row per section) maps a point ``p = (y, x)`` in nm of the true
frame of section ``s`` to the point ``q`` of the raw section where that tissue appears::

    dy, dx = p_y - center_y, p_x - center_x
    e(p)   = sum_k (elastic_dy[k], elastic_dx[k]) * exp(-|p - (elastic_cy[k], elastic_cx[k])|^2
                                                       / (2 * elastic_sigma^2))
    q_y = center_y + cos(theta) * dy - sin(theta) * dx + translation_y + e_y(p)
    q_x = center_x + sin(theta) * dy + cos(theta) * dx + translation_x + e_x(p)

with ``theta = radians(rotation_deg)``; z is unchanged. So ``raw_s(q) = true_s(p)``.
The inverse (raw to true) has no closed form; :func:`map_points` inverts it by
fixed-point iteration (the elastic part is smooth and small, so it converges in a few
steps to well below a nanometre).

``gt_section_quality`` says which sections are missing (all zero in ``raw``) or
damaged (a strip: fold, crack or smear), with the strip's geometry.

``tiles`` lists the overlapping tile images of each section (``path`` relative to the
run directory) with stage positions in nm that are off by up to ``stage_error_px``
pixels; ``gt_tiles`` gives the true position of each tile's first pixel in the raw
frame, so pasting every tile at its true position reproduces ``raw`` exactly.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage as ndi

from ..errors import TableNotFoundError, VolumeError

__all__ = [
    "make_transforms",
    "map_points",
    "warp_sections",
    "unwarp_section",
    "damage_sections",
    "make_tiles",
    "TRANSFORM_COLUMNS",
]

TRANSFORM_COLUMNS = (
    "section", "z", "thickness", "reference", "rotation_deg", "center_y", "center_x",
    "translation_y", "translation_x", "elastic_sigma", "elastic_cy", "elastic_cx",
    "elastic_dy", "elastic_dx",
)


def make_transforms(settings, rng, shape):
    """Draw one transform per section (identity when misalignment is off).

    Returns a pandas DataFrame with :data:`TRANSFORM_COLUMNS`.
    """
    import pandas as pd

    s = settings
    Z, Y, X = (int(v) for v in shape)
    vz, vy, vx = (float(v) for v in s.voxel_size)
    ref = Z // 2
    cy, cx = Y * vy / 2, X * vx / 2
    g = int(s.elastic_grid)
    gy = (np.arange(g) + 0.5) / g * Y * vy
    gx = (np.arange(g) + 0.5) / g * X * vx
    GY, GX = np.meshgrid(gy, gx, indexing="ij")
    sigma = float(min(Y * vy, X * vx) / g)
    rows = []
    for z in range(Z):
        row = dict(section=z, z=z * vz, thickness=vz, reference=z == ref, rotation_deg=0.0, center_y=cy,
                   center_x=cx, translation_y=0.0, translation_x=0.0, elastic_sigma=sigma,
                   elastic_cy=[], elastic_cx=[], elastic_dy=[], elastic_dx=[])
        if s.misalign and z != ref:
            row["rotation_deg"] = float(rng.uniform(-s.max_rotation_deg, s.max_rotation_deg))
            r = s.max_translation_px * np.sqrt(rng.uniform(0, 1))
            a = rng.uniform(0, 2 * np.pi)
            row["translation_y"] = float(r * np.sin(a) * vy)
            row["translation_x"] = float(r * np.cos(a) * vx)
            if s.elastic_amplitude_px > 0:
                w = rng.standard_normal((2, g * g))
                row.update(elastic_cy=GY.ravel().tolist(), elastic_cx=GX.ravel().tolist(),
                           elastic_dy=w[0].tolist(), elastic_dx=w[1].tolist())
                # scale so the largest displacement over the section is the amplitude
                yy, xx = np.meshgrid(np.linspace(0, Y * vy, 33), np.linspace(0, X * vx, 33), indexing="ij")
                e = _elastic(row, np.stack([yy.ravel(), xx.ravel()], 1))
                peak = float(np.max(np.linalg.norm(e, axis=1)))
                amp = s.elastic_amplitude_px * vy * rng.uniform(0.6, 1.0)
                k = amp / max(peak, 1e-9)
                row["elastic_dy"] = (w[0] * k).tolist()
                row["elastic_dx"] = (w[1] * k).tolist()
        rows.append(row)
    return pd.DataFrame(rows, columns=list(TRANSFORM_COLUMNS))


def _elastic(row, yx):
    cy = np.asarray(row["elastic_cy"], float)
    if not len(cy):
        return np.zeros_like(yx)
    cx = np.asarray(row["elastic_cx"], float)
    d2 = (yx[:, :1] - cy[None, :]) ** 2 + (yx[:, 1:2] - cx[None, :]) ** 2
    k = np.exp(-d2 / (2 * float(row["elastic_sigma"]) ** 2))
    return np.stack([k @ np.asarray(row["elastic_dy"], float), k @ np.asarray(row["elastic_dx"], float)], 1)


def _forward(row, yx):
    th = np.deg2rad(float(row["rotation_deg"]))
    c, s_ = np.cos(th), np.sin(th)
    dy = yx[:, 0] - float(row["center_y"])
    dx = yx[:, 1] - float(row["center_x"])
    e = _elastic(row, yx)
    qy = float(row["center_y"]) + c * dy - s_ * dx + float(row["translation_y"]) + e[:, 0]
    qx = float(row["center_x"]) + s_ * dy + c * dx + float(row["translation_x"]) + e[:, 1]
    return np.stack([qy, qx], 1)


def _inverse(row, yx, iterations=12):
    th = np.deg2rad(float(row["rotation_deg"]))
    c, s_ = np.cos(th), np.sin(th)
    cy, cx = float(row["center_y"]), float(row["center_x"])
    base = yx - np.array([float(row["translation_y"]), float(row["translation_x"])])
    p = None
    e = np.zeros_like(yx)
    for _ in range(iterations if len(row["elastic_cy"]) else 1):
        u = base - e
        dy, dx = u[:, 0] - cy, u[:, 1] - cx
        p = np.stack([cy + c * dy + s_ * dx, cx - s_ * dy + c * dx], 1)
        e = _elastic(row, p)
    return p


def _rows_by_section(transforms):
    cols = set(transforms.columns)
    missing = [c for c in TRANSFORM_COLUMNS if c not in cols]
    if missing:
        raise TableNotFoundError(f"gt_transforms lacks the column(s) {missing}")
    return {int(r["section"]): r for r in transforms.to_dict("records")}


def map_points(transforms, points, *, to="raw"):
    """Map points between the true (ground-truth) frame and the raw frame.

    Parameters
    ----------
    transforms : pandas.DataFrame
        The ``gt_transforms`` table of a run.
    points : (N, 3) array
        Points (z, y, x) in nm; z picks the section (``floor(z / thickness)``).
    to : {'raw', 'true'}
        ``'raw'`` maps true-frame points to where they appear in ``raw``; ``'true'``
        maps raw-frame points back.

    Returns
    -------
    (N, 3) float ndarray

    Raises
    ------
    VolumeError
        If a point lies in a section that the table does not describe.
    """
    if to not in ("raw", "true"):
        raise ValueError(f"to must be 'raw' or 'true', got {to!r}")
    pts = np.asarray(points, float).reshape(-1, 3)
    rows = _rows_by_section(transforms)
    thickness = float(next(iter(rows.values()))["thickness"]) if rows else 1.0
    sec = np.floor(pts[:, 0] / thickness).astype(int)
    out = pts.copy()
    for z in np.unique(sec):
        if int(z) not in rows:
            raise VolumeError(f"point at z={z * thickness} nm lies in section {z}, which gt_transforms does not describe")
        m = sec == z
        f = _forward if to == "raw" else _inverse
        out[m, 1:] = f(rows[int(z)], pts[m, 1:])
    return out


def _sample_grid(shape_yx, vs_yx, step=16):
    """Pixel-centre positions (nm) on a coarse grid covering a section."""
    Y, X = shape_yx
    iy = np.unique(np.concatenate([np.arange(0, Y, step), [Y - 1]]))
    ix = np.unique(np.concatenate([np.arange(0, X, step), [X - 1]]))
    gy, gx = np.meshgrid((iy + 0.5) * vs_yx[0], (ix + 0.5) * vs_yx[1], indexing="ij")
    return iy, ix, np.stack([gy.ravel(), gx.ravel()], 1)


def _dense(iy, ix, coarse, shape_yx):
    """Bilinear upsampling of a coarse (len(iy), len(ix)) field to every pixel."""
    fy = np.interp(np.arange(shape_yx[0]), iy, np.arange(len(iy)))
    fx = np.interp(np.arange(shape_yx[1]), ix, np.arange(len(ix)))
    FY, FX = np.meshgrid(fy, fx, indexing="ij")
    return ndi.map_coordinates(coarse, [FY, FX], order=1, mode="nearest")


def warp_sections(content, transforms, margin, frame_shape, voxel_size):
    """Raw-frame sections from true-frame content on a canvas with ``margin`` pixels.

    For each raw pixel q the true position p = T^-1(q) is found and the content is
    sampled there (bilinear); the canvas margin supplies real tissue where
    misalignment brings in what lies outside the ground-truth frame.
    """
    Z, Y, X = frame_shape
    vy, vx = float(voxel_size[1]), float(voxel_size[2])
    out = np.empty((Z, Y, X), np.float32)
    rows = _rows_by_section(transforms)
    for z in range(Z):
        row = rows[z]
        if not len(row["elastic_cy"]) and row["rotation_deg"] == 0 and row["translation_y"] == 0 \
                and row["translation_x"] == 0:
            out[z] = content[z, margin : margin + Y, margin : margin + X]
            continue
        iy, ix, q = _sample_grid((Y, X), (vy, vx))
        p = _inverse(row, q)
        cy = (p[:, 0] / vy - 0.5 + margin).reshape(len(iy), len(ix))
        cx = (p[:, 1] / vx - 0.5 + margin).reshape(len(iy), len(ix))
        out[z] = ndi.map_coordinates(content[z], [_dense(iy, ix, cy, (Y, X)), _dense(iy, ix, cx, (Y, X))],
                                     order=1, mode="nearest")
    return out


def unwarp_section(raw_section, row, voxel_size, *, order=1):
    """Resample one raw section into the true frame (the inverse of the warp)."""
    Y, X = raw_section.shape
    vy, vx = float(voxel_size[1]), float(voxel_size[2])
    iy, ix, p = _sample_grid((Y, X), (vy, vx))
    q = _forward(row, p)
    cy = (q[:, 0] / vy - 0.5).reshape(len(iy), len(ix))
    cx = (q[:, 1] / vx - 0.5).reshape(len(iy), len(ix))
    return ndi.map_coordinates(np.asarray(raw_section, np.float32), [_dense(iy, ix, cy, (Y, X)),
                               _dense(iy, ix, cx, (Y, X))], order=order, mode="constant", cval=np.nan)


def damage_sections(img, settings, rng):
    """Choose missing and damaged sections, damage ``img`` (in place), return the quality table."""
    import pandas as pd

    s = settings
    Z, Y, X = img.shape
    vy, vx = float(s.voxel_size[1]), float(s.voxel_size[2])
    candidates = np.array([z for z in range(Z) if z != Z // 2 and 0 < z < Z - 1] or [z for z in range(Z) if z != Z // 2])
    n_bad = min(len(candidates), s.missing_sections + s.damaged_sections)
    bad = rng.choice(candidates, size=n_bad, replace=False) if n_bad else np.zeros(0, int)
    missing = set(int(z) for z in bad[: s.missing_sections])
    damaged = [int(z) for z in bad[s.missing_sections :]]
    rows = {z: dict(section=z, status="ok", score=1.0, damage_kind=None, damage_angle_deg=np.nan,
                    damage_y=np.nan, damage_x=np.nan, damage_width=np.nan) for z in range(Z)}
    yy, xx = np.meshgrid((np.arange(Y) + 0.5) * vy, (np.arange(X) + 0.5) * vx, indexing="ij")
    for z in damaged:
        kind = str(rng.choice(["fold", "crack", "smear"]))
        ang = rng.uniform(0, 180)
        py, px = rng.uniform(0.2, 0.8) * Y * vy, rng.uniform(0.2, 0.8) * X * vx
        width = rng.uniform(*s.damage_width)
        th = np.deg2rad(ang)
        # signed distance from the strip's centre line (direction (sin, cos) in (y, x))
        dist = -(yy - py) * np.cos(th) + (xx - px) * np.sin(th)
        strip = np.abs(dist) <= width / 2
        edge = np.clip(1 - (np.abs(dist) - width / 2) / (2 * vy), 0, 1).astype(np.float32)
        sec = img[z]
        if kind == "fold":
            dark = 0.12 + 0.05 * rng.standard_normal(sec.shape).astype(np.float32)
            sec[...] = sec * (1 - edge) + dark * edge
        elif kind == "crack":
            sec[...] = sec * (1 - edge) + 0.93 * edge
        else:
            blurred = ndi.gaussian_filter(sec, 6.0)
            sec[...] = sec * (1 - edge) + (0.6 * blurred + 0.25) * edge
        rows[z].update(status="damaged", score=float(1 - strip.mean()), damage_kind=kind, damage_angle_deg=float(ang),
                       damage_y=float(py), damage_x=float(px), damage_width=float(width))
    for z in missing:
        rows[z].update(status="missing", score=0.0)
    return pd.DataFrame([rows[z] for z in range(Z)]), sorted(missing)


def make_tiles(raw, settings, rng, run_path, *, skip=()):
    """Cut each section into overlapping tiles, write them, return (tiles, gt_tiles)."""
    import pandas as pd
    import tifffile

    s = settings
    Z, Y, X = raw.shape
    vy, vx = float(s.voxel_size[1]), float(s.voxel_size[2])
    rows_n, cols_n = s.tiles
    ov = int(s.tile_overlap_px)
    th = int(np.ceil((Y + (rows_n - 1) * ov) / rows_n))
    tw = int(np.ceil((X + (cols_n - 1) * ov) / cols_n))
    ys = [min(r * (th - ov), Y - th) for r in range(rows_n)]
    xs = [min(c * (tw - ov), X - tw) for c in range(cols_n)]
    tiles, truth = [], []
    for z in range(Z):
        if z in skip:
            continue
        folder = os.path.join("tiles", f"s{z:04d}")
        os.makedirs(os.path.join(run_path, folder), exist_ok=True)
        for r in range(rows_n):
            for c in range(cols_n):
                t = r * cols_n + c
                y0, x0 = ys[r], xs[c]
                rel = os.path.join(folder, f"t{t:02d}.tif")
                tifffile.imwrite(os.path.join(run_path, rel), raw[z, y0 : y0 + th, x0 : x0 + tw])
                a = rng.uniform(0, 2 * np.pi)
                e = s.stage_error_px * np.sqrt(rng.uniform(0.25, 1.0))
                ey, ex = e * np.sin(a) * vy, e * np.cos(a) * vx
                tiles.append(dict(section=z, tile=t, stage_y=y0 * vy + ey, stage_x=x0 * vx + ex, path=rel,
                                  row=r, column=c, height_vx=th, width_vx=tw))
                truth.append(dict(section=z, tile=t, y=y0 * vy, x=x0 * vx, stage_error_y=ey, stage_error_x=ex))
    return pd.DataFrame(tiles), pd.DataFrame(truth)
