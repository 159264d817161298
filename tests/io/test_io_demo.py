"""The built-in demo volume: deterministic, EM-like, small."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from connectomix.io import demo_volume


def test_shape_type_and_seed():
    a = demo_volume((6, 40, 48), seed=3)
    assert a.shape == (6, 40, 48) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, demo_volume((6, 40, 48), seed=3))
    assert not np.array_equal(a, demo_volume((6, 40, 48), seed=4))


def test_looks_like_em_and_smoothing_helps():
    a = demo_volume((8, 96, 96), seed=0).astype(np.float32)
    assert 20 < a.std() < 80 and 80 < a.mean() < 190  # contrast without saturation
    assert (a < 90).mean() > 0.05  # dark membranes cover a fair share
    # noisy: neighbouring pixels differ a lot, and smoothing removes much of it
    rough = np.abs(np.diff(a, axis=2)).mean()
    smooth = np.abs(np.diff(ndimage.gaussian_filter(a, (0, 1, 1)), axis=2)).mean()
    assert rough > 10 and smooth < rough / 2


def test_bad_shape():
    with pytest.raises(ValueError, match="three positive integers"):
        demo_volume((4, 0, 4))
