"""EM image formation: from labels and ultrastructure to grey values.

:func:`render_content` draws what the tissue looks like after staining, in the
undistorted canvas frame and before the microscope: grey cytoplasm with texture,
dark membranes at label boundaries (broader and greyer where a membrane runs oblique
to the section), membranes that fade where staining is weak, dark textured
mitochondria with cristae, vesicle rings, clefts and postsynaptic densities, pale
glia with glycogen granules and nuclei in somata. :func:`image_sections` then applies
the microscope and the sectioning to each section of the (possibly warped) content:
blur, per-section brightness and contrast, uneven illumination and noise.
All values are floats in [0, 1] until :func:`to_uint8`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["render_content", "image_sections", "to_uint8", "smooth_noise"]


def smooth_noise(rng, shape, sigma, *, dtype=np.float32):
    """Gaussian-filtered white noise with unit standard deviation.

    ``sigma`` is per axis in voxels; large sigmas are made at low resolution and
    upsampled, so the cost stays proportional to the output size.
    """
    shape = tuple(int(s) for s in shape)
    sigma = np.broadcast_to(np.asarray(sigma, float), (len(shape),))
    factor = np.maximum(1, np.floor(sigma / 2.0)).astype(int)
    small = tuple(int(np.ceil(s / f)) + 2 for s, f in zip(shape, factor))
    n = rng.standard_normal(small, dtype=np.float32)
    n = ndi.gaussian_filter(n, sigma / factor, mode="wrap")
    for k, f in enumerate(factor):
        if f > 1:  # linear upsampling along axis k, as a small matrix product
            x = np.arange(shape[k]) / f
            j = np.floor(x).astype(int)
            w = (x - j).astype(np.float32)
            m = np.zeros((shape[k], small[k]), np.float32)
            m[np.arange(shape[k]), j] = 1 - w
            m[np.arange(shape[k]), j + 1] += w
            n = np.moveaxis(np.tensordot(m, np.moveaxis(n, k, 0), axes=(1, 0)), 0, k)
    n = np.ascontiguousarray(n[tuple(slice(0, s) for s in shape)])
    n -= n.mean()
    n /= n.std() + 1e-9
    return n.astype(dtype, copy=False)


def _boundaries(lab):
    """In-plane boundary (both sides) and across-section boundary masks."""
    b = np.zeros(lab.shape, bool)
    d = lab[:, 1:, :] != lab[:, :-1, :]
    b[:, 1:, :] |= d
    b[:, :-1, :] |= d
    d = lab[:, :, 1:] != lab[:, :, :-1]
    b[:, :, 1:] |= d
    b[:, :, :-1] |= d
    bz = np.zeros(lab.shape, bool)
    d = lab[1:] != lab[:-1]
    bz[1:] |= d
    bz[:-1] |= d
    return b, bz


def render_content(lab, cells, settings, rng, *, mito=None, mito_id=None, clefts=None, psd=None,
                   vesicles=None, nuclei=()):
    """Stained-tissue intensities (float32, 0 = black) of the canvas.

    Parameters
    ----------
    lab : (Z, Y, X) uint32
        Dense labels.
    cells : dict of label -> Cell
    settings : SynthSettings
    rng : numpy.random.Generator
    mito, mito_id : (Z, Y, X) bool and uint32, optional
        Mitochondria and their ids.
    clefts : (Z, Y, X) uint32, optional
    psd : (Z, Y, X) bool, optional
    vesicles : (N, 4) float, optional
        Vesicle centres (nm) and radii (nm).
    nuclei : sequence of (center (3,), radius, label)
    """
    s = settings
    vs = np.asarray(s.voxel_size, float)
    shape = lab.shape
    n_labels = int(lab.max()) + 1
    # cytoplasm: one grey per cell, axons a little darker, glia pale
    lut = np.full(n_labels, np.mean(s.cytoplasm), np.float32)
    is_glia = np.zeros(n_labels, bool)
    for label, cell in cells.items():
        if label >= n_labels:
            continue
        lo, hi = s.cytoplasm
        v = rng.uniform(lo, hi)
        if cell.cell_type == "axon":
            v -= 0.03
        elif cell.cell_class == "glia":
            v = min(0.9, hi + rng.uniform(0.02, 0.08))
            is_glia[label] = True
        lut[label] = v
    img = lut[lab]
    # texture: fine grain and a coarser mottle
    tex = smooth_noise(rng, shape, (0.0, 0.9, 0.9))
    tex *= np.float32(s.texture_amplitude)
    tex += smooth_noise(rng, shape, (0.6, 4.0, 4.0)) * np.float32(s.texture_amplitude * 0.6)
    img *= 1.0 + tex
    del tex
    # glycogen granules in glia
    if is_glia.any():
        g = is_glia[lab] & (rng.random(shape, dtype=np.float32) < 0.004)
        gran = ndi.gaussian_filter(g.astype(np.float32), (0, 0.8, 0.8)) * 4.0
        img *= 1.0 - np.clip(gran, 0, 0.5)
        del g, gran
    # nuclei: pale, with dark chromatin patches and a dark envelope
    for center, radius, label in nuclei:
        _draw_nucleus(img, lab, center, radius, label, vs, rng)
    # mitochondria
    if mito is not None and mito.any():
        _draw_mitochondria(img, mito, mito_id, vs, s, rng)
    # membranes: dark lines at label boundaries, weaker where staining is weak
    b, bz = _boundaries(lab)
    memb = b.astype(np.float32)
    np.maximum(memb, np.float32(0.3) * bz, out=memb)
    if clefts is not None:
        # thick, dark synaptic membranes; a cleft seen face-on is a fainter patch
        c = clefts > 0
        memb[c & b] = 1.8
        memb[c & ~b] = 0.45
    del b, bz
    memb = ndi.gaussian_filter(memb, (0, 0.7 * s.membrane_width_px, 0.7 * s.membrane_width_px))
    memb *= np.float32(1.0 / 0.75)
    strength = membrane_strength(rng, shape, s)
    memb *= strength
    np.clip(memb, 0, 1.6, out=memb)
    img *= 1.0 - np.float32(s.membrane_darkness) * memb
    del memb
    if psd is not None and psd.any():
        dark = ndi.gaussian_filter(psd.astype(np.float32), (0, 0.8, 0.8))
        img *= 1.0 - 0.4 * np.clip(dark * 1.5, 0, 1)
    if vesicles is not None and len(vesicles):
        _draw_vesicles(img, vesicles, vs)
    np.clip(img, 0, 1, out=img)
    return img


def membrane_strength(rng, shape, s):
    """Smooth field in [floor, 1]: where it is low, membranes barely stain."""
    n = smooth_noise(rng, shape, (2.0, 40.0, 40.0))
    t = np.quantile(n[:: max(1, shape[0] // 8), ::8, ::8], s.weak_membrane_fraction)
    w = 1.0 / (1.0 + np.exp(-(n - t) / 0.25))
    return (s.weak_membrane_floor + (1 - s.weak_membrane_floor) * w).astype(np.float32)


def _draw_mitochondria(img, mito, mito_id, vs, s, rng):
    z, y, x = np.nonzero(mito)
    ids = mito_id[z, y, x] if mito_id is not None else np.ones(len(z), np.uint32)
    n = int(ids.max()) + 1
    # cristae: stripes across each mitochondrion, in a random direction
    dirs = rng.standard_normal((n, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    period = rng.uniform(32.0, 55.0, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    shade = rng.uniform(0.85, 1.15, n)
    pos = np.stack([z * vs[0], y * vs[1], x * vs[2]], 1)
    proj = np.einsum("ij,ij->i", pos, dirs[ids])
    # cristae wander: perturb the stripe phase with smooth noise
    wobble = smooth_noise(rng, mito.shape, (0.5, 3.0, 3.0))[z, y, x]
    stripes = np.cos(2 * np.pi * proj / period[ids] + phase[ids] + 1.2 * wobble).astype(np.float32)
    cristae = np.clip(stripes - 0.3, 0, None)  # thin pale cristae on a dark matrix
    base = img[z, y, x] * (1 - s.mito_darkness * shade[ids])
    img[z, y, x] = base * (1 + 0.35 * cristae)
    # the double outer membrane: darker rim
    rim = mito & ~ndi.binary_erosion(mito, structure=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool))
    img[rim] *= 0.7


def _draw_vesicles(img, ves, vs):
    """Vesicles as rings (dark membrane, pale lumen) in each section they cross."""
    Z, Y, X = img.shape
    zc = (np.arange(Z) + 0.5) * vs[0]
    rows = []
    for dz_k in range(-2, 3):
        k = np.floor(ves[:, 0] / vs[0]).astype(int) + dz_k
        ok = (k >= 0) & (k < Z)
        dzn = np.abs(ves[ok, 0] - zc[k[ok]])
        r_in = np.sqrt(np.maximum(ves[ok, 3] ** 2 - dzn**2, 0.0))
        # a section is 40-80 nm thick: a vesicle near it still shows, fainter
        weight = np.clip(1.2 - dzn / (ves[ok, 3] + 0.5 * vs[0]), 0, 1)
        keep = weight > 0.05
        rows.append((k[ok][keep], ves[ok][keep], np.maximum(r_in[keep], ves[ok, 3][keep] * 0.6), weight[keep]))
    k = np.concatenate([r[0] for r in rows])
    v = np.concatenate([r[1] for r in rows])
    rad = np.concatenate([r[2] for r in rows]) / vs[1]
    w = np.concatenate([r[3] for r in rows])
    if not len(k):
        return
    half = 4
    oy, ox = np.mgrid[-half : half + 1, -half : half + 1]
    cy, cx = v[:, 1] / vs[1] - 0.5, v[:, 2] / vs[2] - 0.5
    py = np.round(cy).astype(int)[:, None] + oy.ravel()[None, :]
    px = np.round(cx).astype(int)[:, None] + ox.ravel()[None, :]
    dist = np.sqrt((py - cy[:, None]).astype(np.float32) ** 2 + (px - cx[:, None]).astype(np.float32) ** 2)
    rad = rad.astype(np.float32)[:, None]
    ring = np.exp(-0.5 * ((dist - rad) / np.float32(0.65)) ** 2) * np.float32(0.55)
    ring -= (dist < rad - 0.8) * np.float32(0.10)  # the pale lumen
    ring *= w.astype(np.float32)[:, None]
    ok = (py >= 0) & (py < Y) & (px >= 0) & (px < X) & (np.abs(ring) > 0.01)
    flat = ((k[:, None] * Y + py) * X + px)[ok]
    if not len(flat):
        return
    first = int(flat.min())
    dark = np.bincount(flat - first, weights=ring[ok], minlength=0).astype(np.float32)
    view = img.reshape(-1)[first : first + len(dark)]
    view *= 1.0 - np.clip(dark, -0.15, 0.7)


def _draw_nucleus(img, lab, center, radius, label, vs, rng):
    lo = np.maximum(np.floor((center - radius - 50) / vs).astype(int), 0)
    hi = np.minimum(np.ceil((center + radius + 50) / vs).astype(int) + 1, np.array(lab.shape))
    if np.any(hi <= lo):
        return
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    zz, yy, xx = np.meshgrid(*[(np.arange(a, b) + 0.5) * v - c for a, b, v, c in zip(lo, hi, vs, center)],
                             indexing="ij")
    d = np.sqrt(zz**2 + yy**2 + xx**2)
    inside = (d < radius) & (lab[box] == label)
    sub = img[box]
    chrom = smooth_noise(rng, sub.shape, (0.5, 5, 5))
    sub[inside] = (0.8 - 0.25 * (chrom[inside] > 1.0)) * (1 + 0.03 * chrom[inside])
    env = (np.abs(d - radius) < 12) & (lab[box] == label)
    sub[env] *= 0.45


def image_sections(content, settings, rng, *, blur=True):
    """Apply the microscope to each section (in place): blur, illumination, noise."""
    s = settings
    Z = content.shape[0]
    if blur and s.blur_px > 0:
        ndi.gaussian_filter(content, (0, s.blur_px, s.blur_px), output=content)
    gain = 1 + rng.uniform(-s.section_contrast, s.section_contrast, Z).astype(np.float32)
    offset = rng.uniform(-s.section_brightness, s.section_brightness, Z).astype(np.float32)
    if s.stain_field > 0:
        field = smooth_noise(rng, content.shape, (3.0, 60.0, 60.0))
        content *= 1 + np.float32(s.stain_field) * np.tanh(field)
        del field
    content -= 0.5
    content *= gain[:, None, None]
    content += 0.5 + offset[:, None, None]
    if s.noise > 0:
        for z in range(Z):  # section by section keeps the temporary small
            content[z] += rng.standard_normal(content.shape[1:], dtype=np.float32) * np.float32(s.noise)
    return content


def to_uint8(img):
    """[0, 1] floats to uint8 grey values."""
    out = np.empty(img.shape, np.uint8)
    np.clip(img * 255.0 + 0.5, 0, 255, out=img)
    out[...] = img
    return out
