"""The ``synapses`` stage: block-wise cleft instances, partners and the synapse table.

Reads from ``RUN/volume.zarr``:

- the cleft probability: array ``cleft`` (default ``synapse_pred``), channel 0 when
  it has a channel axis, else the array itself; float in [0, 1] or uint8 (0..255);
- the partner vectors (post -> pre, z y x): array ``vectors`` (default: the
  same array as ``cleft``), channels 1..3 of a 4-channel array or channels 0..2 of
  a 3-channel one; float, in nm times the array's ``vector_scale_nm`` attribute
  (1 when absent);
- the segmentation (``segmentation``, integer ids).

All three must cover the same voxels (voxel size, offset, shape). Writes the array
``cleft_labels`` (uint64, ``cleft_id`` per voxel, chunked like the segmentation) and the
table ``synapses`` (``synapse_id, pre_id, post_id, z, y, x`` in nm, ``score``,
``size_vx``, ``kind``, ``cleft_id``), and records the stage ``synapses``.

Two block passes (see :mod:`._kernels`): pieces and votes per block, a global merge
on the driver, then the instance ids. Blocks read their segmentation with
``max_partner_nm`` of context, so the result is the same for any block shape.
"""

from __future__ import annotations

import functools
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..blockwise import Block, Input, run_blockwise
from ..config import ClusterConfig
from ..errors import ConfigError, ConnectomixError, VolumeError, VolumeNotFoundError
from ..geometry import Coordinate
from ..run import Run
from ..volume import Volume, create_volume, write_token
from ._detect import check_options, context_vx
from ._kernels import block_tables, cleft_probability, merge_tables, relabel_block

__all__ = ["SynapseResult", "synapses_stage"]

_SCRATCH = (".scratch", "synapses")
_DEFAULT_BLOCK_VX = (64, 256, 256)


@dataclass
class SynapseResult:
    """What :func:`synapses_stage` did.

    Attributes
    ----------
    n_synapses : int
        Rows of the ``synapses`` table.
    n_clefts : int
        Cleft instances (one synapse each, or several for a polyadic cleft).
    n_unassigned : int
        Synapses lacking a pre- or postsynaptic segment (id 0).
    n_blocks : int
        Blocks per pass.
    n_voxels : int
        Voxels processed.
    seconds : dict
        Wall time of ``pieces``, ``merge`` and ``relabel``, and ``total``.
    blocks_run : dict
        Blocks each pass computed (fewer than ``n_blocks`` when it resumed).
    """

    n_synapses: int
    n_clefts: int
    n_unassigned: int
    n_blocks: int
    n_voxels: int
    seconds: dict = field(default_factory=dict)
    blocks_run: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- kernels
def _origin(roi_offset, offset, voxel_size) -> np.ndarray:
    return (np.asarray(roi_offset, np.int64) - np.asarray(offset, np.int64)) // np.asarray(voxel_size, np.int64)


def _prob(vol: Volume, channel) -> np.ndarray:
    data = vol.data if channel is None else vol.data[channel]
    return cleft_probability(np.asarray(data), name="cleft probability")


def pieces_kernel(block: Block, inputs, *, prob_channel, vec_channels, total_shape, voxel_size, offset, threshold,
                  connectivity, max_partner_nm, vector_scale_nm: float = 1.0) -> dict:
    """Pass 1: cleft pieces, votes, shell and links of one block (see :func:`block_tables`)."""
    pv, vv, sv = inputs["cleft"], inputs["vectors"], inputs["segmentation"]
    vec = np.asarray(vv.data[vec_channels[0]:vec_channels[1]])
    if not np.issubdtype(vec.dtype, np.floating):
        raise VolumeError(f"partner vectors must be float (nm); got dtype {vec.dtype}")
    vec = vec.astype(np.float32) * np.float32(vector_scale_nm) if vector_scale_nm != 1.0 else vec
    seg = np.asarray(sv.data)
    return block_tables(
        _prob(pv, prob_channel), _origin(pv.offset, offset, voxel_size), vec, seg,
        _origin(sv.offset, offset, voxel_size), _origin(block.write_roi.offset, offset, voxel_size),
        np.asarray(block.write_roi.shape, np.int64) // np.asarray(voxel_size, np.int64),
        total_shape=total_shape, voxel_size=voxel_size, offset=offset, threshold=threshold,
        connectivity=connectivity, max_partner_nm=max_partner_nm,
    )


