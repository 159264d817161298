"""The run directory: everything one run made, and the stages that made it.

Layout (see DESIGN.md)::

    RUN/
      run.yaml            the configuration used (merged over every command run)
      volume.zarr/        OME-Zarr images: raw, aligned, ..., one group each
      connectome.duckdb   tables (DuckDB has one writer: the driver process)
      tables/<name>/      the same tables as Parquet; block-wise jobs write
                          ``block-<id>.parquet`` here, the driver loads them
      .blocks/<task>/     done-records of block-wise jobs, for resume
      report/, analysis/  later stages

A :class:`Run` is opened on an existing directory (``Run(path)``) or made with
``Run.create(path)``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from .errors import RunDirectoryError, TableNotFoundError, VolumeNotFoundError

__all__ = ["Run", "STAGE_ORDER", "config_hash"]

#: Pipeline order: re-running a stage with a new configuration invalidates the ones after it.
STAGE_ORDER = ("import", "smooth", "align", "predict", "segment", "synapses", "graph", "analyze", "evaluate", "report")
_MARKER = ".connectomix-run"


def config_hash(config: Any) -> str:
    """A stable short hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Run:
    """A run directory.

    Parameters
    ----------
    path : str or Path
        An existing run directory.

    Raises
    ------
    RunDirectoryError
        If ``path`` does not exist or is not a connectomix run directory.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunDirectoryError(f"run directory {self.path} does not exist")
        if not (self.path / _MARKER).exists():
            raise RunDirectoryError(
                f"{self.path} is not a connectomix run directory (no {_MARKER} file); "
                "make one with `connectomix import` or `connectomix demo`"
            )

    @classmethod
    def create(cls, path, *, exist_ok: bool = True) -> "Run":
        """Make (or reopen) a run directory at ``path``."""
        import zarr

        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirectoryError(f"cannot make a run at {path}: it is a file")
        if path.exists() and not (path / _MARKER).exists() and any(path.iterdir()):
            raise RunDirectoryError(
                f"cannot make a run at {path}: the directory exists, is not empty and is not a run"
            )
        if (path / _MARKER).exists() and not exist_ok:
            raise RunDirectoryError(f"run directory {path} already exists")
        path.mkdir(parents=True, exist_ok=True)
        (path / "tables").mkdir(exist_ok=True)
        if not (path / "volume.zarr" / "zarr.json").exists():
            zarr.open_group(str(path / "volume.zarr"), mode="a")
        (path / _MARKER).write_text("connectomix run directory\n")
        return cls(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # ------------------------------------------------------------------ arrays
    @property
    def zarr_path(self) -> Path:
        return self.path / "volume.zarr"

    def volume_path(self, name: str) -> Path:
        return self.zarr_path / name

    def arrays(self) -> list[str]:
        """Names of the images in ``volume.zarr``."""
        if not self.zarr_path.is_dir():
            return []
        return sorted(p.name for p in self.zarr_path.iterdir() if (p / "zarr.json").exists())

    def open(self, name: str, *, mode: str = "r", require_complete: bool = True):
        """Open the image ``name`` as a Volume.

        Raises
        ------
        VolumeNotFoundError
            If the run has no such array (the message lists the ones it has).
        """
        from .volume import open_volume

        if not (self.volume_path(name) / "zarr.json").exists():
            have = ", ".join(self.arrays()) or "none"
            raise VolumeNotFoundError(f"run {self.path} has no array '{name}' (arrays: {have})")
        return open_volume(self.volume_path(name), mode=mode, require_complete=require_complete)

    def input_name(self) -> str:
        """The image later stages read: ``aligned`` when it exists, else ``raw``."""
        for name in ("aligned", "raw"):
            if name in self.arrays():
                return name
        raise VolumeNotFoundError(f"run {self.path} has neither an 'aligned' nor a 'raw' array; import data first")

    # ------------------------------------------------------------------ tables
    @property
    def db_path(self) -> Path:
        return self.path / "connectome.duckdb"

    @contextlib.contextmanager
    def db(self, *, read_only: bool = False) -> Iterator[Any]:
        """A DuckDB connection to ``connectome.duckdb`` (closed on exit)."""
        import duckdb

        if read_only and not self.db_path.exists():
            con = duckdb.connect(":memory:")
        else:
            con = duckdb.connect(str(self.db_path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def tables(self) -> list[str]:
        with self.db(read_only=True) as con:
            rows = con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]

    def table_dir(self, name: str) -> Path:
        return self.path / "tables" / name

    def write_table(self, name: str, df) -> None:
        """Store a DataFrame as table ``name``: Parquet first, then DuckDB."""
        _check_table_name(name)
        d = self.table_dir(name)
        tmp = d.with_name(f".{name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        df.to_parquet(tmp / "part-0.parquet", index=False)
        shutil.rmtree(d, ignore_errors=True)
        os.replace(tmp, d)
        self.load_table(name)

    def load_table(self, name: str) -> int:
        """(Re)load ``tables/<name>/*.parquet`` into DuckDB; return the row count."""
        _check_table_name(name)
        files = sorted(self.table_dir(name).glob("*.parquet"))
        with self.db() as con:
            if not files:
                con.execute(f'DROP TABLE IF EXISTS "{name}"')
                return 0
            pattern = str(self.table_dir(name) / "*.parquet")
            con.execute(
                f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM read_parquet(?, union_by_name = true)',
                [pattern],
            )
            return con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]

    def read_table(self, name: str):
        """Table ``name`` as a pandas DataFrame.

        Raises
        ------
        TableNotFoundError
            If there is no such table (the message lists the ones there are).
        """
        if name not in self.tables():
            have = ", ".join(self.tables()) or "none"
            raise TableNotFoundError(f"run {self.path} has no table '{name}' (tables: {have})")
        with self.db(read_only=True) as con:
            return con.execute(f'SELECT * FROM "{name}"').df()

    # ------------------------------------------------------------------ config
    @property
    def config_path(self) -> Path:
        return self.path / "run.yaml"

    def read_config(self) -> dict:
        import yaml

        if not self.config_path.exists():
            return {}
        with open(self.config_path) as f:
            return yaml.safe_load(f) or {}

    def update_config(self, section: str, values: dict) -> None:
        """Record the configuration a command used under ``section`` in run.yaml."""
        import yaml

        cfg = self.read_config()
        cfg[section] = values
        tmp = self.config_path.with_suffix(".yaml.tmp")
        with open(tmp, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        os.replace(tmp, self.config_path)

    # ------------------------------------------------------------------ stages
    def stages(self):
        """The ``stages`` table as a DataFrame (empty when nothing ran)."""
        import pandas as pd

        if "stages" not in self.tables():
            return pd.DataFrame(columns=["stage", "status", "started", "finished", "config_hash"])
        return self.read_table("stages")

    def stage_done(self, stage: str, chash: str) -> bool:
        """Whether ``stage`` finished with the configuration hash ``chash``."""
        df = self.stages()
        rows = df[(df["stage"] == stage) & (df["status"] == "finished")]
        return bool(len(rows)) and rows.iloc[-1]["config_hash"] == chash

    def _record_stage(self, stage: str, status: str, started, finished, chash: str) -> None:
        with self.db() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS stages (stage VARCHAR, status VARCHAR, "
                "started TIMESTAMP, finished TIMESTAMP, config_hash VARCHAR)"
            )
            con.execute("DELETE FROM stages WHERE stage = ?", [stage])
            con.execute("INSERT INTO stages VALUES (?, ?, ?, ?, ?)", [stage, status, started, finished, chash])
            if status == "running" and stage in STAGE_ORDER:
                later = list(STAGE_ORDER[STAGE_ORDER.index(stage) + 1 :])
                if later:
                    con.execute(
                        f"DELETE FROM stages WHERE stage IN ({', '.join('?' * len(later))})", later
                    )
        self._mirror_stages()

    def _mirror_stages(self) -> None:
        with self.db() as con:
            df = con.execute("SELECT * FROM stages").df()
        d = self.table_dir("stages")
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / ".part-0.parquet.tmp"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, d / "part-0.parquet")

    @contextlib.contextmanager
    def stage(self, stage: str, config: dict, *, force: bool = False) -> Iterator["StageContext"]:
        """Run a stage: skip it if it finished with the same configuration.

        Use as ``with run.stage("smooth", cfg) as st: if not st.skipped: ...``.
        A stage that runs (is not skipped) invalidates every stage after it in
        :data:`STAGE_ORDER`. The configuration is written to run.yaml.
        """
        chash = config_hash(config)
        ctx = StageContext(stage, chash, skipped=(not force and self.stage_done(stage, chash)))
        if ctx.skipped:
            yield ctx
            return
        started = _dt.datetime.now()
        self._record_stage(stage, "running", started, None, chash)
        self.update_config(stage, config)
        try:
            yield ctx
        except BaseException:
            self._record_stage(stage, "failed", started, _dt.datetime.now(), chash)
            raise
        self._record_stage(stage, "finished", started, _dt.datetime.now(), chash)


class StageContext:
    """What :meth:`Run.stage` yields: whether the stage is skipped, and its hash."""

    def __init__(self, stage: str, config_hash: str, *, skipped: bool):
        self.stage = stage
        self.config_hash = config_hash
        self.skipped = skipped


def _check_table_name(name: str) -> None:
    if not name.replace("_", "").isalnum():
        raise TableNotFoundError(f"invalid table name {name!r}: use letters, digits and _")
