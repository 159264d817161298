import pytest

from connectomix.config import Config, load_config
from connectomix.errors import ConfigError


def test_load_and_override(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("cluster:\n  workers: 2\nimport:\n  input: a.tif\n  voxel_size: [40, 8, 8]\nsmooth:\n  sigma: [1, 2, 2]\n")
    cfg = load_config(p)
    assert cfg.cluster.workers == 2
    assert cfg.import_.voxel_size == (40, 8, 8)
    assert cfg.smooth.sigma == (1.0, 2.0, 2.0)
    cfg2 = cfg.override("smooth", sigma=(0.5, 1, 1), input=None)
    assert cfg2.smooth.sigma == (0.5, 1.0, 1.0) and cfg2.smooth.input == "raw"
    assert cfg.smooth.sigma == (1.0, 2.0, 2.0)  # frozen: the original is unchanged
    assert load_config(data=cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "text, match",
    [
        ("segmentt: {}\n", "unknown configuration section 'segmentt'"),
        ("smooth: {sigmaa: 1}\n", "unknown key"),
        ("import: {voxel_size: [0, 8, 8]}\n", "voxel size must be positive"),
        ("import: {voxel_size: [40, 8.5, 8]}\n", "integers"),
        ("cluster: {workers: 0}\n", "workers"),
        ("smooth: {sigma: [1, -1, 1]}\n", "non-negative"),
        ("smooth: [1, 2]\n", "must be a mapping"),
        ("a: [\n", "not valid YAML"),
        ("!!python/object/apply:os.system ['echo unsafe']\n", "not valid YAML"),
    ],
)
def test_bad_configuration(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
