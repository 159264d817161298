import numpy as np
import pandas as pd
import pytest

from connectomix.evaluate import damage_strip, section_continuity


def _columns(n=4, z=5, size=16):
    """n true neurons as vertical columns side by side, (z, size, n*size)."""
    gt = np.zeros((z, size, n * size), np.uint32)
    for i in range(n):
        gt[:, :, i * size:(i + 1) * size] = i + 1
    return gt


def test_neurons_split_at_a_section_are_counted_as_broken():
    gt = _columns()
    pred = gt.astype(np.uint64) * 10
    pred[3:, :, :16] = 99  # neuron 1 changes segment between sections 2 and 3 (across section 2)
    c = section_continuity(pred, gt, [2, 0, 4], min_voxels=10)  # 0 and 4 cannot be crossed
    assert (c.n_crossing, c.n_kept) == (4, 3) and c.fraction == pytest.approx(0.75)
    assert c.per_section["section"].tolist() == [2]


def test_merges_do_not_break_continuity_and_small_pieces_do_not_count():
    gt = _columns()
    pred = np.ones_like(gt, np.uint64)  # everything merged: still one segment across
    assert section_continuity(pred, gt, [1, 2]).fraction == 1.0
    # a tiny neuron (fewer voxels than min_voxels per section) is not a crossing
    gt[:, :2, :2] = 7
    assert section_continuity(pred, gt, [2], min_voxels=5).n_crossing == 4


def test_a_damaged_strip_counts_only_the_neurons_inside_it():
    gt = _columns()
    pred = gt.astype(np.uint64)
    pred[3:, :, 16:32] = 50  # neuron 2 broken
    strip = np.zeros(gt.shape[1:], bool)
    strip[:, :16] = True  # the strip covers neuron 1 only
    c = section_continuity(pred, gt, [2], strips={2: strip}, min_voxels=10)
    assert (c.n_crossing, c.n_kept) == (1, 1)


def test_damage_strip_follows_the_generator_parameters():
    row = pd.Series({"damage_angle_deg": 0.0, "damage_y": 80.0, "damage_x": 0.0, "damage_width": 32.0})
    m = damage_strip(row, (20, 10), (8, 8))  # angle 0: a horizontal strip around y = 80 nm
    assert m[8:12].all() and not m[:8].any() and not m[12:].any()


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="one shape"):
        section_continuity(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)), [1])


def test_evaluate_run_scores_continuity_across_the_generators_bad_sections(tmp_path):
    from connectomix.evaluate import evaluate_run
    from connectomix.synth import preset_settings, synthesize
    from connectomix.volume import create_volume

    settings = preset_settings("demo").replace(shape=(10, 136, 136), missing_sections=1, damaged_sections=2)
    run = synthesize(tmp_path / "run", preset="demo", seed=1, settings=settings)
    quality = run.read_table("gt_section_quality")
    gt_vol = run.open("gt_segmentation")
    gt = gt_vol.to_numpy()

    def scores_of(seg):
        out = create_volume(run.volume_path("segmentation"), shape=seg.shape, dtype=np.uint64,
                            voxel_size=tuple(gt_vol.voxel_size), chunks=(4, 64, 64), overwrite=True)
        out[out.roi] = seg
        return evaluate_run(run.path, compute_erl=False)

    perfect = scores_of(gt.astype(np.uint64))
    assert perfect["continuity_missing"] == 1.0 and perfect["continuity_missing_n"] > 0
    assert perfect["continuity_damaged"] == 1.0 and perfect["continuity_damaged_n"] > 0
    # new ids above the missing section: every neuron crossing it is broken there
    z = int(quality.loc[quality["status"] == "missing", "section"].iloc[0])
    broken = gt.astype(np.uint64)
    broken[z + 1:] += np.uint64(10**6)
    s = scores_of(broken)
    assert s["continuity_missing"] == 0.0 and s["continuity_missing_n"] == perfect["continuity_missing_n"]
