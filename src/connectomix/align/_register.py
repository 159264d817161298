"""Section-to-section registration of a stack: coarse (global rigid/affine) then elastic.

Both steps solve **globally over the stack**: every section is matched with its next
``neighbours`` usable sections, and one sparse least-squares problem places all of
them at once against the fixed reference section, so an error in one pair does not
accumulate along z as it would in a chain of pairwise registrations.

* **Coarse**: per pair, a whole-image translation (phase correlation), then patch
  matches on a grid give point correspondences ``(q_i, q_j)``; unknown per-section
  maps ``M_s`` (raw -> aligned; similarity or affine, linear in their parameters)
  satisfy ``M_i(q_i) = M_j(q_j)``. Iteratively reweighted (Huber) to shed bad matches;
  ``model='rigid'`` projects the similarity onto rotations and re-solves translations.
  Sections that share no patch matches with any neighbour (beyond missing sections) are
  bridged by a whole-image rigid search.
* **Coarse refinement**: every section is resampled with its coarse map and adjacent usable
  sections are matched again with small patches of fine structure (no rotation between
  them any more, so many more and tighter matches); small per-section motions ``u_s``
  (the coarse model; affine when the elastic step follows) solve ``u_j - u_i = d_ij``
  globally, each pair weighted by the inverse of its own residual variance; three passes
  with a shrinking search range (one on large sections when the elastic passes follow).
* **Elastic**: every section is resampled with its current map; patch NCC between
  pairs gives displacements ``d_ij`` on the mesh nodes (quality-filtered by peak NCC
  and peak ratio); node corrections ``u_s`` solve ``u_j - u_i = d_ij`` with spring
  terms ``lambda (u_k - u_l)`` between neighbouring nodes of a section (a spring mesh
  with rest lengths from the current map). The update ``T_s(p) <- T_s(p + u_s(p))``
  is repeated with a shrinking search range. After every update the Jacobian of each
  map is checked; where a cell would fold (det <= ``min_jacobian``) the springs are
  stiffened and the step re-solved, so the mesh never inverts.
* **Section quality**: missing sections (empty, constant or NaN) are found before
  matching; damaged regions after the coarse pass, by the shipped defect network, which
  judges each section between its nearest usable neighbours (without torch: where a
  section matches both neighbours much worse than they match each other). Matching skips missing
  sections (pairs bridge to the next usable section); damaged regions are masked out
  of the matches.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse import linalg as splinalg

from ..errors import VolumeError
from ._match import _downsample, _subpixel, global_shift, match_patches, ncc_surfaces, prefilter
from ._mesh import GridMap, jacobian_det, warp_section

__all__ = ["RegisterSettings", "register_stack", "section_status", "damage_maps", "rigid_search"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisterSettings:
    """Parameters of :func:`register_stack` (pixels unless stated).

    Attributes
    ----------
    model : {'translation', 'rigid', 'affine'}
        Coarse per-section model.
    neighbours : int
        Each section is matched with this many next usable sections.
    coarse_patch, coarse_search, coarse_stride : int
        Patch size, search radius and grid stride of coarse matching.
    coarse_max_px : int
        Coarse matching runs on sections downsampled to at most this size.
    mesh_spacing : int
        Elastic mesh node spacing.
    patch : int
        Elastic patch size.
    search : tuple of int
        Elastic search radius, one per iteration (see ``large_px``).
    stiffness : float
        Weight of the springs relative to one match (larger: smoother). With
        ``mesh_spacing`` and ``elastic_prior``: measured on generator stacks of 10 x 512 x
        512 px (50 px, 1.5 deg, 8 px warps; seeds 0-3), spacing 32 / stiffness 4 / prior
        0.05 place sections 0.2-0.3 px closer (median) than 16 / 1 / 0.2, in 60 % of the
        time: a fine, soft mesh follows the local motion of oblique neurites.
    elastic_prior : float
        Pull of each section's elastic deviation from its coarse map towards zero, relative to
        one match: warps are independent from section to section, whereas the lateral drift of
        oblique neurites through the stack is not and should not be followed.
    elastic_band : (float, float)
        Band-pass (difference of Gaussians, sigmas in pixels) of the elastic matching.
    min_ncc, min_ratio : float
        Match quality filter (peak NCC, peak ratio).
    huber_px : float
        Matches off by more than this (after the solve) lose weight.
    min_jacobian : float
        Smallest Jacobian determinant allowed in a mesh cell.
    bridge_max_deg : float
        Largest relative rotation searched when a section is bridged to a section it shares no
        patch matches with (across missing sections).
    bridge_band : (float, float)
        Band-pass (sigmas, pixels) of that search: only large structures persist over a few
        sections. Measured on 142 pairs of 384 px generator sections two / three apart: median
        placement error 4.9 / 7.2 px with (8, 48) against 4.7 / 8.4 px with (4, 32), and fewer
        failures (off by more than 10 px: 5 % / 33 % against 11 % / 38 %); better on 11 pairs of
        192 px sections too.
    damage_window : int
        Window of the local NCC used to find damage.
    damage_shift : int
        For the end sections (one neighbour only) the local NCC is the best over shifts of up
        to this many pixels, so that a small residual misalignment is not taken for damage.
    damage_delta : float
        A pixel is damaged where the NCC with its neighbours falls this far below
        the neighbours' NCC with each other.
    damage_texture : float
        An end section must also have lost fine-structure contrast there: below this fraction
        of its neighbour's.
    damage_min_fraction : float
        A section with more damaged area than this fraction is ``damaged``.
    damage_min_elongation : float
        A damaged region the defect network finds must be at least this many times longer
        than wide (major over minor axis of its second moments; 0: any shape). Folds, cracks
        and smears are strips left by the knife; what the network confuses with them is
        round (a cell body with a nucleus in one neighbour only). Chosen on 24 generator
        stacks (8 x 256 x 256, seeds 0-23, rigid): 4 kept all 22 damaged sections found
        without it and dropped 13 of 18 false alarms; on 24 others (seeds 24-47) 22 of 24
        found and 2 false alarms, against 24 and 19 without it (``bench_defects.py``).
    damage_model : bool
        Find damage with the shipped defect network (when torch is installed); otherwise,
        and with False, by the local NCC rule (``damage_window`` ... ``damage_texture``).
    damage_max_px : int
        Sections larger than this are judged by the defect network averaged over k x k
        pixel blocks, k the smallest factor that brings them to this size among the
        factors the network was trained at (``connectomix train --task defects --scale``;
        larger sections are judged at the largest of them); the damage mask is then
        repeated back to full resolution.
    damage_probability : float
        A pixel is damaged where the defect network says so with more than this
        probability (the network is trained class-balanced, so 0.5 over-calls damage; on
        its validation volumes 0.95 finds 88 % of the strip pixels with 0.16 % false
        positives, 0.5 finds 99 % with 2.4 %).
    refine_neighbours : int
        Coarse refinement matches each section with this many next usable sections (1: the
        adjacent ones; sections two apart share little fine structure).
    refine_patch, refine_stride : int
        Patch size and grid stride of the coarse refinement.
    refine_search : tuple of int
        Search radius of each coarse refinement pass; empty: no refinement.
    large_px : int
        Sections at least this large (their larger side, px) run fewer passes: the first
        ``elastic_passes_large`` elastic passes and, when the elastic passes follow, the
        first ``refine_passes_large`` coarse refinement passes; with many matches per pair
        the passes converge sooner. On 10-section generator stacks (50 px, 1.5 deg, 8 px
        warps; with and without 2 missing + 1 damaged sections), median / 95th percentile
        residual with two elastic passes after one refinement pass, against all three of
        each: 0.81 / 2.95 px against 0.85 / 3.06 at 1024 px (seeds 0-1; 0.82 / 2.94 with a
        second search of 5 px), and 0.87 / 2.66 against 0.96 / 2.77 at 2048 px (seed 0, 8
        sections, second search 5 px), in 74-76 % of the time;
        but 2.35 / 9.35 against 2.18 / 9.39 at 384 px (seeds 0-3) and 6.64 / 21.8 against
        6.09 / 20.0 on the 256 px demo volume, where fewer matches average the tissue's own
        drift less. Without the elastic passes all refinement passes run (at 1024 px one
        pass left 0.30 / 1.61 px against 0.23 / 1.43 with three). Matching every second
        mesh node only cost 0.15 px of median at 1024 px.
    elastic_passes_large, refine_passes_large : int
        See ``large_px``.
    elastic_max_px : int or None
        The first elastic pass (the widest search) of sections larger than this runs on
        the sections averaged over k x k blocks (k brings them to this size; patch, search
        and band-pass scaled by 1/k); the passes after it run at full resolution. Off by
        default (None): a speed option. Measured with 2048 on 3 generator sections of
        4096 px (``bench_align.py --sections 3 --size 4096 --missing 0 --damaged 0``):
        11.1 s per section against 13.7, for a residual of 0.57 / 1.88 px against 0.48 /
        1.66; with 512 on four 1024 px stacks (seeds 0-1): 0.80 / 2.99 against 0.81 / 2.95
        in 85 % of the time.
    refine_band : (float, float)
        Band-pass of the coarse refinement (fine structure: membranes, organelles).
    refine_max_px : int
        Sections larger than this are refined block-averaged to it (the affine motions rest
        on thousands of matches, and the elastic passes after it work at full resolution):
        4x less work on 4096 px sections. ``refine_patch``, ``refine_stride``,
        ``refine_search`` and ``refine_band`` are then in pixels of the averaged sections
        (at 4096 px: twice as many full-resolution pixels).
    refine_huber : float
        In the coarse refinement, matches off by more than this many times their pair's
        residual spread lose weight.
    """

    model: str = "rigid"
    neighbours: int = 2
    coarse_patch: int = 64
    coarse_search: int = 24
    coarse_stride: int = 32
    coarse_max_px: int = 1024
    mesh_spacing: int = 32
    patch: int = 64
    search: tuple = (20, 6, 4)
    stiffness: float = 4.0
    elastic_prior: float = 0.05
    elastic_band: tuple = (1.0, 12.0)
    min_ncc: float = 0.1
    min_ratio: float = 1.2
    huber_px: float = 2.0
    min_jacobian: float = 0.5
    bridge_max_deg: float = 5.0
    bridge_band: tuple = (8.0, 48.0)
    damage_window: int = 24
    damage_shift: int = 2
    damage_delta: float = 0.3
    damage_texture: float = 0.6
    damage_min_fraction: float = 0.005
    damage_min_elongation: float = 4.0
    damage_model: bool = True
    damage_max_px: int = 2048
    damage_probability: float = 0.95
    refine_neighbours: int = 1
    refine_patch: int = 24
    refine_stride: int = 16
    refine_search: tuple = (16, 6, 3)
    large_px: int = 768
    elastic_passes_large: int = 2
    refine_passes_large: int = 1
    elastic_max_px: int | None = None
    refine_band: tuple = (1.0, 4.0)
    refine_max_px: int = 2048
    refine_huber: float = 2.0

    def validate(self):
        from ..errors import ConfigError

        if self.model not in ("translation", "rigid", "affine"):
            raise ConfigError(f"align model must be 'translation', 'rigid' or 'affine', got {self.model!r}")
        for name in ("neighbours", "coarse_patch", "coarse_search", "coarse_stride", "mesh_spacing", "patch",
                     "refine_neighbours", "refine_patch", "refine_stride", "refine_max_px", "damage_max_px", "large_px"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"align setting {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.elastic_max_px is not None and int(self.elastic_max_px) < 1:
            raise ConfigError(f"align setting elastic_max_px must be a positive integer or None, got {self.elastic_max_px!r}")
        for name in ("elastic_passes_large", "refine_passes_large"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"align setting {name} must be >= 0, got {getattr(self, name)!r}")
        if self.stiffness <= 0:
            raise ConfigError(f"align stiffness must be positive, got {self.stiffness}")
        if not self.damage_min_elongation >= 0:
            raise ConfigError(f"align damage_min_elongation must be >= 0, got {self.damage_min_elongation!r}")
        if not 0 < self.damage_probability < 1:
            raise ConfigError(f"align damage_probability must be between 0 and 1, got {self.damage_probability!r}")


# --------------------------------------------------------------------------- section quality
def section_status(stack, *, min_std: float = 1e-3, min_valid: float = 0.1):
    """Find missing sections: no finite pixels, (nearly) constant, or mostly zero.

    Returns
    -------
    (Z,) bool array ``missing`` and (Z,) float contrast (std / data range).
    """
    Z = stack.shape[0]
    missing = np.zeros(Z, bool)
    contrast = np.zeros(Z)
    for z in range(Z):
        s = np.asarray(stack[z], np.float32)
        fin = np.isfinite(s)
        nz = fin & (s != 0)
        if nz.mean() < min_valid:
            missing[z] = True
            continue
        v = s[nz]
        rng = float(v.max() - v.min()) or 1.0
        big = max(abs(float(v.max())), abs(float(v.min())), 1.0)
        contrast[z] = float(v.std()) / big
        if contrast[z] < min_std or rng / big < min_std:
            missing[z] = True
    return missing, contrast


def _local_ncc(a, b, m, w):
    """Dense NCC of a and b in w x w windows where both are valid (mask m)."""
    mf = m.astype(np.float32)
    n = ndi.uniform_filter(mf, w)
    n = np.maximum(n, 1e-6)
    a = np.where(m, a, 0).astype(np.float32)
    b = np.where(m, b, 0).astype(np.float32)
    ma = ndi.uniform_filter(a, w) / n
    mb = ndi.uniform_filter(b, w) / n
    va = ndi.uniform_filter(a * a, w) / n - ma * ma
    vb = ndi.uniform_filter(b * b, w) / n - mb * mb
    cab = ndi.uniform_filter(a * b, w) / n - ma * mb
    out = cab / np.sqrt(np.maximum(va * vb, 1e-12))
    out[(n < 0.9) | (va <= 1e-8) | (vb <= 1e-8)] = np.nan
    return np.clip(out, -1, 1)


def _local_texture(img, m, w):
    """Local standard deviation of a (band-passed) image in w x w windows."""
    x = np.where(m, img, 0).astype(np.float32)
    n = np.maximum(ndi.uniform_filter(m.astype(np.float32), w), 1e-6)
    mean = ndi.uniform_filter(x, w) / n
    return np.sqrt(np.maximum(ndi.uniform_filter(x * x, w) / n - mean * mean, 0))


@functools.lru_cache(maxsize=2)
def _defect_model(device: str = "cpu"):
    """The shipped defect network on ``device`` (loaded once), or None where torch or the weights are missing."""
    try:
        from ..models import load_model

        model, meta = load_model(None, task="defects", device=device)
        # the block-averagings it was trained at (full resolution always allowed: sections below damage_max_px)
        model.trained_scales = tuple(sorted({1} | {int(k) for k in meta.get("scales", [1]) if int(k) >= 1}))
        return model
    except ImportError:
        logger.info("torch is not installed: damaged sections found by neighbour NCC")
        return None
    except Exception as e:  # noqa: BLE001 - a broken install must not stop alignment; say why
        logger.warning("defect network unavailable (%s); damage found by neighbour NCC", e)
        return None


def damage_method(settings: RegisterSettings) -> str:
    """``'network'`` where the shipped defect network finds damage, else ``'ncc'``."""
    return "network" if settings.damage_model and _defect_model("cpu") is not None else "ncc"


def _intensity_scale(rendered, idx, dtype=None):
    """(low, high) grey values mapped to 0..1 for the defect network (trained on 8-bit data / 255).

    Integer data: the range of its type; floats within 0..1: as they are; other floats:
    the 0.5-99.5 percentiles of the sections.
    """
    if dtype is not None and np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(np.dtype(dtype))
        return float(info.min), float(info.max)
    samples = [r[np.isfinite(r)][::97] for r in (rendered[z] for z in idx)]
    vals = np.concatenate(samples) if samples else np.zeros(0)
    if not len(vals):
        return 0.0, 1.0
    if vals.min() >= 0 and vals.max() <= 1:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def damage_maps(rendered, usable, settings: RegisterSettings, dtype=None, *, sections=None, device: str = "cpu"):
    """Damaged pixels of each section (aligned frame).

    With the defect network that ships with connectomix (``connectomix train --task
    defects``), each section is judged between its nearest usable neighbours; without
    it (no torch, or ``settings.damage_model=False``), where the section matches both
    neighbours much worse (local NCC) than they match each other.

    Parameters
    ----------
    rendered : list of (Y, X) float arrays (NaN outside the data) or None per section
    usable : (Z,) bool, sections that are not missing
    settings : RegisterSettings
    dtype : numpy dtype, optional
        Of the original stack: sets the grey range the network reads (see
        :func:`_intensity_scale`).
    sections : iterable of int, optional
        Judge only these sections with the defect network (the others come back clean);
        default every usable section. The NCC rule always judges every section.
    device : str
        Where the defect network runs (``cpu`` or ``cuda``).

    Returns
    -------
    masks : list of (Y, X) bool or None (True = damaged), fractions : (Z,) float
    """
    settings.validate()
    Z = len(rendered)
    idx = [z for z in range(Z) if usable[z]]
    model = _defect_model(device) if settings.damage_model else None
    if not idx:
        return [None] * Z, np.zeros(Z)
    if model is not None:
        from ..models import defect_probability

        lo, hi = _intensity_scale(rendered, idx, dtype)
        judge = set(idx) if sections is None else {int(z) for z in sections}
        Y, X = rendered[idx[0]].shape
        need = int(np.ceil(max(Y, X) / int(settings.damage_max_px)))
        scales = sorted(getattr(model, "trained_scales", (1,)))
        f = 1 if need <= 1 else next((k for k in scales if k >= need), scales[-1])
        bads = {}
        for k, z in enumerate(idx):
            if z not in judge:
                continue
            prev = idx[k - 1] if k > 0 else None
            nxt = idx[k + 1] if k + 1 < len(idx) else None
            if prev is None and nxt is None:
                continue
            prev, nxt = (prev if prev is not None else nxt), (nxt if nxt is not None else prev)
            img = [(rendered[v] - lo) / (hi - lo) for v in (prev, z, nxt)]
            if f > 1:  # NaN (no data) spreads to its blocks, which defect_probability fills from the others
                img = [_downsample(np.pad(a, ((0, -Y % f), (0, -X % f)), mode="edge"), f) for a in img]
            prob = defect_probability(*img, model)
            if f > 1:
                prob = np.repeat(np.repeat(prob, f, 0), f, 1)[:Y, :X]
            bads[z] = (prob > settings.damage_probability) & np.isfinite(rendered[z])
        return _damage_masks(bads, Z, settings)
    valid = {z: np.isfinite(rendered[z]) for z in idx}
    smooth = {z: ndi.gaussian_filter(np.nan_to_num(rendered[z], nan=0.0), 1.0) for z in idx}
    w = settings.damage_window
    # the fine structure (membranes, organelles) is what a fold, crack or smear wipes out
    texture = {z: _local_texture(prefilter(rendered[z], valid[z], low=1.0, high=4.0), valid[z], w) for z in idx}
    cache = {}

    def ncc(a, b, tolerant=False):
        key = (min(a, b), max(a, b), tolerant)
        if key not in cache:
            # tolerant: best over small shifts, so that the residual misalignment of an end section
            # (largest far from the reference) is not taken for damage; a damaged strip matches at no shift
            d = int(settings.damage_shift) if tolerant else 0
            best = None
            for ty in sorted({-d, 0, d}):
                for tx in sorted({-d, 0, d}):
                    sb, vb = _shift_int(smooth[key[1]], valid[key[1]], (ty, tx))
                    c = _local_ncc(smooth[key[0]], sb, valid[key[0]] & vb, w)
                    best = c if best is None else np.fmax(best, c)
            cache[key] = best
        return cache[key]

    bads = {}
    ends = {}
    for k, z in enumerate(idx):
        prev = idx[k - 1] if k > 0 else None
        nxt = idx[k + 1] if k + 1 < len(idx) else None
        if prev is not None and nxt is not None:
            adj = np.fmax(ncc(z, prev), ncc(z, nxt))
            ref = ncc(prev, nxt)
            delta = settings.damage_delta
        else:
            other = nxt if nxt is not None else prev
            if other is None:
                continue
            # the reference pair spans the same number of sections as (z, other): similarity falls fast
            # with the distance in z, so an end section bridged across a missing one, compared with an
            # adjacent pair, looked damaged all over
            gap = abs(other - z)
            beyond = [u for u in idx if (u - other) * (other - z) > 0]
            far = min(beyond, key=lambda u: (abs(abs(u - other) - gap), -abs(u - other)), default=None)
            if far is None:
                continue
            adj = ncc(z, other, True)
            ref = ncc(other, far, True)
            ends[z] = other
            # an end section has one neighbour only: demand a clearer drop, that survives small shifts,
            # and a flattened fine structure (a fold, crack or smear), which a misaligned region keeps
            delta = settings.damage_delta + 0.15
            flat = texture[z] < settings.damage_texture * texture[other]
            bads[z] = (ref - adj > delta) & (ref > 0.2) & flat
            continue
        bads[z] = (ref - adj > delta) & (ref > 0.2)
    for z, other in ends.items():  # damage of the only neighbour is not this section's
        if other in bads:
            bads[z] &= ~ndi.binary_dilation(bads[other], iterations=w // 2)
    # no shape filter: the rule's maps are as coarse as its NCC window, which rounds a strip off
    return _damage_masks(bads, Z, settings, min_elongation=0.0)


def _damage_masks(bads, Z, settings: RegisterSettings, *, min_elongation=None):
    """Clean damaged-pixel maps (opening, small and round blobs dropped); masks of sections damaged enough.

    ``min_elongation`` defaults to ``settings.damage_min_elongation``.
    """
    w = settings.damage_window
    if min_elongation is None:
        min_elongation = settings.damage_min_elongation
    masks = [None] * Z
    frac = np.zeros(Z)
    for z, bad in bads.items():
        bad = ndi.binary_opening(bad, iterations=2)
        lab, n = ndi.label(bad)
        if n:
            sizes = ndi.sum(bad, lab, np.arange(1, n + 1))
            keep = np.zeros(n + 1, bool)
            keep[1:] = sizes >= max(64, 0.002 * bad.size)
            if min_elongation > 0:
                keep[1:] &= _elongation(lab, n) >= min_elongation
            bad = keep[lab]
        f = float(bad.mean())
        frac[z] = f
        if f >= settings.damage_min_fraction:
            masks[z] = ndi.binary_dilation(bad, iterations=w // 2)
    return masks, frac


def _elongation(lab, n):
    """Major over minor axis length (second moments) of regions 1..n of a label image."""
    from skimage.measure import regionprops

    return np.array([r.axis_major_length / max(r.axis_minor_length, 1e-9) for r in regionprops(lab)]).reshape(n)


# --------------------------------------------------------------------------- coarse
def _shift_int(img, mask, t):
    """img(p + t) for an integer t, zero/False outside."""
    ty, tx = int(t[0]), int(t[1])
    out = np.zeros_like(img)
    m = np.zeros_like(mask)
    Y, X = img.shape
    ys, yd = (slice(ty, Y), slice(0, Y - ty)) if ty >= 0 else (slice(0, Y + ty), slice(-ty, Y))
    xs, xd = (slice(tx, X), slice(0, X - tx)) if tx >= 0 else (slice(0, X + tx), slice(-tx, X))
    out[yd, xd] = img[ys, xs]
    m[yd, xd] = mask[ys, xs]
    return out, m


def _grid_centres(shape, half, stride):
    ys = np.arange(half, shape[0] - half, stride)
    xs = np.arange(half, shape[1] - half, stride)
    if not len(ys):
        ys = np.array([shape[0] // 2])
    if not len(xs):
        xs = np.array([shape[1] // 2])
    Y, X = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([Y.ravel(), X.ravel()], 1)


def _coarse_pair(a, am, b, bm, s: RegisterSettings):
    """Correspondences (q_a, q_b, weight) between two (downsampled) sections."""
    # a start within a few pixels is enough: the patches search +-coarse_search around it
    t = np.round(global_shift(a, b, a_mask=am, b_mask=bm, max_px=256)).astype(int)
    a = prefilter(a, am)
    bs, bms = _shift_int(prefilter(b, bm), bm, t)
    P = min(s.coarse_patch, min(a.shape) // 2)
    S = min(s.coarse_search, min(a.shape) // 4)
    c = _grid_centres(a.shape, P // 2 + 1, min(s.coarse_stride, max(P // 2, 1)))
    m = match_patches(a, bs, c, patch=P, search=S, min_ncc=s.min_ncc, min_ratio=s.min_ratio, a_mask=am,
                      b_mask=bms)
    v = m.valid
    qa = m.centers[v]
    qb = m.centers[v] + m.shifts[v] + t
    # a pair is trusted only when enough matches agree on one rigid motion
    if v.sum() < max(4, 0.1 * len(v)):
        return qa[:0], qb[:0], np.zeros(0)
    A = np.c_[qa, np.ones(len(qa))]
    sol, *_ = np.linalg.lstsq(A, qb, rcond=None)
    r = np.linalg.norm(A @ sol - qb, axis=1)
    keep = r <= max(3.0, 2.5 * np.median(r))
    if keep.sum() < max(4, 0.5 * v.sum()) or np.median(r) > 4.0:
        return qa[:0], qb[:0], np.zeros(0)
    return qa[keep], qb[keep], np.clip(m.ncc[v][keep], 0.05, 1.0)


def _rot(th):
    return np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])


def rigid_search(a, am, b, bm, *, max_deg: float = 5.0, step: float = 0.5, band=(4.0, 32.0), max_px: int = 384,
                 search: int = 12):
    """Whole-image rigid motion of ``b`` relative to ``a`` (for pairs that patch matching cannot link).

    Sections a few sections apart share only their large structures, so patches of fine
    texture no longer match; the whole image, band-passed to those large structures, still
    does. A translation from masked phase correlation, then a search over rotations (about
    the image centre) of the NCC of the whole overlap, each rotation with its best
    translation within ``search`` pixels, and a parabolic refinement of the best angle. When the
    best angle is an end of the range (no peak inside it), the rotation is taken as zero.

    Returns
    -------
    theta (radians), t (2,), ncc : the map ``q_b = R(theta) (q_a - c) + c + t`` (pixels, ``c`` the
    image centre) and the NCC at the optimum.
    """
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    f = max(1, int(np.ceil(max(a.shape) / max_px)))
    A, B = _downsample(a, f), _downsample(b, f)
    Am = _downsample(np.asarray(am, np.float32), f) > 0.999
    Bm = _downsample(np.asarray(bm, np.float32), f) > 0.999
    lo, hi = max(1.0, band[0] / f), max(4.0, band[1] / f)
    pa = prefilter(A, Am, low=lo, high=hi)
    pb = prefilter(B, Bm, low=lo, high=hi)
    t0 = global_shift(pa, pb, a_mask=Am, b_mask=Bm, smooth=0)
    c = np.array([(A.shape[0] - 1) / 2, (A.shape[1] - 1) / 2])
    S = int(search)
    M = max(S + 2, min(A.shape) // 8)

    def warp(img, th, t, order=1):
        R = _rot(th)
        return ndi.affine_transform(img, R, offset=c - R @ c + t, order=order, mode="constant", cval=0.0)

    def score(th):
        # b warped into a's frame by the rotation and the initial translation, then the best residual shift
        t = _rot(th) @ t0
        bw = warp(pb, th, t)
        mw = warp(Bm.astype(np.float32), th, t) > 0.999
        am_in = Am[M:-M, M:-M]
        tmpl = np.where(am_in, pa[M:-M, M:-M], 0)[None]
        win = np.where(mw, bw, 0)[None, M - S : A.shape[0] - M + S, M - S : A.shape[1] - M + S]
        surf = ncc_surfaces(tmpl, win)[0]
        k = np.unravel_index(int(np.argmax(surf)), surf.shape)
        dy, dx = _subpixel(surf[None], np.array([k[0]]), np.array([k[1]]))
        d = np.array([k[0] - S + dy[0], k[1] - S + dx[0]])
        return float(surf[k]), t + _rot(th) @ d

    ths = np.deg2rad(np.arange(-max_deg, max_deg + 1e-9, step))
    sc = np.array([score(th)[0] for th in ths])
    k = int(np.argmax(sc))
    th = float(ths[k])
    if 0 < k < len(ths) - 1:
        den = sc[k - 1] - 2 * sc[k] + sc[k + 1]
        if den < 0:
            th += float(np.clip(0.5 * (sc[k - 1] - sc[k + 1]) / den, -0.5, 0.5)) * (ths[1] - ths[0])
    else:
        # the best angle on the edge of the range: no peak inside the rotations searched, so no
        # evidence of a rotation (measured: +5.0 deg found where the truth was -0.8 deg)
        th = 0.0
    best, t = score(th)
    # back to the pixels of the input: q = f (q_small + 0.5) - 0.5, centres map to centres
    return th, t * f, best


def _solve_coarse(pairs, Z, ref, usable, centre, model, huber):
    """Global least squares for per-section maps M_s (raw -> aligned), M_ref = identity."""
    free = [z for z in range(Z) if usable[z] and z != ref]
    col = {z: k for k, z in enumerate(free)}
    npar = 6 if model == "affine" else 4

    def rows_for(z, q, sign, rows_y, rows_x, rhs_y, rhs_x, base):
        # contributes sign * M_z(q) (centred coordinates) to the equations
        n = len(q)
        r = base + np.arange(n)
        if z == ref:
            rhs_y -= sign * q[:, 0]
            rhs_x -= sign * q[:, 1]
            return
        k0 = col[z] * npar
        if model == "affine":  # y = a11 y + a12 x + ty; x = a21 y + a22 x + tx
            rows_y.extend([(r, k0 + 0, sign * q[:, 0]), (r, k0 + 1, sign * q[:, 1]), (r, k0 + 2, sign * np.ones(n))])
            rows_x.extend([(r, k0 + 3, sign * q[:, 0]), (r, k0 + 4, sign * q[:, 1]), (r, k0 + 5, sign * np.ones(n))])
        else:  # y = a y - b x + ty; x = b y + a x + tx
            rows_y.extend([(r, k0 + 0, sign * q[:, 0]), (r, k0 + 1, -sign * q[:, 1]), (r, k0 + 2, sign * np.ones(n))])
            rows_x.extend([(r, k0 + 0, sign * q[:, 1]), (r, k0 + 1, sign * q[:, 0]), (r, k0 + 3, sign * np.ones(n))])

    entries_y, entries_x = [], []
    N = sum(len(p[2]) for p in pairs)
    rhs_y = np.zeros(N)
    rhs_x = np.zeros(N)
    w0 = np.zeros(N)
    base = 0
    for i, j, qi, qj, w in pairs:
        qi = qi - centre
        qj = qj - centre
        sl = slice(base, base + len(w))
        ry, rx = rhs_y[sl], rhs_x[sl]
        rows_for(i, qi, 1.0, entries_y, entries_x, ry, rx, base)
        rows_for(j, qj, -1.0, entries_y, entries_x, ry, rx, base)
        w0[sl] = w
        base += len(w)

    def assemble(entries):
        r = np.concatenate([e[0] for e in entries]) if entries else np.zeros(0, int)
        c = np.concatenate([np.full(len(e[0]), e[1]) for e in entries]) if entries else np.zeros(0, int)
        v = np.concatenate([e[2] for e in entries]) if entries else np.zeros(0)
        return sparse.csr_matrix((v, (r, c)), shape=(N, len(free) * npar))

    A = sparse.vstack([assemble(entries_y), assemble(entries_x)]).tocsr()
    b = np.concatenate([rhs_y, rhs_x])
    # weak prior towards the identity keeps sections without matches determined
    prior = np.zeros(len(free) * npar)
    for k in range(len(free)):
        prior[k * npar : (k + 1) * npar] = [1, 0, 0, 0, 1, 0] if model == "affine" else [1, 0, 0, 0]
    eps = 1e-6
    w = w0.copy()
    x = prior.copy()
    for _ in range(6):
        W = sparse.diags(np.concatenate([w, w]))
        Nm = (A.T @ W @ A + eps * sparse.eye(A.shape[1])).tocsc()
        x = splinalg.spsolve(Nm, A.T @ (W @ b) + eps * prior) if A.shape[1] else x
        res = (A @ x - b).reshape(2, N)
        r = np.hypot(res[0], res[1])
        w = w0 * np.where(r <= huber, 1.0, huber / np.maximum(r, 1e-12))
    maps = {}
    for z in range(Z):
        if z == ref:
            maps[z] = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        elif z in col:
            p = x[col[z] * npar : (col[z] + 1) * npar]
            if model == "affine":
                maps[z] = np.array([[p[0], p[1], p[2]], [p[3], p[4], p[5]]])
            else:
                a, bb = p[0], p[1]
                if model in ("rigid", "translation"):
                    nrm = np.hypot(a, bb) or 1.0
                    a, bb = (a / nrm, bb / nrm) if model == "rigid" else (1.0, 0.0)
                maps[z] = np.array([[a, -bb, p[2]], [bb, a, p[3]]])
    if model in ("rigid", "translation"):
        maps = _refit_translations(pairs, maps, ref, centre, w)
    return maps, r, w


def _refit_translations(pairs, maps, ref, centre, weights):
    """With the linear parts fixed, re-solve the translations (linear, global)."""
    free = [z for z in maps if z != ref]
    col = {z: k for k, z in enumerate(free)}
    rows, cols, vals, rhs, ws = [], [], [], [], []
    base = 0
    n = 0
    for i, j, qi, qj, w in pairs:
        k = len(w)
        wi = weights[base : base + k]
        base += k
        ri = (qi - centre) @ maps[i][:, :2].T
        rj = (qj - centre) @ maps[j][:, :2].T
        d = rj - ri  # t_i - t_j = d
        for comp in range(2):
            r = n + np.arange(k)
            if i != ref:
                rows.append(r); cols.append(np.full(k, 2 * col[i] + comp)); vals.append(np.ones(k))
            if j != ref:
                rows.append(r); cols.append(np.full(k, 2 * col[j] + comp)); vals.append(-np.ones(k))
            rhs.append(d[:, comp]); ws.append(wi)
            n += k
    if not free or n == 0:
        return maps
    A = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, 2 * len(free)))
    W = sparse.diags(np.concatenate(ws))
    t = splinalg.spsolve((A.T @ W @ A + 1e-9 * sparse.eye(A.shape[1])).tocsc(), A.T @ (W @ np.concatenate(rhs)))
    out = dict(maps)
    for z in free:
        m = maps[z].copy()
        m[:, 2] = t[2 * col[z] : 2 * col[z] + 2]
        out[z] = m
    return out


def _affine_grid(gmap: GridMap, z, M, centre):
    """Set section z's nodes to the inverse of p = L (q - c) + c + t."""
    L, t = M[:, :2], M[:, 2]
    Li = np.linalg.inv(L)
    GY, GX = np.meshgrid(gmap.gy, gmap.gx, indexing="ij")
    p = np.stack([GY.ravel(), GX.ravel()], 1)
    q = (p - centre - t) @ Li.T + centre
    gmap.coords[z] = q.T.reshape(2, len(gmap.gy), len(gmap.gx))