_MAPPINGS: dict = {}


def _mapping(path: str):
    if path not in _MAPPINGS:
        if len(_MAPPINGS) > 4:
            _MAPPINGS.clear()
        with np.load(path) as f:
            _MAPPINGS[path] = (f["pieces"], f["cleft_of_piece"])
    return _MAPPINGS[path]


def labels_kernel(block: Block, inputs, *, mapping: str, output: str, prob_channel, total_shape, voxel_size, offset,
                  threshold, connectivity) -> dict:
    """Pass 3: the cleft instance ids of one block."""
    pv = inputs["cleft"]
    pieces, cleft_of_piece = _mapping(mapping)
    ids = relabel_block(_prob(pv, prob_channel), _origin(block.write_roi.offset, offset, voxel_size),
                        total_shape=total_shape, threshold=threshold, connectivity=connectivity, pieces=pieces,
                        cleft_of_piece=cleft_of_piece)
    return {output: ids}


# ----------------------------------------------------------------------------- driver
def require_segmentation(run: Run, segmentation: str = "segmentation") -> None:
    """Refuse a run without its segmentation, naming the stage that makes it."""
    if segmentation not in run.arrays():
        raise VolumeNotFoundError(
            f"run {run.path} has no '{segmentation}' array: the `segment` stage has not run "
            f"(run `connectomix segment {run.path}` first); synapse partners are read from the segmentation"
        )


