import numpy as np
import pytest

from connectomix.errors import VolumeError
from connectomix.segment import NEAREST_OFFSETS, affinities_from_labels
from connectomix.segment._affinities import LEVELS, quantize
from connectomix.testing import blobs


def _brute_force(labels, offsets):
    out = np.zeros((len(offsets),) + labels.shape, np.float32)
    for c, off in enumerate(offsets):
        for v in np.ndindex(labels.shape):
            w = tuple(i + o for i, o in zip(v, off))
            if all(0 <= i < n for i, n in zip(w, labels.shape)):
                out[(c,) + v] = float(labels[v] == labels[w] != 0)
    return out


@pytest.mark.parametrize("offsets", [NEAREST_OFFSETS, [(-1, 0, 0), (0, -3, 0), (0, 0, 2), (-2, 1, -1)]])
def test_affinities_match_a_brute_force_definition(offsets):
    labels = blobs((5, 9, 8), n=6, seed=3)
    labels[2, 3:6, 2:5] = 0  # a patch of "no object"
    aff = affinities_from_labels(labels, offsets)
    assert aff.dtype == np.float32 and aff.shape == (len(offsets),) + labels.shape
    np.testing.assert_array_equal(aff, _brute_force(labels, offsets))


def test_nearest_neighbour_convention():
    labels = np.array([[[1, 1, 2]]], np.uint32)
    aff = affinities_from_labels(labels)
    # channel 2 at x is the edge to x - 1: inside object 1, across to 2, and off the volume
    np.testing.assert_array_equal(aff[2, 0, 0], [0, 1, 0])
    assert not aff[0].any() and not aff[1].any()  # z and y neighbours lie outside


def test_offset_longer_than_the_volume_gives_zeros():
    aff = affinities_from_labels(np.ones((2, 3, 3), np.uint8), [(-5, 0, 0)])
    assert not aff.any()


def test_bad_labels_are_refused():
    with pytest.raises(VolumeError, match="integer"):
        affinities_from_labels(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(VolumeError, match="offset"):
        affinities_from_labels(np.zeros((2, 2, 2), np.uint8), [(-1, 0)])


def test_quantize_uint8_and_float_agree():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (3, 2, 3, 4), dtype=np.uint8)
    q8 = quantize(u8)
    qf = quantize(u8.astype(np.float32) / 255)
    assert q8.dtype == np.uint16
    np.testing.assert_array_equal(q8, qf)
    assert q8.max() <= LEVELS


@pytest.mark.parametrize(
    "aff, match",
    [
        (np.full((3, 2, 2, 2), np.nan, np.float32), "NaN"),
        (np.full((3, 2, 2, 2), 1.5, np.float32), r"\[0, 1\].*logits"),
        (np.full((3, 2, 2, 2), -0.1, np.float32), r"\[0, 1\]"),
        (np.zeros((3, 2, 2, 2), np.int16), "uint8 or float"),
        (np.zeros((2, 2, 2), np.float32), "channel-first"),
        (np.zeros((2, 2, 2, 2), np.float32), "at least 3 channels"),
    ],
)
def test_quantize_refuses_bad_affinities(aff, match):
    with pytest.raises(VolumeError, match=match):
        quantize(aff)
