"""Training and validation volumes for the networks, from the synthetic generator.

Volumes are generated deterministically from (preset, seed), so a training run resumed
in a later session (or on another machine) sees exactly the same data without
carrying it. Seeds used for training and for validation never overlap, and neither
uses the frozen ``eval`` set (a different preset, mixed into every random stream).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TRAIN_SEEDS", "VAL_SEEDS", "make_volumes", "make_synapse_volumes", "make_training_volumes"]

#: Seeds of the ``train`` preset used for training and for validation (disjoint).
TRAIN_SEEDS = tuple(range(100, 900))
VAL_SEEDS = (900, 901)


def _one(args):
    from ..synth import generate, resolve_settings

    preset, seed, shape, synapses = args
    settings = resolve_settings(preset=preset, seed=seed, shape=shape)
    vol = generate(settings, seed, preset=preset)
    if not synapses:
        return vol["raw"], vol["gt"].astype(np.uint32)
    from ._synapse_targets import synapse_targets

    mask, vectors = synapse_targets(vol["gt"], vol["clefts"], vol["synapses"], settings.voxel_size)
    if synapses == "both":
        return vol["raw"], vol["gt"].astype(np.uint32), mask, vectors
    return vol["raw"], mask, vectors


def _generate_all(seeds, preset, shape, synapses, workers, log, one=None):
    """``one((preset, seed, shape, synapses))`` for every seed (default :func:`_one`), in ``workers`` processes."""
    one = one or _one
    jobs = [(preset, int(s), tuple(int(v) for v in shape), synapses) for s in seeds]
    if workers and workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(workers, len(jobs))) as pool:
            out = []
            for seed, vol in zip(seeds, pool.imap(one, jobs)):
                out.append(vol)
                if log:
                    log(f"generated {preset} seed {seed}: {vol[0].shape}")
            return out
    out = []
    for seed, job in zip(seeds, jobs):
        out.append(one(job))
        if log:
            log(f"generated {preset} seed {seed}: {out[-1][0].shape}")
    return out


def make_volumes(seeds, *, preset: str = "train", shape=(32, 256, 256), workers: int = 0, log=None):
    """Generate ``(raw uint8, labels uint32)`` pairs, one per seed (in ``workers`` processes)."""
    return _generate_all(seeds, preset, shape, False, workers, log)


def make_training_volumes(seeds, *, preset: str = "train", shape=(32, 256, 256), workers: int = 0, log=None):
    """Both networks' volumes from one generator pass: ``{"affinities": [...], "synapses": [...]}``."""
    vols = _generate_all(seeds, preset, shape, "both", workers, log)
    return {"affinities": [(r, g) for r, g, _, _ in vols], "synapses": [(r, m, v) for r, _, m, v in vols]}


def make_synapse_volumes(seeds, *, preset: str = "train", shape=(32, 256, 256), workers: int = 0, log=None):
    """Generate ``(raw uint8, cleft mask uint8, partner vectors)`` triples for the synapse network."""
    return _generate_all(seeds, preset, shape, True, workers, log)
