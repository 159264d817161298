"""Stage drivers: what each command does to a run directory.

The CLI only parses options and calls these; they are the library's entry points for
whole stages (record in ``stages``, skip when done with the same configuration,
write ``run.yaml``). Per-block kernels live beside them as plain functions.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from .blockwise import Block, Input, run_blockwise
from .config import ClusterConfig, SmoothConfig
from .errors import ConnectomixError, VolumeError
from .geometry import Coordinate
from .run import Run
from .volume import Volume, create_volume

__all__ = ["gaussian_kernel", "smooth", "gaussian_context_vx"]

logger = logging.getLogger(__name__)


def gaussian_context_vx(sigma) -> Coordinate:
    """Voxels of context a Gaussian of ``sigma`` (voxels) needs: scipy's radius at truncate=4."""
    return Coordinate(int(4.0 * float(s) + 0.5) for s in sigma)


def gaussian_kernel(block: Block, inputs, *, sigma, output: str, input: str) -> dict:
    """Smooth one block: a 3D Gaussian in float32, rounded back to the input dtype."""
    vol = inputs[input]
    data = _gaussian(vol.data, sigma)
    return {output: Volume(data, voxel_size=vol.voxel_size, offset=vol.offset)}


def _gaussian(data: np.ndarray, sigma) -> np.ndarray:
    """The whole-array reference of :func:`gaussian_kernel` (same arithmetic)."""
    from scipy import ndimage

    out = ndimage.gaussian_filter(data.astype(np.float32), sigma)
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(data.dtype)


def smooth(
    run: Run,
    config: SmoothConfig = SmoothConfig(),
    *,
    cluster: ClusterConfig = ClusterConfig(),
    on_block_done: Callable[[int, int], None] | None = None,
    force: bool = False,
    client=None,
):
    """Gaussian-filter an array of the run block-wise (the ``smooth`` stage).

    Parameters
    ----------
    run : Run
    config : SmoothConfig
        ``sigma`` in voxels (z, y, x), input and output array names, block shape.
    cluster : ClusterConfig
        Where the blocks run.
    client : distributed.Client, optional
        An open cluster to use instead (see :func:`connectomix.blockwise.connect`).

    Returns
    -------
    BlockwiseResult or None when the stage was already done with this configuration.
    """
    src = run.open(config.input)
    if src.n_channel_axes:
        raise VolumeError(f"smooth works on single-channel arrays; '{config.input}' has shape {src.shape}")
    cfg = asdict(config)
    with run.stage("smooth", cfg, force=force) as st:
        if st.skipped:
            logger.info("smooth: already done with this configuration, skipped")
            return None
        chunks = src.chunks or tuple(min(s, c) for s, c in zip(src.shape, (32, 128, 128)))
        block_vx = Coordinate(config.block_shape) if config.block_shape else Coordinate(
            max(c, min(s, t)) // c * c for s, c, t in zip(src.shape, chunks, (64, 256, 256))
        )
        # output chunks that tile the blocks exactly: no two blocks share a chunk
        chunks = tuple(math.gcd(int(c), int(b)) for c, b in zip(chunks, block_vx))
        path = run.volume_path(config.output)
        existing = _reusable(path, src, chunks)
        out = existing or create_volume(
            path,
            shape=src.shape,
            dtype=src.dtype,
            voxel_size=src.voxel_size,
            offset=src.offset,
            chunks=chunks,
            complete=False,
            task="smooth",
            overwrite=True,
        )
        context = gaussian_context_vx(config.sigma) * src.voxel_size
        kernel = functools.partial(gaussian_kernel, sigma=config.sigma, output=config.output, input=config.input)
        try:
            return run_blockwise(
                kernel,
                task="smooth",
                inputs={config.input: Input(src.ref(), context=context)},
                outputs={config.output: out},
                block_shape=block_vx * src.voxel_size,
                run_dir=run.path,
                scheduler=client if client is not None else (cluster.scheduler or None),
                workers=cluster.workers,
                config=cfg,
                on_block_done=on_block_done,
            )
        except ConnectomixError:
            # Bad input, not an interruption: leave nothing half-written behind.
            shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(run.path / ".blocks" / "smooth", ignore_errors=True)
            raise


