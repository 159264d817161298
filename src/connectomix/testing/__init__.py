"""Small synthetic data and helpers for tests and doctests (never downloads)."""

from __future__ import annotations

import numpy as np

__all__ = ["random_volume", "blobs", "stored_volume"]


def random_volume(shape=(16, 48, 48), *, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """Smooth random intensities: structure at several scales, like a blurred image."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    x = rng.random(shape, dtype=np.float32)
    x = ndimage.gaussian_filter(x, (1, 2, 2)) + 0.3 * rng.random(shape, dtype=np.float32)
    x = (x - x.min()) / max(float(np.ptp(x)), 1e-6)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return (x * min(255, np.iinfo(dtype).max)).astype(dtype)
    return x.astype(dtype)


def blobs(shape=(16, 48, 48), *, n: int = 20, seed: int = 0) -> np.ndarray:
    """A dense label volume (uint64, labels 1..n): Voronoi cells of random seeds."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    markers = np.zeros(shape, np.int32)
    idx = tuple(rng.integers(0, s, n) for s in shape)
    markers[idx] = np.arange(1, n + 1)
    _, nearest = ndimage.distance_transform_edt(markers == 0, return_indices=True)
    return markers[tuple(nearest)].astype(np.uint64)


def stored_volume(path, data: np.ndarray, *, voxel_size=(40, 8, 8), offset=None, chunks=None, shards=None):
    """Write ``data`` as an OME-Zarr image at ``path`` and return the Volume."""
    from ..volume import create_volume

    vol = create_volume(
        path, shape=data.shape, dtype=data.dtype, voxel_size=voxel_size, offset=offset,
        chunks=chunks, shards=shards,
    )
    vol[vol.roi] = data
    return vol


from ._kernels import fill_block_id, failing, slow_gaussian, two_in_two_out  # noqa: E402

from ._connectome import toy_connectome  # noqa: E402

__all__ += ["fill_block_id", "failing", "slow_gaussian", "two_in_two_out", "toy_connectome"]
