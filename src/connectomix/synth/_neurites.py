"""Procedural neuropil: the centre lines, calibres and identities of every cell.

Cells are trees of *tubes*: a tube is a polyline of points (nm, z y x, in the
canvas frame) with a radius at each point. Neurites grow as persistent random walks
(directions uniform on the sphere, so they run at every angle to the sections) that
steer away from tubes placed earlier, using a coarse free-space field; new neurites
start where that field says there is most room, so the nominal tubes fill the volume
before the label expansion (``_labels``) closes the last gaps. Axons carry boutons
(varicosities, the presynaptic sites); some axons run along a dendrite for a few
micrometres (fasciculation), which gives the repeated contacts that become strong
edges. Dendrites branch and carry spines; somata are optional.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ._capsules import capsule_values, tube_segments
from ._settings import TRANSMITTERS, SynthSettings

__all__ = ["Tube", "Cell", "Bouton", "Neuropil", "grow_neuropil"]

STEP = 50.0  # nm between centre-line points
GRID = 40.0  # nm, the coarse free-space grid
STEER = 0.8
ROOM = 60.0
BATCH = 150
BLOCKED = 1.0
#: nm around the canvas where neurites are laid out too, so the canvas faces see
#: the same density and directions as its inside (then they are cropped away)
LAYOUT_PAD = 250.0
SEED_ROOM = 30.0
COARSE = True


@dataclass
class Tube:
    """One unbranched piece of a cell: points (N, 3) nm and radii (N,) nm."""

    label: int
    points: np.ndarray
    radii: np.ndarray
    kind: str = "neurite"  # neurite | sheath | soma | mito
    thickness: float = 0.0  # sheath only: wall thickness, nm
    host: int | None = None  # mito only: the cell it lies in


@dataclass
class Bouton:
    """A presynaptic varicosity: where an axon may make synapses."""

    label: int
    center: np.ndarray
    radius: float
    host: int | None = None  # the cell this bouton was made to contact (followers)


@dataclass
class Cell:
    """A cell's identity: what ``gt_neurons`` records about it."""

    label: int
    cell_class: str  # neuron | glia
    cell_type: str  # axon | dendrite | soma | glia | an SWC name
    transmitter: str | None
    source: str = "procedural"
    cell_id: int = 0  # the cell a segment belongs to (pieces of one cell share it)


@dataclass
class Neuropil:
    """Everything :func:`grow_neuropil` made."""

    tubes: list = field(default_factory=list)
    cells: dict = field(default_factory=dict)
    boutons: list = field(default_factory=list)
    mitos: list = field(default_factory=list)  # Tube records of mitochondria (label = host cell)
    nuclei: list = field(default_factory=list)  # (center (3,), radius, host label)
    next_label: int = 1

    def new_cell(self, cell_class, cell_type, transmitter, source="procedural", cell_id=None) -> int:
        label = self.next_label
        self.next_label += 1
        self.cells[label] = Cell(label, cell_class, cell_type, transmitter, source,
                                 label if cell_id is None else cell_id)
        return label


# ---------------------------------------------------------------------------- helpers
def _unit(v):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def _random_directions(rng, n):
    return _unit(rng.standard_normal((n, 3)))


def _perpendicular(d, rng):
    """A random unit vector perpendicular to each row of d."""
    a = _random_directions(rng, len(d))
    a = a - (a * d).sum(-1, keepdims=True) * d
    return _unit(a)


def _transmitter(rng):
    names = [t for t, _ in TRANSMITTERS]
    p = np.array([w for _, w in TRANSMITTERS])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _log_uniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def _arclength(points):
    if len(points) < 2:
        return np.zeros(len(points))
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