def _reusable(path, src: Volume, chunks):
    """An existing output of matching layout, kept so an interrupted run can resume."""
    from .volume import open_volume

    if not (path / "zarr.json").exists():
        return None
    try:
        vol = open_volume(path, mode="r+", require_complete=False)
    except ConnectomixError:
        return None
    if vol.shape == src.shape and vol.dtype == src.dtype and vol.voxel_size == src.voxel_size and vol.chunks == tuple(chunks):
        return vol
    return None


# ---------------------------------------------------------------------- import / export / info
def import_stage(
    out,
    config,
    *,
    cluster: ClusterConfig = ClusterConfig(),
    name: str = "raw",
    overwrite: bool = False,
    on_block_done=None,
    client=None,
) -> Volume:
    """Import ``config.input`` into ``out``'s ``volume.zarr/<name>`` (the ``import`` stage)."""
    from . import io
    from .errors import ConfigError

    if not config.input:
        raise ConfigError("import needs an input (a file, a folder or file.h5:/dataset)")
    new_run = not (Path(out) / ".connectomix-run").exists()
    run = Run.create(out)
    cfg = asdict(config) | {"name": name}
    try:
        with run.stage("import", cfg, force=overwrite or name != "raw") as st:
            if st.skipped and name in run.arrays():
                return run.open(name)
            return io.import_volume(
                config.input,
                run,
                voxel_size=config.voxel_size,
                offset=config.offset,
                name=name,
                dataset=config.dataset,
                chunks=config.chunks,
                shards=config.shards,
                pyramid_levels=config.pyramid_levels,
                overwrite=overwrite,
                scheduler=client if client is not None else (cluster.scheduler or None),
                workers=cluster.workers,
                on_block_done=on_block_done,
            )
    except BaseException:
        if new_run:  # nothing half-written: a run this call created goes away entirely
            shutil.rmtree(out, ignore_errors=True)
        raise


def export_stage(run_path, to, *, array: str | None = None, table: str | None = None) -> Path:
    """Write one array (.tif/.npy) or one table (.csv/.parquet) of a run to ``to``."""
    from . import io
    from .errors import ConfigError

    run = Run(run_path)
    if (array is None) == (table is None):
        raise ConfigError("export needs exactly one of --array NAME or --table NAME")
    if array is not None:
        return Path(io.export_array(run, array, to))
    return Path(io.export_table(run, table, to))


def run_info(run_path) -> dict:
    """What a run holds: arrays and tables, as plain data."""
    from . import io

    run = Run(run_path)
    return io.info(run)


# ---------------------------------------------------------------------- whole runs
def run_from_config(out, config, *, progress=None, say=print) -> Run:
    """Run the stages a configuration describes, in order (import, smooth)."""
    from contextlib import nullcontext

    from .blockwise import connect

    bar = progress or (lambda _name: nullcontext(None))
    with connect(config.cluster.scheduler, workers=config.cluster.workers) as client:
        if config.import_.input:
            with bar("import") as cb:
                import_stage(out, config.import_, cluster=config.cluster, on_block_done=cb, client=client)
            say(f"import: {config.import_.input} -> {Path(out) / 'volume.zarr' / 'raw'}")
        run = Run(out)
        with bar("smooth") as cb:
            res = smooth(run, config.smooth, cluster=config.cluster, on_block_done=cb, client=client)
    say("smooth: already done, skipped" if res is None else f"smooth: {res.n_run} blocks in {res.seconds:.1f} s")
    return run


