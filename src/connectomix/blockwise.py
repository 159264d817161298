"""The block engine: apply ``fn(block, inputs) -> outputs`` over a grid of blocks.

A block is a small description (an id and two Rois), never data. Each block task
opens its inputs from the store, reads its read region (the write region grown by
each input's context), calls the block function, writes the returned arrays into
the output volumes and the returned tables as ``RUN/tables/<name>/block-<id>.parquet``,
and only then records itself as done. Tasks run on Dask (``dask.distributed``: a
local cluster by default, or an existing scheduler), one task per block, submitted
in a bounded window so the scheduler holds a few thousand tasks at most however
large the volume.

Guarantees
----------
* **Seamless**: each input is read with its full context, clipped only at the
  volume's border, so a context-aware function gives the whole-volume result.
* **No shared writes**: write regions are whole multiples of every output's shard
  (or chunk), so no two blocks touch the same stored object.
* **Resumable**: a block's done-record is written after its outputs; a re-run with
  the same task configuration skips done blocks. Outputs stay flagged incomplete
  until every block is done, and :func:`connectomix.volume.open_volume` refuses them
  until then.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np

from .errors import BlockError, ConnectomixError, RoiError, SchedulerError, VolumeError
from .geometry import Coordinate, Roi
from .volume import Volume, VolumeRef, mark_complete, _set_meta

__all__ = [
    "connect",
    "Block",
    "Input",
    "BlockwiseResult",
    "tile",
    "run_blockwise",
    "dask_client",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Block:
    """One unit of block-wise work.

    Parameters
    ----------
    id : int
        Stable id: the block's index in C order on the block grid.
    read_roi : Roi
        The region the block may read (write region plus context), in nm.
    write_roi : Roi
        The region the block writes, in nm.
    """

    id: int
    read_roi: Roi
    write_roi: Roi


def tile(
    total_roi: Roi,
    read_shape,
    write_shape,
    *,
    fit: Literal["valid", "shrink", "overhang"] = "valid",
) -> list[Block]:
    """Cover ``total_roi`` with blocks whose write regions tile it without overlap.

    ``total_roi`` is the region that may be read. Each block's write region sits in
    the middle of its read region, ``context = (read_shape - write_shape) / 2`` from
    every side, and write regions follow each other with a stride of
    ``write_shape``, starting at ``total_roi.begin + context``. The ``fit`` mode says
    what happens at the far end, where the space left is less than a full block::

        total_roi  |-----------------------------|
        valid      |[ c | w | c ]                |  only blocks that fit entirely
                   |      [ c | w | c ]          |  (the rest is not written)
        shrink     |             [ c | w | c ]   |
                   |                   [ c |w| c]|  last block cropped to fit
        overhang   |                   [ c | w | c ]  last block sticks out

    Parameters
    ----------
    total_roi : Roi
        The readable region, nm.
    read_shape, write_shape : Coordinate
        In nm; ``read_shape - write_shape`` must be even and non-negative.
    fit : {'valid', 'shrink', 'overhang'}

    Returns
    -------
    list of Block, ids in C order of the block grid.
    """
    read_shape, write_shape = Coordinate(read_shape), Coordinate(write_shape)
    if any(w <= 0 for w in write_shape):
        raise RoiError(f"write shape must be positive, got {write_shape}")
    margin = read_shape - write_shape
    if any(m < 0 or m % 2 for m in margin):
        raise RoiError(
            f"read shape {read_shape} must exceed write shape {write_shape} by an even, non-negative amount"
        )
    if fit not in ("valid", "shrink", "overhang"):
        raise RoiError(f"fit must be 'valid', 'shrink' or 'overhang', got {fit!r}")
    context = margin // 2
    write_area = total_roi.grow(-context)
    if write_area.empty:
        return []
    counts = write_area.shape.ceil_div(write_shape) if fit != "valid" else write_area.shape // write_shape
    blocks = []
    for bid, idx in enumerate(itertools.product(*(range(n) for n in counts))):
        write_roi = Roi(write_area.begin + Coordinate(idx) * write_shape, write_shape)
        if fit == "shrink":
            write_roi = write_roi.intersect(write_area)
        blocks.append(Block(bid, write_roi.grow(context), write_roi))
    return blocks


@dataclass(frozen=True)
class Input:
    """A block function's input: a stored volume and the context it needs.

    Parameters
    ----------
    source : VolumeRef or object with ``open() -> Volume``
        Where to read; opened on the worker.
    context : Coordinate
        Extra margin in nm read on every side of the write region.
    boundary : {'clip', 'pad'}
        At the volume's border, hand the function the clipped region (``clip``,
        its Roi says where it is) or pad to the full read region with ``fill_value``.
    """

    source: Any
    context: Coordinate | int = 0
    boundary: Literal["clip", "pad"] = "clip"
    fill_value: Any = 0


@dataclass
class BlockwiseResult:
    """What a block-wise run did."""

    task: str
    n_blocks: int
    n_skipped: int
    n_run: int
    seconds: float
    table_rows: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- workers
_OPEN_CACHE: dict = {}


def _open(source, mode="r") -> Volume:
    # Keyed by the array's metadata file too: an array made anew at the same path
    # (overwrite) must not be served from a stale handle.
    stamp = None
    if isinstance(source, VolumeRef):
        try:
            stamp = os.stat(os.path.join(source.path, f"s{source.level}", "zarr.json")).st_mtime_ns
        except OSError:
            stamp = None
    key = (repr(source), mode, stamp)
    vol = _OPEN_CACHE.get(key)
    if vol is None:
        if isinstance(source, VolumeRef):
            vol = source.open(mode)
        else:
            vol = source.open()
        if len(_OPEN_CACHE) > 64:
            _OPEN_CACHE.clear()
        _OPEN_CACHE[key] = vol
    return vol


@dataclass(frozen=True)
class _TaskSpec:
    """Everything a worker needs for any block of one task (small, picklable)."""

    task: str
    process: Callable
    inputs: tuple  # ((name, Input), ...)
    outputs: tuple  # ((name, VolumeRef), ...)
    tables: tuple
    done_dir: str
    table_root: str | None


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Keep glibc from handing every freed block buffer back to the kernel (once per process).

    Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins
    glibc's mmap threshold at 128 KiB: every larger array is mmap'ed and unmapped, so
    each block faults in all its buffers again (measured: 465k page faults and +20 %
    CPU on benchmarks/bench_blockwise.py; 3k faults after this).
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def _process_block(block: Block, spec: _TaskSpec) -> int:
    _tune_malloc()
    try:
        data = {}
        for name, inp in spec.inputs:
            vol = _open(inp.source)
            ctx = inp.context if isinstance(inp.context, Coordinate) else Coordinate((int(inp.context),) * block.write_roi.dims)
            roi = block.write_roi.grow(ctx).snap(vol.voxel_size, "grow")
            if inp.boundary == "clip":
                roi = roi.intersect(vol.roi)
                arr = vol[roi]
            else:
                arr = vol.read(roi, fill_value=inp.fill_value)
            data[name] = Volume(arr, voxel_size=vol.voxel_size, offset=roi.offset, axis_names=vol.axis_names)
        result = spec.process(block, data)
        if not isinstance(result, Mapping):
            raise TypeError(f"the block function must return a dict of outputs, got {type(result).__name__}")
        expected = {n for n, _ in spec.outputs} | set(spec.tables)
        unknown = set(result) - expected
        if unknown:
            raise KeyError(f"the block function returned unknown outputs {sorted(unknown)}; expected {sorted(expected)}")
        for name, ref in spec.outputs:
            if name not in result:
                raise KeyError(f"the block function did not return output '{name}'")
            out = _open(ref, "r+")
            value = result[name]
            roi = block.write_roi.intersect(out.roi)
            if isinstance(value, Volume):
                value = value[roi]
            out[roi] = np.asarray(value).astype(out.dtype, copy=False)
        for name in spec.tables:
            df = result.get(name)
            if df is None:
                continue
            tdir = Path(spec.table_root) / name
            tdir.mkdir(parents=True, exist_ok=True)
            tmp = tdir / f".block-{block.id}.parquet.tmp"
            df.to_parquet(tmp, index=False)
            os.replace(tmp, tdir / f"block-{block.id}.parquet")
    except ConnectomixError as e:
        if isinstance(e, BlockError):
            raise
        raise BlockError(str(e), block_id=block.id, read_roi=block.read_roi, write_roi=block.write_roi) from e
    except Exception as e:
        raise BlockError(
            f"{type(e).__name__}: {e}", block_id=block.id, read_roi=block.read_roi, write_roi=block.write_roi
        ) from e
    # Done-record last: a block killed before this line is simply redone.
    with open(os.path.join(spec.done_dir, str(block.id)), "w"):
        pass
    return block.id


# --------------------------------------------------------------------------- driver
def dask_client(scheduler: str | None = None, *, workers: int = 1, timeout: float = 5.0):
    """Connect to (or start) the Dask cluster that runs block tasks.

    Parameters
    ----------
    scheduler : str, optional
        ``None`` or ``'local'``: start a local cluster of ``workers`` processes;
        ``'threads'``: a local cluster of threads in this process; an address
        (``tcp://host:port``): connect to a running scheduler.
    workers : int
        Worker processes (or threads) of a local cluster.
    timeout : float
        Seconds to wait for an existing scheduler before giving up.

    Raises
    ------
    SchedulerError
        If the scheduler does not answer within ``timeout`` seconds.
    """
    import distributed

    if scheduler in (None, "local", "threads"):
        processes = scheduler != "threads"
        try:
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
        except Exception as e:  # pragma: no cover - environment problems
            raise SchedulerError(f"cannot start a local Dask cluster with {workers} workers: {e}") from e
        return distributed.Client(cluster)
    try:
        return distributed.Client(scheduler, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as e:
        raise SchedulerError(f"Dask scheduler at {scheduler} did not answer within {timeout:g} s ({e})") from e


@contextlib.contextmanager
def connect(scheduler: str | None = None, *, workers: int = 1):
    """Open the cluster once for several block-wise jobs.

    Yields what :func:`run_blockwise` takes as ``scheduler``: ``'synchronous'`` as
    it is, otherwise a ``distributed.Client`` (see :func:`dask_client`), closed on
    exit together with the local cluster it started.
    """
    if scheduler == "synchronous":
        yield scheduler
        return
    client = dask_client(scheduler, workers=workers)
    try:
        yield client
    finally:
        cluster = getattr(client, "cluster", None)
        own = scheduler in (None, "local", "threads")
        _close_quietly(client, cluster if own else None)


def _close_quietly(client, cluster) -> None:
    """Close a client (and the local cluster it started); the work is done by now.

    On a loaded machine a worker can take longer to stop than Dask's close timeout:
    that must not turn a finished job into an error, so it is logged instead.
    """
    for thing in (client, cluster):
        if thing is None:
            continue
        try:
            thing.close()
        except (TimeoutError, OSError, RuntimeError) as e:
            logging.getLogger(__name__).warning("closing the Dask %s timed out (%s); its work had finished",
                                                type(thing).__name__, e)


def run_blockwise(
    process: Callable[[Block, Mapping[str, Volume]], Mapping[str, Any]],
    *,
    task: str,
    inputs: Mapping[str, Input] = None,
    outputs: Mapping[str, Volume] = None,
    tables: Sequence[str] = (),
    total_roi: Roi | None = None,
    block_shape=None,
    run_dir=None,
    scheduler: Any = "synchronous",
    workers: int = 1,
    config: Any = None,
    on_block_done: Callable[[int, int], None] | None = None,
    max_in_flight: int | None = None,
) -> BlockwiseResult:
    """Run ``process`` over every block of ``total_roi`` and store its outputs.

    Parameters
    ----------
    process : callable ``(block, inputs) -> dict``
        Gets the Block and a dict of in-memory Volumes (one per input, covering the
        write region plus that input's context, clipped at the border) and returns
        a dict: for every output an ndarray of the write region's shape or a Volume
        containing it; for every table a pandas DataFrame (or None).
        Must be picklable (a module-level function or a ``functools.partial``).
    task : str
        Name of the job; its done-records live in ``RUN/.blocks/<task>/``.
    inputs : dict of str to Input
    outputs : dict of str to Volume
        Stored, writable volumes, created beforehand (``create_volume``).
    tables : sequence of str
        Names of tables the function may return; written as
        ``RUN/tables/<name>/block-<id>.parquet`` and loaded into DuckDB at the end.
    total_roi : Roi, optional
        Region to write, nm; defaults to the first output's Roi.
    block_shape : Coordinate, optional
        Write shape of a block in nm; a whole multiple of every output's shard or
        chunk shape. Defaults to the largest output write unit.
    run_dir : path, optional
        The run directory (done-records, tables). Defaults to the directory that
        holds the first output's ``volume.zarr``.
    scheduler : str or distributed.Client
        ``'synchronous'`` (in this process, no Dask), a ``distributed.Client``, or
        anything :func:`dask_client` accepts.
    workers : int
        Workers of a local cluster started here.
    config : JSON-serialisable, optional
        The task's configuration; done-records from another configuration are
        discarded, and so are those of outputs made anew.
    on_block_done : callable ``(n_done, n_total)``, optional
        Called in this process after each block (drives progress bars).

    Returns
    -------
    BlockwiseResult

    Raises
    ------
    BlockError
        If a block fails; carries the block id and its Rois.
    RoiError
        If the block shape does not fit the outputs' storage grid.
    """
    from .run import config_hash

    t0 = time.perf_counter()
    inputs = dict(inputs or {})
    outputs = dict(outputs or {})
    if not outputs and not tables:
        raise ValueError("run_blockwise needs at least one output array or table")
    for name, vol in outputs.items():
        if vol.path is None:
            raise VolumeError(f"output '{name}' is an in-memory Volume; block outputs must be stored volumes")
    for name, inp in inputs.items():
        if not isinstance(inp, Input):
            raise TypeError(f"input '{name}' must be an Input(source, context=...), got {type(inp).__name__}")
        if isinstance(inp.source, Volume):
            raise TypeError(f"input '{name}': pass vol.ref() rather than the Volume, so no data travels to workers")

    first = next(iter(outputs.values()), None)
    if total_roi is None:
        if first is None:
            raise ValueError("total_roi is required when there are no output arrays")
        total_roi = first.roi
    dims = total_roi.dims
    units = [v.write_unit for v in outputs.values() if v.write_unit is not None]
    if block_shape is None:
        if not units:
            raise ValueError("block_shape is required when no output has a storage grid")
        block_shape = Coordinate(np.max(np.array(units), axis=0).tolist())
    block_shape = Coordinate(block_shape)
    for name, vol in outputs.items():
        unit = vol.write_unit
        if unit is not None and not block_shape.is_multiple_of(unit):
            raise RoiError(
                f"block shape {block_shape} nm is not a whole multiple of output '{name}' "
                f"shard/chunk shape {unit} nm: two blocks would write the same stored object"
            )
        if unit is not None and not (total_roi.begin - vol.offset).is_multiple_of(unit):
            raise RoiError(f"total_roi {total_roi} does not start on output '{name}''s storage grid {unit} nm")

    blocks = tile(total_roi, block_shape, block_shape, fit="shrink")
    n_total = len(blocks)

    if run_dir is None:
        if first is None:
            raise ValueError("run_dir is required when there are no output arrays")
        run_dir = Path(first.path).parent.parent
    run_dir = Path(run_dir)
    task_dir = run_dir / ".blocks" / task
    done_dir = task_dir / "done"
    chash = config_hash(
        {"config": config, "total_roi": repr(total_roi), "block_shape": list(block_shape), "outputs": sorted(outputs), "tables": list(tables)}
    )
    token = _resume_token(task_dir, chash, outputs)
    if token is None:  # fresh start: forget old records and table parts
        shutil.rmtree(task_dir, ignore_errors=True)
        for name in tables:
            shutil.rmtree(run_dir / "tables" / name, ignore_errors=True)
        done_dir.mkdir(parents=True)
        token = uuid.uuid4().hex
        for vol in outputs.values():
            _set_meta(vol.path, complete=False, task=task, token=token)
        with open(task_dir / "meta.json", "w") as f:
            json.dump({"config_hash": chash, "token": token, "n_blocks": n_total}, f)
    else:
        for vol in outputs.values():
            _set_meta(vol.path, complete=False, task=task, token=token)

    done = {int(p) for p in os.listdir(done_dir) if p.isdigit()}
    todo = [b for b in blocks if b.id not in done]
    n_skipped = n_total - len(todo)
    if n_skipped:
        logger.info("%s: %d of %d blocks already done, resuming", task, n_skipped, n_total)
    spec = _TaskSpec(
        task=task,
        process=process,
        inputs=tuple(inputs.items()),
        outputs=tuple((n, v.ref()) for n, v in outputs.items()),
        tables=tuple(tables),
        done_dir=str(done_dir),
        table_root=str(run_dir / "tables"),
    )
    n_done = n_skipped
    if on_block_done is not None:
        on_block_done(n_done, n_total)

    def _tick():
        nonlocal n_done
        n_done += 1
        if on_block_done is not None:
            on_block_done(n_done, n_total)

    if scheduler == "synchronous":
        for block in todo:
            _process_block(block, spec)
            _tick()
    else:
        _run_on_dask(todo, spec, scheduler, workers, _tick, max_in_flight)

    for vol in outputs.values():
        mark_complete(vol.path)
    rows = {}
    if tables:
        from .run import Run

        run = Run(run_dir)
        for name in tables:
            rows[name] = run.load_table(name)
    return BlockwiseResult(task, n_total, n_skipped, len(todo), time.perf_counter() - t0, rows)


def _resume_token(task_dir: Path, chash: str, outputs: Mapping[str, Volume]) -> str | None:
    """The token of resumable earlier progress, or None to start afresh."""
    meta_path = task_dir / "meta.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        return None
    if meta.get("config_hash") != chash:
        return None
    import zarr

    for vol in outputs.values():
        attrs = zarr.open_group(vol.path, mode="r").attrs.get("connectomix", {})
        if attrs.get("token") != meta.get("token"):
            return None  # the output was made anew: its old blocks are gone
    return meta.get("token")


def _run_on_dask(todo: list[Block], spec: _TaskSpec, scheduler, workers: int, tick, max_in_flight) -> None:
    import distributed

    own = not isinstance(scheduler, distributed.Client)
    client = dask_client(scheduler, workers=workers) if own else scheduler
    try:
        n_threads = max(1, sum(client.nthreads().values()))
        window = max_in_flight or max(8, 4 * n_threads)
        # The spec (function + Rois) is sent once; tasks carry only a Block.
        [spec_future] = client.scatter([spec], broadcast=True, hash=False)
        it = iter(todo)
        pending = distributed.as_completed()
        for block in itertools.islice(it, window):
            pending.add(client.submit(_process_block, block, spec_future, key=f"{spec.task}-{block.id}-{uuid.uuid4().hex[:8]}", pure=False))
        for fut in pending:
            try:
                fut.result()
            except BaseException:
                for f in pending.futures:
                    f.cancel()
                raise
            tick()
            nxt = next(it, None)
            if nxt is not None:
                pending.add(client.submit(_process_block, nxt, spec_future, key=f"{spec.task}-{nxt.id}-{uuid.uuid4().hex[:8]}", pure=False))
    finally:
        if own:
            _close_quietly(client, getattr(client, "cluster", None))