# --------------------------------------------------------------------------- coarse refinement
#: Largest scaling or shear (fraction) the affine refinement may give a section; sections
#: shrink or stretch by a few per cent at most.
MAX_AFFINE_STRAIN = 0.1


def _linear_rows(model, p, centre):
    """Design of a small aligned-frame motion ``u(p)`` (y and x rows, (n, k) each) for one model.

    translation: u = t; rigid: u = t + w (-(x - cx), y - cy); affine: u = t + B (p - c).
    """
    n = len(p)
    y, x = p[:, 0] - centre[0], p[:, 1] - centre[1]
    one, zero = np.ones(n), np.zeros(n)
    if model == "translation":
        return np.stack([one, zero], 1), np.stack([zero, one], 1)
    if model == "rigid":
        return np.stack([one, zero, -x], 1), np.stack([zero, one, y], 1)
    return (np.stack([one, zero, y, x, zero, zero], 1) / [1, 1, 100, 100, 1, 1],
            np.stack([zero, one, zero, zero, y, x], 1) / [1, 1, 1, 1, 100, 100])


def _solve_motions(matches, free, model, centre, huber):
    """Per-section aligned-frame motions from pair displacements, globally.

    ``matches``: (i, j, points (n, 2), d (n, 2), weights (n,)) with ``u_j(p) - u_i(p) = d``; the
    sections not in ``free`` do not move. Each pair's matches are weighted by the inverse of
    that pair's own residual variance (re-estimated every iteration), so a far pair that
    shares little structure (across a missing section) counts for less than a close one, and
    single matches off by more than ``huber`` of their pair's spread lose weight.

    Returns the parameters per section (see :func:`_linear_rows`) and the residuals (px).
    """
    col = {z: k for k, z in enumerate(free)}
    npar = {"translation": 2, "rigid": 3, "affine": 6}[model]
    rows, cols, vals, rhs, base, groups = [], [], [], [], 0, []
    for i, j, p, d, w in matches:
        n = len(p)
        if not n:
            continue
        ry, rx = _linear_rows(model, p, centre)
        for comp, R in ((0, ry), (1, rx)):
            r = base + comp * n + np.arange(n)
            for z, sign in ((j, 1.0), (i, -1.0)):
                if z in col:
                    rows.append(np.repeat(r, npar)); cols.append(np.tile(col[z] * npar + np.arange(npar), n))
                    vals.append(sign * R.ravel())
            rhs.append(d[:, comp])
        groups.append((base, n, np.asarray(w, float)))
        base += 2 * n
    if not free or not base:
        return {z: np.zeros(npar) for z in free}, np.zeros(0)
    A = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(base, len(free) * npar))
    b = np.concatenate(rhs)
    w = np.ones(base)
    for it in range(8):
        N = (A.T @ sparse.diags(w) @ A + 1e-6 * sparse.eye(A.shape[1])).tocsc()
        x = splinalg.spsolve(N, A.T @ (w * b))
        res = A @ x - b
        w = np.empty(base)
        rn = np.empty(base // 2)
        k = 0
        for b0, n, w0 in groups:
            r = np.hypot(res[b0 : b0 + n], res[b0 + n : b0 + 2 * n])
            rn[k : k + n] = r
            k += n
            # robust spread of this pair: matches on the same structures scatter together
            # (the median length of a 2-D Gaussian residual is 1.177 sigma)
            sig = max(float(np.median(r)) / 1.177, 0.25)
            ww = w0 / sig**2 * np.where(r <= huber * sig, 1.0, huber * sig / np.maximum(r, 1e-12))
            w[b0 : b0 + n] = ww
            w[b0 + n : b0 + 2 * n] = ww
    return {z: x[col[z] * npar : (col[z] + 1) * npar] for z in free}, rn


def _apply_motion(M, par, model, centre):
    """Compose a raw -> aligned map ``M`` (2 x 3, centred) with the inverse of the motion ``par``.

    The motion ``S(P) = P + u(P)`` sends the new aligned frame to the current one, so the new
    map is ``S^-1 o M``; for rigid motions the rotation is applied exactly.
    """
    t = np.asarray(par[:2], float)
    if model == "translation":
        L = np.eye(2)
    elif model == "rigid":
        L = _rot(float(par[2]))
    else:
        L = np.eye(2) + np.array([[par[2], par[3]], [par[4], par[5]]]) / 100.0
    Li = np.linalg.inv(L)
    return np.c_[Li @ M[:, :2], Li @ (M[:, 2] - t)]


def _averaged(section, z, k, mask):
    """Raw section ``z`` averaged over k x k blocks (NaN where a block is not all data) and the
    (aligned-frame) damage ``mask`` on the same blocks (a block with any damaged pixel; None stays None)."""
    a, m = section(z)
    if k == 1:
        return np.where(m, a, np.nan), mask
    m_small = _downsample(m.astype(np.float32), k) > 0.999
    bad = None if mask is None else _downsample(mask.astype(np.float32), k) > 0
    return np.where(m_small, _downsample(np.where(m, a, 0), k), np.nan), bad


def _refine_coarse(section, maps, gmap, usable, masks, reference, centre, s: RegisterSettings, say, model=None):
    """Refine the coarse maps in the aligned frame: render, match adjacent sections again, solve.

    Once the sections are roughly aligned, patches no longer differ by the pair's rotation, so
    small patches of fine structure match (several hundred per pair instead of a few dozen
    coarse ones), and the global solve of small motions ``u_s`` (``model``, default the
    settings' model) averages the lateral drift of individual neurites better. A pair without
    matches (across missing sections, where sections share little fine structure) keeps its
    current relative placement. ``maps`` and ``gmap`` are updated in place.

    Returns
    -------
    maps : {z: (2, 3)} raw -> aligned maps, residuals : (n,) px of the last pass
    """
    Z = len(usable)
    free = [z for z in range(Z) if usable[z] and z != reference]
    pairs = _pairs(usable, s.refine_neighbours)
    P = int(s.refine_patch)
    Yp, Xp = int(gmap.gy[-1]) + 1, int(gmap.gx[-1]) + 1
    res = np.zeros(0)
    # large sections: matched block-averaged by f (pixel i of the small frame is f * i + (f - 1) / 2)
    f = max(1, int(np.ceil(max(Yp, Xp) / int(s.refine_max_px))))
    ys, xs = f * np.arange(-(-Yp // f)) + (f - 1) / 2, f * np.arange(-(-Xp // f)) + (f - 1) / 2

    @functools.lru_cache(maxsize=None if f > 1 else 0)  # the small sections are kept between passes
    def load(z):
        return _averaged(section, z, f, masks[z])

    for it, search in enumerate(s.refine_search):
        search = int(search)
        # at most ~100 x 100 patches per pair on large sections
        c = _grid_centres((len(ys), len(xs)), P // 2 + 1,
                          max(int(s.refine_stride), int(np.ceil(max(len(ys), len(xs)) / 100))))
        def look(z):
            a, bad = load(z)
            r = warp_section(a, gmap, z, y_px=ys, x_px=xs, cval=np.nan, scale=f)
            okz = np.isfinite(r) if bad is None else np.isfinite(r) & ~bad
            return okz, prefilter(r, okz, low=s.refine_band[0], high=s.refine_band[1])

        zs = [int(z) for z in np.flatnonzero(usable)]
        ok, img = (dict(zip(zs, v)) for v in zip(*_map(look, zs)))

        def match(pair):
            i, j = pair
            return match_patches(img[i], img[j], c, patch=P if search <= P // 2 else max(P, 2 * search),
                                 search=search, min_ncc=s.min_ncc, min_ratio=s.min_ratio, a_mask=ok[i], b_mask=ok[j])

        ms = []
        for (i, j), m in zip(pairs, _map(match, pairs)):
            v = m.valid
            if v.sum() >= 3:
                ms.append((i, j, f * m.centers[v] + (f - 1) / 2, f * m.shifts[v], np.ones(int(v.sum()))))
            else:  # nothing to go by: keep the pair's current relative placement (weakly)
                tie = _grid_centres((Yp, Xp), max(Yp, Xp) // 6, max(Yp, Xp) // 3).astype(float)
                ms.append((i, j, tie, np.zeros_like(tie), np.full(len(tie), 0.01)))
        model = model or s.model
        par, res = _solve_motions(ms, free, model, centre, s.refine_huber)
        applied = []
        for z, pz in par.items():
            new = _apply_motion(maps[z], pz, model, centre)
            sv = np.linalg.svd(new[:, :2], compute_uv=False)
            if sv.max() > 1 + MAX_AFFINE_STRAIN or sv.min() < 1 - MAX_AFFINE_STRAIN:
                # a section with few matches (bridged across missing ones, damaged) can get a wild affine
                # fit; sections do not shrink or shear that much, so it keeps its current map
                say(f"coarse refinement {it + 1}: section {z} would be scaled by {sv.min():.2f}-{sv.max():.2f}; "
                    "kept as it was")
                continue
            maps[z] = new
            _affine_grid(gmap, z, maps[z], centre)
            applied.append(pz)
        step = max((float(np.hypot(*pz[:2])) for pz in applied), default=0.0)
        say(f"coarse refinement {it + 1}: search {search} px, {len(ms)} pairs, {sum(len(m[2]) for m in ms)} matches, "
            f"largest shift {step:.2f} px, median residual {float(np.median(res)) if len(res) else float('nan'):.2f} px")
    return maps, res


# --------------------------------------------------------------------------- elastic
def _deviation(gmap: GridMap, z, M, centre):
    """Elastic deviation of section z's map from its coarse map, at the nodes (2, ny, nx)."""
    q = np.moveaxis(gmap.coords[z], 0, -1)
    p = (q - centre) @ M[:, :2].T + centre + M[:, 2]
    GY, GX = np.meshgrid(gmap.gy, gmap.gx, indexing="ij")
    return np.stack([p[..., 0] - GY, p[..., 1] - GX])


def _spring_matrix(ny, nx):
    """Difference operator over the 4-neighbour edges of an ny x nx node grid."""
    idx = np.arange(ny * nx).reshape(ny, nx)
    e = [np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1), np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1)]
    e = np.concatenate(e)
    m = len(e)
    r = np.repeat(np.arange(m), 2)
    c = e.ravel()
    v = np.tile([1.0, -1.0], m)
    return sparse.csr_matrix((v, (r, c)), shape=(m, ny * nx))


def _solve_elastic(matches, free, ref, nn, ny, nx, stiffness, huber, prior=0.0, deviation=None):
    """Node corrections u_s (2, ny, nx) from pair displacements (see module docstring).

    ``prior`` pulls each section's total elastic deviation from its coarse map
    (``deviation[z] + u_z``) towards zero: elastic distortions are independent from
    section to section, whereas the lateral drift of oblique neurites through the
    stack is not, and should not be followed.
    """
    col = {z: k for k, z in enumerate(free)}
    n_unk = len(free) * nn
    rows, cols, vals, rhs_y, rhs_x, w0 = [], [], [], [], [], []
    n = 0
    for i, j, nodes, d, w in matches:
        k = len(nodes)
        r = n + np.arange(k)
        if j in col:
            rows.append(r); cols.append(col[j] * nn + nodes); vals.append(np.ones(k))
        if i in col:
            rows.append(r); cols.append(col[i] * nn + nodes); vals.append(-np.ones(k))
        rhs_y.append(d[:, 0]); rhs_x.append(d[:, 1]); w0.append(w)
        n += k
    D = sparse.csr_matrix(
        (np.concatenate(vals) if vals else np.zeros(0),
         (np.concatenate(rows) if rows else np.zeros(0, int), np.concatenate(cols) if cols else np.zeros(0, int))),
        shape=(n, n_unk))
    by = np.concatenate(rhs_y) if rhs_y else np.zeros(0)
    bx = np.concatenate(rhs_x) if rhs_x else np.zeros(0)
    w0 = np.concatenate(w0) if w0 else np.zeros(0)
    G = _spring_matrix(ny, nx)
    R = sparse.block_diag([G] * len(free)) if free else sparse.csr_matrix((0, 0))
    reg = (stiffness * (R.T @ R) + (1e-4 + prior) * sparse.eye(n_unk)).tocsc()
    ey = np.zeros(n_unk)
    ex = np.zeros(n_unk)
    if prior and deviation is not None:
        for z in free:
            ey[col[z] * nn : (col[z] + 1) * nn] = deviation[z][0].ravel()
            ex[col[z] * nn : (col[z] + 1) * nn] = deviation[z][1].ravel()
    w = w0.copy()
    uy = ux = np.zeros(n_unk)
    for _ in range(4):
        W = sparse.diags(w)
        lu = splinalg.splu((D.T @ W @ D + reg).tocsc())
        uy = lu.solve(D.T @ (w * by) - prior * ey)
        ux = lu.solve(D.T @ (w * bx) - prior * ex)
        r = np.hypot(D @ uy - by, D @ ux - bx)
        w = w0 * np.where(r <= huber, 1.0, huber / np.maximum(r, 1e-12))
    out = {z: np.stack([uy[col[z] * nn : (col[z] + 1) * nn].reshape(ny, nx),
                        ux[col[z] * nn : (col[z] + 1) * nn].reshape(ny, nx)]) for z in free}
    return out, r


def _threads() -> int:
    """Threads for the per-section and per-pair work: the cores this process may use (at most 8)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def _render_all(render, usable):
    """Every usable section rendered (None for the others), on a few threads."""
    zs = [z for z in range(len(usable)) if usable[z]]
    out = dict(zip(zs, _map(render, zs)))
    return [out.get(z) for z in range(len(usable))]


def _map(fn, items):
    """``[fn(x) for x in items]`` on a few threads, in order.

    The work per item (band-pass filters, warps, FFT correlations, numpy arithmetic on whole
    sections) runs in scipy and numpy code that releases the GIL, so sections and pairs are
    processed side by side; every item is computed exactly as it would be alone, so the
    result does not depend on the number of threads.
    """
    items = list(items)
    n = min(_threads(), len(items))
    if n <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, items))


def _pairs(usable, neighbours):
    idx = [z for z in range(len(usable)) if usable[z]]
    out = []
    for k, i in enumerate(idx):
        for j in idx[k + 1 : k + 1 + neighbours]:
            out.append((i, j))
    return out


def register_stack(stack, *, reference: int, elastic: bool = True, settings: RegisterSettings = RegisterSettings(),
                   log=None, device: str = "cpu"):
    """Register every section of ``stack`` to the frame of section ``reference``.

    Parameters
    ----------
    stack : (Z, Y, X) array-like
        Sections (any numeric dtype; NaN marks pixels without data).
    reference : int
        Index of the section that keeps its frame.
    elastic : bool
        Refine the coarse maps with the elastic mesh.
    settings : RegisterSettings
    device : str
        Where the defect network runs: ``cpu`` or ``cuda`` (on 4096 px sections on this
        project's 2-core CPU it takes a third of the time).

    Returns
    -------
    dict
        ``map`` (GridMap: aligned pixel -> raw pixel per section), ``missing``,
        ``damaged_fraction``, ``damage_masks`` (aligned frame, None where clean),
        ``coarse`` (2 x 3 maps raw -> aligned, centred), ``min_jacobian``,
        ``stats`` (match counts and residuals per step; ``seconds``: time spent in the coarse,
        damage, refine and elastic steps).
    """
    s = settings
    s.validate()
    if damage_method(s) == "network":
        from ..models._unet import check_device

        check_device(device)  # a bad device or CONNECTOMIX_PRECISION stops here, not after the coarse pass
    say = log or (lambda msg: logger.info(msg))
    Z, Y, X = (int(v) for v in stack.shape)
    if Z < 2:
        raise VolumeError(f"alignment needs at least two sections, got a stack of shape {(Z, Y, X)}")
    if min(Y, X) < 32:
        raise VolumeError(f"sections of {Y} x {X} pixels are too small to align (need at least 32 x 32)")
    missing, contrast = section_status(stack)
    if missing[reference]:
        good = np.flatnonzero(~missing)
        if not len(good):
            raise VolumeError("every section is empty (missing): there is nothing to align")
        new = int(good[np.argmin(np.abs(good - reference))])
        say(f"reference section {reference} is missing; using section {new} instead")
        reference = new
    usable = ~missing
    if usable.sum() < 2:
        raise VolumeError("alignment needs at least two sections with data; all but one are missing")
    pairs = _pairs(usable, s.neighbours)
    stats = {}
    seconds = {"coarse": 0.0, "damage": 0.0, "refine": 0.0, "elastic": 0.0}  # where the time goes
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        seconds[name] += now - clock
        clock = now

    def section(z):
        a = np.asarray(stack[z], np.float32)
        m = np.isfinite(a)
        return np.where(m, a, 0).astype(np.float32), m

    # ---------------- coarse
    f = max(1, int(np.ceil(max(Y, X) / s.coarse_max_px)))
    def shrink(z):
        a, m = section(z)
        return _downsample(a, f), _downsample(m.astype(np.float32), f) > 0.999

    zs = [int(z) for z in np.flatnonzero(usable)]
    small = dict(zip(zs, _map(shrink, zs)))
    corr = []
    dropped = []
    for (i, j), (qa, qb, w) in zip(pairs, _map(lambda p: _coarse_pair(*small[p[0]], *small[p[1]], s), pairs)):
        if len(w):
            corr.append((i, j, (qa + 0.5) * f - 0.5, (qb + 0.5) * f - 0.5, w))
        else:
            dropped.append(f"{i}-{j}")
    if dropped:
        say(f"coarse: {len(dropped)} of {len(pairs)} section pairs do not match and are dropped "
            f"({', '.join(dropped[:12])}{', ...' if len(dropped) > 12 else ''})")
    linked = {reference}

    def grow():
        changed = True
        while changed:
            changed = False
            for i, j, *_ in corr:
                if (i in linked) != (j in linked):
                    linked.update((i, j))
                    changed = True

    grow()
    while True:
        lost = [int(z) for z in np.flatnonzero(usable) if int(z) not in linked]
        if not lost:
            break
        # bridge a gap (e.g. missing sections): a whole-image rigid motion (rotation search) to the nearest
        # linked section; the sections matched to this one by patches follow through their own pairs
        z = min(lost, key=lambda v: (min(abs(v - w) for w in linked), abs(v - reference)))
        near = min(linked, key=lambda v: (abs(v - z), v))
        th, t, score = rigid_search(*small[near], *small[z], max_deg=s.bridge_max_deg,
                                    band=tuple(b / f for b in s.bridge_band))
        a = small[near][0]
        qa = _grid_centres(a.shape, 8, max(8, min(a.shape) // 8)).astype(float)
        cs = np.array([(a.shape[0] - 1) / 2, (a.shape[1] - 1) / 2])
        qb = (qa - cs) @ _rot(th).T + cs + t
        corr.append((near, z, (qa + 0.5) * f - 0.5, (qb + 0.5) * f - 0.5, np.full(len(qa), 0.2)))
        linked.add(z)
        grow()
        say(f"coarse: section {z} matches no neighbour by patches; bridged to section {near} by a whole-image "
            f"rigid search (rotation {np.rad2deg(th):+.2f} deg, NCC {score:.2f})")
    pairs = [(i, j) for i, j, *_ in corr]
    centre = np.array([(Y - 1) / 2, (X - 1) / 2])
    maps, res, wts = _solve_coarse(corr, Z, reference, usable, centre, s.model, s.huber_px * max(2, f))
    stats["damage_method"] = damage_method(s)
    stats["coarse_matches"] = int(sum(len(c[4]) for c in corr))
    stats["coarse_residual_px_median"] = float(np.median(res)) if len(res) else float("nan")
    say(f"coarse ({s.model}): {len(pairs)} pairs, {stats['coarse_matches']} matches, "
        f"median residual {stats['coarse_residual_px_median']:.2f} px")
    gmap = GridMap.identity(Z, (Y, X), s.mesh_spacing)
    for z, M in maps.items():
        _affine_grid(gmap, z, M, centre)
    ny, nx = len(gmap.gy), len(gmap.gx)

    def render(z):
        a, m = section(z)
        a = np.where(m, a, np.nan)
        return warp_section(a, gmap, z, cval=np.nan)

    # ---------------- damage (after coarse, refined after the first elastic pass)
    # Found on the unrefined coarse maps: the test compares a section with its two neighbours, whose
    # own similarity (two sections apart) is weak on neurites running obliquely; measured there, the
    # refined maps lost a thin crack (tests/align/test_align_stage.py).
    rendered = _render_all(render, usable)
    lap("coarse")
    masks, dfrac = damage_maps(rendered, usable, s, stack.dtype, device=device)
    lap("damage")
    large = max(Y, X) >= int(s.large_px)
    refine = s.refine_search[: int(s.refine_passes_large)] if elastic and large else s.refine_search
    passes = s.search[: int(s.elastic_passes_large)] if large else s.search
    if refine:
        # the elastic mesh is free-form anyway: let the refinement take up the affine part of the warps
        model = "affine" if elastic and s.model == "rigid" else s.model
        maps, res = _refine_coarse(section, maps, gmap, usable, masks, reference, centre,
                                   replace(s, refine_search=tuple(refine)), say, model=model)
        stats["coarse_refined_residual_px_median"] = float(np.median(res)) if len(res) else float("nan")
        lap("refine")
    f_el = max(1, int(np.ceil(max(Y, X) / int(s.elastic_max_px)))) if elastic and s.elastic_max_px else 1
    # the first elastic pass reads the refined sections (with f_el > 1 it renders its own block averages;
    # without refinement the coarse renders are current; rigid-only alignment reads none)
    if elastic and refine and f_el == 1:
        rendered = _render_all(render, usable)
        lap("refine")
    free = [z for z in range(Z) if usable[z] and z != reference]
    min_jac = float(np.min(jacobian_det(gmap.coords[usable], gmap.gy, gmap.gx)))
    if elastic:
        half = s.patch // 2
        node_y = np.flatnonzero((gmap.gy >= half) & (gmap.gy <= Y - 1 - half))
        node_x = np.flatnonzero((gmap.gx >= half) & (gmap.gx <= X - 1 - half))
        NY, NX = np.meshgrid(node_y, node_x, indexing="ij")
        node_ids = (NY * nx + NX).ravel()
        centres = np.stack([gmap.gy[NY.ravel()], gmap.gx[NX.ravel()]], 1).astype(int)
        stiffness = s.stiffness
        for it, search in enumerate(passes):
            if it > 0:
                rendered = _render_all(render, usable)
            if it == 1:
                # judged again on the refined maps where the first look found any damage; a section in which
                # it found none stays clean (the first look, on the coarse maps, is the more sensitive one,
                # see above), which saves most of a defect-network pass
                lap("elastic")
                if damage_method(s) == "network":
                    suspect = [z for z in range(Z) if usable[z] and dfrac[z] > 0]
                    if suspect:
                        masks, dfrac = damage_maps(rendered, usable, s, stack.dtype, sections=suspect, device=device)
                else:
                    masks, dfrac = damage_maps(rendered, usable, s, stack.dtype, device=device)
                lap("damage")
            k = f_el if it == 0 else 1
            if k == 1:
                ok = {z: (np.isfinite(rendered[z]) & (masks[z] is None or ~masks[z]) if masks[z] is not None
                          else np.isfinite(rendered[z])) for z in range(Z) if usable[z]}
                views = rendered
            else:  # large sections: the widest search on k x k block averages (pixel i at k i + (k - 1) / 2)
                ys, xs = k * np.arange(-(-Y // k)) + (k - 1) / 2, k * np.arange(-(-X // k)) + (k - 1) / 2

                def render_small(z, k=k, ys=ys, xs=xs):
                    a_small, bad = _averaged(section, z, k, masks[z])
                    r = warp_section(a_small, gmap, z, y_px=ys, x_px=xs, cval=np.nan, scale=k)
                    return r, np.isfinite(r) if bad is None else np.isfinite(r) & ~bad

                zs = [z for z in range(Z) if usable[z]]
                views, ok = (dict(zip(zs, v)) for v in zip(*_map(render_small, zs)))
            zs = list(ok)
            img = dict(zip(zs, _map(lambda z: prefilter(views[z], ok[z], low=max(1.0, s.elastic_band[0] / k),
                                                        high=s.elastic_band[1] / k), zs)))
            ms = []
            n_valid = 0
            at = np.round((centres - (k - 1) / 2) / k).astype(int)  # the nodes in the averaged pixels

            def match(pair, search=int(search), k=k, at=at):
                i, j = pair
                return match_patches(img[i], img[j], at, patch=max(8, s.patch // k), search=-(-search // k),
                                     min_ncc=s.min_ncc, min_ratio=s.min_ratio, a_mask=ok[i], b_mask=ok[j])

            for (i, j), m in zip(pairs, _map(match, pairs)):
                v = m.valid
                n_valid += int(v.sum())
                ms.append((i, j, node_ids[v], k * m.shifts[v], np.ones(int(v.sum()))))
            dev = {z: _deviation(gmap, z, maps[z], centre) for z in free}
            for attempt in range(6):
                u, r = _solve_elastic(ms, free, reference, ny * nx, ny, nx, stiffness, s.huber_px,
                                      s.elastic_prior, dev)
                new = gmap.coords.copy()
                for z, uz in u.items():
                    new[z] = gmap.composed(z, uz)
                jac = float(np.min(jacobian_det(new[usable], gmap.gy, gmap.gx)))
                if jac > s.min_jacobian:
                    break
                stiffness *= 4
                say(f"elastic pass {it + 1}: mesh cell would fold (det {jac:.2f}); stiffness -> {stiffness:g}")
            else:
                # the maps it starts from fold already (or nearly): stiffer springs cannot help
                say(f"elastic pass {it + 1}: no fold-free mesh even with stiffness {stiffness:g} (min Jacobian "
                    f"{jac:.2f}); the elastic refinement stops and the sections keep their maps so far")
                stats["elastic_stopped_at_pass"] = it + 1
                break
            gmap.coords = new
            min_jac = jac
            umax = max((float(np.abs(uz).max()) for uz in u.values()), default=0.0)
            stats[f"elastic{it + 1}_matches"] = n_valid
            stats[f"elastic{it + 1}_residual_px_median"] = float(np.median(r)) if len(r) else float("nan")
            say(f"elastic pass {it + 1}: search {search} px, {n_valid} matches, largest correction {umax:.2f} px, "
                f"median residual {stats[f'elastic{it + 1}_residual_px_median']:.2f} px, min Jacobian {jac:.2f}")
        if len(passes) < 2:
            rendered = _render_all(render, usable)
            lap("elastic")
            masks, dfrac = damage_maps(rendered, usable, s, stack.dtype, device=device)
            lap("damage")
        # else the damage found before the second pass stands (with either method): the passes after it move
        # a section by about a pixel at most (largest correction 0.6-0.9 px on 1024 px stacks), and each run of
        # the defect network took a third of register_stack's time (1024 px, CPU)
    lap("elastic")
    stats["seconds"] = seconds
    # missing sections: interpolate the maps of their nearest usable neighbours
    good = np.flatnonzero(usable)
    for z in np.flatnonzero(missing):
        lo = good[good < z]
        hi = good[good > z]
        if len(lo) and len(hi):
            a, b = lo[-1], hi[0]
            t = (z - a) / (b - a)
            gmap.coords[z] = (1 - t) * gmap.coords[a] + t * gmap.coords[b]
        else:
            gmap.coords[z] = gmap.coords[lo[-1] if len(lo) else hi[0]]
    return dict(map=gmap, reference=reference, missing=missing, contrast=contrast, damaged_fraction=dfrac,
                damage_masks=masks, coarse=maps, min_jacobian=min_jac, stats=stats, settings=asdict(s))
