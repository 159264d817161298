"""Generator settings: one frozen dataclass, the presets, validation and hashing.

Every number the generator uses lives in :class:`SynthSettings`, so that a volume is
fully described by ``(settings, seed)``; :func:`settings_hash` names it. The presets
are functions of the seed: ``demo``, ``eval`` and ``hard`` are fixed, ``train``
draws varied settings from the seed so that a network sees many imaging conditions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, VolumeError

__all__ = [
    "SynthSettings",
    "PRESETS",
    "EVAL_SEEDS",
    "preset_settings",
    "settings_hash",
    "eval_settings_hash",
    "check_seed",
]

PRESETS = ("demo", "train", "hard", "eval")

#: The frozen evaluation set: ``synthesize(run, preset="eval", seed=s)`` for s in these.
#: Every preset mixes its name into the random streams, so training volumes (preset
#: ``train``) never repeat an evaluation volume, whatever seed they use.
EVAL_SEEDS = (0, 1, 2, 3, 4)

#: Bump only together with a note in the changelog: it changes every eval volume.
EVAL_VERSION = 1

#: Transmitters and how often a procedural neuron uses each.
TRANSMITTERS = (
    ("acetylcholine", 0.45),
    ("glutamate", 0.22),
    ("gaba", 0.25),
    ("dopamine", 0.03),
    ("serotonin", 0.02),
    ("octopamine", 0.03),
)


@dataclass(frozen=True)
class SynthSettings:
    """Everything that shapes a synthetic volume, except the seed.

    Lengths are in nm unless the name ends in ``_px`` (in-plane pixels) or ``_vx``.
    Ranges are ``(low, high)`` pairs from which each object draws its value.

    Parameters
    ----------
    shape : (int, int, int)
        Volume shape in voxels (z, y, x).
    voxel_size : (int, int, int)
        Voxel size in nm (z, y, x); the default is serial-section EM at 40 x 8 x 8 nm.
    """

    shape: tuple = (64, 512, 512)
    voxel_size: tuple = (40, 8, 8)
    # ------------------------------------------------------------ neuropil
    dendrite_fraction: float = 0.22  # of the volume, nominal tube volume
    dendrite_radius: tuple = (140.0, 420.0)
    dendrite_branch_per_um: float = 0.12
    spine_per_um: float = 0.5
    fill_fraction: float = 0.82  # tubes fill this much before the labels expand
    axon_radius: tuple = (25.0, 65.0)
    axon_branch_per_um: float = 0.04
    bouton_spacing: tuple = (2500.0, 6000.0)
    bouton_radius: tuple = (90.0, 170.0)
    followers_per_um: float = 2.0  # axons that run along a dendrite, per um of dendrite
    follow_length: tuple = (2000.0, 4000.0)
    persistence_length: tuple = (3000.0, 8000.0)
    min_neurite_length: float = 1500.0  # shorter neurites that end inside the volume are dropped
    n_somata: int = 0
    soma_radius: tuple = (1800.0, 2600.0)
    glia_sheath_fraction: float = 0.35  # of dendrites wrapped by a glial sheet
    glia_sheath_thickness: tuple = (25.0, 45.0)
    glia_pocket_min_vx: int = 600  # interstitial space this large becomes glia
    min_piece_vx: int = 2500  # smaller disconnected pieces join their neighbour
    # ------------------------------------------------------------ synapses
    synapse_per_bouton: tuple = (1, 3)  # polyadic: posts per presynaptic site
    synapse_probability: float = 0.2  # a bouton makes a synapse in view
    cleft_radius: tuple = (90.0, 180.0)
    psd_thickness: tuple = (25.0, 45.0)
    vesicles_per_synapse: tuple = (35, 110)
    vesicle_radius: tuple = (17.0, 22.0)
    # ------------------------------------------------------------ organelles
    mito_per_um: float = 0.22  # along neurites thick enough to hold one
    mito_length: tuple = (250.0, 1200.0)
    # ------------------------------------------------------------ rendering
    cytoplasm: tuple = (0.60, 0.76)
    texture_amplitude: float = 0.05
    membrane_darkness: float = 0.55
    membrane_width_px: float = 0.75
    weak_membrane_fraction: float = 0.25  # of the volume where membranes fade
    weak_membrane_floor: float = 0.3
    mito_darkness: float = 0.5
    blur_px: float = 0.9
    noise: float = 0.05
    section_brightness: float = 0.05
    section_contrast: float = 0.10
    stain_field: float = 0.10
    # ------------------------------------------------------------ artifacts
    missing_sections: int = 0
    damaged_sections: int = 0
    damage_width: tuple = (60.0, 400.0)
    misalign: bool = False
    max_translation_px: float = 50.0
    max_rotation_deg: float = 1.5
    elastic_amplitude_px: float = 8.0
    elastic_grid: int = 4
    tiles: tuple | None = None  # (rows, columns) of tiles per section, or None
    tile_overlap_px: int = 48
    stage_error_px: float = 24.0
    margin_px: int | None = None  # canvas margin around the frame; None: automatic

    def replace(self, **changes) -> "SynthSettings":
        """A copy with ``changes`` applied (validated)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown synth setting(s) {sorted(unknown)}")
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @property
    def margin(self) -> int:
        """Canvas margin in pixels: room for misaligned sections to show real content."""
        if self.margin_px is not None:
            return int(self.margin_px)
        if not self.misalign:
            return 0
        half = max(self.shape[1], self.shape[2]) / 2 * np.sqrt(2)
        rot = half * np.deg2rad(self.max_rotation_deg)
        return int(np.ceil(self.max_translation_px + rot + 2 * self.elastic_amplitude_px + 4))

    def validate(self) -> None:
        """Check shape, voxel size and ranges.

        Raises
        ------
        VolumeError
            If the shape or voxel size is invalid or too small for the objects.
        ConfigError
            If another setting is out of range.
        """
        _check_triplet(self.shape, "shape", "voxels")
        _check_triplet(self.voxel_size, "voxel size", "nm")
        vz, vy, vx = self.voxel_size
        if vy != vx:
            raise VolumeError(f"voxel size must be isotropic in-plane (y == x), got {tuple(self.voxel_size)}")
        if vy > 25:
            raise VolumeError(
                f"in-plane voxel size {vy} nm is too coarse for axons of 50 nm: use at most 25 nm"
            )
        if vz > 200 or vz < vy:
            raise VolumeError(
                f"section thickness (z voxel size) {vz} nm must lie between the in-plane size {vy} nm and 200 nm"
            )
        z, y, x = self.shape
        extent = np.array(self.shape) * np.array(self.voxel_size)
        need = 2 * self.dendrite_radius[1] + 200
        if z < 4 or min(y, x) < 48 or extent[1:].min() < need:
            raise VolumeError(
                f"shape {tuple(self.shape)} at voxel size {tuple(self.voxel_size)} nm "
                f"({tuple(int(e) for e in extent)} nm) is too small for neurites up to "
                f"{int(2 * self.dendrite_radius[1])} nm thick: need at least 4 sections, 48 pixels "
                f"and {int(need)} nm in-plane"
            )
        if int(np.prod(self.shape)) > 2_000_000_000:
            raise VolumeError(f"shape {tuple(self.shape)} is too large to generate in memory")
        for name in ("dendrite_fraction", "fill_fraction", "glia_sheath_fraction", "synapse_probability",
                     "weak_membrane_fraction"):
            v = getattr(self, name)
            if not (0 <= v <= 1):
                raise ConfigError(f"synth setting {name} must lie in [0, 1], got {v}")
        if self.dendrite_fraction > self.fill_fraction:
            raise ConfigError("dendrite_fraction must not exceed fill_fraction")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and f.name not in ("shape", "voxel_size", "tiles"):
                if len(v) != 2 or v[0] > v[1] or v[0] < 0:
                    raise ConfigError(f"synth setting {f.name} must be a (low, high) range with 0 <= low <= high, got {v}")
        for name in ("missing_sections", "damaged_sections", "n_somata"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or v < 0:
                raise ConfigError(f"synth setting {name} must be a non-negative integer, got {v!r}")
        if self.missing_sections + self.damaged_sections >= self.shape[0]:
            raise ConfigError(
                f"{self.missing_sections} missing + {self.damaged_sections} damaged sections do not fit in "
                f"{self.shape[0]} sections"
            )
        if self.tiles is not None:
            if len(self.tiles) != 2 or min(self.tiles) < 1:
                raise ConfigError(f"synth setting tiles must be (rows, columns) >= 1, got {self.tiles}")
            for n, s in zip(self.tiles, self.shape[1:]):
                if n > 1 and (s + (n - 1) * self.tile_overlap_px) / n <= 2 * self.tile_overlap_px:
                    raise ConfigError(f"{n} tiles with overlap {self.tile_overlap_px} px do not fit {s} pixels")
        if self.noise < 0 or self.blur_px < 0:
            raise ConfigError("noise and blur_px must be non-negative")


def _check_triplet(value, what, unit) -> None:
    try:
        ok = len(value) == 3 and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    except TypeError:
        ok = False
    if not ok:
        raise VolumeError(f"{what} must be three integers (z, y, x) in {unit}, got {value!r}")
    if any(v <= 0 for v in value):
        raise VolumeError(f"{what} must be positive along z, y and x, got {tuple(value)}")


def check_seed(seed) -> int:
    """Return ``seed`` as an int or raise :class:`ConfigError`."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0 or seed >= 2**63:
        raise ConfigError(f"seed must be a non-negative integer below 2**63, got {seed!r}")
    return int(seed)


_DEMO = SynthSettings(shape=(32, 256, 256))
_EVAL = SynthSettings()
_HARD = SynthSettings(
    noise=0.10,
    blur_px=1.3,
    weak_membrane_fraction=0.5,
    weak_membrane_floor=0.08,
    missing_sections=2,
    damaged_sections=3,
    misalign=True,
    max_translation_px=60.0,
    max_rotation_deg=2.0,
    elastic_amplitude_px=10.0,
    tiles=(2, 2),
    stage_error_px=32.0,
    section_brightness=0.08,
    section_contrast=0.15,
)


def preset_settings(preset: str, seed: int = 0) -> SynthSettings:
    """The settings of ``preset`` for ``seed``.

    ``demo``: small (32 x 256 x 256) and clean, for a first look and quick pipelines.
    ``eval``: the frozen evaluation volumes, 64 x 512 x 512, no geometric artifacts.
    ``hard``: heavy artifacts: missing and damaged sections, misalignment, tiles.
    ``train``: varied imaging and density drawn from the seed.

    Raises
    ------
    ConfigError
        For an unknown preset name.
    """
    if preset == "demo":
        return _DEMO
    if preset == "eval":
        return _EVAL
    if preset == "hard":
        return _HARD
    if preset == "train":
        rng = np.random.default_rng([check_seed(seed), 7771])
        u = rng.uniform
        return SynthSettings(
            dendrite_fraction=float(u(0.15, 0.3)),
            fill_fraction=float(u(0.68, 0.8)),
            spine_per_um=float(u(0.0, 1.0)),
            glia_sheath_fraction=float(u(0.1, 0.6)),
            mito_per_um=float(u(0.12, 0.35)),
            n_somata=int(rng.random() < 0.15),
            membrane_darkness=float(u(0.35, 0.6)),
            weak_membrane_fraction=float(u(0.1, 0.55)),
            weak_membrane_floor=float(u(0.05, 0.3)),
            blur_px=float(u(0.6, 1.5)),
            noise=float(u(0.03, 0.11)),
            section_brightness=float(u(0.02, 0.08)),
            section_contrast=float(u(0.05, 0.15)),
            stain_field=float(u(0.03, 0.15)),
            texture_amplitude=float(u(0.03, 0.07)),
            missing_sections=int(rng.integers(0, 2)),
            damaged_sections=int(rng.integers(0, 3)),
        )
    raise ConfigError(f"unknown synth preset {preset!r}; choose one of {', '.join(PRESETS)}")


def settings_hash(settings: SynthSettings, preset: str, seeds) -> str:
    """A stable 16-hex-digit hash of settings, preset and seeds (names a data set)."""
    text = json.dumps(
        {"settings": settings.to_dict(), "preset": preset, "seeds": [int(s) for s in seeds], "version": EVAL_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def eval_settings_hash() -> str:
    """The hash of the frozen ``eval`` set (settings, seeds and generator version).

    Every quality figure measured on ``eval`` should name this hash.
    """
    return settings_hash(_EVAL, "eval", EVAL_SEEDS)
