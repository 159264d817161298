"""Per-section transforms as regular grids (meshes) in the aligned frame.

A :class:`GridMap` holds, for every section, where each node of a regular grid in
the *aligned* frame (the reference section's frame) lies in the section's *raw*
image, in pixels. Between nodes the map is bilinear, so it is smooth, cheap to
evaluate block by block, and easy to store as a table (one row per node). Pixel
coordinates here are array indices (pixel ``i`` has its centre at ``i``); the
stage converts to nm at its boundary (``nm = (i + 0.5) * voxel_size + offset``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["GridMap", "grid_nodes", "jacobian_det", "warp_section"]


def grid_nodes(n: int, spacing: int) -> np.ndarray:
    """Node positions along one axis of ``n`` pixels: 0, spacing, ..., with the last at n - 1."""
    pos = np.arange(0, n - 1, spacing, dtype=float)
    return np.append(pos, n - 1) if len(pos) == 0 or pos[-1] != n - 1 else pos


@dataclass
class GridMap:
    """Aligned-frame grid -> raw-pixel positions, one layer per section.

    Attributes
    ----------
    gy, gx : (ny,), (nx,) float
        Node positions in aligned-frame pixels.
    coords : (Z, 2, ny, nx) float64
        Raw-image position (row, column) of each node in each section.
    """

    gy: np.ndarray
    gx: np.ndarray
    coords: np.ndarray

    @classmethod
    def identity(cls, n_sections: int, shape_yx, spacing: int) -> "GridMap":
        gy = grid_nodes(shape_yx[0], spacing)
        gx = grid_nodes(shape_yx[1], spacing)
        GY, GX = np.meshgrid(gy, gx, indexing="ij")
        c = np.broadcast_to(np.stack([GY, GX])[None], (n_sections, 2, len(gy), len(gx))).copy()
        return cls(gy, gx, c)

    def _fractional(self, yx):
        fy = np.interp(yx[..., 0], self.gy, np.arange(len(self.gy)))
        fx = np.interp(yx[..., 1], self.gx, np.arange(len(self.gx)))
        # outside the grid: extrapolate linearly from the edge cell
        fy = np.where(yx[..., 0] < self.gy[0], (yx[..., 0] - self.gy[0]) / (self.gy[1] - self.gy[0]), fy)
        fy = np.where(yx[..., 0] > self.gy[-1], len(self.gy) - 1 + (yx[..., 0] - self.gy[-1]) / (self.gy[-1] - self.gy[-2]), fy)
        fx = np.where(yx[..., 1] < self.gx[0], (yx[..., 1] - self.gx[0]) / (self.gx[1] - self.gx[0]), fx)
        fx = np.where(yx[..., 1] > self.gx[-1], len(self.gx) - 1 + (yx[..., 1] - self.gx[-1]) / (self.gx[-1] - self.gx[-2]), fx)
        return fy, fx

    def apply(self, z: int, yx) -> np.ndarray:
        """Raw positions of aligned-frame points ``yx`` (..., 2) of section ``z``."""
        yx = np.asarray(yx, float)
        fy, fx = self._fractional(yx)
        out = np.empty(yx.shape)
        for k in range(2):
            out[..., k] = _bilinear(self.coords[z, k], fy, fx)
        return out

    def dense(self, z: int, y_px, x_px) -> tuple[np.ndarray, np.ndarray]:
        """Raw (row, column) of every pixel of the grid ``y_px`` x ``x_px`` (aligned frame).

        The same values as :meth:`apply` on every pixel, computed as ``Wy @ C @ Wx.T``: bilinear
        interpolation on a regular grid is separable, so two small matrix products replace a
        gather of four nodes per pixel.
        """
        y = np.asarray(y_px, float)
        x = np.asarray(x_px, float)
        fy, _ = self._fractional(np.stack([y, np.full_like(y, self.gx[0])], -1))
        _, fx = self._fractional(np.stack([np.full_like(x, self.gy[0]), x], -1))
        wy = _linear_weights(fy, len(self.gy))
        wx = _linear_weights(fx, len(self.gx))
        return wy @ self.coords[z, 0] @ wx.T, wy @ self.coords[z, 1] @ wx.T

    def invert(self, z: int, q, *, iterations: int = 30) -> np.ndarray:
        """Aligned-frame positions of raw points ``q`` (..., 2) of section ``z`` (Newton steps)."""
        q = np.asarray(q, float)
        # start from the best affine fit of the nodes
        G = np.stack(np.meshgrid(self.gy, self.gx, indexing="ij"), -1).reshape(-1, 2)
        R = self.coords[z].reshape(2, -1).T
        A = np.c_[R, np.ones(len(R))]
        sol, *_ = np.linalg.lstsq(A, G, rcond=None)
        p = np.c_[q.reshape(-1, 2), np.ones(q.size // 2)] @ sol
        flat_q = q.reshape(-1, 2)
        eps = 0.5
        for _ in range(iterations):
            f = self.apply(z, p)
            r = flat_q - f
            if np.max(np.abs(r), initial=0) < 1e-6:
                break
            jy = (self.apply(z, p + [eps, 0]) - self.apply(z, p - [eps, 0])) / (2 * eps)
            jx = (self.apply(z, p + [0, eps]) - self.apply(z, p - [0, eps])) / (2 * eps)
            a, b, c, d = jy[:, 0], jx[:, 0], jy[:, 1], jx[:, 1]
            det = a * d - b * c
            det = np.where(np.abs(det) < 1e-9, 1e-9, det)
            p = p + np.stack([(d * r[:, 0] - b * r[:, 1]) / det, (-c * r[:, 0] + a * r[:, 1]) / det], 1)
        return p.reshape(q.shape)

    def composed(self, z: int, u: np.ndarray) -> np.ndarray:
        """Node coordinates of ``T_z(p + u(p))`` for a node field ``u`` (2, ny, nx)."""
        GY, GX = np.meshgrid(self.gy, self.gx, indexing="ij")
        p = np.stack([GY + u[0], GX + u[1]], -1)
        return np.moveaxis(self.apply(z, p), -1, 0)


def _linear_weights(f, n):
    """(len(f), n) weights of linear interpolation at fractional node indices ``f`` (as :func:`_bilinear`)."""
    i0 = np.clip(np.floor(f).astype(int), 0, n - 2)
    t = f - i0
    w = np.zeros((len(f), n))
    rows = np.arange(len(f))
    w[rows, i0] = 1 - t
    w[rows, i0 + 1] = t
    return w


def _bilinear(img, fy, fx):
    h, w = img.shape
    y0 = np.clip(np.floor(fy).astype(int), 0, h - 2)
    x0 = np.clip(np.floor(fx).astype(int), 0, w - 2)
    ty, tx = fy - y0, fx - x0
    return ((1 - ty) * (1 - tx) * img[y0, x0] + (1 - ty) * tx * img[y0, x0 + 1]
            + ty * (1 - tx) * img[y0 + 1, x0] + ty * tx * img[y0 + 1, x0 + 1])


def jacobian_det(coords: np.ndarray, gy: np.ndarray, gx: np.ndarray) -> np.ndarray:
    """Determinant of the map's Jacobian in each grid cell (corners), (…, ny-1, nx-1).

    A fold-over (the mesh inverts) shows as a determinant <= 0.
    """
    c = np.asarray(coords, float)
    hy = np.diff(gy)[:, None]
    hx = np.diff(gx)[None, :]
    # derivatives along y and x at the four corners of each cell
    dets = []
    for sy in (slice(0, -1), slice(1, None)):
        for sx in (slice(0, -1), slice(1, None)):
            dy_row = (c[..., 0, 1:, :] - c[..., 0, :-1, :])[..., :, sx] / hy
            dy_col = (c[..., 1, 1:, :] - c[..., 1, :-1, :])[..., :, sx] / hy
            dx_row = (c[..., 0, :, 1:] - c[..., 0, :, :-1])[..., sy, :] / hx
            dx_col = (c[..., 1, :, 1:] - c[..., 1, :, :-1])[..., sy, :] / hx
            dets.append(dy_row * dx_col - dy_col * dx_row)
    return np.min(np.stack(dets), axis=0)


def warp_section(image, gmap: GridMap, z: int, *, y_px=None, x_px=None, order: int = 1, cval=np.nan,
                 offset_px=(0, 0), scale: int = 1) -> np.ndarray:
    """Resample raw section ``image`` into the aligned frame.

    ``y_px``/``x_px`` choose the output pixels (default: the whole grid extent);
    ``offset_px`` is the raw position of ``image[0, 0]`` (for a cropped read);
    ``scale`` > 1: ``image`` is the raw section averaged over blocks of that many pixels.
    """
    if y_px is None:
        y_px = np.arange(int(gmap.gy[-1]) + 1)
    if x_px is None:
        x_px = np.arange(int(gmap.gx[-1]) + 1)
    qy, qx = gmap.dense(z, y_px, x_px)
    qy, qx = qy - offset_px[0], qx - offset_px[1]
    if scale != 1:  # raw pixel q lies at (q + 0.5) / scale - 0.5 in the block-averaged image
        qy, qx = (qy + 0.5) / scale - 0.5, (qx + 0.5) / scale - 0.5
    return ndi.map_coordinates(np.asarray(image, np.float32), [qy, qx], order=order, mode="constant", cval=cval,
                               prefilter=order > 1)
