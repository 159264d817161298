"""Dense ground-truth labels from tubes: stamping, space filling, clean-up.

Each voxel goes to the tube whose surface is nearest: ``argmin_t (d_t - r_t)`` with
``d_t`` the distance to tube t's centre line and ``r_t`` its radius there (an additively
weighted Voronoi partition). Tubes are stamped exactly out to a small margin beyond
their surface; the gaps left between them are filled by a breadth-first growth of the
labels (which keeps every label connected), except for the larger interstitial
pockets, which become glial processes. Connected pieces of one cell that got cut off
(two neurites that cross) either join their neighbour, when small, or become
segments of their own.
"""

from __future__ import annotations

import numpy as np

from ._capsules import CORE_BONUS, capsule_values, tube_segments

__all__ = ["stamp_tubes", "unpack", "grow_labels", "fill_labels", "split_pieces"]

_FAR = np.float32(1e9)


def _all_segments(tubes, floor=0.0):
    a, b, ra, rb, lab, th, host = [], [], [], [], [], [], []
    for tube in tubes:
        segs, rads = tube_segments(tube.points, np.maximum(tube.radii, floor))
        n = len(segs)
        a.append(segs[:, 0])
        b.append(segs[:, 1])
        ra.append(rads[:, 0])
        rb.append(rads[:, 1])
        lab.append(np.full(n, tube.label, np.int64))
        host.append(np.full(n, tube.label if tube.host is None else tube.host, np.int64))
        th.append(np.full(n, tube.thickness if tube.kind == "sheath" else 0.0))
    if not a:
        z = np.zeros((0, 3))
        return z, z, np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    return (np.concatenate(a), np.concatenate(b), np.concatenate(ra), np.concatenate(rb),
            np.concatenate(lab), np.concatenate(th), np.concatenate(host))


#: A tube's core (centre-line neighbourhood) beats other tubes: where two neurites
#: cross, the thinner one tunnels through the other instead of being cut in two.
CORE = (0.5, 22.0)
_SCALE = 16.0  # packed values: 1/16 nm steps
_OFFSET = 4096.0
EMPTY = np.iinfo(np.int64).max


def stamp_tubes(tubes, shape, voxel_size, *, margin=0.0, packed=None, restrict=None):
    """Stamp tubes: per voxel, the nearest tube surface and its label.

    Values pack the distance (high 32 bits) and the label (low 32 bits) into one
    int64 merged with ``numpy.minimum.at``, so the nearest surface wins and ties go
    to the smaller label, whatever the order of the tubes.

    Parameters
    ----------
    tubes : list of Tube
    shape : (int, int, int)
        Canvas shape in voxels.
    voxel_size : (z, y, x) nm
    margin : float
        Stamp voxels up to this far (nm) outside each tube's surface.
    packed : (Z, Y, X) int64, optional
        The packed array to stamp into (from an earlier call).
    restrict : (Z, Y, X) uint32, optional
        Each tube only claims voxels where ``restrict == tube.host`` (organelles
        inside their cell).

    Returns
    -------
    packed : (Z, Y, X) int64
        Unpack with :func:`unpack`.
    """
    shape = tuple(int(v) for v in shape)
    if packed is None:
        packed = np.full(shape, EMPTY, np.int64)
    flat = packed.reshape(-1)
    rflat = None if restrict is None else restrict.reshape(-1)
    # the thinnest neurite still crosses a section centre wherever it runs
    floor = 0.0 if restrict is not None else 0.55 * float(voxel_size[0])
    A, B, RA, RB, LAB, TH, HOST = _all_segments(tubes, floor)
    core = None if restrict is not None else CORE
    for idx, v, sg in capsule_values(A, B, RA, RB, shape, voxel_size, margin=margin, shell=TH, core=core):
        labs = LAB[sg]
        if rflat is not None:
            m = rflat[idx] == HOST[sg]
            idx, v, labs = idx[m], v[m], labs[m]
        code = (np.round((v.astype(np.float64) + _OFFSET) * _SCALE).astype(np.int64) << 32) | labs
        np.minimum.at(flat, idx, code)
    return packed


def unpack(packed):
    """Split packed stamp values into (labels uint32, distance float32 nm)."""
    empty = packed == EMPTY
    lab = (packed & 0xFFFFFFFF).astype(np.uint32)
    lab[empty] = 0
    val = ((packed >> 32).astype(np.float32) / _SCALE - _OFFSET).astype(np.float32)
    val[val < -CORE_BONUS / 2] += CORE_BONUS
    val[empty] = np.inf
    return lab, val


def _neighbour_offsets(padded_shape):
    _, py, px = padded_shape
    return {"y": (px, -px), "x": (1, -1), "z": (py * px, -py * px)}


def grow_labels(lab, mask=None, *, z_every=5, max_iter=10_000):
    """Fill zeros of ``lab`` (in place) by breadth-first growth of the labels.

    Growth is synchronous, one voxel per step in-plane and one section every
    ``z_every`` steps (anisotropic voxels grow at the same speed in nm); ties go to
    the larger label, so the result is deterministic. Only voxels where ``mask`` is
    True (default: all zeros) are filled. Each filled voxel is connected to its source
    label through filled voxels, so growth never disconnects a label.
    """
    shape = lab.shape
    padded = np.pad(lab, 1)
    flat = padded.ravel()
    todo = np.flatnonzero(np.pad(lab == 0 if mask is None else mask & (lab == 0), 1))
    if not len(todo):
        return lab
    offs = _neighbour_offsets(padded.shape)
    it = 0
    while len(todo) and it < max_iter:
        it += 1
        use = ["y", "x"] + (["z"] if it % z_every == 0 or shape[1] * shape[2] == 0 else [])
        best = np.zeros(len(todo), flat.dtype)
        for axis in use:
            for o in offs[axis]:
                np.maximum(best, flat[todo + o], out=best)
        ok = best > 0
        if not ok.any():
            if "z" in use:
                break
            continue
        flat[todo[ok]] = best[ok]
        todo = todo[~ok]
    lab[...] = padded[1:-1, 1:-1, 1:-1]
    return lab


