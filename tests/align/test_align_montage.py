"""Montage: tile offsets, robust placement, warnings, tile import errors."""

import os

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage as ndi

from connectomix.align import StitchWarning, blend_tiles, import_tiles, place_tiles
from connectomix.errors import InputFormatError, VolumeNotFoundError


def _section(seed=0, shape=(256, 256)):
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.standard_normal(shape), 1.5)
    return np.clip(128 + 60 * img / img.std(), 0, 255).astype(np.uint8)


def _cut(img, size=152, overlap=48, err=24, seed=1):
    rng = np.random.default_rng(seed)
    Y, X = img.shape
    starts = [0, Y - size]
    tiles, true, stage = [], [], []
    for y in starts:
        for x in [0, X - size]:
            tiles.append(img[y : y + size, x : x + size])
            true.append((y, x))
            a = rng.uniform(0, 2 * np.pi)
            stage.append((y + err * np.sin(a), x + err * np.cos(a)))
    return tiles, np.array(true, float), np.array(stage)


def test_place_tiles_recovers_positions_despite_stage_error():
    img = _section()
    tiles, true, stage = _cut(img, err=24)
    pos, pairs, unplaced = place_tiles(tiles, stage)
    e = pos - true
    e -= e.mean(0)  # a montage is defined up to one translation
    assert not unplaced
    assert np.abs(e).max() < 0.5
    out = blend_tiles(tiles, np.round(pos - pos[0] + true[0]), ((0, 256), (0, 256)))
    assert np.array_equal(out, img)


def test_two_wrong_corner_pairs_do_not_undo_the_four_right_ones(monkeypatch):
    # hard seed 0, section 32: the edge-sharing pairs matched exactly (NCC 1.0), the two pairs
    # of tiles that share only a corner matched wrongly with NCC ~0.4; the first least-squares
    # solve spread their error over every pair and all tiles fell back to the stage positions
    import connectomix.align._montage as montage

    true = np.array([[0, 0], [0, 232], [232, 0], [232, 232]], float)
    stage = true + [[4, 24], [27, -7], [7, 23], [-15, -26]]
    wrong = {(0, 3): (216.0, 214.0, 0.44), (1, 2): (227.0, -229.0, 0.42)}
    tiles = [np.zeros((280, 280), np.uint8) + k for k in range(4)]  # told apart by their value

    def offset(a, b, d0, *, settings):
        i, j = int(a.flat[0]), int(b.flat[0])
        if (i, j) in wrong:
            dy, dx, ncc = wrong[(i, j)]
            return np.array([dy, dx]), ncc
        return true[j] - true[i], 1.0

    monkeypatch.setattr(montage, "tile_offset", offset)
    pos, pairs, unplaced = place_tiles(tiles, stage)
    e = pos - true
    assert not unplaced
    np.testing.assert_allclose(e - e[0], 0.0, atol=0.01)  # the weak pull to the stage: < 0.01 px
    bad = pairs.set_index(["a", "b"]).loc[[(0, 3), (1, 2)], "residual_px"]
    assert (bad > 5).all()  # the wrong pairs stand out instead of being averaged in


def test_the_pairs_that_agree_outvote_a_wrong_pair_of_higher_ncc(monkeypatch):
    import connectomix.align._montage as montage

    true = np.array([[0, 0], [0, 232], [232, 0], [232, 232]], float)
    stage = true + [[4, 3], [-3, 5], [2, -4], [-5, -2]]
    tiles = [np.zeros((280, 280), np.uint8) + k for k in range(4)]

    def offset(a, b, d0, *, settings):
        i, j = int(a.flat[0]), int(b.flat[0])
        if (i, j) == (0, 1):  # wrong, yet the most confident pair
            return true[j] - true[i] + [20, -15], 0.95
        return true[j] - true[i], 0.5 if (i, j) in ((0, 3), (1, 2)) else 0.9

    monkeypatch.setattr(montage, "tile_offset", offset)
    pos, pairs, _ = place_tiles(tiles, stage)
    e = pos - true
    np.testing.assert_allclose(e - e[0], 0.0, atol=0.01)


def test_non_overlapping_tile_keeps_stage_position_with_warning():
    img = _section()
    tiles, true, stage = _cut(img)
    far = _section(seed=5, shape=(152, 152))
    tiles.append(far)
    stage = np.vstack([stage, [1000.0, 1000.0]])
    with pytest.warns(StitchWarning, match="tile\\(s\\) 4 have no usable overlap"):
        pos, _, unplaced = place_tiles(tiles, stage)
    assert unplaced == [4]
    assert np.allclose(pos[4], [1000, 1000], atol=1e-3)


def _write(tmp_path, df):
    p = tmp_path / "tiles.csv"
    df.to_csv(p, index=False)
    return p


def test_import_tiles_records_table(tmp_path):
    img = _section()
    tiles, true, stage = _cut(img)
    rows = []
    for t, (tile, st) in enumerate(zip(tiles, stage)):
        tifffile.imwrite(tmp_path / f"t{t}.tif", tile)
        rows.append(dict(section=0, tile=t, stage_y=st[0] * 8, stage_x=st[1] * 8, path=f"t{t}.tif"))
    df = import_tiles(_write(tmp_path, pd.DataFrame(rows)), tmp_path / "run", (40, 8, 8))
    assert len(df) == 4 and os.path.isabs(df["path"][0])


def test_import_tiles_missing_columns(tmp_path):
    p = _write(tmp_path, pd.DataFrame({"section": [0], "tile": [0], "path": ["x.tif"]}))
    with pytest.raises(InputFormatError, match=r"lacks the column\(s\) \['stage_y', 'stage_x'\]"):
        import_tiles(p, tmp_path / "run", (40, 8, 8))


def test_import_tiles_missing_image(tmp_path):
    p = _write(tmp_path, pd.DataFrame({"section": [0], "tile": [0], "stage_y": [0.0], "stage_x": [0.0],
                                       "path": ["nope.tif"]}))
    with pytest.raises(VolumeNotFoundError, match="nope.tif does not exist"):
        import_tiles(p, tmp_path / "run", (40, 8, 8))


def test_import_tiles_positions_not_numbers(tmp_path):
    p = _write(tmp_path, pd.DataFrame({"section": [0], "tile": [0], "stage_y": ["a"], "stage_x": [0.0],
                                       "path": ["x.tif"]}))
    with pytest.raises(InputFormatError, match="'stage_y' must be numbers"):
        import_tiles(p, tmp_path / "run", (40, 8, 8))
