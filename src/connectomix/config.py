"""Typed run configuration, read from YAML (safely) and written back to ``run.yaml``.

One file describes a whole run; every command-line option has a key here, and a flag
given on the command line overrides the file. Sections mirror the commands::

    cluster:
      scheduler: null        # null = local cluster; "tcp://host:8786" = existing one
      workers: 2
    import:
      input: stack.tif
      voxel_size: [40, 8, 8]
    smooth:
      sigma: [1.0, 3.0, 3.0] # voxels, z y x
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["ClusterConfig", "ImportConfig", "SmoothConfig", "Config", "load_config"]


@dataclass(frozen=True)
class ClusterConfig:
    """Where block tasks run.

    Attributes
    ----------
    scheduler : str or None
        None (or ``'local'``) starts a local Dask cluster; ``'synchronous'`` runs in
        this process; ``'tcp://HOST:PORT'`` uses a running scheduler.
    workers : int
        Worker processes of a local cluster.
    """

    scheduler: str | None = None
    workers: int = 1

    def __post_init__(self):
        _check_int(self.workers, "cluster.workers", minimum=1)


@dataclass(frozen=True)
class ImportConfig:
    """How ``connectomix import`` reads its input."""

    input: str | None = None
    voxel_size: tuple[int, ...] | None = None
    offset: tuple[int, ...] | None = None
    dataset: str | None = None
    chunks: tuple[int, ...] | None = None
    shards: tuple[int, ...] | None = None
    pyramid_levels: int = 1

    def __post_init__(self):
        if self.voxel_size is not None:
            _set(self, "voxel_size", _int_tuple(self.voxel_size, "import.voxel_size", positive=True))
        for name in ("offset", "chunks", "shards"):
            if getattr(self, name) is not None:
                _set(self, name, _int_tuple(getattr(self, name), f"import.{name}", positive=name != "offset"))
        _check_int(self.pyramid_levels, "import.pyramid_levels", minimum=1)


@dataclass(frozen=True)
class SmoothConfig:
    """The block-wise Gaussian filter (``connectomix smooth``)."""

    sigma: tuple[float, ...] = (1.0, 3.0, 3.0)
    input: str = "raw"
    output: str = "smoothed"
    block_shape: tuple[int, ...] | None = None  # voxels; default: the output's shards

    def __post_init__(self):
        try:
            sigma = tuple(float(s) for s in self.sigma)
        except (TypeError, ValueError):
            raise ConfigError(f"smooth.sigma must be numbers (voxels, z y x), got {self.sigma!r}") from None
        if len(sigma) != 3 or any(not math.isfinite(s) or s < 0 for s in sigma):
            raise ConfigError(f"smooth.sigma must be three non-negative numbers, got {self.sigma!r}")
        _set(self, "sigma", sigma)
        if self.block_shape is not None:
            _set(self, "block_shape", _int_tuple(self.block_shape, "smooth.block_shape", positive=True))


@dataclass(frozen=True)
class Config:
    """The whole configuration of a run."""

    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    import_: ImportConfig = field(default_factory=ImportConfig)
    smooth: SmoothConfig = field(default_factory=SmoothConfig)

    def to_dict(self) -> dict:
        return {_key(f.name): dataclasses.asdict(getattr(self, f.name)) for f in fields(self)}

    def override(self, section: str, **values) -> "Config":
        """A copy with the non-None ``values`` replacing those of ``section``."""
        attr = _attr(section)
        current = getattr(self, attr)
        changes = {k: v for k, v in values.items() if v is not None}
        try:
            new = dataclasses.replace(current, **changes)
        except TypeError as e:
            raise ConfigError(f"invalid option for '{section}': {e}") from None
        return dataclasses.replace(self, **{attr: new})


def _key(attr: str) -> str:
    return attr.rstrip("_")


def _attr(section: str) -> str:
    return "import_" if section == "import" else section


def load_config(path=None, data: dict | None = None) -> Config:
    """Read and validate a YAML configuration.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file. Parsed with ``yaml.safe_load``.
    data : dict, optional
        An already parsed mapping (instead of ``path``).

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, has unknown sections or keys, or
        a value has the wrong type.
    """
    import yaml

    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"configuration file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"configuration file {p} is not valid YAML: {e}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration {path or ''} must be a mapping of sections, got {type(data).__name__}")
    sections = {f.name: f for f in fields(Config)}
    kwargs = {}
    for key, value in data.items():
        attr = _attr(key)
        if attr not in sections:
            known = ", ".join(_key(s) for s in sections)
            raise ConfigError(f"unknown configuration section '{key}' (known: {known})")
        cls = {"cluster": ClusterConfig, "import_": ImportConfig, "smooth": SmoothConfig}[attr]
        value = value or {}
        if not isinstance(value, dict):
            raise ConfigError(f"configuration section '{key}' must be a mapping, got {value!r}")
        allowed = {f.name for f in fields(cls)}
        unknown = set(value) - allowed
        if unknown:
            raise ConfigError(
                f"unknown key(s) {sorted(unknown)} in section '{key}' (known: {sorted(allowed)})"
            )
        try:
            kwargs[attr] = cls(**value)
        except TypeError as e:
            raise ConfigError(f"section '{key}': {e}") from None
    return Config(**kwargs)


def _set(obj, name, value):
    object.__setattr__(obj, name, value)


def _int_tuple(value: Any, name: str, *, positive: bool) -> tuple[int, ...]:
    try:
        out = tuple(value)
    except TypeError:
        raise ConfigError(f"{name} must be a list of integers, got {value!r}") from None
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int) and not (isinstance(v, float) and v.is_integer()):
            raise ConfigError(f"{name} must be integers, got {value!r}")
    out = tuple(int(v) for v in out)
    if positive and any(v <= 0 for v in out):
        what = "voxel size" if "voxel_size" in name else name
        raise ConfigError(f"{what} must be positive, got {list(out)}")
    return out


def _check_int(value, name, *, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