def _timed(times: dict, name: str):
    import time
    from contextlib import contextmanager

    @contextmanager
    def cm():
        t = time.perf_counter()
        yield
        times[name] = times.get(name, 0.0) + time.perf_counter() - t

    return cm()


def _shared_cluster(cluster: ClusterConfig):
    """One local Dask cluster for all the stages of a whole run (not one per stage).

    Yields the ClusterConfig the stages get: the local cluster's address, or the
    configuration unchanged for an external scheduler or ``synchronous``.
    """
    from contextlib import contextmanager
    from dataclasses import replace

    from .blockwise import connect

    @contextmanager
    def cm():
        if cluster.scheduler not in (None, "", "local"):
            yield cluster
            return
        with connect(None, workers=cluster.workers) as client:
            yield replace(cluster, scheduler=client.scheduler.address)

    return cm()


def _reconstruct(run: Run, cluster: ClusterConfig, bar, say, times: dict, *, align: bool = False) -> None:
    """align (optionally) -> segment -> synapses -> shapes -> graph -> analyze -> report, each skipped when done."""
    if align:
        from .align import align_stage

        with _timed(times, "align"), bar("align") as cb:
            align_stage(run.path, cluster=cluster, progress=cb, say=lambda m: say(f"  {m}"))
    with _timed(times, "segment"), bar("segment") as cb:
        seg = segment_stage(run.path, cluster=cluster, on_block_done=cb, say=lambda m: say(f"  {m}"))
    if seg is not None:
        say(f"  segment: {seg}")
    with _timed(times, "synapses"), bar("synapses") as cb:
        synapses_pipeline_stage(run.path, cluster=cluster, on_block_done=cb, say=lambda m: say(f"  {m}"))
    from .shapes import shapes_stage

    with _timed(times, "shapes"):
        sh = shapes_stage(run.path, meshes=True)
    if sh is not None:
        say(f"  shapes: {len(sh)} skeletons (SWC) and meshes, {sh['cable_length_nm'].sum() / 1000:.0f} um of cable "
            "-> skeletons/, meshes/")
    with _timed(times, "graph"):
        graph_pipeline_stage(run.path, cluster=ClusterConfig(scheduler="synchronous"), say=lambda m: say(f"  {m}"))


def run_all(out, config, *, align: bool = False, progress=None, say=print) -> dict:
    """``connectomix run INPUT``: import -> (align) -> segment -> synapses -> graph -> analyze -> report.

    Every stage is skipped when it already finished with the same configuration, so
    an interrupted run resumes where it stopped.
    """
    import time
    from contextlib import nullcontext

    bar = progress or (lambda _name: nullcontext(None))
    times: dict = {}
    t0 = time.perf_counter()
    with _shared_cluster(config.cluster) as cluster:
        with _timed(times, "import"), bar("import") as cb:
            vol = import_stage(out, config.import_, cluster=cluster, on_block_done=cb)
        say(f"  import: {config.import_.input} -> {vol.shape} voxels of {tuple(vol.voxel_size)} nm")
        run = Run(out)
        _reconstruct(run, cluster, bar, say, times, align=align)
    con = load_connectome(run=run.path)
    with _timed(times, "analyze"):
        a = analyze_stage(con, run.path / "analysis" / "reconstruction", n_null=20, n_perturb=0, run=run.path)
    say(f"  analyze: {a['n_neurons']} neurons, {a['n_edges']} edges -> analysis/reconstruction/")
    from .report import report

    with _timed(times, "report"):
        page = report(run.path)
    say(f"done in {time.perf_counter() - t0:.1f} s. Report: {page}")
    return {"run": str(run.path), "times": times, "report": str(page)}