class FreeSpace:
    """A coarse field of free room: distance (nm) to the nearest tube surface.

    The field is exact at the centres of its 40-nm cells (capsule distances, see
    ``_capsules``) and clamped at :data:`FAR`; tubes are stamped into it as they grow,
    so later neurites, and the later parts of growing ones, steer around earlier ones.
    """

    FAR = 120.0

    def __init__(self, extent, pad=0.0):
        # the field covers the canvas plus ``pad`` nm on every side; methods take canvas nm
        self.pad = float(pad)
        self.extent = np.asarray(extent, float) + 2 * self.pad
        self.shape = tuple(int(np.ceil(e / GRID)) for e in self.extent)
        self.field = np.full(self.shape, self.FAR, np.float32)
        self._flat = self.field.reshape(-1)

    def occupancy(self) -> float:
        """Fraction of the canvas inside some tube (at the cell centres)."""
        return float(np.mean(self.field < 0))

    def snapshot(self) -> "FreeSpace":
        """A copy of the field as it is now (for sampling only)."""
        other = FreeSpace.__new__(FreeSpace)
        other.extent, other.shape, other.pad = self.extent, self.shape, self.pad
        other.field = self.field.copy()
        other._flat = other.field.reshape(-1)
        return other

    def stamp_segments(self, A, B, RA, RB):
        A, B = np.asarray(A) + self.pad, np.asarray(B) + self.pad
        for idx, v, _ in capsule_values(A, B, RA, RB, self.shape, (GRID, GRID, GRID), margin=self.FAR, coarse=COARSE):
            np.minimum.at(self._flat, idx, v)

    def stamp_many(self, pieces):
        """Stamp a list of ``tube_segments`` results in one pass."""
        if pieces:
            segs = np.concatenate([p[0] for p in pieces])
            rads = np.concatenate([p[1] for p in pieces])
            self.stamp_segments(segs[:, 0], segs[:, 1], rads[:, 0], rads[:, 1])

    def stamp(self, points, radii):
        segs, rads = tube_segments(points, radii, factor=4.0, lo=200.0, hi=400.0)
        self.stamp_segments(segs[:, 0], segs[:, 1], rads[:, 0], rads[:, 1])

    def sample(self, p):
        """Field value and gradient (central differences) at points p (N, 3) nm."""
        shape = np.array(self.shape)
        idx = np.floor((p + self.pad) / GRID).astype(np.int64)
        inside = np.all((idx >= 1) & (idx < shape - 1), axis=1)
        idx = np.clip(idx, 1, shape - 2)
        strides = np.array([shape[1] * shape[2], shape[2], 1])
        flat = idx @ strides
        fl = self._flat
        f = np.where(inside, fl[flat], self.FAR)
        g = np.stack([fl[flat + st] - fl[flat - st] for st in strides], 1)
        g[~inside] = 0.0
        # nothing is known beyond the canvas: near a face, do not steer across it
        near = (idx < 4) | (idx >= shape - 4)
        g[near] = 0.0
        return f, g

    def pick_seeds(self, rng, n, min_free, spacing):
        """Up to n well-separated positions (nm) with at least ``min_free`` nm of room."""
        f = self.field
        cand = np.flatnonzero(f > min_free)
        if not len(cand):
            return np.zeros((0, 3))
        score = f.ravel()[cand] * rng.uniform(0.5, 1.0, len(cand))
        k = min(len(cand), max(30 * n, 1000))
        top = np.argpartition(-score, k - 1)[:k] if k < len(cand) else np.arange(len(cand))
        order = cand[top[np.argsort(-score[top], kind="stable")]]
        pos = (np.stack(np.unravel_index(order, self.shape), 1) + rng.uniform(0.25, 0.75, (len(order), 3))) * GRID
        chosen = np.zeros((0, 3))
        for p in pos:
            if len(chosen) >= n:
                break
            if len(chosen) and np.min(np.sum((chosen - p) ** 2, axis=1)) < spacing**2:
                continue
            chosen = np.vstack([chosen, p])
        return chosen - self.pad


