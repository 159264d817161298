"""Ground truth mapped into an aligned frame that differs from the true one (issue #5, DESIGN frames)."""

import numpy as np
import pandas as pd
import pytest

from connectomix.align import GridMap, gridmap_table, labels_to_aligned
from connectomix.evaluate import evaluate_run, ground_truth_volume, variation_of_information
from connectomix.run import Run
from connectomix.testing import random_volume, stored_volume

VOXEL = (40, 8, 8)
SHIFTS = [(0, 0), (3, -2), (-4, 5)]  # true raw position = true-frame position + shift (px), per section


def true_transforms(shape, shifts=SHIFTS, voxel=VOXEL):
    """A ``gt_transforms`` table of pure translations (whole pixels)."""
    Z, Y, X = shape
    return pd.DataFrame([
        dict(section=z, z=z * voxel[0], thickness=float(voxel[0]), reference=(ty, tx) == (0, 0), rotation_deg=0.0,
             center_y=Y * voxel[1] / 2, center_x=X * voxel[2] / 2, translation_y=float(ty * voxel[1]),
             translation_x=float(tx * voxel[2]), elastic_sigma=1.0, elastic_cy=[], elastic_cx=[], elastic_dy=[],
             elastic_dx=[])
        for z, (ty, tx) in enumerate(shifts)])


def shifted(labels, shifts=SHIFTS):
    """What an aligned frame equal to the raw one shows: section z moved by its shift, 0 where nothing comes in."""
    out = np.zeros_like(labels)
    Y, X = labels.shape[1:]
    for z, (ty, tx) in enumerate(shifts):
        src = labels[z, max(0, -ty):Y - max(0, ty), max(0, -tx):X - max(0, tx)]
        out[z, max(0, ty):Y - max(0, -ty), max(0, tx):X - max(0, -tx)] = src
    return out


