"""Reading SWC files and placing real morphologies."""

import importlib.util

import numpy as np
import pytest

from connectomix.errors import ConfigError, InputFormatError, VolumeNotFoundError
from connectomix.synth import SynthSettings, synthesize
from connectomix.synth._swc import load_morphologies, parse_units, read_swc

GOOD = """# a small neuron
1 1 0 0 0 10 -1
2 3 100 0 0 5 1
3 3 200 0 0 5 2
4 3 200 100 0 4 3
5 3 200 -100 0 4 3
"""


def _write(tmp_path, text, name="n.swc"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_swc_converts_units_and_orders_parents(tmp_path):
    n = read_swc(_write(tmp_path, GOOD), units="voxel:8")
    assert n.points.shape == (5, 3)
    assert np.allclose(n.points[1], [0, 0, 800])  # z y x in nm
    assert np.allclose(n.radii[0], 80) and (n.radii >= 30).all()
    assert all(n.parent[k] < k for k in range(5))  # parents first
    um = read_swc(_write(tmp_path, GOOD), units="um")
    assert np.allclose(um.points[2], [0, 0, 200_000])


def test_unsorted_parents_are_repaired(tmp_path):
    lines = GOOD.strip().splitlines()
    shuffled = "\n".join([lines[0]] + lines[1:][::-1]) + "\n"
    a, b = read_swc(_write(tmp_path, GOOD, "a.swc")), read_swc(_write(tmp_path, shuffled, "b.swc"))
    assert sorted(map(tuple, a.points)) == sorted(map(tuple, b.points))
    assert all(b.parent[k] < k for k in range(5))


@pytest.mark.parametrize("text, message", [
    (GOOD + "3 3 1 1 1 1 2\n", "duplicate"),
    (GOOD + "6 3 1 1 1 1 42\n", "does not exist"),
    ("1 3 0 0 0 1 2\n2 3 1 0 0 1 1\n", "cycle"),
    ("1 3 0 0 0 1\n", "7 columns"),
    ("1 3 0 zero 0 1 -1\n", "not a number"),
    ("# nothing\n", "no SWC nodes"),
])
def test_malformed_swc_is_rejected_clearly(tmp_path, text, message):
    with pytest.raises(InputFormatError, match=message):
        read_swc(_write(tmp_path, text))


def test_bad_units_and_missing_files():
    for bad in ("furlong", "voxel:", "voxel:0,8,8", 8):
        with pytest.raises(ConfigError, match="units"):
            parse_units(bad)
    with pytest.raises(VolumeNotFoundError):
        load_morphologies("/no/such/folder")


def test_a_folder_of_swc_files_is_placed(tmp_path):
    folder = tmp_path / "swc"
    folder.mkdir()
    # two long neurons (nm) crossing the volume side by side
    for k, y in enumerate((600.0, 1200.0)):
        rows = [f"{i + 1} 3 {x:.0f} {y} {300 + 0.2 * x:.0f} 120 {i if i else -1}" for i, x in
                enumerate(np.arange(-500, 3000, 100.0))]
        (folder / f"n{k}.swc").write_text("\n".join(rows) + "\n")
    run = synthesize(tmp_path / "run", shape=(12, 256, 256), seed=0, morphology=folder, swc_units="nm")
    nt = run.read_table("gt_neurons")
    real = nt[nt.source.str.startswith("swc:")]
    assert set(real.source) == {"swc:n0.swc", "swc:n1.swc"}
    assert real.size_vx.max() > 5000


def test_hemibrain_neurons_run_together(tmp_path):
    if importlib.util.find_spec("navis") is None:
        with pytest.raises(ConfigError, match="navis"):
            synthesize(tmp_path / "run", shape=(16, 256, 256), morphology="hemibrain")
        return
    neurons = load_morphologies("hemibrain")
    assert len(neurons) == 5
    for n in neurons:  # ~150-200 um of tissue each, radii kept in nm
        span = n.points.max(0) - n.points.min(0)
        assert 50_000 < span.max() < 400_000 and n.radii.max() > 100
    run = synthesize(tmp_path / "run", shape=(24, 320, 320), seed=1,
                     settings=SynthSettings(shape=(24, 320, 320)), morphology="hemibrain")
    nt = run.read_table("gt_neurons")
    real = nt[nt.source.str.startswith("hemibrain:")]
    assert real.source.nunique() >= 3
    assert (real.cell_type == "DA1_lPN").all() and (real.transmitter == "acetylcholine").all()