def _walk(starts, dirs, radii, persistence, free, bounds_lo, bounds_hi, rng, *, max_len, steer=None):
    steer = STEER if steer is None else steer
    """Grow persistent random walks from ``starts``; return a list of (N_i, 3) paths.

    Each walker turns away from occupied space (the free-space field) and stamps its
    own trail into the field once its head is far enough ahead, so walkers avoid
    older tubes, each other, and their own past.
    """
    n = len(starts)
    p = np.asarray(starts, float).copy()
    d = _unit(np.asarray(dirs, float))
    radii = np.asarray(radii, float)
    sigma = np.sqrt(STEP / np.asarray(persistence, float))[:, None]
    active = np.ones(n, bool)
    hist = [p.copy()]
    lag = int(np.ceil((float(radii.max()) + 150.0) / STEP)) + 1
    K = 8
    stamped = 0
    for step in range(1, int(max_len / STEP) + 1):
        d = d + sigma * rng.standard_normal((n, 3))
        f, g = free.sample(p)
        w = steer * np.clip((radii + ROOM - f) / ROOM, 0.0, 1.0)[:, None]
        d = _unit(_unit(d) + w * _unit(g))
        if step > lag:
            # a walker driven deep into another tube ends there (an axon terminal)
            # rather than cutting through it
            active &= f > -BLOCKED * radii
        p = np.where(active[:, None], p + STEP * d, p)
        hist.append(p.copy())
        # a walker stops once it is clear of the canvas (its radius plus a little)
        out_lo = np.any(p < bounds_lo - radii[:, None] - 60.0, axis=1)
        out_hi = np.any(p > bounds_hi + radii[:, None] + 60.0, axis=1)
        active &= ~(out_lo | out_hi)
        if step - lag - stamped >= K:
            a, b = hist[stamped], hist[stamped + K]
            moved = np.any(a != b, axis=1)
            if moved.any():
                free.stamp_segments(a[moved], b[moved], radii[moved], radii[moved])
            stamped += K
        if not active.any():
            break
    # stamp what is left of the trails
    rest_a, rest_b, rest_r = [], [], []
    for j in range(stamped, len(hist) - 1, K):
        a, b = hist[j], hist[min(j + K, len(hist) - 1)]
        moved = np.any(a != b, axis=1)
        rest_a.append(a[moved])
        rest_b.append(b[moved])
        rest_r.append(radii[moved])
    if rest_a:
        r = np.concatenate(rest_r)
        free.stamp_segments(np.concatenate(rest_a), np.concatenate(rest_b), r, r)
    stack = np.stack(hist, 1)  # (n, steps, 3)
    paths = []
    for i in range(n):
        path = stack[i]
        moved = np.concatenate([[True], np.any(np.diff(path, axis=0) != 0, axis=1)])
        paths.append(path[moved])
    return paths


def _away_from_faces(seeds, dirs, extent, border=300.0):
    """Turn directions of seeds near a canvas face to cross that face steeply.

    A neurite started near a face and running along it would only clip the volume.
    """
    dirs = dirs.copy()
    for k in range(3):
        near = np.minimum(seeds[:, k], extent[k] - seeds[:, k]) < min(border, 0.2 * extent[k])
        weak = near & (np.abs(dirs[:, k]) < 0.6)
        sign = np.where(dirs[weak, k] >= 0, 1.0, -1.0)
        rest = dirs[weak].copy()
        rest[:, k] = 0.0
        rest = _unit(rest) * 0.8
        rest[:, k] = 0.6 * sign
        dirs[weak] = rest
    return _unit(dirs)


def _grow_both_ways(seeds, dirs, radii, persistence, free, lo, hi, rng, max_len):
    n = len(seeds)
    dirs = _away_from_faces(seeds - lo, dirs, hi - lo)
    both = _walk(np.concatenate([seeds, seeds]), np.concatenate([dirs, -dirs]), np.concatenate([radii, radii]),
                 np.concatenate([persistence, persistence]), free, lo, hi, rng, max_len=max_len)
    return [np.concatenate([both[n + i][::-1], both[i][1:]]) for i in range(n)]


