"""Block matching: normalised cross-correlation (NCC) of many patches at once.

The kernel of every alignment step. A template patch of one image is searched in a
larger window of the other; the NCC surface gives an integer peak, a parabolic fit
around it the sub-pixel offset, and the ratio of the best peak to the best one
outside its neighbourhood a quality score (a repetitive or empty patch has a flat
surface and a ratio near 1, and is rejected).

All patches of a call share one shape, so the correlations run as one batched FFT
(``scipy.fft``); the local window statistics come from summed-area tables. This is
the NCC of :func:`skimage.feature.match_template`, vectorised over patches.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

__all__ = ["Matches", "match_patches", "ncc_surfaces", "global_shift", "prefilter"]


def _downsample(img, f):
    """``img`` averaged over f x f blocks (float32; a partial block at the edge is padded with 0)."""
    if f == 1:
        return img
    from skimage.transform import downscale_local_mean

    return downscale_local_mean(img, (f, f)).astype(np.float32)


def _upsample_linear(a, shape, f):
    """Linear interpolation of ``a`` (one pixel per f x f block) back to the pixel centres of ``shape``."""
    out = a
    for axis, n in enumerate(shape):
        q = np.clip((np.arange(n) + 0.5) / f - 0.5, 0, a.shape[axis] - 1)
        i0 = np.floor(q).astype(int)
        i1 = np.minimum(i0 + 1, a.shape[axis] - 1)
        w = (q - i0).astype(np.float32)
        w = w[:, None] if axis == 0 else w[None, :]
        lo, hi = np.take(out, i0, axis=axis), np.take(out, i1, axis=axis)
        out = lo + (hi - lo) * w
    return out


def _blur(x, sigma):
    """Gaussian blur of a float32 image; a wide one is computed on a block-averaged image.

    For ``sigma`` >= 6 px the image is averaged over f x f blocks (f a power of two up
    to sigma / 3), blurred there and interpolated back: at sigma 12 (the elastic
    band-pass) 4x faster than the full-resolution filter, and the band-passed image
    differs by 0.3 % of its own spread (rms, 2048 px generator section).
    """
    f = 1
    while 6 * f <= sigma:
        f *= 2
    if f == 1:
        return ndi.gaussian_filter(x, sigma)
    Y, X = x.shape
    xp = np.pad(x, ((0, (-Y) % f), (0, (-X) % f)), mode="reflect")
    d = xp.reshape(xp.shape[0] // f, f, xp.shape[1] // f, f).mean(axis=(1, 3), dtype=np.float32)
    # block averaging already blurred by a box of variance (f^2 - 1) / 12 pixels^2
    sd = np.sqrt(max(sigma * sigma - (f * f - 1) / 12, 0.25)) / f
    return _upsample_linear(ndi.gaussian_filter(d, sd), (Y, X), f)


def prefilter(img, mask=None, *, low=1.0, high=12.0):
    """Band-pass (difference of Gaussians, normalised over valid pixels) for matching.

    Removes the slow stain and brightness changes between sections and the pixel
    noise, so that the correlation rests on membranes and organelles; NaN or
    masked pixels do not leak into their surroundings.
    """
    x = np.asarray(img, np.float32)
    m = np.isfinite(x) if mask is None else (np.asarray(mask, bool) & np.isfinite(x))
    full = bool(m.all())
    x = np.where(m, x, 0).astype(np.float32)
    mf = None if full else m.astype(np.float32)
    out = []
    for s in (low, high):
        num = _blur(x, s)
        # the normalisation is 1 everywhere when every pixel is valid (reflecting borders)
        out.append(num if full else num / np.maximum(_blur(mf, s), 1e-3))
    return np.where(m, out[0] - out[1], 0).astype(np.float32)


class Matches(NamedTuple):
    """Result of :func:`match_patches` (one row per centre)."""

    centers: np.ndarray
    """(N, 2) patch centres in pixels of image ``a`` (float, pixel-centre coordinates)."""
    shifts: np.ndarray
    """(N, 2) where the patch lies in ``b`` minus where it lies in ``a`` (pixels)."""
    ncc: np.ndarray
    """(N,) NCC at the peak."""
    ratio: np.ndarray
    """(N,) peak NCC over the best NCC outside the peak's neighbourhood."""
    valid: np.ndarray
    """(N,) bool: the match passed the quality filters."""


