"""Section artifacts: the saved transforms and tile positions reproduce the raw images."""

import numpy as np
import pytest

from connectomix.synth import SynthSettings, generate, map_points, synthesize, unwarp_section
from connectomix.synth._artifacts import make_transforms

CLEAN = dict(noise=0.0, blur_px=0.0, stain_field=0.0, section_brightness=0.0, section_contrast=0.0)


def test_transforms_are_large_and_invert_exactly():
    s = SynthSettings(shape=(9, 320, 320), misalign=True)
    t = make_transforms(s, np.random.default_rng(0), s.shape)
    ref = t[t.reference]
    assert list(ref.section) == [4] and ref.rotation_deg.iloc[0] == 0 and ref.elastic_dy.iloc[0] == []
    others = t[~t.reference]
    assert np.hypot(others.translation_y, others.translation_x).max() / 8 > 25
    assert np.abs(others.rotation_deg).max() > 0.5
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(0, 9 * 40, 500), rng.uniform(0, 2560, 500), rng.uniform(0, 2560, 500)])
    raw = map_points(t, pts, to="raw")
    assert np.abs(raw - pts)[:, 1:].max() > 100  # really moved
    back = map_points(t, raw, to="true")
    assert np.abs(back - pts).max() < 0.5  # nm
    # the elastic part reaches its amplitude (8 px = 64 nm) somewhere
    yy, xx = np.meshgrid(np.linspace(0, 2560, 41), np.linspace(0, 2560, 41), indexing="ij")
    grid = np.column_stack([np.full(yy.size, 0.0), yy.ravel(), xx.ravel()])
    row = t.iloc[[0]].copy()
    row.loc[:, ["rotation_deg", "translation_y", "translation_x"]] = 0.0
    e = map_points(row, grid, to="raw") - grid
    assert np.hypot(e[:, 1], e[:, 2]).max() > 0.55 * 64


def test_saved_transforms_unwarp_the_raw():
    base = SynthSettings(shape=(6, 200, 200), margin_px=90, **CLEAN)
    plain = generate(base, 11)
    warped = generate(base.replace(misalign=True), 11)
    assert np.array_equal(plain["gt"], warped["gt"])  # ground truth stays in the true frame
    t = warped["transforms"]
    vs = base.voxel_size
    mid = base.shape[0] // 2
    assert np.array_equal(warped["raw"][mid], plain["raw"][mid])  # the reference section is unwarped
    for z in range(base.shape[0]):
        row = t[t.section == z].iloc[0]
        back = unwarp_section(warped["raw"][z], row, vs)
        ok = np.isfinite(back)
        ok[:4] = ok[-4:] = False
        ok[:, :4] = ok[:, -4:] = False
        assert ok.mean() > 0.4
        truth = plain["raw"][z].astype(float)
        err = np.abs(back[ok] - truth[ok]).mean()
        before = np.abs(warped["raw"][z].astype(float) - truth).mean()
        corr = np.corrcoef(back[ok], truth[ok])[0, 1]
        assert err < 12 and corr > 0.85, (z, err, corr)
        if z != mid:
            assert before > 2 * err


def test_missing_and_damaged_sections_are_recorded():
    s = SynthSettings(shape=(10, 160, 160), missing_sections=2, damaged_sections=2)
    out = generate(s, 2)
    q = out["section_quality"]
    assert list(q.section) == list(range(10))
    missing = q[q.status == "missing"].section.tolist()
    damaged = q[q.status == "damaged"]
    assert len(missing) == 2 and len(damaged) == 2 and 5 not in missing
    for z in missing:
        assert out["raw"][z].max() == 0
    assert damaged.damage_kind.isin(["fold", "crack", "smear"]).all()
    assert ((damaged.score > 0) & (damaged.score < 1)).all()


def test_tiles_at_true_positions_reproduce_the_raw(tmp_path):
    s = SynthSettings(shape=(4, 200, 200), tiles=(2, 2), tile_overlap_px=40, stage_error_px=24.0)
    run = synthesize(tmp_path / "run", seed=4, settings=s)
    raw = run.open("raw").to_numpy()
    tiles = run.read_table("tiles").sort_values(["section", "tile"])
    truth = run.read_table("gt_tiles").sort_values(["section", "tile"])
    assert len(tiles) == 4 * 4
    assert {"section", "tile", "stage_y", "stage_x", "path"} <= set(tiles.columns)
    import tifffile

    for z in range(4):
        canvas = np.full(raw.shape[1:], -1, int)
        for t, g in zip(tiles[tiles.section == z].itertuples(), truth[truth.section == z].itertuples()):
            img = tifffile.imread(run.path / t.path)
            y, x = int(round(g.y / 8)), int(round(g.x / 8))
            canvas[y : y + img.shape[0], x : x + img.shape[1]] = img
        assert np.array_equal(canvas, raw[z])
    err = np.hypot(tiles.stage_y.to_numpy() - truth.y.to_numpy(), tiles.stage_x.to_numpy() - truth.x.to_numpy()) / 8
    assert err.max() <= 24.0 + 1e-6 and err.max() >= 12.0