def _smooth_radius(rng, n, r0, wobble=0.12, corr=8):
    """Radius profile with slow variation around r0."""
    noise = ndi.gaussian_filter1d(rng.standard_normal(n + 4 * corr), corr, mode="nearest")[2 * corr : 2 * corr + n]
    noise = noise / (noise.std() + 1e-9)
    return r0 * np.clip(1 + wobble * noise, 0.7, 1.4)


def _long_enough(path, extent, min_length):
    """Whether a neurite runs at least ``min_length`` nm inside the canvas, or crosses it."""
    inside = _inside(path, extent)
    if not inside.any():
        return False
    ends_out = not inside[0] and not inside[-1]
    return ends_out or float(inside.sum()) * STEP >= min_length


def _tube_volume(path, radii, extent):
    inside = _inside(path, extent)
    return float(np.sum(np.pi * radii[inside] ** 2) * STEP)


def _inside(points, extent, margin=0.0):
    return np.all((points >= -margin) & (points < np.asarray(extent) + margin), axis=1)


# ---------------------------------------------------------------------------- growth
def grow_neuropil(settings: SynthSettings, canvas_shape, rng: np.random.Generator, *, neuropil=None) -> Neuropil:
    """Lay out the cells of a canvas of ``canvas_shape`` voxels.

    Parameters
    ----------
    settings : SynthSettings
    canvas_shape : (int, int, int)
        Shape of the canvas in voxels.
    rng : numpy.random.Generator
    neuropil : Neuropil, optional
        Cells already placed (real morphologies); procedural ones grow around them.

    Returns
    -------
    Neuropil
    """
    s = settings
    vs = np.asarray(s.voxel_size, float)
    extent = np.asarray(canvas_shape) * vs
    volume = float(np.prod(extent))
    lo, hi = -np.full(3, LAYOUT_PAD), extent + LAYOUT_PAD
    max_len = 1.5 * float(np.linalg.norm(extent + 1000.0))
    npl = neuropil if neuropil is not None else Neuropil()
    free = FreeSpace(extent, LAYOUT_PAD)
    for t in npl.tubes:
        free.stamp(t.points, t.radii)

    def tube_volume(path, radii):
        return _tube_volume(path, radii, extent)

    placed = {"dendrite": sum(tube_volume(t.points, t.radii) for t in npl.tubes if t.kind != "sheath")}

    # -- somata with a primary dendrite each
    for _ in range(s.n_somata):
        r = rng.uniform(*s.soma_radius)
        c = rng.uniform(0.2, 0.8, 3) * extent
        label = npl.new_cell("neuron", "soma", _transmitter(rng))
        npl.tubes.append(Tube(label, c[None], np.array([r]), kind="soma"))
        npl.nuclei.append((c + _random_directions(rng, 1)[0] * 0.15 * r, 0.55 * r, label))
        d0 = _random_directions(rng, 1)
        start = c + d0 * r * 0.8
        rd = rng.uniform(*s.dendrite_radius) * 1.2
        free.stamp(c[None], np.array([r]))
        path = _walk(start, d0, np.array([rd]), np.array([4000.0]), free, lo, hi, rng, max_len=max_len, steer=0.0)[0]
        radii = np.maximum(_smooth_radius(rng, len(path), rd), rd * np.exp(-_arclength(path) / 1500.0) * 2)
        npl.tubes.append(Tube(label, path, radii))
        free.stamp(path, radii)
        placed["dendrite"] += 4 / 3 * np.pi * r**3 * 0.5

    # -- dendrites, in batches, each batch seeded where there is most room
    dendrites = []
    target = s.dendrite_fraction * volume
    while placed["dendrite"] < target:
        r_mean = np.mean(s.dendrite_radius)
        per = np.pi * r_mean**2 * extent.mean()
        n = int(np.clip(np.ceil((target - placed["dendrite"]) / per / 2), 1, 12))
        radii0 = rng.uniform(*s.dendrite_radius, n)
        seeds = free.pick_seeds(rng, n, min_free=min(float(radii0.min()) * 0.8, 0.9 * FreeSpace.FAR), spacing=2.5 * r_mean)
        if not len(seeds):
            break
        n = len(seeds)
        radii0 = radii0[:n]
        pers = rng.uniform(*s.persistence_length, n) * 1.5
        branches = []
        paths = _grow_both_ways(seeds, _random_directions(rng, n), radii0, pers, free, lo, hi, rng, max_len)
        for path, r0 in zip(paths, radii0):
            if not _long_enough(path, extent, s.min_neurite_length):
                continue
            label = npl.new_cell("neuron", "dendrite", _transmitter(rng))
            radii = _smooth_radius(rng, len(path), r0)
            npl.tubes.append(Tube(label, path, radii))
            dendrites.append(len(npl.tubes) - 1)
            free.stamp(path, radii)
            placed["dendrite"] += tube_volume(path, radii)
            placed["dendrite"] += _dendrite_children(npl, label, path, radii, s, rng, free, extent, branches)
        placed["dendrite"] += _grow_branches(npl, branches, free, lo, hi, rng, extent)

    # -- followers: axons fasciculating along dendrites (strong connections)
    hosts = [i for i, t in enumerate(npl.tubes)
             if t.kind == "neurite" and (npl.cells[t.label].cell_type in ("dendrite", "soma")
                                         or npl.cells[t.label].source != "procedural")
             and len(t.points) >= 10 and float(np.median(t.radii)) >= 100.0]
    host_len = sum(float(np.sum(_inside(npl.tubes[i].points, extent))) * STEP for i in hosts)
    followers = []
    for _ in range(rng.poisson(s.followers_per_um * host_len / 1000.0) if hosts else 0):
        host = npl.tubes[hosts[int(rng.integers(len(hosts)))]]
        f = _follower(host, s, rng, extent)
        if f is not None:
            followers.append(f + (host.label,))
    axon_volume = 0.0
    if followers:
        starts = np.concatenate([[f[0][-1] for f in followers], [f[0][0] for f in followers]])
        dirs = np.concatenate([[_unit(f[0][-1] - f[0][-2]) for f in followers],
                               [_unit(f[0][0] - f[0][1]) for f in followers]])
        r_f = np.array([f[1] for f in followers])
        ext = _walk(starts, dirs, np.concatenate([r_f, r_f]),
                    rng.uniform(*s.persistence_length, 2 * len(followers)), free, lo, hi, rng, max_len=max_len)
        nf = len(followers)
        pending = []
        for k, (path_mid, r_a, host_label) in enumerate(followers):
            path = np.concatenate([ext[nf + k][::-1], path_mid[1:-1], ext[k]])
            i0 = len(ext[nf + k])
            label = npl.new_cell("neuron", "axon", _transmitter(rng))
            radii = _smooth_radius(rng, len(path), r_a, wobble=0.08)
            # boutons closely spaced along the stretch where it touches its dendrite
            s_arc = _arclength(path)
            spacing = rng.uniform(400.0, 750.0)
            b_s = np.arange(s_arc[i0] + rng.uniform(0, spacing), s_arc[i0 + len(path_mid) - 3], spacing)
            radii = _add_boutons(npl, label, path, radii, s_arc, b_s, s, rng, extent, host=host_label)
            npl.tubes.append(Tube(label, path, radii))
            pending.append(tube_segments(path[i0 : i0 + len(path_mid)], radii[i0 : i0 + len(path_mid)],
                                         factor=4.0, lo=200.0, hi=400.0))
            axon_volume += tube_volume(path, radii)
        free.stamp_many(pending)

    # -- axons, in batches that fill the remaining room until none is left
    r_min, r_max = s.axon_radius
    for _ in range(60):
        if free.occupancy() >= s.fill_fraction:
            break
        seeds = free.pick_seeds(rng, BATCH, min_free=r_min + SEED_ROOM, spacing=500.0)
        if not len(seeds):
            break
        n = len(seeds)
        room = free.sample(seeds)[0]
        cap = np.clip(0.7 * room, r_min, r_max)
        radii0 = np.exp(rng.uniform(np.log(r_min), np.log(cap)))
        pers = rng.uniform(*s.persistence_length, n)
        before = free.snapshot()
        pending, branches = [], []
        paths = _grow_both_ways(seeds, _random_directions(rng, n), radii0, pers, free, lo, hi, rng, max_len)
        for path, r0 in zip(paths, radii0):
            if not _long_enough(path, extent, s.min_neurite_length):
                continue  # a stub blocked on both sides: leave the room to the fill
            label = npl.new_cell("neuron", "axon", _transmitter(rng))
            radii = _smooth_radius(rng, len(path), r0, wobble=0.1)
            s_arc = _arclength(path)
            b_s = []
            pos = rng.uniform(0, s.bouton_spacing[1])
            while pos < s_arc[-1]:
                b_s.append(pos)
                pos += rng.uniform(*s.bouton_spacing)
            radii = _add_boutons(npl, label, path, radii, s_arc, np.array(b_s), s, rng, extent, free=before)
            npl.tubes.append(Tube(label, path, radii))
            swollen = np.flatnonzero(radii > r0 * 1.15)
            # the walker stamped the nominal radius; add the boutons, one run at a time
            for run in np.split(swollen, np.flatnonzero(np.diff(swollen) > 1) + 1):
                if len(run):
                    pending.append(tube_segments(path[run], radii[run], factor=4.0, lo=200.0, hi=400.0))
            axon_volume += tube_volume(path, radii)
            _axon_branches(label, path, radii, s, rng, extent, branches)
        free.stamp_many(pending)
        axon_volume += _grow_branches(npl, branches, free, lo, hi, rng, extent)

    _glia_sheaths(npl, s, rng, extent)
    _mitochondria(npl, s, rng, extent)
    return npl


