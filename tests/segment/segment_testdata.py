"""Makers for the segmentation tests: noisy affinities with known truth (imported by the tests)."""

from __future__ import annotations

import numpy as np

from connectomix.segment import affinities_from_labels


def make_noisy_affinities(truth, *, sigma=0.15, weak_fraction=0.3, weak=0.35, merged=0, seed=0):
    """Affinities of ``truth`` as a network might predict them.

    ``weak_fraction`` of the objects get boundaries of affinity ``weak`` instead of
    0 (faint membranes); ``merged`` pairs of touching objects lose their boundary
    entirely (affinity 0.95: an error no agglomeration can undo); then Gaussian noise
    of ``sigma``, clipped to [0, 1]. Returns ``(affinities, merged_pairs)``.
    """
    rng = np.random.default_rng(seed)
    aff = affinities_from_labels(truth)
    ids = np.unique(truth[truth != 0])
    weak_ids = rng.choice(ids, int(round(len(ids) * weak_fraction)), replace=False)
    touching = set()
    for d in range(3):
        a = np.moveaxis(truth, d, 0)[1:].ravel()
        b = np.moveaxis(truth, d, 0)[:-1].ravel()
        m = (a != b) & (a != 0) & (b != 0)
        touching |= set(zip(np.minimum(a[m], b[m]).tolist(), np.maximum(a[m], b[m]).tolist()))
    touching = sorted(touching)
    picks = rng.choice(len(touching), merged, replace=False) if merged else []
    merged_pairs = [touching[i] for i in picks]
    for d in range(3):
        hi = [slice(None)] * 3
        lo = [slice(None)] * 3
        hi[d], lo[d] = slice(1, None), slice(None, -1)
        a, b = truth[tuple(hi)], truth[tuple(lo)]
        across = (a != b) & (a != 0) & (b != 0)
        channel = aff[d][tuple(hi)]
        channel[across & (np.isin(a, weak_ids) | np.isin(b, weak_ids))] = weak
        for p, r in merged_pairs:
            channel[across & (np.minimum(a, b) == p) & (np.maximum(a, b) == r)] = 0.95
    aff += rng.normal(0.0, sigma, aff.shape).astype(np.float32)
    return np.clip(aff, 0.0, 1.0).astype(np.float32), merged_pairs


def merge_pairs(truth, pairs):
    """``truth`` with each pair of ids joined (what the best segmentation can reach)."""
    out = truth.copy()
    for p, r in pairs:
        out[out == r] = p
    return out
