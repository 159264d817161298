"""``synthesize``: one synthetic serial-section EM volume with exact ground truth, in a run.

Pipeline: lay out cells (``_neurites``, plus real morphologies from ``_swc``), stamp
them into dense labels (``_labels``), add mitochondria, place synapses
(``_synapses``), render the stained tissue (``_render``), cut and image the sections
(``_artifacts``: warps, damage, missing sections, microscope, tiles), then write the
arrays and tables into the run directory. Every random choice comes from a stream
derived from ``(seed, preset)``, one stream per step, so a volume is reproducible and
changing one step does not reshuffle the others.
"""

from __future__ import annotations

import logging
import time
import zlib

import numpy as np

from ..errors import ConfigError
from ..geometry import Roi
from ._settings import EVAL_SEEDS, SynthSettings, check_seed, preset_settings, settings_hash

__all__ = ["synthesize", "generate"]

logger = logging.getLogger(__name__)

SYNAPSE_COLUMNS = ["synapse_id", "pre_id", "post_id", "z", "y", "x", "score", "size_vx", "kind"]
EDGE_COLUMNS = ["pre_id", "post_id", "kind", "n_synapses", "weight"]


def _streams(seed, preset):
    salt = zlib.crc32(preset.encode())
    root = np.random.SeedSequence([int(seed), salt])
    names = ("layout", "labels", "synapses", "render", "artifacts", "imaging", "tiles", "morphology")
    return {n: np.random.default_rng(c) for n, c in zip(names, root.spawn(len(names)))}


def resolve_settings(preset, seed, *, shape=None, voxel_size=None, settings=None) -> SynthSettings:
    """The settings a call of :func:`synthesize` uses (validated).

    Raises
    ------
    ConfigError
        For an unknown preset, an invalid seed, or an ``eval`` call that changes the
        frozen shape, voxel size or seeds.
    VolumeError
        For an invalid or too small shape or voxel size.
    """
    seed = check_seed(seed)
    if not isinstance(preset, str):
        raise ConfigError(f"preset must be a name, got {preset!r}")
    base = preset_settings(preset, seed)
    if settings is not None:
        if not isinstance(settings, SynthSettings):
            raise ConfigError(f"settings must be a SynthSettings, got {type(settings).__name__}")
        base = settings
    changes = {}
    if shape is not None:
        changes["shape"] = tuple(shape) if hasattr(shape, "__iter__") else shape
    if voxel_size is not None:
        changes["voxel_size"] = tuple(voxel_size) if hasattr(voxel_size, "__iter__") else voxel_size
    if preset == "eval":
        if seed not in EVAL_SEEDS:
            raise ConfigError(f"the eval preset is frozen to seeds {list(EVAL_SEEDS)}, got seed {seed}")
        for k, v in changes.items():
            if tuple(v) != tuple(getattr(base, k)):
                raise ConfigError(f"the eval preset is frozen: {k} must be {tuple(getattr(base, k))}, got {tuple(v)}")
        if settings is not None:
            raise ConfigError("the eval preset is frozen: custom settings are not allowed")
    out = base.replace(**changes) if changes else base
    out.validate()
    return out


def generate(settings: SynthSettings, seed: int, *, preset: str = "custom", neuropil=None, log=None):
    """Generate a volume in memory.

    Returns
    -------
    dict
        ``raw`` (Z, Y, X) uint8, ``gt`` (Z, Y, X) uint32, ``clefts`` uint32, and the
        tables ``neurons``, ``synapses``, ``edges``, ``transforms``,
        ``section_quality``, plus ``content`` (the noise-free true-frame image), the
        ``settings`` and ``timings``.
    """
    from . import _artifacts, _labels, _neurites, _render, _synapses

    s = settings
    timings = {}
    t0 = time.perf_counter()

    def tick(name):
        nonlocal t0
        now = time.perf_counter()
        timings[name] = now - t0
        t0 = now
        if log:
            log(f"{name}: {timings[name]:.2f} s")

    rngs = _streams(seed, preset)
    vs = np.asarray(s.voxel_size, float)
    m = s.margin
    Z, Y, X = s.shape
    canvas = (Z, Y + 2 * m, X + 2 * m)
    npl = _neurites.grow_neuropil(s, canvas, rngs["layout"], neuropil=neuropil)
    tick("layout")
    packed = _labels.stamp_tubes(npl.tubes, canvas, s.voxel_size, margin=16.0)
    lab, val = _labels.unpack(packed)
    del packed
    tick("stamp")
    _labels.fill_labels(lab, npl, s, rngs["labels"])
    mito_id, _ = _labels.unpack(_labels.stamp_tubes(npl.mitos, canvas, s.voxel_size, restrict=lab))
    mito = mito_id > 0
    _labels.split_pieces(lab, npl, s.min_piece_vx)
    tick("labels")
    syn = _synapses.place_synapses(lab, npl, s, rngs["synapses"], val=val, mito=mito)
    del val
    tick("synapses")
    content = _render.render_content(lab, npl.cells, s, rngs["render"], mito=mito, mito_id=mito_id,
                                     clefts=syn.clefts, psd=syn.psd, vesicles=syn.vesicles, nuclei=npl.nuclei)
    del mito, mito_id
    tick("render")
    # ground truth in the frame (the canvas minus its margin)
    frame = (slice(None), slice(m, m + Y), slice(m, m + X))
    gt = np.ascontiguousarray(lab[frame])
    clefts = np.ascontiguousarray(syn.clefts[frame])
    if m:
        _labels.split_pieces(gt, npl, s.min_piece_vx)
    del lab
    transforms = _artifacts.make_transforms(s, rngs["artifacts"], s.shape)
    if s.misalign:
        img = _artifacts.warp_sections(content, transforms, m, s.shape, s.voxel_size)
    else:
        img = np.ascontiguousarray(content[frame])
    true_content = np.ascontiguousarray(content[frame]) if m else img.copy()
    del content
    quality, missing = _artifacts.damage_sections(img, s, rngs["artifacts"])
    _render.image_sections(img, s, rngs["imaging"])
    for z in missing:
        img[z] = 0.0
    raw = _render.to_uint8(img)
    del img
    tick("imaging")
    synapses, edges = _synapse_tables(syn, gt, clefts, m, vs)
    neurons = _neuron_table(gt, npl, synapses, vs)
    tick("tables")
    return dict(raw=raw, gt=gt, clefts=clefts, content=true_content, neurons=neurons, synapses=synapses,
                edges=edges, transforms=transforms, section_quality=quality, missing=missing, settings=s,
                timings=timings, neuropil=npl)


