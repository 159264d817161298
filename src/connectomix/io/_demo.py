"""A small built-in EM-like test volume: no download, fixed by its seed."""

from __future__ import annotations

import numpy as np

__all__ = ["demo_volume"]


def demo_volume(shape=(32, 128, 128), *, seed: int = 0) -> np.ndarray:
    """Make a small serial-section-EM-like volume: dark membranes around bright cells.

    Parameters
    ----------
    shape : tuple of 3 int
        (z, y, x) in voxels; think 40 x 8 x 8 nm voxels.
    seed : int
        Seed of every random choice; the same seed gives the same volume.

    Returns
    -------
    ndarray, uint8, ``shape``

    Notes
    -----
    Random seed points (anisotropic: a section is 5 pixels thick) define Voronoi cells.
    Voxels near a cell boundary (small gap between the nearest and second-nearest
    seed) form dark membranes; cells get their own brightness and a few dark
    organelle-like blobs. The image is blurred (optics), sections vary in brightness
    (staining), and Gaussian plus shot-like noise is added, so plain thresholding
    is poor and smoothing visibly helps. Cost is O(n log m) for n voxels and m cells.

    Examples
    --------
    >>> v = demo_volume((8, 32, 32), seed=1)
    >>> v.shape, v.dtype
    ((8, 32, 32), dtype('uint8'))
    """
    from scipy import ndimage
    from scipy.spatial import cKDTree

    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or any(s < 1 for s in shape):
        raise ValueError(f"shape must be three positive integers (z, y, x), got {shape}")
    rng = np.random.default_rng(seed)
    aniso = 5.0  # a section is ~5 pixel widths thick
    extent = np.array([shape[0] * aniso, shape[1], shape[2]], float)
    cell = 28.0  # typical cell diameter in pixels
    n_cells = max(4, int(round(np.prod(extent) / cell**3 * 1.9)))
    seeds = rng.random((n_cells, 3)) * extent
    tree = cKDTree(seeds)
    brightness = rng.uniform(150.0, 205.0, n_cells)

    yy, xx = np.meshgrid(np.arange(shape[1], dtype=float), np.arange(shape[2], dtype=float), indexing="ij")
    image = np.empty(shape, np.float32)
    for z in range(shape[0]):  # plane by plane: memory stays one section of points
        pts = np.column_stack([np.full(yy.size, (z + 0.5) * aniso), yy.ravel(), xx.ravel()])
        dist, idx = tree.query(pts, k=2)
        gap = (dist[:, 1] - dist[:, 0]) / 2.0  # ~ distance to the cell boundary
        membrane = np.exp(-((gap / 1.3) ** 2))
        plane = brightness[idx[:, 0]] * (1.0 - 0.7 * membrane)
        image[z] = plane.reshape(shape[1:])

    # dark organelles (mitochondria-like blobs) inside cells
    n_blobs = max(1, int(np.prod(shape) / 6000))
    blobs = np.zeros(shape, np.float32)
    centres = (rng.random((n_blobs, 3)) * np.array(shape)).astype(int)
    blobs[tuple(centres.T)] = 1.0
    blobs = ndimage.gaussian_filter(blobs, (0.6, 2.5, 2.5))
    if blobs.max() > 0:
        image -= 70.0 * blobs / blobs.max()

    image = ndimage.gaussian_filter(image, (0.4, 1.0, 1.0))
    image += rng.normal(0.0, 6.0, (shape[0], 1, 1)).astype(np.float32)  # section staining
    image += rng.normal(0.0, 14.0, shape).astype(np.float32)  # detector noise
    image += 25.0 * (rng.random(shape, dtype=np.float32) < 0.01)  # sparse bright specks
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