def _box_sums(x, p):
    """Sums of every p x p window of each image in a batch (N, H, W) -> (N, H-p+1, W-p+1).

    Summed-area tables in float64 (integers for a boolean mask: exact counts), built in
    place to spare the allocations, which cost as much as the sums on large images.
    """
    x = np.asarray(x)
    n, h, w = x.shape
    if x.dtype == bool:
        dt = np.int32 if h * w < 2**31 else np.int64
    else:
        dt = np.float64
    c = np.empty((n, h + 1, w + 1), dt)
    c[:, 0, :] = 0
    c[:, :, 0] = 0
    inner = c[:, 1:, 1:]
    np.cumsum(x, axis=2, dtype=dt, out=inner)
    np.cumsum(inner, axis=1, out=inner)
    out = c[:, p:, p:] - c[:, :-p, p:]
    out -= c[:, p:, :-p]
    out += c[:, :-p, :-p]
    return out


def _correlations(t, w):
    """Cross-correlation of zero-mean templates (N, P, P) at every offset inside their windows (N, W, W).

    Single-precision FFTs at a fast length (twice as fast as double precision; the NCC
    it feeds moves by ~1e-6). The window's mean is taken out first, which leaves the
    correlation with a zero-mean template unchanged and keeps the float32 error small
    for images with a large offset.
    """
    p = t.shape[1]
    big = w.shape[1]
    n = sfft.next_fast_len(big, real=True)
    w = (w - w.mean(axis=(1, 2), keepdims=True)).astype(np.float32)
    # correlation = convolution with the flipped template; entries p-1 .. big-1 have no wrap-around
    ft = sfft.rfft2(np.ascontiguousarray(t[:, ::-1, ::-1], np.float32), s=(n, n), workers=-1)
    ft *= sfft.rfft2(w, s=(n, n), workers=-1)
    return sfft.irfft2(ft, s=(n, n), workers=-1)[:, p - 1 : big, p - 1 : big]


def ncc_surfaces(templates: np.ndarray, windows: np.ndarray, *, window_sums=None) -> np.ndarray:
    """NCC of each template at every position inside its window.

    Parameters
    ----------
    templates : (N, P, P) float
    windows : (N, P + 2S, P + 2S) float
    window_sums : tuple of two (N, 2S + 1, 2S + 1) arrays, optional
        Sum and sum of squares of the window's pixels under the template at each
        offset, when the caller has them (e.g. from one summed-area table of the
        whole image); computed from ``windows`` otherwise.

    Returns
    -------
    (N, 2S + 1, 2S + 1) float64
        NCC; entry ``[n, S + dy, S + dx]`` compares the template with the window
        shifted by (dy, dx) from its centre. 0 where the window is flat.
    """
    t = np.asarray(templates, np.float64)
    w = np.asarray(windows, np.float64)
    p = t.shape[1]
    t = t - t.mean(axis=(1, 2), keepdims=True)
    tn = np.sqrt((t * t).sum(axis=(1, 2)))
    num = _correlations(t, w)
    if window_sums is None:
        s1, s2 = _box_sums(w, p), _box_sums(w * w, p)
    else:
        s1, s2 = window_sums
    var = s2 - s1 * s1 / (p * p)
    den = np.sqrt(np.maximum(var, 0)) * tn[:, None, None]
    out = np.zeros(num.shape)
    ok = den > 1e-9 * max(1.0, float(np.max(den)) if den.size else 1.0)
    out[ok] = num[ok] / den[ok]
    return np.clip(out, -1.0, 1.0)


def _sat_boxes(img, p):
    """Sums of every p x p window of one image, (H-p+1, W-p+1) (see :func:`_box_sums`)."""
    return _box_sums(np.asarray(img)[None], p)[0]


