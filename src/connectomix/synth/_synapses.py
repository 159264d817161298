"""Synapses where neurites touch: clefts, postsynaptic densities, vesicle clouds.

Synapses are made at axonal boutons. Around each bouton the contact faces between
the bouton's segment and its neighbours are collected from the dense labels; the
neighbours with the largest contacts (one to three: synapses may be polyadic, as in
the fly) become postsynaptic partners. A synapse's cleft is the set of voxels on both
sides of the contact faces within the cleft radius of its site, its position is the
contact face at the centre of that patch (so pre and post touch exactly there), a
postsynaptic density lines the post side, and a cloud of vesicles fills the bouton
behind the cleft.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

__all__ = ["SynapseLayout", "place_synapses"]


@dataclass
class SynapseLayout:
    """Synapses and the ultrastructure that goes with them (canvas frame)."""

    rows: list = field(default_factory=list)  # dicts: synapse_id, pre_id, post_id, z, y, x, size_vx
    clefts: np.ndarray | None = None  # (Z, Y, X) uint32 synapse ids
    psd: np.ndarray | None = None  # (Z, Y, X) bool
    vesicles: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # z, y, x, radius (nm)


def _faces(sub, a, allowed):
    """Contact faces between label ``a`` and allowed other labels in ``sub``.

    Returns (partner, pre_voxel (n,3), post_voxel (n,3)) with local voxel indices.
    """
    partners, pre, post = [], [], []
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        u, v = sub[tuple(lo)], sub[tuple(hi)]
        step = np.zeros(3, np.int64)
        step[axis] = 1
        for x, y, flip in ((u, v, False), (v, u, True)):
            m = (x == a) & (y != a) & allowed[y]
            if not m.any():
                continue
            idx = np.argwhere(m)
            partners.append(y[m])
            if flip:  # x is the upper voxel
                pre.append(idx + step)
                post.append(idx)
            else:
                pre.append(idx)
                post.append(idx + step)
    if not partners:
        return np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64)
    return np.concatenate(partners).astype(np.int64), np.concatenate(pre), np.concatenate(post)


def place_synapses(lab, npl, settings, rng, *, val=None, mito=None):
    """Place synapses at boutons; return a :class:`SynapseLayout`.

    Parameters
    ----------
    lab : (Z, Y, X) uint32
        Final dense labels of the canvas.
    npl : Neuropil
        Cells (with classes) and boutons.
    settings : SynthSettings
    rng : numpy.random.Generator
    val : (Z, Y, X) float32, optional
        Stamped distance to the own tube surface (nm, negative inside); vesicles
        keep clear of membranes by it. Without it no vesicles are made.
    mito : (Z, Y, X) bool, optional
        Mitochondria; vesicles stay out of them.
    """
    s = settings
    vs = np.asarray(s.voxel_size, float)
    shape = np.array(lab.shape)
    n_labels = int(lab.max()) + 1
    is_axon = np.zeros(n_labels, bool)
    is_neuron = np.zeros(n_labels, bool)
    cell_of = np.zeros(n_labels, np.int64)
    for label, cell in npl.cells.items():
        if label < n_labels:
            is_neuron[label] = cell.cell_class == "neuron"
            is_axon[label] = cell.cell_type == "axon" or (cell.cell_class == "neuron" and cell.source != "procedural")
            cell_of[label] = cell.cell_id
    out = SynapseLayout(clefts=np.zeros(lab.shape, np.uint32), psd=np.zeros(lab.shape, bool))
    ves = []
    next_id = 1
    for b in npl.boutons:
        c_vx = np.floor(b.center / vs).astype(np.int64)
        if np.any(c_vx < 0) or np.any(c_vx >= shape):
            continue
        a = int(lab[tuple(c_vx)])
        p_syn = max(0.9, s.synapse_probability) if b.host is not None else s.synapse_probability
        if a == 0 or not is_axon[a]:
            continue
        if rng.random() > p_syn:
            if val is not None:
                ves.append(_vesicle_cloud(b.center + rng.normal(0, 0.3 * b.radius, 3), b, a, lab, val, vs, s, rng,
                                          mito, scale=0.6))
            continue
        reach = b.radius + 150.0
        lo = np.maximum(np.floor((b.center - reach) / vs).astype(np.int64), 0)
        hi = np.minimum(np.ceil((b.center + reach) / vs).astype(np.int64) + 1, shape)
        box = tuple(slice(l, h) for l, h in zip(lo, hi))
        sub = lab[box]
        allowed = is_neuron & (cell_of != cell_of[a])
        partner, pre, post = _faces(sub, a, allowed[: n_labels])
        if not len(partner):
            continue
        mid = ((pre + post) / 2.0 + lo + 0.5) * vs
        near = np.linalg.norm(mid - b.center, axis=1) <= b.radius + 100.0
        partner, pre, post, mid = partner[near], pre[near], post[near], mid[near]
        if not len(partner):
            continue
        ids, counts = np.unique(partner, return_counts=True)
        # contact area (nm^2) per partner: faces across z are y*x, others z*x or z*y
        area = np.zeros(len(ids))
        fa = np.where(pre[:, 0] != post[:, 0], vs[1] * vs[2], vs[0] * vs[1])
        np.add.at(area, np.searchsorted(ids, partner), fa)
        ok = area >= 12_000.0
        ids, area = ids[ok], area[ok]
        if not len(ids):
            continue
        n_post = int(rng.integers(s.synapse_per_bouton[0], s.synapse_per_bouton[1] + 1))
        chosen = ids[np.argsort(-area, kind="stable")]
        if b.host is not None:  # a follower's bouton synapses onto the dendrite it follows
            host_ids = chosen[cell_of[chosen] == b.host]
            chosen = np.concatenate([host_ids, chosen[cell_of[chosen] != b.host]])
        chosen = chosen[:n_post]
        sites = []
        for post_id in chosen:
            m = partner == post_id
            pm, pp, md = pre[m], post[m], mid[m]
            centre = md.mean(axis=0)
            k = int(np.argmin(np.linalg.norm(md - centre, axis=1)))
            site = md[k]
            r_cleft = rng.uniform(*s.cleft_radius)
            in_cleft = np.linalg.norm(md - site, axis=1) <= r_cleft
            vox = np.unique(np.concatenate([pm[in_cleft], pp[in_cleft]]), axis=0)
            flat = np.ravel_multi_index(tuple((vox + lo).T), lab.shape)
            if out.clefts.reshape(-1)[flat].any():
                continue  # overlaps an earlier cleft
            sid = next_id
            next_id += 1
            out.clefts.reshape(-1)[flat] = sid
            # postsynaptic density: post voxels within psd thickness of the cleft
            post_vox = pp[in_cleft]
            t_psd = rng.uniform(*s.psd_thickness)
            grow = np.ceil(t_psd / vs).astype(np.int64) + 1
            blo = np.maximum(post_vox.min(0) - grow, 0)
            bhi = np.minimum(post_vox.max(0) + grow + 1, np.array(sub.shape))
            seed = np.ones(tuple(bhi - blo), bool)
            seed[tuple((post_vox - blo).T)] = False
            dist = ndi.distance_transform_edt(seed, sampling=vs)
            pbox = tuple(slice(l, h) for l, h in zip(blo, bhi))
            psd = (dist <= t_psd) & (sub[pbox] == post_id)
            gbox = tuple(slice(l + o, h + o) for l, h, o in zip(blo, bhi, lo))
            out.psd[gbox] |= psd
            out.rows.append(
                dict(synapse_id=sid, pre_id=a, post_id=int(post_id), z=float(site[0]), y=float(site[1]),
                     x=float(site[2]), size_vx=int(len(vox)), pre_vox=(pm[k] + lo).tolist(),
                     post_vox=(pp[k] + lo).tolist())
            )
            sites.append(site)
        if sites and val is not None:
            ves.append(_vesicle_cloud(np.mean(sites, axis=0), b, a, lab, val, vs, s, rng, mito))
    if ves:
        out.vesicles = np.concatenate(ves)
    return out


def _vesicle_cloud(site, bouton, a, lab, val, vs, s, rng, mito, scale=1.0):
    """Vesicle centres (nm) and radii inside bouton ``a``, densest behind ``site``."""
    inward = bouton.center - site
    dist = np.linalg.norm(inward)
    n_hat = inward / dist if dist > 1e-6 else np.array([1.0, 0.0, 0.0])
    n = int(scale * rng.integers(s.vesicles_per_synapse[0], s.vesicles_per_synapse[1] + 1))
    cand = 4 * n
    size = max(bouton.radius, 120.0)
    depth = np.abs(rng.normal(0, 0.55, cand)) * size + 25.0
    lateral = rng.normal(0, 0.5, (cand, 3)) * size
    lateral -= (lateral @ n_hat)[:, None] * n_hat
    pts = site + depth[:, None] * n_hat + lateral
    radius = rng.uniform(*s.vesicle_radius, cand)
    # keep vesicles inside the bouton, clear of its membrane and of mitochondria
    v = np.floor(pts / vs).astype(np.int64)
    ok = np.all((v >= 0) & (v < np.array(lab.shape)), axis=1)
    good = np.zeros(cand, bool)
    vv = tuple(v[ok].T)
    g = (lab[vv] == a) & (-val[vv] >= radius[ok] + 6.0)
    if mito is not None:
        g &= ~mito[vv]
    good[np.flatnonzero(ok)[g]] = True
    pts, radius = pts[good][:n], radius[good][:n]
    return np.concatenate([pts, radius[:, None]], axis=1)
