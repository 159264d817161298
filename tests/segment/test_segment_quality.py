"""Quality on affinities made from known labels: noise, faint and missing boundaries."""

import pytest
from skimage.metrics import variation_of_information

from connectomix.segment import affinities_from_labels, segment
from connectomix.testing import blobs

from segment_testdata import make_noisy_affinities, merge_pairs


def _voi(truth, seg):
    return float(sum(variation_of_information(truth, seg)))


def _naive(aff, threshold=0.5):
    """The baseline a user would try first: components of voxels with mean affinity > threshold."""
    import cc3d

    return cc3d.connected_components(aff[:3].mean(axis=0) > threshold, connectivity=6)


def test_clean_affinities_are_segmented_perfectly():
    truth = blobs((16, 64, 64), n=25, seed=7)
    assert _voi(truth, segment(affinities_from_labels(truth)).segmentation) < 1e-9


@pytest.mark.parametrize("seed", [0, 1])
def test_noisy_affinities_with_faint_and_missing_boundaries(seed):
    truth = blobs((24, 96, 96), n=40, seed=seed)
    # noise 0.15, 30 % of objects with faint boundaries (0.35), two boundaries missing
    aff, missing = make_noisy_affinities(truth, sigma=0.15, weak_fraction=0.3, weak=0.35, merged=2, seed=seed)
    best = _voi(truth, merge_pairs(truth, missing))  # what a perfect agglomeration reaches
    assert 0.05 < best < 0.2
    ours = _voi(truth, segment(aff, threshold=0.5).segmentation)
    assert ours < best + 0.1, (ours, best)
    # with a threshold above the faint boundaries, the result is the best possible one
    assert _voi(truth, segment(aff, threshold=0.6).segmentation) < best + 0.02
    assert _voi(truth, _naive(aff)) > 10 * ours


def test_heavy_noise_degrades_gracefully():
    truth = blobs((24, 96, 96), n=40, seed=2)
    aff, _ = make_noisy_affinities(truth, sigma=0.25, weak_fraction=0.3, weak=0.35, seed=2)
    assert _voi(truth, segment(aff, threshold=0.6).segmentation) < 0.35