def _synapse_tables(syn, gt, clefts, m, vs):
    import pandas as pd

    Z, Y, X = gt.shape
    rows = []
    keep_ids = []
    for r in syn.rows:
        z, y, x = r["z"], r["y"] - m * vs[1], r["x"] - m * vs[2]
        if not (0 <= z < Z * vs[0] and 0 <= y < Y * vs[1] and 0 <= x < X * vs[2]):
            continue
        pre = np.asarray(r["pre_vox"]) - [0, m, m]
        post = np.asarray(r["post_vox"]) - [0, m, m]
        if np.any(pre < 0) or np.any(post < 0) or np.any(pre >= gt.shape) or np.any(post >= gt.shape):
            continue
        pre_id, post_id = int(gt[tuple(pre)]), int(gt[tuple(post)])
        if pre_id == 0 or post_id == 0 or pre_id == post_id:
            continue
        rows.append(dict(synapse_id=r["synapse_id"], pre_id=pre_id, post_id=post_id, z=z, y=y, x=x, score=1.0,
                         size_vx=0, kind="chemical"))
        keep_ids.append(r["synapse_id"])
    # cleft sizes inside the frame; clefts of dropped synapses are cleared
    n = int(clefts.max()) + 1 if clefts.size else 1
    sizes = np.bincount(clefts.ravel(), minlength=n)
    keep = np.zeros(n, bool)
    keep[[k for k in keep_ids if k < n]] = True
    if not keep.all():
        drop = ~keep
        drop[0] = False
        if drop.any():
            clefts[drop[clefts]] = 0
    for row in rows:
        row["size_vx"] = int(sizes[row["synapse_id"]]) if row["synapse_id"] < n else 0
    synapses = pd.DataFrame(rows, columns=SYNAPSE_COLUMNS)
    synapses = synapses.astype({"synapse_id": "int64", "pre_id": "int64", "post_id": "int64", "z": "float64",
                                "y": "float64", "x": "float64", "score": "float64", "size_vx": "int64"})
    if len(synapses):
        edges = (synapses.groupby(["pre_id", "post_id"], sort=True).size().rename("n_synapses").reset_index())
        edges["kind"] = "chemical"
        edges["weight"] = edges["n_synapses"].astype("float64")
        edges = edges[EDGE_COLUMNS].astype({"n_synapses": "int64"})
    else:
        edges = pd.DataFrame({"pre_id": pd.Series(dtype="int64"), "post_id": pd.Series(dtype="int64"),
                              "kind": pd.Series(dtype="object"), "n_synapses": pd.Series(dtype="int64"),
                              "weight": pd.Series(dtype="float64")})
    return synapses, edges


def _neuron_table(gt, npl, synapses, vs):
    import cc3d
    import pandas as pd

    stats = cc3d.statistics(gt)
    counts = stats["voxel_counts"]
    ids = np.flatnonzero(counts)
    ids = ids[ids > 0]
    cent = stats["centroids"][ids]
    bbox = [stats["bounding_boxes"][i] for i in ids]
    n_pre = synapses["pre_id"].value_counts() if len(synapses) else pd.Series(dtype="int64")
    n_post = synapses["post_id"].value_counts() if len(synapses) else pd.Series(dtype="int64")
    rows = []
    for k, i in enumerate(ids):
        cell = npl.cells[int(i)]
        b = bbox[k]
        rows.append(dict(
            segment_id=int(i), size_vx=int(counts[i]),
            centroid_z=float((cent[k][0] + 0.5) * vs[0]), centroid_y=float((cent[k][1] + 0.5) * vs[1]),
            centroid_x=float((cent[k][2] + 0.5) * vs[2]),
            bbox_z0=b[0].start * vs[0], bbox_y0=b[1].start * vs[1], bbox_x0=b[2].start * vs[2],
            bbox_z1=b[0].stop * vs[0], bbox_y1=b[1].stop * vs[1], bbox_x1=b[2].stop * vs[2],
            n_pre=int(n_pre.get(i, 0)), n_post=int(n_post.get(i, 0)),
            cell_class=cell.cell_class, cell_type=cell.cell_type, transmitter=cell.transmitter,
            source=cell.source, cell_id=int(cell.cell_id),
        ))
    return pd.DataFrame(rows)