def synapses_stage(
    run_path,
    *,
    threshold: float = 0.5,
    cluster: ClusterConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    say: Callable[[str], None] = print,
    cleft: str = "synapse_pred",
    vectors: str | None = None,
    segmentation: str = "segmentation",
    output: str = "cleft_labels",
    connectivity: int = 26,
    max_partner_nm: float = 500.0,
    min_size_vx: int = 20,
    partner_fraction: float = 0.2,
    min_partner_weight: float = 10.0,
    merge_distance_nm: float = 250.0,
    vector_scale_nm: float | None = None,
    block_shape=None,
    force: bool = False,
) -> SynapseResult | None:
    """Detect synapses in a run: cleft instances, partners, the ``synapses`` table.

    Parameters
    ----------
    run_path : path
        The run directory.
    threshold : float in (0, 1]
        Cleft voxels have probability ``>= threshold``.
    cluster : ClusterConfig, optional
        Where the blocks run; default a local Dask cluster
        (``ClusterConfig(scheduler='synchronous')`` runs them in this process).
    progress : callable ``(n_done, n_total)``, optional
        Progress over both block passes.
    say : callable
        Receives one summary line.
    cleft : str
        Array with the cleft probability: ``(Z, Y, X)`` or channel-first with the
        probability in channel 0; float32/float16 in [0, 1] or uint8 (0..255).
    vectors : str, optional
        Array with the partner vectors (post -> pre, nm, z y x), float, channel-first:
        channels 1..3 of a 4-channel array, 0..2 of a 3-channel one. Default: the
        ``cleft`` array (which must then have 4 channels).
    segmentation : str
        The segment ids the partners are read from.
    output : str
        Name of the cleft instance array written (uint64 ``cleft_id``).
    connectivity : {6, 18, 26}
        Neighbourhood of the connected components.
    max_partner_nm : float
        Vectors longer than this do not vote; also the segmentation context of a block.
    min_size_vx : int
        Cleft instances with fewer voxels are dropped.
    partner_fraction, min_partner_weight : float
        When one cleft counts as several synapses (polyadic): see
        :func:`connectomix.synapses.assign_partners`.
    merge_distance_nm : float
        Pieces of one broken cleft (same partners, centres this close, nm) become one
        synapse (:func:`connectomix.synapses.merge_nearby`); 0 merges nothing.
    vector_scale_nm : float, optional
        nm per unit of the stored vectors (a network trained on vectors / 100 nm
        writes 100). Default: the vector array's attribute ``vector_scale_nm``
        (top level or under ``connectomix``), else 1 (the vectors are in nm).
    block_shape : sequence of int, optional
        Block write shape in voxels (z, y, x), a multiple of the segmentation's chunks.
    force : bool
        Run even if the stage finished with this configuration before.

    Returns
    -------
    SynapseResult, or None when the stage was already done with this configuration.

    Raises
    ------
    VolumeNotFoundError
        If the run lacks the segmentation (names the ``segment`` stage) or the
        prediction array.
    VolumeError
        If the arrays do not cover the same voxels or have the wrong layout or
        dtype; NaNs or values outside [0, 1] surface as a BlockError naming the block.
    ConfigError
        For an invalid option.
    """
    t_start = time.perf_counter()
    run = Run(run_path)
    cluster = ClusterConfig() if cluster is None else cluster
    check_options(threshold=threshold, connectivity=connectivity, max_partner_nm=max_partner_nm,
                  min_size_vx=min_size_vx, partner_fraction=partner_fraction, min_partner_weight=min_partner_weight,
                  merge_distance_nm=merge_distance_nm)
    require_segmentation(run, segmentation)
    arrays = run.arrays()
    vectors = cleft if vectors is None else vectors
    for name in dict.fromkeys((cleft, vectors)):
        if name not in arrays:
            raise VolumeNotFoundError(
                f"run {run.path} has no '{name}' array with the synapse network's output (cleft probability and "
                "partner vectors): predict synapses first, or for a synthetic run write ideal predictions with "
                f"connectomix.synapses.write_ideal_predictions (arrays: {', '.join(arrays) or 'none'})"
            )
    pv, vv, sv = run.open(cleft), run.open(vectors), run.open(segmentation)
    prob_channel, vec_channels = _layout(pv, vv, sv, cleft, vectors, segmentation)
    if vector_scale_nm is None:
        vector_scale_nm = _stored_scale(vv, vectors)
    if not (np.isfinite(vector_scale_nm) and vector_scale_nm > 0):
        raise ConfigError(f"synapses.vector_scale_nm must be a positive number; got {vector_scale_nm}")
    spatial = tuple(sv.spatial_shape)
    chunks = tuple((sv.chunks or ())[-3:]) or tuple(min(s, c) for s, c in zip(spatial, (32, 256, 256)))
    block_vx = _block_shape(block_shape, spatial, chunks)
    options = dict(threshold=float(threshold), connectivity=int(connectivity), max_partner_nm=float(max_partner_nm),
                   min_size_vx=int(min_size_vx), partner_fraction=float(partner_fraction),
                   min_partner_weight=float(min_partner_weight), merge_distance_nm=float(merge_distance_nm),
                   vector_scale_nm=float(vector_scale_nm))
    stage_cfg = dict(cleft=cleft, vectors=vectors, segmentation=segmentation, output=output, **options,
                     block_shape=list(block_vx),
                     inputs={n: write_token(run.open(n)) for n in dict.fromkeys((cleft, vectors, segmentation))})
    with run.stage("synapses", stage_cfg, force=force) as st:
        if st.skipped:
            say("synapses: already done with this configuration, skipped")
            return None
        res = _detect(run, pv, vv, sv, prob_channel, vec_channels, chunks, block_vx, options, output, cluster,
                      progress, stage_cfg)
        res.seconds["total"] = time.perf_counter() - t_start
        say(f"synapses: {res.n_synapses} synapses in {res.n_clefts} clefts ({res.n_unassigned} without both "
            f"partners), {res.n_blocks} blocks, {res.seconds['total']:.1f} s -> tables/synapses, "
            f"volume.zarr/{output}")
        return res