def _add_boutons(npl, label, path, radii, s_arc, b_s, s, rng, extent, free=None, host=None):
    radii = radii.copy()
    room = free.sample(path)[0] if free is not None else np.full(len(path), np.inf)
    for sb in b_s:
        i = int(np.searchsorted(s_arc, sb))
        if i >= len(path):
            continue
        rb = max(rng.uniform(*s.bouton_radius), radii[i] * 1.3)
        # a bouton swells into free room only, so it does not cut through older neurites
        rb = min(rb, max(radii[i] * 1.3, float(room[i]) + 30.0))
        w = rb * rng.uniform(1.3, 2.0)
        bump = rb * np.exp(-0.5 * ((s_arc - sb) / w) ** 4)
        radii = np.maximum(radii, bump)
        if _inside(path[i : i + 1], extent)[0]:
            npl.boutons.append(Bouton(label, path[i].copy(), rb, host))
    return radii


def _follower(host, s, rng, extent):
    """A path that runs alongside ``host`` (touching it) for a few micrometres."""
    pts, rad = host.points, host.radii
    s_arc = _arclength(pts)
    inside = np.flatnonzero(_inside(pts, extent, -200.0))
    if len(inside) < 10:
        return None
    length = rng.uniform(*s.follow_length)
    i0 = int(inside[rng.integers(len(inside))])
    i1 = int(np.searchsorted(s_arc, s_arc[i0] + length))
    i1 = min(i1, len(pts) - 1)
    if i1 - i0 < 10:
        i0 = max(0, int(np.searchsorted(s_arc, s_arc[i1] - length)))
    if i1 - i0 < 10:
        return None
    seg = pts[i0 : i1 + 1]
    tan = _unit(np.gradient(seg, axis=0))
    n1 = _perpendicular(tan[:1], rng)[0]
    normals = []
    phi = ndi.gaussian_filter1d(rng.standard_normal(len(seg)), 10) * 3.0  # slow twist
    for k, t in enumerate(tan):
        n1 = _unit(n1 - np.dot(n1, t) * t)  # parallel transport
        n2 = np.cross(t, n1)
        normals.append(np.cos(phi[k]) * n1 + np.sin(phi[k]) * n2)
    r_a = float(_log_uniform(rng, max(s.axon_radius[0], 30.0), s.axon_radius[1]))
    offset = (rad[i0 : i1 + 1] + r_a * 0.9)[:, None] * np.array(normals)
    return seg + offset, r_a


