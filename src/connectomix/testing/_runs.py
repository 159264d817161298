"""Tiny complete runs and a browser gate, for the viewer and report tests."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tiny_run", "need_browser"]


def tiny_run(path, *, seed: int = 0, shape=(16, 160, 160), segmentation: bool = True,
             connectome: bool = True, analyze: bool = True, evaluate: bool = True, shapes: bool = False):
    """A small synthetic run (``demo`` preset) with ground truth, a few seconds to make.

    The later stages are stood in for by the ground truth (the segment, synapse and
    graph stages are other issues): ``segmentation`` is a copy of ``gt_segmentation``
    and ``neurons``/``synapses``/``edges`` copies of the ``gt_*`` tables, so the
    viewer and report have every kind of input; ``analyze`` and ``evaluate`` then run
    for real on them.
    """
    from ..pipeline import analyze_stage, evaluate_stage, load_connectome
    from ..synth import synthesize
    from ..volume import create_volume

    run = synthesize(path, shape=shape, seed=seed, preset="demo")
    if segmentation:
        gt = run.open("gt_segmentation")
        with run.stage("segment", {"stand_in": "copy of gt_segmentation"}):
            seg = create_volume(run.volume_path("segmentation"), shape=gt.shape, dtype=gt.dtype,
                                voxel_size=gt.voxel_size, offset=gt.offset, overwrite=True)
            seg.data[...] = gt.to_numpy()
    if connectome:
        with run.stage("graph", {"stand_in": "copies of gt_neurons, gt_synapses, gt_edges"}):
            for t in ("neurons", "synapses", "edges"):
                run.write_table(t, run.read_table("gt_" + t))
    if shapes:
        from ..shapes import shapes_stage

        shapes_stage(run.path)
    if analyze and connectome:
        analyze_stage(load_connectome(run=run.path), run.path / "analysis", n_null=5, n_perturb=0, run=run.path)
    if evaluate:
        evaluate_stage(run.path, compute_erl=False)
    return run


def need_browser() -> str:
    """The Chromium to test with; skip the test without one, or fail when ``CI=true``."""
    import pytest

    from ..viewer._browser import find_browser

    exe = find_browser()
    reason = None
    if exe is None:
        reason = ("no Chromium browser found (install Debian's 'chromium' package, or set "
                  "CONNECTOMIX_BROWSER to a Chromium/Chrome executable)")
    else:
        try:
            import websocket  # noqa: F401
        except ImportError:
            reason = "the 'websocket-client' package is not installed (pip install websocket-client)"
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test cannot run in CI: {reason}")
        pytest.skip(reason)
    return exe


def docs_dir() -> Path | None:
    """Where tests may save screenshots for the docs (``$CONNECTOMIX_SCREENSHOTS``), if set."""
    d = os.environ.get("CONNECTOMIX_SCREENSHOTS")
    return Path(d) if d else None