def _detect(run, pv, vv, sv, prob_channel, vec_channels, chunks, block_vx, options, output, cluster, progress,
            stage_cfg) -> SynapseResult:
    import pandas as pd

    vs, off = sv.voxel_size, sv.offset
    spatial = tuple(sv.spatial_shape)
    scratch = Run.create(run.path.joinpath(*_SCRATCH))
    labels_out = _output(run.volume_path(output), shape=spatial, voxel_size=vs, offset=off, chunks=chunks)
    common = dict(prob_channel=prob_channel, total_shape=spatial, voxel_size=tuple(vs), offset=tuple(off),
                  threshold=options["threshold"], connectivity=options["connectivity"])
    task_cfg = {k: v for k, v in stage_cfg.items()}
    block_nm = Coordinate(block_vx) * vs
    seg_ctx = Coordinate(context_vx(options["max_partner_nm"], vs)) * vs
    one = Coordinate((1, 1, 1)) * vs
    seconds, blocks_run = {}, {}
    client, close = _client(cluster)
    try:
        def blockwise(name, k, process, **kw):
            t0 = time.perf_counter()
            tick = None if progress is None else (lambda d, n: progress(k * n + d, 2 * n))
            res = run_blockwise(process, task=f"synapses-{name}", block_shape=block_nm, run_dir=scratch.path,
                                scheduler=client, workers=cluster.workers, config=task_cfg, on_block_done=tick,
                                **kw)
            seconds[name] = time.perf_counter() - t0
            blocks_run[name] = res.n_run
            return res

        res = blockwise(
            "pieces", 0,
            functools.partial(pieces_kernel, vec_channels=vec_channels, max_partner_nm=options["max_partner_nm"],
                              vector_scale_nm=options["vector_scale_nm"], **common),
            inputs={"cleft": Input(pv.ref(), context=one), "vectors": Input(vv.ref()),
                    "segmentation": Input(sv.ref(), context=seg_ctx)},
            tables=["votes", "shell", "links"], total_roi=sv.roi,
        )
        t0 = time.perf_counter()
        parts = {n: pd.read_parquet(scratch.table_dir(n)) for n in ("votes", "shell", "links")}
        pieces, cleft_of_piece, synapses = merge_tables(
            parts["votes"], parts["shell"], parts["links"], min_size_vx=options["min_size_vx"],
            partner_fraction=options["partner_fraction"], min_partner_weight=options["min_partner_weight"],
            merge_distance_nm=options["merge_distance_nm"])
        mapping = scratch.path / f"mapping-{uuid.uuid4().hex}.npz"
        np.savez(mapping, pieces=pieces, cleft_of_piece=cleft_of_piece)
        seconds["merge"] = time.perf_counter() - t0
        blockwise("relabel", 1,
                  functools.partial(labels_kernel, mapping=str(mapping), output=output, **common),
                  inputs={"cleft": Input(pv.ref())}, outputs={output: labels_out})
    except ConnectomixError:
        # bad input, not an interruption: leave nothing half-written behind
        for path in (run.volume_path(output), scratch.path):
            shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        close()
    run.write_table("synapses", synapses)
    shutil.rmtree(scratch.path, ignore_errors=True)
    parent = run.path.joinpath(_SCRATCH[0])
    if parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
    unassigned = int(((synapses["pre_id"] == 0) | (synapses["post_id"] == 0)).sum())
    return SynapseResult(len(synapses), int(synapses["cleft_id"].nunique()), unassigned, res.n_blocks,
                         int(np.prod(spatial)), seconds, blocks_run)