def blocks(shape=(3, 40, 48), seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(1, 50, size=(shape[0], shape[1] // 8, shape[2] // 8)).astype(np.uint64)
    return np.repeat(np.repeat(small, 8, 1), 8, 2)


def test_labels_follow_the_tissue_an_unaligned_frame_shows():
    gt = blocks()
    g = GridMap.identity(3, gt.shape[1:], 8)  # "alignment" that did nothing: aligned = raw
    np.testing.assert_array_equal(labels_to_aligned(gt, g, true_transforms(gt.shape), VOXEL), shifted(gt))


def test_labels_stay_put_where_the_alignment_is_exact():
    gt = blocks(seed=1)
    g = GridMap.identity(3, gt.shape[1:], 8)
    expected = gt.copy()
    Y, X = gt.shape[1:]
    for z, (ty, tx) in enumerate(SHIFTS):  # the estimated maps equal the true transforms
        g.coords[z, 0] += ty
        g.coords[z, 1] += tx
        # where the aligned voxel's raw position falls off the raw section there is no data to score
        expected[z, np.flatnonzero((np.arange(Y) + ty < 0) | (np.arange(Y) + ty >= Y))] = 0
        expected[z, :, np.flatnonzero((np.arange(X) + tx < 0) | (np.arange(X) + tx >= X))] = 0
    np.testing.assert_array_equal(labels_to_aligned(gt, g, true_transforms(gt.shape), VOXEL), expected)


def make_aligned_run(tmp_path, *, with_true_transforms=True):
    gt = blocks(seed=2)
    run = Run.create(tmp_path / "run")
    stored_volume(run.volume_path("gt_segmentation"), gt, voxel_size=VOXEL)
    stored_volume(run.volume_path("aligned"), random_volume(gt.shape, seed=1), voxel_size=VOXEL)
    # the segmentation is exactly right for the tissue of an aligned frame that kept the raw one
    seg = shifted(gt) + 1000
    stored_volume(run.volume_path("segmentation"), seg, voxel_size=VOXEL)
    run.write_table("transforms", gridmap_table(GridMap.identity(3, gt.shape[1:], 8), VOXEL))
    if with_true_transforms:
        run.write_table("gt_transforms", true_transforms(gt.shape))
    syn = pd.DataFrame(dict(synapse_id=[1, 2], pre_id=[int(gt[1, 12, 12]), int(gt[2, 20, 20])],
                            post_id=[int(gt[1, 12, 30]), int(gt[2, 20, 36])], z=[60.0, 100.0],
                            y=[100.0, 164.0], x=[100.0, 164.0]))
    run.write_table("gt_synapses", syn)
    moved = syn.copy()
    moved["y"] += [3 * 8, -4 * 8]
    moved["x"] += [-2 * 8, 5 * 8]
    moved["pre_id"] += 1000
    moved["post_id"] += 1000
    run.write_table("synapses", moved)
    return run, gt, seg


def test_evaluate_run_scores_an_aligned_run_in_its_own_frame(tmp_path):
    run, gt, seg = make_aligned_run(tmp_path)
    out = evaluate_run(run.path, compute_erl=False)
    assert out["gt_mapped_to_aligned"] is True
    assert out["voi"] == pytest.approx(0.0, abs=1e-9) and out["rand_error"] == pytest.approx(0.0, abs=1e-9)
    # the synapses are where the aligned frame shows them, with their partners
    assert out["synapse_n_matched"] == 2 and out["synapse_match_distance_nm"] == pytest.approx(0.0, abs=1e-6)
    assert out["synapse_f1"] == pytest.approx(1.0)
    # in the true frame the same segmentation would be far off
    assert variation_of_information(seg, gt).total > 1.0
    np.testing.assert_array_equal(ground_truth_volume(run).to_numpy(), shifted(gt))


def test_evaluate_run_without_true_transforms_keeps_the_stored_ground_truth(tmp_path):
    run, gt, seg = make_aligned_run(tmp_path, with_true_transforms=False)
    out = evaluate_run(run.path, compute_erl=False)
    assert "gt_mapped_to_aligned" not in out
    assert out["voi"] == pytest.approx(variation_of_information(seg, gt).total)
    np.testing.assert_array_equal(ground_truth_volume(run).to_numpy(), gt)


def exact_map(shape, shifts=SHIFTS, missing=()):
    """Estimated maps equal to the true translations; a missing section's map interpolated as align does."""
    g = GridMap.identity(shape[0], shape[1:], 8)
    for z, (ty, tx) in enumerate(shifts):
        g.coords[z, 0] += ty
        g.coords[z, 1] += tx
    for z in missing:
        g.coords[z] = (g.coords[z - 1] + g.coords[z + 1]) / 2
    return g


def test_a_missing_section_follows_its_neighbours_maps():
    # align interpolates a missing section's map from its neighbours; its tissue lies where theirs does,
    # not where the generator's own (unseen) transform for it would put it
    gt = blocks(seed=3)
    shifts = [(0, 0), (20, -12), (-4, 6)]
    g = exact_map(gt.shape, shifts, missing=[1])
    mapped = labels_to_aligned(gt, g, true_transforms(gt.shape, shifts), VOXEL, missing=[1])
    inner = (slice(8, -8), slice(8, -8))
    np.testing.assert_array_equal(mapped[1][inner], gt[1][inner])
    np.testing.assert_array_equal(mapped[0], gt[0])
    unaware = labels_to_aligned(gt, g, true_transforms(gt.shape, shifts), VOXEL)
    assert (unaware[1][inner] == gt[1][inner]).mean() < 0.5


def test_synapses_of_an_exactly_aligned_run_come_back_where_they_are(tmp_path):
    from connectomix.evaluate import ground_truth_synapses

    run, gt, _ = make_aligned_run(tmp_path)
    run.write_table("transforms", gridmap_table(exact_map(gt.shape), VOXEL))
    got = ground_truth_synapses(run)
    np.testing.assert_allclose(got[["z", "y", "x"]].to_numpy(), run.read_table("gt_synapses")[["z", "y", "x"]].to_numpy(),
                               atol=1e-6)
    # the identity map of make_aligned_run puts them where the raw sections show them: moved by the shifts
    run.write_table("transforms", gridmap_table(GridMap.identity(3, gt.shape[1:], 8), VOXEL))
    moved = ground_truth_synapses(run)
    np.testing.assert_allclose(moved["y"] - got["y"], [3 * 8, -4 * 8], atol=1e-6)
    np.testing.assert_allclose(moved["x"] - got["x"], [-2 * 8, 5 * 8], atol=1e-6)
    # section 1 found missing: its synapse is placed as its interpolated map places it, halfway between
    # where sections 0 (shift 0, 0) and 2 (shift -4, 5) would show it
    run.write_table("section_quality", pd.DataFrame(dict(section=[0, 1, 2], status=["ok", "missing", "ok"],
                                                         score=[1.0, 0.0, 1.0])))
    halfway = ground_truth_synapses(run)
    np.testing.assert_allclose(halfway["y"] - got["y"], [-2 * 8, -4 * 8], atol=1e-6)
    np.testing.assert_allclose(halfway["x"] - got["x"], [2.5 * 8, 5 * 8], atol=1e-6)


def test_mapped_ground_truth_is_reused_until_the_transforms_change(tmp_path):
    run, gt, _ = make_aligned_run(tmp_path)
    first = ground_truth_volume(run)
    assert ground_truth_volume(run) is first  # evaluate, the naive baseline and the report share one mapping
    np.testing.assert_array_equal(first.to_numpy(), shifted(gt))
    run.write_table("transforms", gridmap_table(exact_map(gt.shape), VOXEL))
    again = ground_truth_volume(run)
    assert again is not first
    inner = (slice(None), slice(8, -8), slice(8, -8))
    np.testing.assert_array_equal(again.to_numpy()[inner], gt[inner])


def test_a_montage_run_is_scored_where_its_stitched_sections_show_the_tissue(tmp_path):
    # `align` stitched each section's tiles (tile_positions) where the generator cut them
    # elsewhere (gt_tiles): the montage shows section z's raw tissue moved by its tiles' offset
    gt = blocks(seed=4)
    offsets = [(2, 1), (-3, 0), (1, -2)]  # px: montage voxel = raw voxel + offset
    run = Run.create(tmp_path / "run")
    stored_volume(run.volume_path("gt_segmentation"), gt, voxel_size=VOXEL)
    stored_volume(run.volume_path("aligned"), random_volume(gt.shape, seed=1), voxel_size=VOXEL)
    run.write_table("transforms", gridmap_table(GridMap.identity(3, gt.shape[1:], 8), VOXEL))  # aligned = montage
    run.write_table("gt_transforms", true_transforms(gt.shape))
    true_rows, placed_rows = [], []
    # section 0: only its first tile placed, the others left at wrong stage positions; section 1: all
    # placed; section 2: none placed, all pasted at stage positions that share the section's offset
    placed_of = {0: (True, False, False), 1: (True, True, True), 2: (False, False, False)}
    for z, (oy, ox) in enumerate(offsets):
        for tile, (y, x) in enumerate([(0, 0), (0, 24), (16, 0)]):
            true_rows.append(dict(section=z, tile=tile, y=y * 8.0, x=x * 8.0, stage_error_y=0.0, stage_error_x=0.0))
            placed = placed_of[z][tile]
            py, px = (y + oy, x + ox) if placed or z == 2 else (y + 9, x - 7)
            placed_rows.append(dict(section=z, tile=tile, path="", y_vx=py, x_vx=px, y=py * 8.0, x=px * 8.0,
                                    height_vx=24, width_vx=24, placed=placed, dtype="|u1"))
    run.write_table("gt_tiles", pd.DataFrame(true_rows))
    run.write_table("tile_positions", pd.DataFrame(placed_rows))
    run.update_config("align_result", {"source": "montage"})
    moves = [(ty + oy, tx + ox) for (ty, tx), (oy, ox) in zip(SHIFTS, offsets)]
    seg = shifted(gt, moves) + 1000  # exactly right for the tissue the montage shows
    stored_volume(run.volume_path("segmentation"), seg, voxel_size=VOXEL)
    out = evaluate_run(run.path, compute_erl=False)
    assert out["gt_mapped_to_aligned"] is True
    assert out["voi"] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_array_equal(ground_truth_volume(run).to_numpy(), shifted(gt, moves))
    # scored in the raw frame's mapping (the tiles' offsets ignored) it would not be exact
    assert variation_of_information(seg, shifted(gt)).total > 0.5


def test_a_montage_run_without_true_tiles_keeps_the_stored_ground_truth(tmp_path):
    run, gt, seg = make_aligned_run(tmp_path)
    run.update_config("align_result", {"source": "montage"})  # stitched from tiles the generator did not record
    out = evaluate_run(run.path, compute_erl=False)
    assert "gt_mapped_to_aligned" not in out
    np.testing.assert_array_equal(ground_truth_volume(run).to_numpy(), gt)
