"""`connectomix run INPUT`: a raw TIFF stack in, a connectome out; a second run resumes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from connectomix.run import Run

EXE = str(Path(sys.executable).parent / "connectomix")


def _cli(*args):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_run_turns_a_tiff_stack_into_a_connectome_and_resumes(tmp_path):
    import duckdb
    import tifffile

    from connectomix.synth import generate, resolve_settings

    settings = resolve_settings(preset="demo", seed=3, shape=(16, 192, 192))
    raw = generate(settings, 3, preset="demo")["raw"]
    tifffile.imwrite(tmp_path / "stack.tif", raw)
    out = tmp_path / "run"
    r = _cli("run", str(tmp_path / "stack.tif"), "--voxel-size", "40", "8", "8", "--out", str(out), "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "Report:" in r.stdout
    run = Run(out)
    assert {"raw", "affinities", "segmentation", "synapse_pred"} <= set(run.arrays())
    np.testing.assert_array_equal(run.open("raw").to_numpy(), raw)
    with duckdb.connect(str(out / "connectome.duckdb"), read_only=True) as con:
        n_neurons = con.execute("SELECT count(*) FROM neurons").fetchone()[0]
        n_syn = con.execute("SELECT count(*) FROM synapses").fetchone()[0]
        edges = con.execute("SELECT sum(n_synapses) FROM edges").fetchone()[0]
        assigned = con.execute("SELECT count(*) FROM synapses WHERE pre_id > 0 AND post_id > 0 AND pre_id <> post_id"
                               ).fetchone()[0]
    assert n_neurons > 10 and n_syn > 0 and edges == assigned
    # the tables open in pandas and networkx too
    from connectomix.graph import Connectome

    g = Connectome.from_run(out).to_networkx()
    assert g.number_of_edges() > 0
    # a second run finds every stage done and redoes none of the heavy ones
    r2 = _cli("run", str(tmp_path / "stack.tif"), "--voxel-size", "40", "8", "8", "--out", str(out), "--workers", "1")
    assert r2.returncode == 0, r2.stderr
    assert "predict:" not in r2.stdout and "already done" in r2.stdout