# ----------------------------------------------------------------------------- checks
def _layout(pv: Volume, vv: Volume, sv: Volume, cleft: str, vectors: str, segmentation: str):
    """Channel of the probability and channel range of the vectors; checks the three arrays agree."""
    if sv.n_channel_axes or len(sv.voxel_size) != 3:
        raise VolumeError(f"'{segmentation}' must be a 3D (Z, Y, X) label array; got shape {sv.shape}")
    if not np.issubdtype(sv.dtype, np.integer):
        raise VolumeError(f"'{segmentation}' must hold integer segment ids; got dtype {sv.dtype}")
    for name, vol in ((cleft, pv), (vectors, vv)):
        if vol.voxel_size != sv.voxel_size or vol.roi != sv.roi:
            raise VolumeError(
                f"'{name}' covers {vol.roi} at voxel size {tuple(vol.voxel_size)} nm but '{segmentation}' covers "
                f"{sv.roi} at {tuple(sv.voxel_size)} nm; synapse inputs must cover the same voxels"
            )
    if pv.n_channel_axes > 1:
        raise VolumeError(f"'{cleft}' must be (Z, Y, X) or (C, Z, Y, X); got shape {pv.shape}")
    prob_channel = 0 if pv.n_channel_axes == 1 else None
    if not (pv.dtype == np.uint8 or np.issubdtype(pv.dtype, np.floating)):
        raise VolumeError(f"'{cleft}' must be uint8 or float cleft probability; got dtype {pv.dtype}")
    if vv.n_channel_axes != 1:
        raise VolumeError(f"'{vectors}' must be channel-first (C, Z, Y, X) partner vectors; got shape {vv.shape}")
    n_c = vv.shape[0]
    if cleft == vectors and n_c != 4:
        raise VolumeError(
            f"'{cleft}' holds both outputs and must have 4 channels (probability, then the vector z, y, x in nm); "
            f"got {n_c}; or name the vector array with vectors=..."
        )
    if n_c not in (3, 4):
        raise VolumeError(f"'{vectors}' must have 3 channels (z, y, x in nm) or 4 (probability first); got {n_c}")
    if not np.issubdtype(vv.dtype, np.floating):
        raise VolumeError(f"'{vectors}' must hold float partner vectors in nm; got dtype {vv.dtype}")
    return prob_channel, ((1, 4) if n_c == 4 else (0, 3))


def _stored_scale(vol: Volume, name: str) -> float:
    """The ``vector_scale_nm`` attribute of the vector array (1.0 = nm when absent)."""
    import zarr

    attrs = zarr.open_group(vol.path, mode="r").attrs.asdict()
    for holder in (attrs, attrs.get("connectomix", {})):
        if isinstance(holder, dict) and "vector_scale_nm" in holder:
            try:
                return float(holder["vector_scale_nm"])
            except (TypeError, ValueError):
                raise VolumeError(f"'{name}': attribute vector_scale_nm must be a number, "
                                  f"got {holder['vector_scale_nm']!r}") from None
    return 1.0


def _block_shape(block_shape, spatial, chunks) -> tuple:
    if block_shape is not None:
        block_shape = tuple(int(b) for b in block_shape)
        if len(block_shape) != 3 or any(b <= 0 or b % c for b, c in zip(block_shape, chunks)):
            raise ConfigError(
                f"synapses.block_shape {block_shape} must be 3 positive multiples of the segmentation's chunks "
                f"{tuple(chunks)} (voxels, z y x)"
            )
        return block_shape
    return tuple(max(c, min(s, t) // c * c) for s, c, t in zip(spatial, chunks, _DEFAULT_BLOCK_VX))


def _output(path: Path, *, shape, voxel_size, offset, chunks) -> Volume:
    """The cleft label array: kept when its layout matches (an interrupted run resumes), else made anew."""
    from ..volume import open_volume

    if (Path(path) / "zarr.json").exists():
        try:
            vol = open_volume(path, mode="r+", require_complete=False)
        except ConnectomixError:
            vol = None
        if (vol is not None and vol.shape == tuple(shape) and vol.dtype == np.uint64
                and vol.voxel_size == voxel_size and vol.offset == offset and vol.chunks == tuple(chunks)):
            return vol
    return create_volume(path, shape=shape, dtype=np.uint64, voxel_size=voxel_size, offset=offset, chunks=chunks,
                         complete=False, task="synapses", overwrite=True)


def _client(cluster: ClusterConfig):
    """One scheduler for both passes."""
    if cluster.scheduler == "synchronous":
        return "synchronous", lambda: None
    from ..blockwise import dask_client

    client = dask_client(cluster.scheduler, workers=cluster.workers)

    def close():
        c = getattr(client, "cluster", None)
        client.close()
        if c is not None:
            c.close()

    return client, close