def _dendrite_children(npl, label, path, radii, s, rng, free, extent, branches):
    """Add spines now and queue branches (label, start, direction, radius, persistence, wobble)."""
    added = 0.0
    inside = _inside(path, extent)
    length_in = float(np.sum(inside)) * STEP
    tan = _unit(np.gradient(path, axis=0))
    # branches
    n_br = rng.poisson(s.dendrite_branch_per_um * length_in / 1000.0)
    cand = np.flatnonzero(inside)
    for _ in range(n_br):
        i = int(cand[rng.integers(len(cand))])
        r_c = max(radii[i] * rng.uniform(0.45, 0.75), 90.0)
        perp = _perpendicular(tan[i : i + 1], rng)[0]
        ang = np.deg2rad(rng.uniform(35, 75))
        d = np.cos(ang) * tan[i] * rng.choice([-1, 1]) + np.sin(ang) * perp
        branches.append((label, path[i], d, r_c, 2500.0, 0.12))
    # spines: a thin neck and a head
    n_sp = rng.poisson(s.spine_per_um * length_in / 1000.0)
    pending = []
    for _ in range(n_sp):
        i = int(cand[rng.integers(len(cand))])
        d = _perpendicular(tan[i : i + 1], rng)[0]
        neck = rng.uniform(400.0, 900.0)
        n_pts = max(int((neck + radii[i]) / STEP), 3)
        wob = np.cumsum(rng.standard_normal((n_pts, 3)) * 0.08, axis=0)
        dirs = _unit(d + wob)
        pts = path[i] + np.cumsum(dirs * STEP, axis=0) - dirs[0] * STEP
        arc = np.arange(n_pts) * STEP
        r_neck = rng.uniform(30.0, 50.0)
        r_head = rng.uniform(110.0, 220.0)
        rr = np.full(n_pts, r_neck)
        rr = np.maximum(rr, r_head * np.exp(-0.5 * ((arc - arc[-1]) / (0.6 * r_head)) ** 2))
        pts = np.concatenate([pts, pts[-1:] + dirs[-1:] * r_head * 0.5])
        rr = np.concatenate([rr, [r_head * 0.8]])
        npl.tubes.append(Tube(label, pts, rr))
        pending.append(tube_segments(pts, rr, factor=4.0, lo=200.0, hi=400.0))
        added += _tube_volume(pts, rr, extent)
    free.stamp_many(pending)
    return added


