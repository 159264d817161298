"""Section defects (folds, cracks, smears): the training data, patches and loss of the
defect network, and its prediction on a section between its neighbours.

The network sees three registered sections (the one judged and its nearest usable
neighbours; an end section sees its one neighbour twice) and marks the pixels of the
middle one that are damaged. A damaged strip is not simply dark or blurred — cell
bodies are flat and nuclei are dark — but unlike tissue it has no counterpart in the
sections around it, which is why the neighbours are part of the input.

Training volumes come from the generator (``train`` preset, no misalignment, a third of
the sections damaged), with the true strip of each damaged section as the target.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFECT_TRAIN_SEEDS", "DEFECT_VAL_SEEDS", "DEFECT_DOWNSAMPLE", "make_defect_volumes",
           "DefectPatchSampler", "defect_loss", "defect_probability"]

#: Generator seeds of the defect network's training and validation volumes (disjoint).
DEFECT_TRAIN_SEEDS = tuple(range(200, 264))
DEFECT_VAL_SEEDS = (950, 951)

#: In-plane pooling only: the input is three sections deep.
DEFECT_DOWNSAMPLE = ((1, 2, 2), (1, 2, 2), (1, 2, 2))


def _one(args):
    from ..evaluate import damage_strip
    from ..synth import generate, resolve_settings

    preset, seed, shape, _ = args
    s = resolve_settings(preset=preset, seed=seed, shape=shape)
    s = s.replace(misalign=False, missing_sections=0, damaged_sections=max(1, shape[0] // 3))
    vol = generate(s, seed, preset=preset)
    q = vol["section_quality"]
    mask = np.zeros(vol["raw"].shape, np.uint8)
    for _, row in q[q["status"] == "damaged"].iterrows():
        mask[int(row["section"])] = damage_strip(row, shape[1:], s.voxel_size[1:])
    return vol["raw"], mask


def make_defect_volumes(seeds, *, shape=(12, 256, 256), workers: int = 0, log=None):
    """Generate the defect network's volumes: ``(raw uint8, damaged-strip mask uint8)`` per seed.

    ``train`` preset settings without misalignment or missing sections, with a third of
    the sections damaged; ``workers`` processes generate them.
    """
    from ._data import _generate_all

    return _generate_all(seeds, "train", shape, None, workers, log, one=_one)


class DefectPatchSampler:
    """Patches of (previous, section, next) and the section's damage mask.

    Half the patches come from damaged sections, most of them over the strip. The
    neighbours are shifted by up to ``max_shift`` pixels (the residual of a coarse
    alignment), often taken two sections away (a missing neighbour bridged), and an end
    section (and, at random, any section) sees its one neighbour twice, as
    :func:`defect_probability` is given it.

    With ``scales`` (e.g. ``(1, 2)``), each patch is drawn at one of these scales: at
    scale k a region k times larger is cut and averaged over k x k blocks (its mask: the
    blocks mostly damaged), as ``align`` judges sections larger than
    ``RegisterSettings.damage_max_px``.
    """

    def __init__(self, volumes, patch=(3, 128, 128), *, augment: bool = True, max_shift: int = 3, scales=(1,)):
        self.volumes = volumes
        self.patch = tuple(int(v) for v in patch)
        if self.patch[0] != 3:
            raise ValueError(f"the defect network reads 3 sections: patch must be (3, Y, X), got {self.patch}")
        self.scales = tuple(int(k) for k in scales)
        if not self.scales or min(self.scales) < 1:
            raise ValueError(f"scales must be positive integers, got {scales!r}")
        self.augment = augment
        self.max_shift = int(max_shift) if augment else 0
        self.damaged = [np.flatnonzero(m.reshape(m.shape[0], -1).any(1)) for _, m in volumes]
        k = max(self.scales)
        for raw, _ in volumes:
            if min(raw.shape[1:]) < 2 or any(raw.shape[i] < k * self.patch[i] + 2 * self.max_shift for i in (1, 2)):
                raise ValueError(f"training volume {raw.shape} is too small for patches of {self.patch} at scale {k} "
                                 f"shifted by up to {self.max_shift} px")

    def sample(self, rng: np.random.Generator):
        from ._augment import _intensity, _noise_blur

        k = int(rng.integers(len(self.volumes)))
        raw, mask = self.volumes[k]
        Z, Y, X = raw.shape
        scale = self.scales[int(rng.integers(len(self.scales)))] if len(self.scales) > 1 else self.scales[0]
        py, px = (scale * v for v in self.patch[1:])
        d = self.max_shift
        dam = self.damaged[k]
        if len(dam) and rng.random() < 0.5:
            z = int(dam[rng.integers(len(dam))])
        else:
            z = int(rng.integers(Z))
        near = []
        for step in (-1, 1):
            far = 2 if self.augment and rng.random() < 0.3 else 1
            n = z + step * far
            if not 0 <= n < Z:
                n = z + step
            near.append(n if 0 <= n < Z else None)
        if self.augment and rng.random() < 0.15:  # judged as an end section (one neighbour) wherever it is
            near[int(rng.integers(2))] = None
        if near[0] is None and near[1] is None:
            near[0] = z - 1 if z > 0 else z + 1
        prev, nxt = (near[0] if near[0] is not None else near[1]), (near[1] if near[1] is not None else near[0])
        ys, xs = np.nonzero(mask[z]) if mask[z].any() and rng.random() < 0.7 else ((), ())
        if len(ys):
            i = rng.integers(len(ys))
            cy, cx = int(ys[i]) + int(rng.integers(-py // 3, py // 3 + 1)), int(xs[i]) + int(rng.integers(-px // 3, px // 3 + 1))
            y0, x0 = int(np.clip(cy - py // 2, d, Y - py - d)), int(np.clip(cx - px // 2, d, X - px - d))
        else:
            y0, x0 = int(rng.integers(d, Y - py - d + 1)), int(rng.integers(d, X - px - d + 1))

        def crop(s, shift=(0, 0)):
            return raw[s, y0 + shift[0] : y0 + shift[0] + py, x0 + shift[1] : x0 + shift[1] + px]

        shifts = [tuple(rng.integers(-d, d + 1, 2)) if d else (0, 0) for _ in range(2)]
        r = np.stack([crop(prev, shifts[0]), crop(z), crop(nxt, shifts[1])]).astype(np.float32) / 255.0
        t = mask[z, y0 : y0 + py, x0 : x0 + px][None, None].astype(np.float32)
        if scale > 1:
            def pool(a):
                return a.reshape(*a.shape[:-2], py // scale, scale, px // scale, scale).mean(axis=(-3, -1))

            r, t = pool(r), (pool(t) > 0.5).astype(np.float32)
        if self.augment:
            if rng.random() < 0.5:
                r = r[::-1]
            for axis in (1, 2):
                if rng.random() < 0.5:
                    r, t = np.flip(r, axis), np.flip(t, axis + 1)
            if rng.random() < 0.5:
                r, t = r.transpose(0, 2, 1), t.transpose(0, 1, 3, 2)
            r = _noise_blur(_intensity(np.ascontiguousarray(r, np.float32), rng), rng)
        return np.ascontiguousarray(r, np.float32), np.ascontiguousarray(t, np.float32)


def defect_loss(logits, target):
    """Score logits (N, 1, 3, Y, X) against the middle section's mask (N, 1, 1, Y, X).

    Class-balanced binary cross-entropy (damage is rare): positives and negatives get
    half the weight each, so an uninformed network scores ln 2.
    """
    import torch.nn.functional as F

    logits = logits.float()[:, :, 1:2]
    pos = target.sum().clamp(min=1)
    neg = (1 - target).sum().clamp(min=1)
    w = target * 0.5 / pos + (1 - target) * 0.5 / neg
    return F.binary_cross_entropy_with_logits(logits, target, weight=w, reduction="sum")


def defect_probability(prev, section, nxt, model, *, tile: int = 1024, context: int = 64) -> np.ndarray:
    """Compute the damage probability (Y, X) of ``section`` between its registered neighbours.

    Parameters
    ----------
    prev, section, nxt : (Y, X) float arrays in 0..1
        The section and its neighbours, registered; pass the one neighbour twice for an
        end section. Where an image has no data (NaN: outside a warped section), it is
        filled from the others at the same place (a flat fill would look like a crack or
        a smear), or with its median where none has data.
    model : UNet3D
        The defect network (:func:`~connectomix.models.load_model` with ``task="defects"``).
    tile, context : int
        Large sections are predicted in tiles of ``tile`` pixels, each read with
        ``context`` pixels around it, so memory stays bounded.

    Returns
    -------
    (Y, X) float32 array in 0..1.
    """
    from ._unet import forward

    x = np.stack([np.asarray(a, np.float32) for a in (prev, section, nxt)])
    fin = np.isfinite(x)
    if not fin.all():
        n = fin.sum(0)
        mean = np.where(n > 0, np.where(fin, x, 0).sum(0) / np.maximum(n, 1), np.nan)
        for i in range(3):
            fill = np.where(np.isfinite(mean), mean, float(np.median(x[i][fin[i]])) if fin[i].any() else 0.5)
            x[i] = np.where(fin[i], x[i], fill)
    f = model.factor[1:]
    Y, X = x.shape[1:]
    out = np.empty((Y, X), np.float32)
    step = max(f[0], tile // f[0] * f[0]), max(f[1], tile // f[1] * f[1])
    ctx = [context // k * k for k in f]
    for y0 in range(0, Y, step[0]):
        for x0 in range(0, X, step[1]):
            y1, x1 = min(Y, y0 + step[0]), min(X, x0 + step[1])
            a0, b0 = max(0, y0 - ctx[0]), max(0, x0 - ctx[1])  # multiples of the pooling factor
            a1, b1 = min(Y, y1 + ctx[0]), min(X, x1 + ctx[1])
            part = x[:, a0:a1, b0:b1]
            pad = [(0, 0)] + [(0, (-s) % k) for s, k in zip(part.shape[1:], f)]
            part = np.pad(part, pad, mode="reflect" if min(part.shape[1:]) > 1 else "edge")
            y = forward(model, np.ascontiguousarray(part[None, None]))[0, 0, 1]
            out[y0:y1, x0:x1] = y[y0 - a0 : y1 - a0, x0 - b0 : x1 - b0]
    return 1.0 / (1.0 + np.exp(-out))