def demo(out, *, cluster: ClusterConfig = ClusterConfig(), progress=None, say=print, seed: int = 0,
         align: bool = True) -> dict:
    """The main job: the whole pipeline on a synthetic volume, scored against its ground truth.

    synth -> align -> segment (shipped U-Net, watershed, agglomeration) -> synapses
    (shipped network, partners) -> shapes -> graph -> evaluate -> analyze (the
    reconstruction, its ground truth and C. elegans) -> report. Prints a summary table.

    With ``align`` (the default) the demo volume's sections come off the generator
    shifted, turned and elastically warped (:func:`demo_settings`), as sections off a
    microscope do, and are registered back before anything is segmented; the summary
    scores the alignment against the generator's true transforms. ``align=False``
    segments the clean volume directly.
    """
    import time
    from contextlib import nullcontext

    from .synth import synthesize

    bar = progress or (lambda _name: nullcontext(None))
    times: dict = {}
    t0 = time.perf_counter()
    _check_demo_run(out, demo_settings(align), seed)
    say(f"connectomix demo -> {out}")
    with _timed(times, "synth"):
        run = synthesize(out, preset="demo", seed=seed, settings=demo_settings(align))
    raw = run.open("raw")
    say(f"  synth: {raw.shape} voxels of {tuple(raw.voxel_size)} nm, ground truth: "
        f"{len(run.read_table('gt_neurons'))} cells, {len(run.read_table('gt_synapses'))} synapses, "
        f"{len(run.read_table('gt_edges'))} edges" + (", sections misaligned" if align else ""))
    with _shared_cluster(cluster) as shared:
        _reconstruct(run, shared, bar, say, times, align=align)
    con = load_connectome(run=run.path)
    gt = load_connectome(run=run.path, ground_truth=True)
    with _timed(times, "analyze"):
        a = analyze_stage(con, run.path / "analysis" / "reconstruction", n_null=20, n_perturb=0, run=run.path)
        analyze(gt, run.path / "analysis" / "ground_truth", n_null=20, n_perturb=0)
        try:
            from . import datasets

            worm = datasets.load("celegans-varshney2011")
            b = analyze(worm, run.path / "analysis" / "celegans-varshney2011", n_null=20, n_perturb=5)
            say(f"  analyze: C. elegans (Varshney 2011): {b['n_neurons']} neurons, {b['n_edges']} chemical edges, "
                f"largest SCC {b['largest_scc']} -> analysis/celegans-varshney2011/")
        except ImportError as e:  # the optional 'datasets' extra
            say(f"  analyze: C. elegans skipped: {e}")
    with _timed(times, "evaluate"):
        scores = evaluate_stage(run.path, compute_erl=True)
        base = naive_baseline(run)
    from .report import report

    with _timed(times, "report"):
        page = report(run.path)
    total = time.perf_counter() - t0
    rows = [
        ("neurons (reconstructed / true)", f"{a['n_neurons']} / {gt.n_neurons}"),
        ("synapses (reconstructed / true)", f"{len(con.synapses) if con.synapses is not None else 0} / "
                                            f"{len(gt.synapses) if gt.synapses is not None else 0}"),
        ("edges (reconstructed / true)", f"{len(con.edges)} / {len(gt.edges)}"),
        ("VOI split + merge (bits)", f"{scores['voi_split']:.2f} + {scores['voi_merge']:.2f} = {scores['voi']:.2f}"),
        ("  without voxels at true boundaries", f"{scores.get('voi_boundary_ignored_split', float('nan')):.2f} + "
                                                f"{scores.get('voi_boundary_ignored_merge', float('nan')):.2f} = "
                                                f"{scores.get('voi_boundary_ignored', float('nan')):.2f}"),
        ("  naive baseline, no network", f"{base['voi_split']:.2f} + {base['voi_merge']:.2f} = "
                                         f"{base['voi_split'] + base['voi_merge']:.2f}"),
        ("adapted Rand error", f"{scores['rand_error']:.3f}"),
        ("ERL (nm)", f"{scores.get('erl_nm', float('nan')):.0f}"),
        ("synapse F1 (precision / recall)", f"{scores['synapse_f1']:.3f} ({scores['synapse_precision']:.3f} / "
                                            f"{scores['synapse_recall']:.3f})"),
        ("edge F1", f"{scores['edge_f1']:.3f}"),
    ]
    residual = (run.read_config().get("align_result") or {}).get("residual_px") if align else None
    if residual:
        rows.insert(0, ("alignment residual vs truth (median / 95th)",
                        f"{residual['median']:.2f} / {residual['p95']:.2f} px"))
    rows += [(f"time: {k}", f"{v:.1f} s") for k, v in times.items()] + [("time: total", f"{total:.1f} s")]
    width = max(len(r[0]) for r in rows)
    say("  summary (scored against the exact ground truth):")
    for k, v in rows:
        say(f"    {k:<{width}}  {v}")
    say(f"done in {total:.1f} s. Report: {page}  Viewer: connectomix view {out}")
    return {"run": str(run.path), "info": run_info(out), "scores": scores, "times": times, "report": str(page)}