def _axon_branches(label, path, radii, s, rng, extent, branches):
    """Queue collateral branches of an axon."""
    inside = np.flatnonzero(_inside(path, extent))
    if not len(inside):
        return
    n_br = rng.poisson(s.axon_branch_per_um * len(inside) * STEP / 1000.0)
    tan = _unit(np.gradient(path, axis=0))
    for _ in range(n_br):
        i = int(inside[rng.integers(len(inside))])
        perp = _perpendicular(tan[i : i + 1], rng)[0]
        ang = np.deg2rad(rng.uniform(40, 90))
        d = np.cos(ang) * tan[i] + np.sin(ang) * perp
        r_c = float(np.min(radii)) * rng.uniform(0.8, 1.0)
        branches.append((label, path[i], d, r_c, 2000.0, 0.08))


def _grow_branches(npl, branches, free, lo, hi, rng, extent):
    """Walk queued branches together; return the volume they add."""
    if not branches:
        return 0.0
    starts = np.array([b[1] for b in branches])
    dirs = np.array([b[2] for b in branches])
    radii = np.array([b[3] for b in branches])
    pers = np.array([b[4] for b in branches])
    paths = _walk(starts, dirs, radii, pers, free, lo, hi, rng, max_len=float(np.linalg.norm(extent)) * 2)
    added = 0.0
    for (label, _, _, r_c, _, wobble), child in zip(branches, paths):
        r = _smooth_radius(rng, len(child), r_c, wobble=wobble)
        npl.tubes.append(Tube(label, child, r))
        added += _tube_volume(child, r, extent)
    return added