def _subpixel(surf, iy, ix):
    """Parabolic peak refinement along y and x (no refinement on the border)."""
    n = np.arange(len(surf))
    h, w = surf.shape[1:]
    dy = np.zeros(len(surf))
    dx = np.zeros(len(surf))
    inner_y = (iy > 0) & (iy < h - 1)
    inner_x = (ix > 0) & (ix < w - 1)
    c = surf[n, iy, ix]
    m = inner_y
    up, dn = surf[n[m], iy[m] - 1, ix[m]], surf[n[m], iy[m] + 1, ix[m]]
    den = up - 2 * c[m] + dn
    dy[m] = np.where(den < 0, 0.5 * (up - dn) / np.where(den < 0, den, -1), 0)
    m = inner_x
    lf, rt = surf[n[m], iy[m], ix[m] - 1], surf[n[m], iy[m], ix[m] + 1]
    den = lf - 2 * c[m] + rt
    dx[m] = np.where(den < 0, 0.5 * (lf - rt) / np.where(den < 0, den, -1), 0)
    return np.clip(dy, -0.5, 0.5), np.clip(dx, -0.5, 0.5)


def match_patches(a, b, centers, *, patch=48, search=16, min_ncc=0.15, min_ratio=1.1, exclusion=3,
                  a_mask=None, b_mask=None, batch=512, whole_window=False) -> Matches:
    """Find where patches of image ``a`` lie in image ``b``.

    Parameters
    ----------
    a, b : (Y, X) arrays
        Two images in (roughly) the same frame.
    centers : (N, 2) int array
        Patch centres in pixels of ``a`` (row, column); a patch covers
        ``[c - patch // 2, c - patch // 2 + patch)``.
    patch : int
        Template size in pixels.
    search : int
        Largest shift searched, pixels, along each axis.
    min_ncc, min_ratio : float
        Quality filter: peak NCC and peak ratio (see module docstring).
    exclusion : int
        Radius in pixels around the peak left out when looking for the second peak.
    a_mask, b_mask : (Y, X) bool, optional
        Pixels that may be used (False: missing, damaged, outside the image); a
        template touching an excluded pixel is not matched, nor a match whose
        footprint in ``b`` does (the whole search window with ``whole_window``).

    Returns
    -------
    Matches
    """
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    c = np.asarray(centers, int).reshape(-1, 2)
    half = patch // 2
    r = half + search
    pa = np.pad(a, r, mode="constant")
    pb = np.pad(b, r, mode="constant")
    ma = np.pad(np.ones(a.shape, bool) if a_mask is None else a_mask, r, constant_values=False)
    mb = np.pad(np.ones(b.shape, bool) if b_mask is None else b_mask, r, constant_values=False)
    n = len(c)
    shifts = np.zeros((n, 2))
    ncc = np.zeros(n)
    ratio = np.ones(n)
    valid = np.zeros(n, bool)
    ky = np.arange(-search, search + 1)
    KY, KX = np.meshgrid(ky, ky, indexing="ij")
    # Window statistics: when the patches cover the image densely (the elastic grid), one
    # summed-area table of the whole image is ~10x cheaper than one per window.
    k = 2 * search + 1
    dense = n * (patch + 2 * search) ** 2 > pb.size
    if dense:
        win = np.lib.stride_tricks.sliding_window_view
        b1 = win(_sat_boxes(pb, patch), (k, k))
        b2 = win(_sat_boxes(np.square(pb, dtype=np.float64), patch), (k, k))  # (pb is float32)
        bm = _sat_boxes(mb, patch)
        am = _sat_boxes(ma, patch)
    for s0 in range(0, n, batch):
        cc = c[s0 : s0 + batch]
        y0 = cc[:, 0] + r - half
        x0 = cc[:, 1] + r - half
        iy = y0[:, None] + np.arange(patch)[None, :]
        ix = x0[:, None] + np.arange(patch)[None, :]
        t = pa[iy[:, :, None], ix[:, None, :]]
        wy = (y0 - search)[:, None] + np.arange(patch + 2 * search)[None, :]
        wx = (x0 - search)[:, None] + np.arange(patch + 2 * search)[None, :]
        w = pb[wy[:, :, None], wx[:, None, :]]
        if dense:  # the window at offset (dy, dx) starts at (y0 - search + dy, x0 - search + dx)
            tm = am[y0, x0] >= patch * patch - 0.5
            surf = ncc_surfaces(t, w, window_sums=(b1[y0 - search, x0 - search], b2[y0 - search, x0 - search]))
        else:
            tm = ma[iy[:, :, None], ix[:, None, :]].all(axis=(1, 2))
            surf = ncc_surfaces(t, w)
        flat = surf.reshape(len(cc), -1)
        kk = np.argmax(flat, axis=1)
        py, px = np.unravel_index(kk, surf.shape[1:])
        peak = flat[np.arange(len(cc)), kk]
        far = (np.abs(KY[None] - KY.ravel()[kk][:, None, None]) > exclusion) | \
              (np.abs(KX[None] - KX.ravel()[kk][:, None, None]) > exclusion)
        second = np.where(far, surf, -1.0).reshape(len(cc), -1).max(axis=1)
        if whole_window:
            wm = mb[wy[:, :, None], wx[:, None, :]].all(axis=(1, 2))
        elif dense:  # the template's footprint at the peak must be valid
            wm = bm[y0 - search + py, x0 - search + px] >= patch * patch - 0.5
        else:
            full = _box_sums(mb[wy[:, :, None], wx[:, None, :]], patch)
            wm = full[np.arange(len(cc)), py, px] >= patch * patch - 0.5
        dy, dx = _subpixel(surf, py, px)
        sl = slice(s0, s0 + len(cc))
        shifts[sl, 0] = py - search + dy
        shifts[sl, 1] = px - search + dx
        ncc[sl] = peak
        ratio[sl] = peak / np.maximum(second, 1e-3)
        on_edge = (py == 0) | (px == 0) | (py == 2 * search) | (px == 2 * search)
        valid[sl] = tm & wm & ~on_edge & (peak >= min_ncc) & (ratio[sl] >= min_ratio)
    return Matches(c.astype(float), shifts, ncc, ratio, valid)