def _check_demo_run(out, settings, seed: int) -> None:
    """Refuse to reuse a run directory that holds a demo made with other settings.

    Its finished stages would be skipped (their configurations do not name the
    volume), so an aligned demo rerun with ``--no-align`` would segment the stale
    ``aligned`` array.
    """
    from pathlib import Path

    from .errors import ConfigError, RunDirectoryError
    from .synth import settings_hash

    path = Path(out)
    try:
        old = Run(path).read_config().get("synth") or {}
    except RunDirectoryError:
        return
    if old and old.get("settings_hash") != settings_hash(settings, "demo", [seed]):
        raise ConfigError(f"{path} holds a demo made with other settings (e.g. with --align and now --no-align); "
                          "choose another --out or delete it first")


def demo_settings(misaligned: bool = True):
    """The demo's generator settings: the ``demo`` preset, its sections misaligned when ``misaligned``.

    Misaligned: each section but the middle one translated by up to 50 px, turned by up
    to 1.5 deg and warped elastically by up to 8 px (the generator's defaults, the
    accuracy setting of issue #5); no missing or damaged sections, so the demo's scores
    show what alignment costs the reconstruction and nothing else.
    """
    from .synth import preset_settings

    base = preset_settings("demo")
    return base.replace(misalign=True) if misaligned else base


# ---------------------------------------------------------------------- evaluate
def evaluate_stage(run_path, *, compute_erl: bool = True, max_distance_nm: float = 400.0) -> dict:
    """Score a run against its ground truth; write ``RUN/evaluation.json`` (the ``evaluate`` stage)."""
    import json
    import math
    import os

    from .evaluate import evaluate_run

    run = Run(run_path)
    cfg = {"compute_erl": compute_erl, "max_distance_nm": max_distance_nm}
    with run.stage("evaluate", cfg, force=True):
        scores = evaluate_run(run.path, compute_erl=compute_erl, max_distance_nm=max_distance_nm)
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in scores.items()}
        tmp = run.path / "evaluation.json.tmp"
        tmp.write_text(json.dumps(clean, indent=2, default=_json_default))
        os.replace(tmp, run.path / "evaluation.json")
    return scores


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


