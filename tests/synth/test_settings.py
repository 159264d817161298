"""Settings, presets and bad input of the generator."""

import pytest

from connectomix.errors import ConfigError, VolumeError
from connectomix.synth import (
    EVAL_SEEDS,
    PRESETS,
    SynthSettings,
    eval_settings_hash,
    preset_settings,
    resolve_settings,
    settings_hash,
    synthesize,
)


@pytest.mark.parametrize("shape", [(2, 256, 256), (32, 16, 16), (32, 40, 256), (8, 64, 64)])
def test_too_small_shape_is_a_volume_error(shape):
    with pytest.raises(VolumeError, match="too small"):
        resolve_settings("demo", 0, shape=shape)


@pytest.mark.parametrize("shape", [(32, 256), (32, 256, 0), (32.5, 256, 256), "big"])
def test_malformed_shape_is_a_volume_error(shape):
    with pytest.raises(VolumeError):
        resolve_settings("demo", 0, shape=shape)


@pytest.mark.parametrize("voxel_size", [(40, 8), (0, 8, 8), (40, -8, -8), (40, 8.5, 8.5), (40, 8, 4), (40, 64, 64),
                                        (400, 8, 8)])
def test_invalid_voxel_size_is_a_volume_error(voxel_size):
    with pytest.raises(VolumeError, match="voxel size|section thickness"):
        resolve_settings("demo", 0, voxel_size=voxel_size)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3", None, 2**70])
def test_invalid_seed_is_a_config_error(seed):
    with pytest.raises(ConfigError, match="seed"):
        resolve_settings("demo", seed)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="demo, train, hard, eval"):
        resolve_settings("easy", 0)


def test_eval_is_frozen():
    for s in EVAL_SEEDS:
        assert resolve_settings("eval", s).shape == (64, 512, 512)
    with pytest.raises(ConfigError, match="frozen"):
        resolve_settings("eval", 99)
    with pytest.raises(ConfigError, match="frozen"):
        resolve_settings("eval", 0, shape=(32, 256, 256))
    with pytest.raises(ConfigError, match="frozen"):
        resolve_settings("eval", 0, settings=SynthSettings())


def test_eval_hash_is_stable_and_names_the_set():
    h = eval_settings_hash()
    assert h == eval_settings_hash() and len(h) == 16 and int(h, 16) >= 0
    assert h != settings_hash(preset_settings("eval"), "eval", EVAL_SEEDS[:-1])
    assert settings_hash(preset_settings("train", 1), "train", [1]) != settings_hash(preset_settings("train", 2), "train", [2])


def test_presets_validate_and_train_varies():
    for p in PRESETS:
        preset_settings(p, 3).validate()
    assert preset_settings("train", 1) != preset_settings("train", 2)
    assert preset_settings("hard").misalign and preset_settings("hard").tiles == (2, 2)


def test_bad_setting_values_are_config_errors():
    with pytest.raises(ConfigError, match="unknown synth setting"):
        SynthSettings().replace(colour="red")
    with pytest.raises(ConfigError, match="range"):
        SynthSettings().replace(axon_radius=(80.0, 20.0))
    with pytest.raises(ConfigError, match="missing"):
        SynthSettings(shape=(8, 160, 160)).replace(missing_sections=9)


def test_unknown_morphology_is_a_clear_error(tmp_path):
    from connectomix.errors import VolumeNotFoundError

    with pytest.raises(VolumeNotFoundError, match="neither 'hemibrain' nor"):
        synthesize(tmp_path / "run", shape=(8, 160, 160), morphology="fly-brain")
    with pytest.raises(ConfigError, match="units"):
        synthesize(tmp_path / "run", shape=(8, 160, 160), morphology=tmp_path, swc_units="inch")
