"""Training and validation volumes for the networks, from the synthetic generator.

Volumes are generated deterministically from (preset, seed), so a training run resumed
in a later session (or on another machine) sees exactly the same data without
carrying it. Seeds used for training and for validation never overlap, and neither
uses the frozen ``eval`` set (a different preset, mixed into every random stream).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TRAIN_SEEDS", "VAL_SEEDS", "make_volumes"]

#: Seeds of the ``train`` preset used for training and for validation (disjoint).
TRAIN_SEEDS = tuple(range(100, 164))
VAL_SEEDS = (900, 901)


def make_volumes(seeds, *, preset: str = "train", shape=(32, 256, 256), log=None):
    """Generate ``(raw uint8, labels uint32)`` pairs, one per seed."""
    from ..synth import generate, resolve_settings

    out = []
    for seed in seeds:
        settings = resolve_settings(preset=preset, seed=seed, shape=shape)
        vol = generate(settings, seed, preset=preset)
        out.append((vol["raw"], vol["gt"].astype(np.uint32)))
        if log:
            log(f"generated {preset} seed {seed}: {vol['raw'].shape}")
    return out