# ---------------------------------------------------------------------- analyze
def load_connectome(
    *,
    run=None,
    edges=None,
    nodes=None,
    dataset: str | None = None,
    ground_truth: bool = False,
    pre: str | None = None,
    post: str | None = None,
    weight: str | None = None,
    self_loops: str = "keep",
):
    """The Connectome from exactly one source: a run, an edge list or a shipped dataset."""
    from .errors import ConfigError, TableNotFoundError

    given = [x is not None for x in (run, edges, dataset)]
    if sum(given) != 1:
        raise ConfigError("analyze needs exactly one of RUN, --edges FILE or --dataset NAME")
    if dataset is not None:
        from . import datasets

        return datasets.load(dataset)
    if edges is not None:
        from .analysis import read_edge_list

        return read_edge_list(edges, nodes, pre=pre, post=post, weight=weight, self_loops=self_loops)
    from .graph import Connectome

    r = Run(run)
    if not ground_truth and "neurons" in r.tables():
        return Connectome.from_run(r.path)  # leaves out synapses without both partners
    prefix = "gt_" if ground_truth else ""
    have = r.tables()
    for t in ("neurons", "edges"):
        if prefix + t not in have:
            hint = (
                f"the graph stage has not run (run `connectomix graph {r.path}`), or use --ground-truth on a "
                "synthetic run"
                if not ground_truth else "this run has no ground truth (make one with `connectomix synth`)"
            )
            raise TableNotFoundError(f"run {r.path} has no '{prefix}{t}' table: {hint}")
    synapses = r.read_table(prefix + "synapses") if prefix + "synapses" in have else None
    name = f"{r.path.name} ({'ground truth' if ground_truth else 'reconstruction'})"
    return Connectome(r.read_table(prefix + "neurons"), r.read_table(prefix + "edges"), synapses, name=name)


def analyze(connectome, out_dir, **kwargs) -> dict:
    """:func:`connectomix.analysis.analyze` (imported lazily)."""
    from .analysis import analyze as _analyze

    return _analyze(connectome, out_dir, **kwargs)