def global_shift(a, b, *, a_mask=None, b_mask=None, overlap=0.5, smooth=2.0, max_px=None):
    """Integer translation of ``b`` relative to ``a`` over the whole image (pixels, (dy, dx)).

    Masked normalised cross-correlation over every shift that leaves at least
    ``overlap`` of the images overlapping
    (:func:`skimage.registration.phase_cross_correlation` with masks, Padfield's
    method). ``b(p + shift) ~ a(p)``. With ``max_px``, images larger than that are
    block-averaged to it first (the shift is then a multiple of the factor): a start
    for patch matching, at a fraction of the cost (six FFTs of twice the image size).
    """
    from skimage.registration import phase_cross_correlation

    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    am = np.isfinite(a) if a_mask is None else (np.asarray(a_mask, bool) & np.isfinite(a))
    bm = np.isfinite(b) if b_mask is None else (np.asarray(b_mask, bool) & np.isfinite(b))
    f = int(np.ceil(max(*a.shape, *b.shape) / max_px)) if max_px else 1
    if f > 1:
        a, b = (_downsample(np.where(m, x, 0), f) for x, m in ((a, am), (b, bm)))
        am, bm = (_downsample(m.astype(np.float32), f) > 0.999 for m in (am, bm))
        smooth = smooth / f
        return f * global_shift(a, b, a_mask=am, b_mask=bm, overlap=overlap, smooth=smooth)
    # low-pass: the large structures persist over more sections than the fine ones
    a = ndi.gaussian_filter(np.where(am, a, 0), smooth) if smooth else np.where(am, a, 0)
    b = ndi.gaussian_filter(np.where(bm, b, 0), smooth) if smooth else np.where(bm, b, 0)
    res = phase_cross_correlation(a, b, reference_mask=am, moving_mask=bm, overlap_ratio=overlap)
    shift = res[0] if isinstance(res, tuple) else res
    # skimage returns the shift that registers `moving` onto `reference`: b shifted by it ~ a
    return -np.asarray(shift, float)
