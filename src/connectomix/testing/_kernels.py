"""Block functions used by the engine's tests; importable so Dask workers can load them."""

from __future__ import annotations

import os
import time

import numpy as np

from ..volume import Volume


def slow_gaussian(block, inputs, *, sigma, delay: float, log: str | None = None):
    """The smooth stage's kernel, slowed down, appending each block id to ``log``."""
    from ..pipeline import gaussian_kernel

    time.sleep(delay)
    if log:
        with open(log, "a") as f:
            f.write(f"{block.id}\n")
    return gaussian_kernel(block, inputs, sigma=sigma, output="out", input="raw")


def two_in_two_out(block, inputs):
    """Two inputs with different contexts -> one array and one table.

    ``sum`` = 3x3x3 box sum of ``a`` (needs 1 voxel context) + ``b`` shifted by two
    voxels along x (needs 2 voxels context, zero-padded at the border); the table holds
    one row per block with the sum of ``a`` inside the write region.
    """
    import pandas as pd
    from scipy import ndimage

    a, b = inputs["a"], inputs["b"]
    box = ndimage.uniform_filter(a.data.astype(np.float64), 3, mode="constant") * 27
    a_sum = Volume(box, voxel_size=a.voxel_size, offset=a.offset)[block.write_roi]
    shifted = np.roll(b.data.astype(np.float64), -2, axis=2)
    b_part = Volume(shifted, voxel_size=b.voxel_size, offset=b.offset)[block.write_roi]
    a_write = a.crop(block.write_roi).data
    row = pd.DataFrame({"block": [block.id], "a_sum": [int(a_write.sum())], "pid": [os.getpid()]})
    return {"sum": a_sum + b_part, "stats": row}


def fill_block_id(block, inputs):
    """Write the block id + 1 everywhere in the block (for shard-safety tests)."""
    vs = inputs["ref"].voxel_size
    shape = tuple(block.write_roi.shape // vs)
    return {"ids": np.full(shape, block.id + 1, np.uint64)}


def failing(block, inputs):
    """Fail on block 1 only."""
    if block.id == 1:
        raise ValueError("deliberate failure")
    return {"out": inputs["raw"][block.write_roi]}