def naive_baseline(run: Run, *, sigma=(0.5, 1.5, 1.5)) -> dict:
    """Score the segmentation a method without learning gets: smooth, threshold, watershed.

    Otsu threshold of the smoothed image separates membranes from cytoplasm; a
    distance-transform watershed splits the cells. Scored against ``gt_segmentation``
    (mapped into the aligned frame as :func:`evaluate_stage` does; VOI in bits, adapted
    Rand error): the generator must be hard enough that this fails.
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    from .evaluate import adapted_rand_error, ground_truth_volume, variation_of_information

    raw = run.open(run.input_name()).to_numpy()  # `aligned` where the run has it, as the network reads
    gt = ground_truth_volume(run).to_numpy()  # in the aligned frame, as evaluate scores the network's
    sm = ndimage.gaussian_filter(raw.astype(np.float32), sigma)
    inside = sm > threshold_otsu(sm)
    dist = ndimage.distance_transform_edt(inside, sampling=(5, 1, 1))
    peaks = (dist == ndimage.maximum_filter(dist, size=(3, 9, 9))) & (dist > 2)
    markers, _ = ndimage.label(peaks)
    seg = watershed(-dist, markers, mask=inside).astype(np.uint64)
    voi = variation_of_information(seg, gt)
    are = adapted_rand_error(seg, gt)
    return {"voi_split": float(voi.split), "voi_merge": float(voi.merge), "adapted_rand_error": float(are.error)}


#: evaluation.json fields -> the error rates of `connectomix.analysis.perturb`.
ERROR_RATE_FIELDS = {"dropout": "error_dropout", "spurious": "error_spurious", "merge": "error_merge",
                     "split": "error_split", "size_unit": "error_size_unit_vx"}


def error_rates_from(path) -> dict:
    """The reconstruction error rates in a JSON file, for the error-aware statistics.

    ``path`` is a run's ``evaluation.json`` (its ``error_*`` fields, measured by
    ``connectomix evaluate`` against ground truth) or a JSON object with the keys
    ``dropout``, ``spurious``, ``merge``, ``split`` (and optionally ``size_unit``).

    Raises
    ------
    ConfigError
        If the file is missing, not JSON, or lacks a rate.
    """
    import json

    from .errors import ConfigError

    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"error-rate file {p} does not exist") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"error-rate file {p} is not readable JSON ({e})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"error-rate file {p} must hold a JSON object")
    rates = {}
    for key, field in ERROR_RATE_FIELDS.items():
        value = d.get(key, d.get(field))
        if value is None:
            if key == "size_unit":
                continue
            raise ConfigError(f"error-rate file {p} has no {key!r} (or {field!r}) rate: run `connectomix evaluate` "
                              "on a run with ground truth, or write the four rates dropout, spurious, merge, split")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"error rate {key!r} in {p} must be a number, got {value!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"error rate {key!r} in {p} must be a finite number >= 0, got {value!r}")
        rates[key] = value
    return rates


def analyze_stage(connectome, out_dir, *, kind: str = "chemical", n_null: int = 100, n_perturb: int = 20,
                  seed: int = 0, run=None, error_rates: dict | None = None, error_mode: str = "forward") -> dict:
    """Analyse a Connectome into ``out_dir`` (analysis.json, tables, figures); record the stage in a run."""
    from .analysis import analyze

    cfg = {"kind": kind, "n_null": n_null, "n_perturb": n_perturb, "seed": seed, "name": connectome.name,
           "error_rates": error_rates, "error_mode": error_mode}
    kw = dict(kind=kind, n_null=n_null, n_perturb=n_perturb, seed=seed, error_rates=error_rates,
              error_mode=error_mode)
    if run is None:
        return analyze(connectome, out_dir, **kw)
    r = Run(run)
    with r.stage("analyze", cfg, force=True):
        return analyze(connectome, out_dir, **kw)


# ---------------------------------------------------------------------- segment
#: Watershed and agglomeration settings for the shipped affinity network, chosen on
#: validation volumes (train preset, seeds 900-903, 32 x 256 x 256; never trained on),
#: never on the eval set (`benchmarks/bench_agglomeration.py`). Fragments in xy (seeds
#: grown in-plane only, joined across sections by the agglomeration), seeded down to a
#: mean affinity of 0.3 and grown 6 rounds per level (fewer leftover voxels: a third of
#: the region-graph edges of 3 rounds, same VOI): mean VOI 2.98 -> 2.45 bits over the
#: four volumes, adapted Rand error 0.113 -> 0.090, against 3D fragments at (threshold
#: 0.45, min size 300). Smallest segment (voxels; smaller ones join their best
#: neighbour): 300 (100: 2.50, 600: 2.42 with 3 rounds).
SEGMENT_THRESHOLD = 0.4
SEGMENT_MIN_SIZE_VX = 300
SEGMENT_FRAGMENTS = dict(fragments_in_xy=True, seed_sigma=(0.0, 1.0, 1.0), seed_radius=(0, 2, 2), seed_threshold=0.3,
                         grow_rounds=6)


def segment_config(**changes):
    """The pipeline's :class:`~connectomix.segment.SegmentConfig` for the shipped network."""
    from .segment import SegmentConfig

    return SegmentConfig(threshold=SEGMENT_THRESHOLD, min_size=SEGMENT_MIN_SIZE_VX, **SEGMENT_FRAGMENTS).replace(**changes)


def segment_stage(run_path, *, model_dir=None, threshold: float | None = None, predict: bool = True,
                  cluster: ClusterConfig = ClusterConfig(), on_block_done=None, say=print, device: str = "cpu",
                  tta: bool = False):
    """Predict affinities with a trained U-Net, then watershed + agglomerate (``predict``, ``segment``).

    ``predict=False`` segments an existing ``affinities`` array (e.g. one imported or
    made from ground truth). ``tta`` averages the network's affinities over the 8
    in-plane flips and transposes of the volume (8x the prediction time; validation
    VOI 2.13 -> 2.06 bits with the shipped network).
    """
    from .models import predict_affinities
    from .segment import segment_affinities

    run = Run(run_path)
    if predict:
        from .models._unet import check_device, precision_name

        check_device(device)  # before the stage is recorded as started
        # the arithmetic is part of the result: a run predicted in float32 is not reused for bfloat16
        cfg = {"model": str(model_dir or "shipped"), "input": run.input_name(),
               "precision": precision_name(device)}
        if cfg["input"] == "aligned":  # affinities into no-data are cut (since 2026-11-27): re-predict older runs
            cfg["nodata_cut"] = True
        if tta:
            cfg["tta"] = True
        with run.stage("predict", cfg) as st:
            if not st.skipped:
                res = predict_affinities(run, model_dir=model_dir, input=cfg["input"],
                                         scheduler=cluster.scheduler or None, workers=cluster.workers,
                                         device=device, on_block_done=on_block_done, tta=tta)
                say(f"predict: {res.n_blocks} blocks in {res.seconds:.1f} s -> volume.zarr/affinities")
    return segment_affinities(run, segment_config(), threshold=threshold, cluster=cluster, on_block_done=on_block_done)