def _glia_sheaths(npl, s, rng, extent):
    """Wrap parts of some dendrites in thin glial sheets, one glial cell per sheet."""
    hosts = [t for t in npl.tubes
             if t.kind == "neurite" and (npl.cells[t.label].cell_type in ("dendrite", "soma")
                                         or npl.cells[t.label].source != "procedural")
             and len(t.points) >= 8 and _inside(t.points, extent).sum() >= 8]
    if not hosts or s.glia_sheath_fraction <= 0:
        return
    n = max(1, int(round(s.glia_sheath_fraction * len(hosts))))
    for i in rng.permutation(len(hosts))[:n]:
        host = hosts[int(i)]
        inside = np.flatnonzero(_inside(host.points, extent))
        a = int(inside[rng.integers(0, max(1, len(inside) // 2))])
        b = int(min(len(host.points), a + max(8, int(rng.uniform(0.4, 1.0) * len(inside)))))
        label = npl.new_cell("glia", "glia", None)
        t = rng.uniform(*s.glia_sheath_thickness)
        npl.tubes.append(Tube(label, host.points[a:b].copy(), host.radii[a:b].copy(), kind="sheath", thickness=t))


def _mitochondria(npl, s, rng, extent):
    """Mitochondria along neurites thick enough to hold one (and in boutons)."""
    for t in list(npl.tubes):
        if t.kind != "neurite" or len(t.points) < 4:
            continue
        inside = _inside(t.points, extent, 100.0)
        if not inside.any():
            continue
        s_arc = _arclength(t.points)
        length_in = float(inside.sum()) * STEP
        n = rng.poisson(s.mito_per_um * length_in / 1000.0)
        idx = np.flatnonzero(inside)
        for _ in range(n):
            i0 = int(idx[rng.integers(len(idx))])
            L = rng.uniform(*s.mito_length)
            i1 = min(len(t.points) - 1, int(np.searchsorted(s_arc, s_arc[i0] + L)))
            if i1 - i0 < 2:
                continue
            r_host = float(np.min(t.radii[i0 : i1 + 1]))
            if r_host < 40.0:
                continue
            r_m = min(r_host * rng.uniform(0.45, 0.7), r_host - 16.0, 180.0)
            # mitochondria sit off the axis in thick neurites
            shift = _perpendicular(_unit(t.points[i1:i1 + 1] - t.points[i0:i0 + 1]), rng)[0]
            shift *= rng.uniform(0, max(r_host - r_m - 16.0, 0.0))
            pts = t.points[i0 : i1 + 1] + shift
            npl.mitos.append(Tube(len(npl.mitos) + 1, pts, np.full(len(pts), r_m), kind="mito", host=t.label))
    for b in npl.boutons:
        if rng.random() < 0.5:
            r_m = min(b.radius * rng.uniform(0.35, 0.5), b.radius - 30.0)
            if r_m < 25:
                continue
            d = _random_directions(rng, 1)[0]
            c = b.center + d * (b.radius - r_m - 25.0) * rng.uniform(0.3, 1.0)
            e = _random_directions(rng, 1)[0] * r_m * rng.uniform(0.2, 0.8)
            pts = np.stack([c - e, c + e])
            npl.mitos.append(Tube(len(npl.mitos) + 1, pts, np.full(2, r_m), kind="mito", host=b.label))