def fill_labels(lab, npl, settings, rng):
    """Turn stamped tubes into a dense labelling with glial pockets (in place)."""
    # Close narrow gaps first, so only the cores of larger pockets remain.
    empty = lab == 0
    if not empty.any():
        return lab
    grow_labels(lab, z_every=5, max_iter=3)
    pockets = lab == 0
    if pockets.any() and settings.glia_pocket_min_vx > 0:
        import cc3d

        cc, n = cc3d.connected_components(pockets, connectivity=6, return_N=True)
        if n:
            sizes = np.bincount(cc.ravel(), minlength=n + 1)
            big = np.flatnonzero(sizes >= settings.glia_pocket_min_vx)
            big = big[big > 0]
            if len(big):
                new = np.zeros(n + 1, np.uint32)
                for comp in big:
                    new[comp] = npl.new_cell("glia", "glia", None)
                sel = new[cc]
                lab[pockets] = sel[pockets]
    grow_labels(lab)
    return lab


def split_pieces(lab, npl, min_piece_vx, _second=True):
    """Make every label connected (6-connectivity), in place.

    The largest piece of a label keeps it; a smaller piece joins the neighbouring
    label it touches most when it has fewer than ``min_piece_vx`` voxels, and becomes
    a new segment of the same cell otherwise. Returns ``{new_label: original_label}``.
    """
    import cc3d

    cc, n = cc3d.connected_components(lab, connectivity=6, return_N=True, out_dtype=np.uint32)
    if n == 0:
        return {}
    flat_cc = cc.ravel()
    sizes = np.bincount(flat_cc, minlength=n + 1)
    # original label of each component (all its voxels share it)
    comp_label = np.zeros(n + 1, np.int64)
    comp_label[flat_cc] = lab.ravel()
    comp_label[0] = 0
    # largest component per label keeps the label
    comps = np.arange(1, n + 1)
    by = np.lexsort((-sizes[comps], comp_label[comps]))
    c_sorted = comps[by]
    l_sorted = comp_label[c_sorted]
    is_first = np.concatenate([[True], l_sorted[1:] != l_sorted[:-1]])
    extra = c_sorted[~is_first]
    mapping = comp_label.copy()
    # tiny clips of cells that barely enter the volume join a neighbour too
    on_face = np.zeros(n + 1, bool)
    for axis in range(3):
        for end in (0, -1):
            on_face[np.unique(np.take(cc, end, axis=axis))] = True
    first_pieces = c_sorted[is_first]
    # (and specks: cells that other cells overgrew almost entirely)
    clips = first_pieces[(on_face[first_pieces] & (sizes[first_pieces] < min_piece_vx))
                         | (sizes[first_pieces] < min_piece_vx // 10)]
    small = np.concatenate([extra[sizes[extra] < min_piece_vx], clips])
    large = extra[sizes[extra] >= min_piece_vx]
    new_of = {}
    orphans = 0
    for c in large:
        orig = int(comp_label[c])
        cell = npl.cells[orig]
        new = npl.new_cell(cell.cell_class, cell.cell_type, cell.transmitter, cell.source, cell.cell_id)
        mapping[c] = new
        new_of[new] = orig
    if len(small):
        is_small = np.zeros(n + 1, bool)
        is_small[small] = True
        # most-touching neighbour of each small piece, looked up in the piece's own box
        best_pair = {}
        boxes = cc3d.statistics(cc)["bounding_boxes"]
        for c in small:
            box = tuple(slice(max(sl.start - 1, 0), sl.stop + 1) for sl in boxes[c])
            sub = cc[box]
            me = sub == c
            touch = np.zeros(sub.shape, bool)
            for axis in range(3):
                lo = [slice(None)] * 3
                hi = [slice(None)] * 3
                lo[axis], hi[axis] = slice(0, -1), slice(1, None)
                touch[tuple(lo)] |= me[tuple(hi)]
                touch[tuple(hi)] |= me[tuple(lo)]
            around = sub[touch & ~me]
            around = around[~is_small[around]]
            if len(around):
                ids, counts = np.unique(around, return_counts=True)
                best_pair[int(c)] = int(ids[np.argmax(counts)])
        for c in small:
            d_ = best_pair.get(int(c))
            if d_ is not None:
                mapping[c] = mapping[d_]
            elif _second:  # surrounded only by other small pieces: settle it in a second pass
                orphans += 1
            else:
                orig = int(comp_label[c])
                cell = npl.cells[orig]
                new = npl.new_cell(cell.cell_class, cell.cell_type, cell.transmitter, cell.source, cell.cell_id)
                mapping[c] = new
                new_of[new] = orig
    lab[...] = mapping.astype(np.uint32)[cc]
    if orphans and _second:
        new_of.update(split_pieces(lab, npl, min_piece_vx, _second=False))
    return new_of