# ---------------------------------------------------------------------- synapses, graph
#: Cleft probability threshold, smallest cleft (voxels) and the weight a partner
#: needs (`min_partner_weight`) for the shipped networks, chosen on a validation
#: volume (train preset, seed 900), never on the eval set, by
#: `benchmarks/tune_synapses.py`: with the segmentation of the shipped affinity
#: network, synapse F1 0.389 at (0.9, 100, 50) -> 0.435 at (0.95, 100, 50) -> 0.537
#: at (0.98, 100, 100) (edge F1 0.421 -> 0.466 -> 0.546); the surface is flat near it.
SYNAPSE_THRESHOLD = 0.98
SYNAPSE_MIN_SIZE_VX = 100
SYNAPSE_MIN_PARTNER_WEIGHT = 100.0


def synapses_pipeline_stage(run_path, *, model_dir=None, threshold: float | None = None, predict: bool = True,
                            cluster: ClusterConfig = ClusterConfig(), on_block_done=None, say=print,
                            device: str = "cpu", **options):
    """Predict the synapse maps with the synapse network, then detect synapses and partners.

    ``predict=False`` uses an existing ``synapse_pred`` array (e.g. ideal predictions
    written from ground truth). ``device`` is where the network runs (``cpu`` or ``cuda``).
    """
    from .models import predict_synapses
    from .synapses import require_segmentation, synapses_stage

    run = Run(run_path)
    require_segmentation(run)  # before the (costly) prediction
    if predict:
        from .volume import write_token

        src = run.input_name()
        # its own stage name (not in STAGE_ORDER): re-predicting must not invalidate `segment`
        from .models._unet import check_device, precision_name

        check_device(device)  # before the stage is recorded as started

        cfg = {"model": str(model_dir or "shipped"), "input": src, "input_token": write_token(run.open(src)),
               "precision": precision_name(device)}
        with run.stage("predict_synapses", cfg) as st:
            if st.skipped:
                say("predict synapses: already done with this model and input, skipped")
            else:
                res = predict_synapses(run, model_dir=model_dir, input=src, scheduler=cluster.scheduler or None,
                                       workers=cluster.workers, device=device, on_block_done=on_block_done)
                say(f"predict synapses: {res.n_blocks} blocks in {res.seconds:.1f} s -> volume.zarr/synapse_pred")
    options.setdefault("min_size_vx", SYNAPSE_MIN_SIZE_VX)
    options.setdefault("min_partner_weight", SYNAPSE_MIN_PARTNER_WEIGHT)
    return synapses_stage(run.path, threshold=SYNAPSE_THRESHOLD if threshold is None else threshold,
                          cluster=cluster, progress=on_block_done, say=say, **options)


def graph_pipeline_stage(run_path, *, min_score: float = 0.0, min_synapses: int = 1,
                         cluster: ClusterConfig = ClusterConfig(), on_block_done=None, say=print):
    """Build the ``neurons``, ``synapses`` and ``edges`` tables of the connectome."""
    from .graph import graph_stage

    return graph_stage(run_path, min_score=min_score, min_synapses=min_synapses, cluster=cluster,
                       progress=on_block_done, say=say)
