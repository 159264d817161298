import pandas as pd
import pytest

from connectomix.errors import RunDirectoryError, TableNotFoundError, VolumeNotFoundError
from connectomix.run import Run


def test_create_and_reopen(tmp_path):
    run = Run.create(tmp_path / "r")
    assert (run.path / "volume.zarr" / "zarr.json").exists()
    assert (run.path / "tables").is_dir()
    assert Run(tmp_path / "r").path == run.path


def test_not_a_run(tmp_path):
    with pytest.raises(RunDirectoryError, match="does not exist"):
        Run(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(RunDirectoryError, match="not a connectomix run"):
        Run(tmp_path / "other")
    with pytest.raises(RunDirectoryError, match="not empty"):
        Run.create(tmp_path / "other")


def test_tables_mirror_parquet_and_duckdb(tmp_path):
    run = Run.create(tmp_path / "r")
    df = pd.DataFrame({"segment_id": [1, 2, 3], "size_vx": [10, 20, 30]})
    run.write_table("neurons", df)
    assert "neurons" in run.tables()
    back = run.read_table("neurons")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert pd.read_parquet(run.path / "tables" / "neurons").shape == (3, 2)
    with pytest.raises(TableNotFoundError, match="no table 'edges'.*neurons"):
        run.read_table("edges")
    with pytest.raises(VolumeNotFoundError, match="no array 'raw'"):
        run.open("raw")


def test_stages_skip_same_config_and_invalidate_later_ones(tmp_path):
    run = Run.create(tmp_path / "r")
    calls = []

    def do(stage, cfg):
        with run.stage(stage, cfg) as st:
            if not st.skipped:
                calls.append(stage)

    do("import", {"input": "a.tif"})
    do("smooth", {"sigma": 1})
    do("segment", {"t": 0.5})
    assert calls == ["import", "smooth", "segment"]
    do("import", {"input": "a.tif"})
    do("smooth", {"sigma": 1})
    assert calls == ["import", "smooth", "segment"]  # both skipped
    do("smooth", {"sigma": 2})  # changed: re-runs, and invalidates segment
    st = run.stages()
    assert set(st["stage"]) == {"import", "smooth"}
    do("segment", {"t": 0.5})
    assert calls[-2:] == ["smooth", "segment"]
    assert run.read_config()["smooth"] == {"sigma": 2}
    assert (run.stages()["status"] == "finished").all()


def test_failed_stage_is_recorded_and_rerun(tmp_path):
    run = Run.create(tmp_path / "r")
    with pytest.raises(ValueError):
        with run.stage("smooth", {"s": 1}):
            raise ValueError("boom")
    assert run.stages().set_index("stage").loc["smooth", "status"] == "failed"
    with run.stage("smooth", {"s": 1}) as st:
        assert not st.skipped
