"""The options of watershed and agglomeration, validated once."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["SegmentConfig"]


@dataclass(frozen=True)
class SegmentConfig:
    """How affinities become fragments and segments.

    Attributes
    ----------
    threshold : float
        Agglomeration: merge touching segments while the mean affinity of their
        contact is at least this (0..1). Higher gives more, smaller segments.
    seed_sigma : (float, float, float)
        Gaussian (voxels, z y x) smoothing the mean affinity map before seeding.
    seed_radius : (int, int, int)
        A voxel seeds where the smoothed map is within ``seed_delta`` of its maximum
        over this many voxels (z y x) ...
    seed_delta : float
        ... (see ``seed_radius``) ...
    seed_threshold : float
        ... and at least this.
    grow_levels : tuple of float
        Affinity levels, high to low, at which seeds grow into the remaining voxels.
    grow_rounds : int
        Growth steps (voxels) per level.
    grow_slack : float
        Before the last level, a voxel joins a neighbour only through an edge within
        this much of its strongest edge.
    fragments_in_xy : bool
        Fragments within sections: seeds and growth follow in-plane affinities only,
        and the agglomeration joins fragments across sections by their z-affinities.
        Better for anisotropic serial-section EM, whose z-affinities are the weakest;
        ``seed_sigma`` and ``seed_radius`` along z are then usually 0.
    min_size : int
        Segments smaller than this (voxels) join their best neighbour; 0 keeps all.
    affinities, fragments, segmentation : str
        Array names in the run's ``volume.zarr``.
    block_shape : (int, int, int) or None
        Write shape of a block in voxels (a multiple of the output chunks); default:
        about 64 x 256 x 256 voxels.
    """

    threshold: float = 0.5
    seed_sigma: tuple[float, float, float] = (0.5, 1.0, 1.0)
    seed_radius: tuple[int, int, int] = (1, 2, 2)
    seed_delta: float = 0.03
    seed_threshold: float = 0.5
    grow_levels: tuple[float, ...] = (0.9, 0.7, 0.5, 0.0)
    grow_rounds: int = 3
    grow_slack: float = 0.1
    fragments_in_xy: bool = False
    min_size: int = 0
    affinities: str = "affinities"
    fragments: str = "fragments"
    segmentation: str = "segmentation"
    block_shape: tuple[int, int, int] | None = None

    def __post_init__(self):
        for name in ("threshold", "seed_threshold", "seed_delta", "grow_slack"):
            _set(self, name, _unit_float(getattr(self, name), f"segment.{name}"))
        try:
            sigma = tuple(float(s) for s in self.seed_sigma)
        except (TypeError, ValueError):
            raise ConfigError(f"segment.seed_sigma must be three numbers (voxels, z y x), got {self.seed_sigma!r}") from None
        if len(sigma) != 3 or any(not math.isfinite(s) or s < 0 for s in sigma):
            raise ConfigError(f"segment.seed_sigma must be three non-negative numbers, got {self.seed_sigma!r}")
        _set(self, "seed_sigma", sigma)
        try:
            radius = tuple(self.seed_radius)
        except TypeError:
            radius = ()
        if len(radius) != 3 or any(isinstance(r, bool) or not isinstance(r, int) or r < 0 for r in radius):
            raise ConfigError(f"segment.seed_radius must be three non-negative integers (voxels), got {self.seed_radius!r}")
        _set(self, "seed_radius", radius)
        try:
            levels = tuple(_unit_float(t, "segment.grow_levels") for t in self.grow_levels)
        except TypeError:
            raise ConfigError(f"segment.grow_levels must be numbers in [0, 1], got {self.grow_levels!r}") from None
        if not levels or any(b > a for a, b in zip(levels, levels[1:])):
            raise ConfigError(f"segment.grow_levels must be one or more levels from high to low, got {self.grow_levels!r}")
        _set(self, "grow_levels", levels)
        if not isinstance(self.fragments_in_xy, bool):
            raise ConfigError(f"segment.fragments_in_xy must be true or false, got {self.fragments_in_xy!r}")
        for name, lo in (("grow_rounds", 1), ("min_size", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ConfigError(f"segment.{name} must be an integer >= {lo}, got {value!r}")
        for name in ("affinities", "fragments", "segmentation"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or "/" in value:
                raise ConfigError(f"segment.{name} must be an array name, got {value!r}")
        if self.block_shape is not None:
            try:
                shape = tuple(int(s) for s in self.block_shape)
            except (TypeError, ValueError):
                shape = ()
            if len(shape) != 3 or any(s <= 0 for s in shape) or any(float(s) != int(s) for s in self.block_shape):
                raise ConfigError(f"segment.block_shape must be three positive integers (voxels), got {self.block_shape!r}")
            _set(self, "block_shape", shape)

    @property
    def grow_steps(self) -> int:
        """Total growth rounds: how far (voxels) a seed can reach."""
        return len(self.grow_levels) * self.grow_rounds

    def replace(self, **changes) -> "SegmentConfig":
        """A copy with ``changes`` (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def _unit_float(value, name: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not (0.0 <= f <= 1.0):
        raise ConfigError(f"{name} must lie in [0, 1], got {value!r}")
    return f


def _set(obj, name, value):
    object.__setattr__(obj, name, value)