def synthesize(out_run_path, *, shape=None, voxel_size=None, seed=0, preset="demo", morphology=None,
               swc_units="nm", settings=None, log=None):
    """Generate a synthetic serial-section EM volume with exact ground truth into a run.

    Parameters
    ----------
    out_run_path : str or Path
        The run directory to make (or reuse); the generator's arrays and tables in it
        are replaced.
    shape : (int, int, int), optional
        Volume shape in voxels (z, y, x); default the preset's (``demo``: 32 x 256 x 256,
        the others: 64 x 512 x 512).
    voxel_size : (int, int, int), optional
        Voxel size in nm (z, y, x); default 40 x 8 x 8.
    seed : int
        Random seed (non-negative); the same seed and settings give the same volume.
    preset : {'demo', 'train', 'hard', 'eval'}
        See :func:`connectomix.synth.preset_settings`. ``eval`` is frozen: seeds
        :data:`EVAL_SEEDS`, default shape and voxel size only.
    morphology : None, 'hemibrain' or path
        Real neurons to place among the procedural ones: the five hemibrain DA1
        neurons shipped with navis, or a folder of SWC files.
    swc_units : {'nm', 'um', 'voxel:Z,Y,X'}
        Units of the SWC files in a morphology folder (``voxel:8,8,8`` for 8-nm voxels).
    settings : SynthSettings, optional
        Full control over every setting (not with ``eval``).
    log : callable, optional
        Called with one line per step (timings).

    Returns
    -------
    Run
        The run, holding arrays ``raw`` (uint8), ``gt_segmentation`` (uint64) and
        ``gt_clefts`` (uint64, synapse ids) and tables ``gt_neurons``,
        ``gt_synapses``, ``gt_edges``, ``gt_transforms``, ``gt_section_quality`` and,
        for tiled presets, ``tiles`` and ``gt_tiles``.

    Raises
    ------
    VolumeError
        For an invalid or too small shape or voxel size.
    ConfigError
        For an invalid seed, preset or setting.
    InputFormatError
        For unreadable morphology files.
    """
    from ..run import Run
    from ..volume import create_volume
    from . import _artifacts

    s = resolve_settings(preset, seed, shape=shape, voxel_size=voxel_size, settings=settings)
    neuropil = None
    if morphology is not None:
        from ._swc import place_morphologies

        m = s.margin
        canvas = (s.shape[0], s.shape[1] + 2 * m, s.shape[2] + 2 * m)
        neuropil = place_morphologies(morphology, s, _streams(seed, preset)["morphology"], units=swc_units,
                                      canvas_shape=canvas)
    t_start = time.perf_counter()
    out = generate(s, seed, preset=preset, neuropil=neuropil, log=log)
    run = Run.create(out_run_path)
    vs = tuple(int(v) for v in s.voxel_size)
    chunks = (min(s.shape[0], 32), min(s.shape[1], 256), min(s.shape[2], 256))
    for name, data, dtype in (("raw", out["raw"], np.uint8), ("gt_segmentation", out["gt"], np.uint64),
                              ("gt_clefts", out["clefts"], np.uint64)):
        vol = create_volume(run.volume_path(name), shape=s.shape, dtype=dtype, voxel_size=vs, chunks=chunks,
                            overwrite=True, attrs={"synth": {"seed": int(seed), "preset": preset}})
        vol[Roi((0, 0, 0), tuple(int(a) * b for a, b in zip(s.shape, vs)))] = data.astype(dtype, copy=False)
    run.write_table("gt_neurons", out["neurons"])
    run.write_table("gt_synapses", out["synapses"])
    run.write_table("gt_edges", out["edges"])
    run.write_table("gt_transforms", out["transforms"])
    run.write_table("gt_section_quality", out["section_quality"])
    if s.tiles is not None:
        tiles, gt_tiles = _artifacts.make_tiles(out["raw"], s, _streams(seed, preset)["tiles"], run.path,
                                                skip=set(out["missing"]))
        run.write_table("tiles", tiles)
        run.write_table("gt_tiles", gt_tiles)
    chash = settings_hash(s, preset, [seed])
    run.update_config("synth", {
        "preset": preset, "seed": int(seed), "settings_hash": chash,
        "eval_set": preset == "eval", "morphology": None if morphology is None else str(morphology),
        "settings": s.to_dict(),
        "seconds": round(time.perf_counter() - t_start, 2),
    })
    if log:
        log(f"wrote {run.path} (settings hash {chash})")
    return run
