"""Augmentations that imitate the failure modes of real serial-section EM.

Each takes a raw patch (float32, Z Y X, values ~0..1) and, where geometry changes, the
label patch too, and a numpy Generator; all are pure functions returning new arrays.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["augment"]


def _flip_transpose(raw, lab, rng, lsd=None):
    from ._lsd import flip_lsd, transpose_lsd

    if rng.random() < 0.5:
        raw, lab = raw[:, ::-1], lab[:, ::-1]
        lsd = None if lsd is None else flip_lsd(lsd, 1)
    if rng.random() < 0.5:
        raw, lab = raw[:, :, ::-1], lab[:, :, ::-1]
        lsd = None if lsd is None else flip_lsd(lsd, 2)
    if rng.random() < 0.5:
        raw, lab = raw.transpose(0, 2, 1), lab.transpose(0, 2, 1)
        lsd = None if lsd is None else transpose_lsd(lsd)
    if rng.random() < 0.5:
        raw, lab = raw[::-1], lab[::-1]
        lsd = None if lsd is None else flip_lsd(lsd, 0)
    return raw, lab, lsd


def _intensity(raw, rng):
    # per-section brightness/contrast, then a global gamma
    z = raw.shape[0]
    scale = rng.uniform(0.75, 1.25, (z, 1, 1)).astype(np.float32)
    shift = rng.uniform(-0.12, 0.12, (z, 1, 1)).astype(np.float32)
    raw = np.clip(raw * scale + shift, 0, 1)
    return raw ** np.float32(rng.uniform(0.7, 1.4))


def _noise_blur(raw, rng):
    if rng.random() < 0.3:
        raw = ndimage.gaussian_filter(raw, (0, rng.uniform(0.3, 1.2), rng.uniform(0.3, 1.2)))
    if rng.random() < 0.6:
        raw = raw + rng.normal(0, rng.uniform(0.01, 0.08), raw.shape).astype(np.float32)
    return raw


def _missing_and_damaged(raw, rng):
    z = raw.shape[0]
    if rng.random() < 0.25:
        k = rng.integers(z)
        raw[k] = rng.choice([0.0, float(raw.mean())])
    if rng.random() < 0.15:  # a dark damaged strip across one section
        k = rng.integers(z)
        y0 = rng.integers(raw.shape[1])
        raw[k, y0 : y0 + rng.integers(4, 16)] *= 0.2
    return raw


def _misalign(raw, lab, rng, max_px=4, lsd=None):
    # shift every section from k on, as a slip in the section stack would
    if rng.random() < 0.2:
        z = raw.shape[0]
        k = rng.integers(1, z) if z > 1 else 0
        dy, dx = rng.integers(-max_px, max_px + 1, 2)
        raw = raw.copy()
        lab = lab.copy()
        raw[k:] = np.roll(raw[k:], (dy, dx), axis=(1, 2))
        lab[k:] = np.roll(lab[k:], (dy, dx), axis=(1, 2))
        if lsd is not None:
            lsd = lsd.copy()
            lsd[:, k:] = np.roll(lsd[:, k:], (dy, dx), axis=(2, 3))
    return raw, lab, lsd


def _elastic(raw, lab, rng, amplitude=3.0, spacing=24, lsd=None):
    # smooth in-plane displacement, same for every section (a deformed block)
    if rng.random() >= 0.4:
        return raw, lab, lsd
    z, y, x = raw.shape
    gy, gx = max(2, y // spacing + 2), max(2, x // spacing + 2)
    coarse = rng.normal(0, amplitude, (2, gy, gx))
    field = np.stack([ndimage.zoom(c, (y / gy, x / gx), order=3)[:y, :x] for c in coarse])
    yy, xx = np.meshgrid(np.arange(y), np.arange(x), indexing="ij")
    coords = np.stack([yy + field[0], xx + field[1]])
    raw_out = np.stack([ndimage.map_coordinates(s, coords, order=1, mode="reflect") for s in raw])
    lab_out = np.stack([ndimage.map_coordinates(s, coords, order=0, mode="reflect") for s in lab])
    if lsd is not None:  # each voxel takes the descriptors of the voxel its label came from
        lsd = np.stack([[ndimage.map_coordinates(s, coords, order=0, mode="reflect") for s in c] for c in lsd])
    return raw_out.astype(np.float32), lab_out, lsd


def augment(raw: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, lsd: np.ndarray | None = None):
    """Apply a random mix of augmentations; returns (raw, labels), both contiguous.

    With ``lsd`` (the local shape descriptors of ``labels``, (10, Z, Y, X), computed with
    the context around the patch), returns ``(raw, labels, lsd)``: the descriptors follow
    the flips and transposes exactly; an elastic deformation or a section slip moves them
    with the labels (each voxel keeps the descriptors of the voxel its label came from),
    so they describe the tissue before that small deformation (displacements of a few
    pixels), an approximation that keeps every patch's target computed the same way,
    with context. The random draws are the same with and without ``lsd``.
    """
    carry = lsd is not None
    raw, labels, lsd = _flip_transpose(raw, labels, rng, lsd)
    raw, labels = np.ascontiguousarray(raw, np.float32), np.ascontiguousarray(labels)
    raw, labels, lsd = _elastic(raw, labels, rng, lsd=lsd)
    raw, labels, lsd = _misalign(raw, labels, rng, lsd=lsd)
    raw = _intensity(raw, rng)
    raw = _noise_blur(raw, rng)
    raw = _missing_and_damaged(raw.copy(), rng)
    raw, labels = np.ascontiguousarray(raw, np.float32), np.ascontiguousarray(labels)
    if not carry:
        return raw, labels
    return raw, labels, np.ascontiguousarray(lsd, np.float32)
