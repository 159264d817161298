"""Affinities: the training target made from labels, and checked input for the watershed.

An affinity volume is channel-first, ``(C, Z, Y, X)``; channel ``c`` belongs to an
offset ``o_c`` (voxels, z y x) and holds, at voxel ``v``, the probability that ``v``
and ``v + o_c`` belong to the same object. The first three offsets are the nearest
neighbours at -1 along z, y and x (DESIGN.md's contract), so channel ``d`` at ``v``
is the edge between ``v`` and its predecessor along axis ``d``.

Inside this package affinities are handled as ``uint16`` levels of ``1/65535``
(:func:`quantize`): every sum of them is then an exact integer, whatever order blocks
add them in, which keeps block-wise results identical to whole-volume ones.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import VolumeError

__all__ = ["NEAREST_OFFSETS", "LEVELS", "affinities_from_labels", "quantize"]

#: The nearest-neighbour offsets (voxels, z y x) of the first three channels.
NEAREST_OFFSETS: tuple[tuple[int, int, int], ...] = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))
#: Quantisation levels of an affinity: 1.0 is ``LEVELS``.
LEVELS = 65535


def affinities_from_labels(labels, offsets: Sequence[Sequence[int]] = NEAREST_OFFSETS) -> np.ndarray:
    """Make the affinities of a label volume: 1 where two voxels share an object.

    Parameters
    ----------
    labels : ndarray, (Z, Y, X) integer
        Object ids; 0 means "no object / boundary".
    offsets : sequence of (dz, dy, dx)
        One offset per output channel, in voxels. The default is the three nearest
        neighbours at -1 along z, y, x.

    Returns
    -------
    ndarray, (len(offsets), Z, Y, X) float32
        Channel ``c`` at ``v`` is 1.0 if ``labels[v] == labels[v + offsets[c]] != 0``
        and 0.0 otherwise, also where ``v + offsets[c]`` lies outside the volume.

    Raises
    ------
    VolumeError
        If ``labels`` is not an integer array or an offset does not fit its dimensions.

    Examples
    --------
    >>> from connectomix.testing import blobs
    >>> aff = affinities_from_labels(blobs((8, 16, 16), n=4, seed=1))
    >>> aff.shape, aff.dtype
    ((3, 8, 16, 16), dtype('float32'))
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise VolumeError(f"labels must be an integer array, got dtype {labels.dtype}")
    offsets = [tuple(int(o) for o in off) for off in offsets]
    for off in offsets:
        if len(off) != labels.ndim:
            raise VolumeError(f"offset {off} does not match labels of {labels.ndim} dimensions {labels.shape}")
    out = np.zeros((len(offsets),) + labels.shape, np.float32)
    for c, off in enumerate(offsets):
        here, there = _shifted_pair(labels.shape, off)
        if here is None:
            continue
        a, b = labels[here], labels[there]
        out[(c,) + here] = (a == b) & (a != 0)
    return out


def _shifted_pair(shape, offset):
    """Slices ``here`` and ``there`` with ``there = here + offset``, both inside ``shape``."""
    here, there = [], []
    for n, o in zip(shape, offset):
        if abs(o) >= n:
            return None, None
        here.append(slice(max(0, -o), n - max(0, o)))
        there.append(slice(max(0, o), n - max(0, -o)))
    return tuple(here), tuple(there)


def quantize(affinities, *, name: str = "affinities", channels: int = 3) -> np.ndarray:
    """Check affinities and turn their first ``channels`` channels into uint16 levels.

    Parameters
    ----------
    affinities : ndarray, (C, Z, Y, X) uint8 or float
        uint8 counts 255 as 1.0; floats must lie in [0, 1].
    name : str
        What to call the input in error messages.
    channels : int
        How many leading channels to keep (the nearest neighbours).

    Returns
    -------
    ndarray, (channels, Z, Y, X) uint16
        ``round(affinity * 65535)``.

    Raises
    ------
    VolumeError
        On a wrong shape or dtype, NaN or infinite values, or floats outside [0, 1].
    """
    aff = np.asarray(affinities)
    if aff.ndim != 4 or aff.shape[0] < channels:
        raise VolumeError(
            f"{name} must be channel-first (C, Z, Y, X) with at least {channels} channels "
            f"(the nearest neighbours along z, y, x); got shape {aff.shape}"
        )
    aff = aff[:channels]
    if aff.dtype == np.uint8:
        out = aff.astype(np.uint16)
        out *= np.uint16(257)
        return out
    if not np.issubdtype(aff.dtype, np.floating):
        raise VolumeError(f"{name} must be uint8 or float (probabilities in [0, 1]); got dtype {aff.dtype}")
    if aff.size:
        lo, hi = float(np.min(aff)), float(np.max(aff))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            n_bad = int(np.count_nonzero(~np.isfinite(aff)))
            raise VolumeError(f"{name} contain {n_bad} NaN or infinite values; a network output must be finite")
        if lo < 0.0 or hi > 1.0:
            raise VolumeError(
                f"{name} must be probabilities in [0, 1]; found values in [{lo:.4g}, {hi:.4g}] "
                "(logits stored instead of sigmoid outputs?)"
            )
    # one channel at a time: a float32 scratch of one channel instead of all of them
    out = np.empty(aff.shape, np.uint16)
    scaled = np.empty(aff.shape[1:], np.float32)
    for c in range(aff.shape[0]):
        np.multiply(aff[c], np.float32(LEVELS), out=scaled, dtype=np.float32)
        out[c] = np.rint(scaled, out=scaled)
    return out
