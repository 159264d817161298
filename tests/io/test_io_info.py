"""info(): what a run holds, as plain data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from connectomix.errors import RunDirectoryError
from connectomix.io import import_volume, info
from connectomix.run import Run
from connectomix.volume import create_volume


def test_info_lists_arrays_and_tables(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((4, 16, 16), np.uint16))
    import_volume(tmp_path / "v.npy", tmp_path / "run", voxel_size=(40, 4, 4), offset=(40, 0, 0),
                  chunks=(2, 8, 8), shards=(2, 16, 16), pyramid_levels=2)
    run = Run(tmp_path / "run")
    create_volume(run.volume_path("segmentation"), shape=(4, 16, 16), dtype=np.uint64, voxel_size=(40, 4, 4),
                  complete=False, task="segment")
    run.write_table("edges", pd.DataFrame({"pre_id": [1, 2], "post_id": [2, 3], "weight": [0.5, 1.0]}))

    out = info(tmp_path / "run")
    json.dumps(out)  # plain data only
    raw = out["arrays"]["raw"]
    assert raw["shape"] == [4, 16, 16] and raw["dtype"] == "uint16"
    assert raw["voxel_size"] == [40, 4, 4] and raw["offset"] == [40, 0, 0]
    assert raw["chunks"] == [2, 8, 8] and raw["shards"] == [2, 16, 16]
    assert raw["complete"] is True and raw["levels"] == 2
    assert raw["scales"][1] == {"path": "s1", "shape": [4, 8, 8], "voxel_size": [40, 8, 8]}
    assert out["arrays"]["segmentation"]["complete"] is False
    assert out["tables"]["edges"]["rows"] == 2
    assert out["tables"]["edges"]["columns"] == ["pre_id", "post_id", "weight"]
    assert out["tables"]["edges"]["types"] == ["BIGINT", "BIGINT", "DOUBLE"]


def test_info_reports_an_unreadable_array_instead_of_failing(tmp_path):
    run = Run.create(tmp_path / "run")
    create_volume(run.volume_path("raw"), shape=(2, 4, 4), dtype=np.uint8, voxel_size=(40, 4, 4))
    broken = run.volume_path("broken")
    broken.mkdir()
    (broken / "zarr.json").write_text("{not json")
    out = info(run)
    assert out["arrays"]["raw"]["shape"] == [2, 4, 4]
    assert "broken" in out["arrays"]["broken"]["error"]
    assert out["tables"] == {}


def test_info_of_a_non_run(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunDirectoryError, match="is not a connectomix run directory"):
        info(tmp_path / "plain")
