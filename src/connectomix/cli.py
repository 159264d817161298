"""The ``connectomix`` command: parse, load configuration, call the library.

No logic lives here. Errors that bad input causes (``ConnectomixError``) are printed
as one line on stderr with a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import typer

from .errors import ConnectomixError

app = typer.Typer(
    name="connectomix",
    help="From serial-section EM images to an analysed connectome.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_STATE = {"quiet": False, "debug": False, "config": None}


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens (INFO level)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summaries."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML configuration file."),
):
    """connectomix: EM images in, connectome and analysis out."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Libraries that set their own logger levels (Dask's cluster chatter) are held to ours.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    _STATE.update(quiet=quiet, debug=debug, config=config)


# ------------------------------------------------------------------ helpers
def _config():
    from .config import load_config

    return load_config(_STATE["config"])


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Not a terminal (a pipe, a log file): wide enough that tables do not wrap.
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)


class _Progress:
    """A rich progress bar fed by ``on_block_done``; silent when quiet or not a TTY."""

    def __init__(self, description: str):
        self.description = description
        self._progress = None
        self._task = None

    def __enter__(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = _console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("blocks"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=_STATE["quiet"] or not console.is_terminal,
        )
        self._progress.__enter__()
        return self

    def __call__(self, done: int, total: int) -> None:
        if self._task is None:
            self._task = self._progress.add_task(self.description, total=total, rate="")
        task = self._progress.tasks[0]
        speed = task.speed
        rate = f"{speed:.1f} blocks/s" if speed else ""
        self._progress.update(self._task, completed=done, total=total, rate=rate)

    def __exit__(self, *exc):
        self._progress.__exit__(*exc)


def _say(msg: str) -> None:
    if not _STATE["quiet"]:
        _console().print(msg)


def _cluster(cfg, scheduler, workers):
    return cfg.override("cluster", scheduler=scheduler, workers=workers)


# ------------------------------------------------------------------ commands
@app.command("import")
def import_(
    input: Optional[str] = typer.Argument(None, help="TIFF stack, folder of 2D sections, file.h5:/dataset, .npy, .mrc, precomputed or zarr."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create or add to."),
    tiles: Optional[Path] = typer.Option(None, "--tiles", help="CSV of tiles to stitch (section, tile, stage_y, stage_x in nm, path)."),
    voxel_size: Optional[Tuple[int, int, int]] = typer.Option(None, "--voxel-size", help="Voxel size in nm, Z Y X."),
    offset: Optional[Tuple[int, int, int]] = typer.Option(None, "--offset", help="World offset in nm, Z Y X."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset path inside an HDF5/zarr container."),
    name: str = typer.Option("raw", "--name", help="Array name in the run."),
    pyramid: Optional[int] = typer.Option(None, "--pyramid", help="Multiscale levels to write for viewing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing array of that name."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: local)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local Dask workers."),
):
    """Import an EM volume into RUN/volume.zarr/raw (block-wise, bounded memory), or record tiles to stitch."""
    from .pipeline import import_stage

    if tiles is not None:
        if input is not None:
            raise typer.BadParameter("give either INPUT or --tiles, not both")
        if voxel_size is None:
            raise typer.BadParameter("--tiles needs --voxel-size Z Y X (nm)")
        from .align import import_tiles

        df = import_tiles(tiles, out, voxel_size)
        _say(f"tiles: {len(df)} tiles in {df['section'].nunique()} sections recorded in {out} "
             f"-> run `connectomix align {out}` to stitch and align them")
        return
    if input is None:
        raise typer.BadParameter("INPUT is required (or --tiles TILES.csv)")

    cfg = _config().override(
        "import", input=input, voxel_size=voxel_size, offset=offset, dataset=dataset, pyramid_levels=pyramid
    )
    cfg = _cluster(cfg, scheduler, workers)
    with _Progress("import") as bar:
        vol = import_stage(out, cfg.import_, cluster=cfg.cluster, name=name, overwrite=overwrite, on_block_done=bar)
    _say(f"imported {input} -> {vol.path}: shape {vol.shape}, {vol.dtype}, voxel size {tuple(vol.voxel_size)} nm")


@app.command()
def smooth(
    run: Path = typer.Argument(..., help="Run directory."),
    sigma: Optional[Tuple[float, float, float]] = typer.Option(None, "--sigma", help="Gaussian sigma in voxels, Z Y X."),
    input: Optional[str] = typer.Option(None, "--input", help="Array to smooth (default raw)."),
    output: Optional[str] = typer.Option(None, "--output", help="Array to write (default smoothed)."),
    block_shape: Optional[Tuple[int, int, int]] = typer.Option(None, "--block-shape", help="Block write shape in voxels."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: local cluster)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local Dask workers."),
    force: bool = typer.Option(False, "--force", help="Re-run even if done with this configuration."),
):
    """Gaussian-filter an array block-wise (seamless, resumable, on Dask)."""
    from . import pipeline
    from .run import Run

    cfg = _config().override("smooth", sigma=sigma, input=input, output=output, block_shape=block_shape)
    cfg = _cluster(cfg, scheduler, workers)
    r = Run(run)
    with _Progress("smooth") as bar:
        res = pipeline.smooth(r, cfg.smooth, cluster=cfg.cluster, on_block_done=bar, force=force)
    if res is None:
        _say("smooth: already done with this configuration (use --force to redo)")
    else:
        _say(
            f"smooth: {res.n_run} blocks computed, {res.n_skipped} already done, "
            f"{res.seconds:.1f} s -> {r.volume_path(cfg.smooth.output)}"
        )


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to write."),
    shape: Optional[Tuple[int, int, int]] = typer.Option(None, "--shape", help="Z Y X voxels (default: the preset's)."),
    voxel_size: Optional[Tuple[int, int, int]] = typer.Option(None, "--voxel-size", help="Z Y X nm (default 40 8 8)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same volume."),
    preset: str = typer.Option("demo", "--preset", help="demo, train, hard or eval (frozen evaluation set)."),
    morphology: Optional[str] = typer.Option(None, "--morphology", help="'hemibrain' (navis) or a folder of SWC files."),
    swc_units: str = typer.Option("nm", "--swc-units", help="nm, um or voxel:Z,Y,X for --morphology DIR."),
):
    """Generate synthetic serial-section EM with exact ground truth (segmentation, synapses, edges)."""
    from .synth import eval_settings_hash, synthesize

    log = None if _STATE["quiet"] else (lambda m: _console(stderr=True).print(f"  {m}"))
    run = synthesize(out, shape=shape, voxel_size=voxel_size, seed=seed, preset=preset, morphology=morphology,
                     swc_units=swc_units, log=log)
    raw = run.open("raw")
    _say(
        f"synth ({preset}, seed {seed}) -> {run.path}: raw {raw.shape} at {tuple(raw.voxel_size)} nm; "
        f"{len(run.read_table('gt_neurons'))} cells, {len(run.read_table('gt_synapses'))} synapses, "
        f"{len(run.read_table('gt_edges'))} edges"
    )
    if preset == "eval":
        _say(f"eval set settings hash: {eval_settings_hash()} (name it with every quality figure)")


@app.command()
def segment(
    run: Path = typer.Argument(..., help="Run directory."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the shipped model)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Agglomeration threshold (mean affinity); default 0.4, chosen for the shipped model."),
    predict: bool = typer.Option(True, "--predict/--no-predict", help="Predict affinities first, or use the run's."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda for the prediction."),
    tta: bool = typer.Option(False, "--tta", help="Average the affinities over the 8 in-plane flips and transposes (8x the prediction time; 3-5 % lower VOI)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: local)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local Dask workers."),
):
    """Segment neurons: U-Net affinities, then seamless block-wise watershed and agglomeration."""
    from .pipeline import segment_stage

    cfg = _cluster(_config(), scheduler, workers)
    with _Progress("segment") as bar:
        res = segment_stage(run, model_dir=model, threshold=threshold, predict=predict, cluster=cfg.cluster,
                            on_block_done=bar, say=_say, device=device, tta=tta)
    _say(f"segment: {res}")


@app.command()
def align(
    run: Path = typer.Argument(..., help="Run directory (with raw sections, or tiles from `import --tiles`)."),
    elastic: bool = typer.Option(True, "--elastic/--no-elastic", help="Elastic (mesh) alignment after the rigid one."),
    reference: str = typer.Option("middle", "--reference", help="Reference section: middle, first or an index."),
    fill: bool = typer.Option(True, "--fill/--no-fill", help="Fill missing sections by interpolation."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: local)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local Dask workers."),
    force: bool = typer.Option(False, "--force", help="Re-run even if done with this configuration."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda for the defect network."),
):
    """Stitch tiles and register sections (rigid, then elastic) into RUN/volume.zarr/aligned."""
    from .align import align_stage
    from .errors import ConfigError

    if reference not in ("middle", "first"):
        try:
            reference = int(reference)
        except ValueError:
            raise ConfigError(f"--reference must be middle, first or a section index, got {reference!r}") from None
    cfg = _cluster(_config(), scheduler, workers)
    with _Progress("align") as bar:
        align_stage(run, elastic=elastic, reference=reference, cluster=cfg.cluster, progress=bar, say=_say,
                    fill_missing=fill, force=force, device=device)


@app.command()
def synapses(
    run: Path = typer.Argument(..., help="Run directory with a segmentation."),
    model: Optional[Path] = typer.Option(None, "--model", help="Synapse model directory (default: the shipped one)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Cleft probability threshold."),
    predict: bool = typer.Option(True, "--predict/--no-predict", help="Predict first, or use the run's synapse_pred."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: local)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local Dask workers."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda for the prediction."),
):
    """Detect synapses and their pre/post partners: the synapses table."""
    from .pipeline import synapses_pipeline_stage

    cfg = _cluster(_config(), scheduler, workers)
    with _Progress("synapses") as bar:
        synapses_pipeline_stage(run, model_dir=model, threshold=threshold, predict=predict, cluster=cfg.cluster,
                                on_block_done=bar, say=_say, device=device)


@app.command()
def graph(
    run: Path = typer.Argument(..., help="Run directory with segmentation and synapses."),
    min_score: float = typer.Option(0.0, "--min-score", help="Synapses below this score do not count."),
    min_synapses: int = typer.Option(1, "--min-synapses", help="Edges need at least this many synapses."),
):
    """Build the connectome tables neurons, synapses, edges (DuckDB + Parquet)."""
    from .pipeline import graph_pipeline_stage

    graph_pipeline_stage(run, min_score=min_score, min_synapses=min_synapses, say=_say)


@app.command()
def shapes(
    run: Path = typer.Argument(..., help="Run directory with a segmentation."),
    meshes: bool = typer.Option(True, "--meshes/--no-meshes", help="Also mesh every segment (zmesh)."),
):
    """Skeletons (kimimaro, SWC) and meshes (zmesh) of every segment, in nm."""
    from .shapes import shapes_stage

    res = shapes_stage(run, meshes=meshes)
    _say(f"shapes: {res}")


@app.command()
def view(
    run: Path = typer.Argument(..., help="Run directory."),
    bind: str = typer.Option("127.0.0.1", "--bind", help="Address to listen on (other than localhost: warned)."),
    port: int = typer.Option(0, "--port", help="Port of the viewer (0: any free port)."),
    neurons: Optional[List[int]] = typer.Option(None, "--neurons", help="Segment ids to select."),
):
    """Open a local neuroglancer viewer of a run; runs until Ctrl+C."""
    from .viewer import view as start

    session = start(run, bind=bind, port=port, neurons=neurons or None)
    _console().print(f"neuroglancer viewer of {run}: {session.url}\npress Ctrl+C to stop")
    session.wait()


@app.command()
def report(run: Path = typer.Argument(..., help="Run directory.")):
    """Write RUN/report/index.html: a self-contained page with the run's pictures and numbers."""
    from .report import report as write_report

    _say(f"report: {write_report(run)}")


@app.command()
def info(run: Path = typer.Argument(..., help="Run directory.")):
    """Show a run's arrays (shape, dtype, voxel size, chunks) and tables (rows, columns)."""
    from .pipeline import run_info

    _print_info(run_info(run))


def _print_info(inf: dict) -> None:
    from rich.table import Table

    console = _console()
    t = Table(title=f"arrays in {inf['path']}")
    for col in ("name", "shape", "dtype", "voxel size (nm)", "offset (nm)", "chunks", "shards", "levels", "complete"):
        t.add_column(col)
    for name, a in inf["arrays"].items():
        if "error" in a:
            t.add_row(name, f"unreadable: {a['error']}", *[""] * 7)
            continue
        t.add_row(
            name, str(tuple(a["shape"])), str(a["dtype"]), str(tuple(a["voxel_size"])), str(tuple(a["offset"])),
            str(a["chunks"] and tuple(a["chunks"])), str(a["shards"] and tuple(a["shards"])), str(a["levels"]),
            "yes" if a["complete"] else "NO (unfinished)",
        )
    console.print(t)
    t = Table(title="tables")
    for col in ("name", "rows", "columns"):
        t.add_column(col)
    for name, tb in inf["tables"].items():
        t.add_row(name, str(tb["rows"]), ", ".join(tb["columns"]))
    console.print(t)


@app.command()
def export(
    run: Path = typer.Argument(..., help="Run directory."),
    to: Optional[Path] = typer.Option(None, "--to", help="Output file: .tif/.npy for arrays, .csv/.parquet for tables."),
    array: Optional[str] = typer.Option(None, "--array", help="Array to export."),
    table: Optional[str] = typer.Option(None, "--table", help="Table to export."),
    precomputed: Optional[Path] = typer.Option(None, "--precomputed", help="Write the run as neuroglancer precomputed data (image, segmentation, meshes, skeletons, synapses) into this folder."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="URL the precomputed folder will be served from (for the viewer state)."),
    neurons: Optional[List[int]] = typer.Option(None, "--neurons", help="Segment ids to select in the viewer state."),
    graphml: Optional[Path] = typer.Option(None, "--graphml", help="Write the connectome as GraphML."),
    neuprint: Optional[Path] = typer.Option(None, "--neuprint", help="Write neuPrint-style Neurons.csv / ConnectsTo.csv into this folder."),
    cave: Optional[Path] = typer.Option(None, "--cave", help="Write a CAVE-style synapse table (.csv or .parquet)."),
):
    """Export arrays (.tif/.npy), tables (.csv/.parquet), the connectome (GraphML, neuPrint, CAVE) or a precomputed view."""
    if not any((to, precomputed, graphml, neuprint, cave)):
        raise typer.BadParameter("say what to export: --to FILE, --precomputed DIR, --graphml, --neuprint or --cave")
    if to is not None:
        from .pipeline import export_stage

        _say(f"wrote {export_stage(run, to, array=array, table=table)}")
    if precomputed is not None:
        from .viewer import export_precomputed

        d = export_precomputed(run, precomputed, neurons=neurons or None, base_url=base_url)
        _say(f"wrote neuroglancer precomputed data and a viewer state to {d} "
             f"(serve it with any static file server; state in {Path(d) / 'state.json'})")
    if graphml or neuprint or cave:
        from .graph import Connectome

        con = Connectome.from_run(run)
        if graphml:
            _say(f"wrote {con.to_graphml(graphml)}")
        if neuprint:
            _say(f"wrote {con.to_neuprint_csv(neuprint)}")
        if cave:
            _say(f"wrote {con.to_cave(cave)}")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-run"), "--out", "-o", help="Run directory to write."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: local)."),
    workers: Optional[int] = typer.Option(2, "--workers", help="Local Dask workers."),
    align: bool = typer.Option(True, "--align/--no-align",
                               help="Misalign the demo's sections and register them before segmenting."),
):
    """The whole pipeline on a synthetic volume, scored against its exact ground truth, with a report."""
    from .pipeline import demo as run_demo

    cfg = _cluster(_config(), scheduler, workers)
    progress = _Progress
    run_demo(out, cluster=cfg.cluster, progress=progress, say=_say, align=align)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run directory holding ground truth (e.g. made by `connectomix synth`)."),
    erl: bool = typer.Option(True, "--erl/--no-erl", help="Skeletonize the ground truth and compute ERL."),
    max_distance: float = typer.Option(400.0, "--max-distance", help="Synapse matching distance in nm."),
):
    """Score a run against its ground truth: VOI, Rand, ERL, synapse and edge F1; writes evaluation.json."""
    from .pipeline import evaluate_stage

    scores = evaluate_stage(run, compute_erl=erl, max_distance_nm=max_distance)
    if _STATE["quiet"]:
        return
    from rich.table import Table

    t = Table(title=f"evaluation of {run}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in scores.items():
        t.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    _console().print(t)
    _say(f"written to {Path(run) / 'evaluation.json'}")


@app.command()
def datasets():
    """List the real connectomes that ship offline (C. elegans from cect, ...)."""
    from .datasets import list_datasets

    df = list_datasets()
    from rich.table import Table

    t = Table(title="shipped datasets (connectomix.datasets.load(NAME))")
    for col in ("name", "description", "reference"):
        t.add_column(col)
    for row in df.itertuples():
        t.add_row(row.name, row.description, row.reference)
    _console().print(t)


@app.command()
def analyze(
    run: Optional[Path] = typer.Argument(None, help="A run directory (its neurons/edges tables)."),
    edges: Optional[Path] = typer.Option(None, "--edges", help="Edge list: CSV or Parquet (FlyWire, neuPrint, CAVE, pre/post/weight)."),
    nodes: Optional[Path] = typer.Option(None, "--nodes", help="Node table for --edges."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="A shipped dataset (see `connectomix datasets`)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default RUN/analysis)."),
    ground_truth: bool = typer.Option(False, "--ground-truth", help="Analyse the run's ground-truth graph (gt_* tables)."),
    pre: Optional[str] = typer.Option(None, "--pre", help="Column of presynaptic ids (overrides recognition)."),
    post: Optional[str] = typer.Option(None, "--post", help="Column of postsynaptic ids."),
    weight: Optional[str] = typer.Option(None, "--weight", help="Column of weights (synapse counts)."),
    edge_kind: str = typer.Option("chemical", "--edge-kind", help="chemical, electrical or combined."),
    self_loops: str = typer.Option("keep", "--self-loops", help="keep or drop self-loops."),
    n_null: int = typer.Option(100, "--n-null", help="Null networks for motif z-scores and the rich club."),
    n_perturb: int = typer.Option(20, "--n-perturb", help="Perturbed copies for error-aware statistics (0 = skip)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random step."),
    error_rates: Optional[Path] = typer.Option(
        None, "--error-rates",
        help="Reconstruction error rates for the error-aware statistics: an evaluation.json from "
             "`connectomix evaluate` (error_* fields) or JSON with dropout, spurious, merge, split."),
    error_mode: Optional[str] = typer.Option(
        None, "--error-mode",
        help="inverse: intervals estimate the error-free values (default with --error-rates); "
             "forward: stability under such errors (default otherwise)."),
):
    """Analyse a connectome: motifs, hubs, rich club, modules, pathways, dynamics, error-aware statistics."""
    from .errors import ConfigError
    from .pipeline import analyze_stage, error_rates_from, load_connectome

    if error_mode not in (None, "forward", "inverse"):
        raise ConfigError(f"--error-mode must be forward or inverse, got {error_mode!r}")
    rates = None if error_rates is None else error_rates_from(error_rates)
    mode = error_mode or ("inverse" if rates is not None else "forward")

    c = load_connectome(run=run, edges=edges, nodes=nodes, dataset=dataset, ground_truth=ground_truth,
                        pre=pre, post=post, weight=weight, self_loops=self_loops)
    if out is None:
        if run is None:
            raise ConfigError("--out DIR is required with --edges or --dataset")
        out = Path(run) / "analysis"
    res = analyze_stage(c, out, kind=edge_kind, n_null=n_null, n_perturb=n_perturb, seed=seed, run=run,
                        error_rates=rates, error_mode=mode)
    _say(
        f"{c.name}: {res['n_neurons']} neurons, {res['n_edges']} edges, {res['n_synapses']} synapses, "
        f"reciprocity {res['reciprocity']:.3f}, largest SCC {res['largest_scc']}"
    )
    rob = res.get("robustness")
    if rob and mode == "inverse":
        _say(f"error-aware statistics ({n_perturb} perturbations, inverse mode): intervals for the error-free "
             "values in analysis.json -> robustness")
    _say(f"results in {out}/analysis.json, tables/ and figures/")


@app.command()
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Model directory (resumed when it has a checkpoint)."),
    task: str = typer.Option("affinities", "--task", help="affinities (segmentation), synapses (clefts + partners) "
                             "or defects (damaged section strips; --patch 3 Y X)."),
    iterations: int = typer.Option(2000, "--iterations", help="Total iterations to reach."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (mixed precision on cuda)."),
    n_volumes: int = typer.Option(8, "--volumes", help="Training volumes to generate (train preset)."),
    shape: Tuple[int, int, int] = typer.Option((32, 256, 256), "--shape", help="Shape of each training volume."),
    patch: Tuple[int, int, int] = typer.Option((16, 128, 128), "--patch", help="Training patch (multiple of 2, 8, 8; 3 Y X for defects)."),
    batch_size: int = typer.Option(1, "--batch-size", help="Patches per iteration."),
    lr: float = typer.Option(5e-4, "--lr", help="Learning rate (AdamW)."),
    features: int = typer.Option(12, "--features", help="Feature maps at the top level of the U-Net."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch."),
    workers: int = typer.Option(0, "--workers", help="Processes cutting and augmenting patches (0: none)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop (with a checkpoint) after this long."),
    seed: int = typer.Option(0, "--seed", help="Seed of sampling and initialisation."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from a model directory or 'shipped' (new OUT only)."),
    schedule: str = typer.Option("constant", "--schedule", help="Learning rate over this call: constant or cosine "
                                 "(decays to lr/50 by --iterations or --max-minutes)."),
    aux: Optional[str] = typer.Option(None, "--aux", help="Auxiliary target of the affinity network: lsd (local "
                                      "shape descriptors, 10 more outputs; inference reads the affinities only)."),
    scales: Optional[List[int]] = typer.Option(None, "--scale", help="--task defects: train on sections averaged over "
                                               "k x k pixel blocks (repeat: --scale 1 --scale 2, with --shape large "
                                               "enough, e.g. 12 384 384; default 1: full resolution)."),
):
    """Train the affinity, synapse or defect U-Net on synthetic volumes (resumable; checkpoints and loss curve in OUT)."""
    from .errors import ConfigError
    from .models import TASKS, TRAIN_SEEDS, VAL_SEEDS, make_synapse_volumes, make_volumes, train as run_train

    if task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if schedule not in ("constant", "cosine"):
        raise ConfigError(f"--schedule must be constant or cosine, got {schedule!r}")
    if scales and task != "defects":
        raise ConfigError(f"--scale is for --task defects only (got --task {task})")
    if aux is not None and (aux != "lsd" or task != "affinities"):
        raise ConfigError(f"--aux must be lsd, for --task affinities (got {aux!r} for {task!r})")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device} asked for, but this machine has no CUDA GPU (torch "
                              f"{torch.__version__}); use --device cpu")
    elif device != "cpu":
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
    say = (lambda m: None) if _STATE["quiet"] else (lambda m: _console().print(m))
    if task == "defects":
        from .models import DEFECT_TRAIN_SEEDS, DEFECT_VAL_SEEDS, make_defect_volumes

        if patch[0] != 3 or patch[1] % 8 or patch[2] % 8:
            raise ConfigError(f"--task defects reads 3 sections: --patch must be 3 Y X with Y and X multiples of 8, "
                              f"got {' '.join(map(str, patch))}")
        k = max(scales or [1])
        if min(scales or [1]) < 1:
            raise ConfigError(f"--scale must be a positive integer, got {min(scales)}")
        if shape[1] < k * patch[1] + 6 or shape[2] < k * patch[2] + 6:
            raise ConfigError(f"--shape {' '.join(map(str, shape))} is too small for --patch "
                              f"{' '.join(map(str, patch))} at scale {k}: each volume needs 6 pixels more than "
                              f"{k} x the patch in y and x")
        make, train_seeds, val_seeds = make_defect_volumes, DEFECT_TRAIN_SEEDS, DEFECT_VAL_SEEDS
    else:
        make = make_volumes if task == "affinities" else make_synapse_volumes
        train_seeds, val_seeds = TRAIN_SEEDS, VAL_SEEDS
    if n_volumes > len(train_seeds):
        raise ConfigError(f"--volumes must be at most {len(train_seeds)}, got {n_volumes}")
    vols = make(train_seeds[:n_volumes], shape=shape, workers=workers, log=say)
    val = make(val_seeds, shape=shape, log=say)
    from .synth import resolve_settings

    info = {"preset": "train", "train_seeds": list(train_seeds[:n_volumes]), "val_seeds": list(val_seeds),
            "shape": list(shape), "voxel_size": list(resolve_settings(preset="train", seed=train_seeds[0]).voxel_size)}
    if task == "defects":
        info["settings"] = "no misalignment, no missing sections, a third of the sections damaged"
    try:
        summary = run_train(out, vols, val, iterations=iterations, device=device, patch=patch, features=features,
                            batch_size=batch_size, lr=lr, threads=threads, workers=workers, task=task, seed=seed, init=init,
                            log=say, data_info=info, max_seconds=None if max_minutes is None else max_minutes * 60,
                            schedule=schedule, aux=aux, scales=tuple(scales or (1,)))
    except ValueError as e:  # options that do not fit the volumes or the model in OUT
        raise ConfigError(str(e)) from None
    _say(f"model in {out}: {summary['iterations']} iterations, validation loss {summary['last_val_loss']}")


@app.command("run")
def run_pipeline(
    input: str = typer.Argument(..., help="EM volume to process (anything `import` reads), or a YAML configuration."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory."),
    voxel_size: Optional[Tuple[int, int, int]] = typer.Option(None, "--voxel-size", help="Voxel size in nm, Z Y X."),
    align: bool = typer.Option(False, "--align/--no-align", help="Register the sections before segmenting."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: local)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local Dask workers."),
):
    """The whole pipeline: import -> (align) -> segment -> synapses -> graph -> analyze -> report; resumable."""
    if input.endswith((".yaml", ".yml")):
        from .config import load_config
        from .pipeline import run_from_config

        run_from_config(out, load_config(Path(input)), progress=_Progress, say=_say)
        return
    from .pipeline import run_all

    cfg = _config().override("import", input=input, voxel_size=voxel_size)
    cfg = _cluster(cfg, scheduler, workers)
    run_all(out, cfg, align=align, progress=_Progress, say=_say)


def main(argv: List[str] | None = None) -> int:
    """Entry point of the ``connectomix`` console script."""
    import click

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        app(args=argv, prog_name="connectomix", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted: finished blocks are kept; re-run the same command to resume", file=sys.stderr)
        return 130
    except ConnectomixError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
