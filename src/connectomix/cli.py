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
    input: str = typer.Argument(..., help="TIFF stack, folder of 2D sections, file.h5:/dataset, .npy, .mrc, precomputed or zarr."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create or add to."),
    voxel_size: Optional[Tuple[int, int, int]] = typer.Option(None, "--voxel-size", help="Voxel size in nm, Z Y X."),
    offset: Optional[Tuple[int, int, int]] = typer.Option(None, "--offset", help="World offset in nm, Z Y X."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset path inside an HDF5/zarr container."),
    name: str = typer.Option("raw", "--name", help="Array name in the run."),
    pyramid: Optional[int] = typer.Option(None, "--pyramid", help="Multiscale levels to write for viewing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing array of that name."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: local)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local Dask workers."),
):
    """Import an EM volume into RUN/volume.zarr/raw (block-wise, bounded memory)."""
    from .pipeline import import_stage

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
    to: Path = typer.Option(..., "--to", help="Output file: .tif/.npy for arrays, .csv/.parquet for tables."),
    array: Optional[str] = typer.Option(None, "--array", help="Array to export."),
    table: Optional[str] = typer.Option(None, "--table", help="Table to export."),
):
    """Export an array to .tif/.npy or a table to .csv/.parquet."""
    from .pipeline import export_stage

    written = export_stage(run, to, array=array, table=table)
    _say(f"wrote {written}")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-run"), "--out", "-o", help="Run directory to write."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: local)."),
    workers: Optional[int] = typer.Option(2, "--workers", help="Local Dask workers."),
):
    """Run everything that exists end to end on built-in data, and say what is not there yet."""
    from .pipeline import demo as run_demo

    cfg = _cluster(_config(), scheduler, workers)
    progress = _Progress
    summary = run_demo(out, cluster=cfg.cluster, progress=progress, say=_say)
    _print_info(summary["info"]) if not _STATE["quiet"] else None


@app.command("run")
def run_config(
    config: Path = typer.Argument(..., help="YAML configuration describing the run."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory."),
):
    """Run every stage a configuration file describes, in pipeline order."""
    from .config import load_config
    from .pipeline import run_from_config

    cfg = load_config(config)
    run_from_config(out, cfg, progress=_Progress, say=_say)


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
