"""Block-wise affinity prediction with a trained U-Net (the ``predict`` step of ``segment``).

Each block reads its write region plus a context margin (a multiple of the network's
downsampling factor, so pooling grids line up with the whole-volume pass), pads the
border of the volume by reflection, predicts, and keeps the write region. The model is
loaded once per worker process.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ..blockwise import Block, Input, run_blockwise
from ..geometry import Coordinate
from ..volume import Volume, create_volume

__all__ = ["predict_block", "predict_affinities", "predict_synapses", "DEFAULT_CONTEXT_VX", "DEFAULT_BLOCK_VX"]

#: Context (voxels, z y x) each block reads beyond its write region: the U-Net's
#: receptive-field radius (about 14 x 56 x 56 for the default architecture) rounded up
#: to its downsampling factor (2, 8, 8), so padding never reaches a kept voxel.
DEFAULT_CONTEXT_VX = (16, 64, 64)

#: Write region of a prediction block (voxels, z y x). The context above is read on
#: top of it, so a deeper block reads less of it again: 64 sections read 1.5x the voxels
#: where 32 read 2x. Measured 2026-11-27 on a 128 x 512 x 512 volume in one process (2
#: threads), affinities bit-identical for every block shape: 32 x 256 x 256 took 70.6 s
#: and 1.56 GB peak, 64 x 256 x 256 55.9 s and 1.66 GB, 128 x 256 x 256 50.1 s and
#: 2.35 GB, 64 x 512 x 512 40.5 s and 3.42 GB (each worker holds one block).
DEFAULT_BLOCK_VX = (64, 256, 256)

_MODELS: dict = {}


def _model(model_dir: str | None, device: str, task: str = "affinities"):
    key = (model_dir, device, task)
    if key not in _MODELS:
        from ._train import load_model

        _MODELS[key] = load_model(model_dir, device=device, task=task)
    return _MODELS[key]


def _threads_for(workers: int) -> int:
    """Torch threads per worker: the machine's cores shared among the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, int(workers or 1)))


def _logits(raw: np.ndarray, model, factor, precision: str | None = None) -> np.ndarray:
    from ._unet import forward

    pad = [(0, (-s) % f) for s, f in zip(raw.shape, factor)]
    x = np.pad(raw.astype(np.float32) / 255.0, pad, mode="reflect" if all(s > 1 for s in raw.shape) else "edge")
    y = forward(model, x[None, None], precision=precision)[0]
    return y[(slice(None),) + tuple(slice(0, s) for s in raw.shape)]


def predict_array(raw: np.ndarray, model, factor, precision: str | None = None) -> np.ndarray:
    """Affinities (C, Z, Y, X) float32 in 0..1 for a uint8 array, padded to ``factor``.

    ``precision``: see :func:`~connectomix.models._unet.inference_dtype` (default: the
    environment's, else ``auto``).
    """
    return 1.0 / (1.0 + np.exp(-_logits(raw, model, factor, precision)))


def predict_array_tta(raw: np.ndarray, model, factor, offsets, precision: str | None = None) -> np.ndarray:
    """:func:`predict_array` averaged over the 8 in-plane flips and transposes of ``raw``.

    Each transformed prediction is mapped back to the original frame (:func:`untransform`)
    before averaging; where a flipped prediction has no value for an affinity (its
    partner voxel lies outside the array), the plain prediction stands in. 8x the
    computation; validation VOI 2.13 -> 2.06 bits with the shipped network (README).
    """
    # padded to whole pooling cells first (y and x alike, so that transposes line up): a flip then
    # moves no partial cell to the start, and a block sees the same grid whatever its shape
    step = [int(factor[0]), int(np.lcm(int(factor[1]), int(factor[2])))]
    step = [step[0], step[1], step[1]]
    pad = [(0, (-s) % f) for s, f in zip(raw.shape, step)]
    x0 = np.pad(raw, pad, mode="reflect" if all(s > 1 for s in raw.shape) else "edge") if any(p[1] for p in pad) else raw
    base = predict_array(x0, model, factor, precision)
    total = base.copy()
    n = 1
    for flip_y, flip_x, transpose in _DIHEDRAL[1:]:
        if not _invertible(offsets, flip_y, flip_x, transpose):
            continue
        y = predict_array(np.ascontiguousarray(_transform(x0, flip_y, flip_x, transpose)), model, factor, precision)
        total += untransform(y, offsets, flip_y, flip_x, transpose, fallback=base)
        n += 1
    total /= n
    return total[(slice(None),) + tuple(slice(0, s) for s in raw.shape)]


#: (flip y, flip x, transpose y-x) of the 8 in-plane symmetries; the identity first.
_DIHEDRAL = [(fy, fx, t) for t in (False, True) for fy in (False, True) for fx in (False, True)]


def _transform(raw, flip_y, flip_x, transpose):
    """Flip, then transpose, the in-plane axes of a (Z, Y, X) array."""
    x = raw[:, ::-1] if flip_y else raw
    x = x[:, :, ::-1] if flip_x else x
    return x.transpose(0, 2, 1) if transpose else x


def _invertible(offsets, flip_y, flip_x, transpose) -> bool:
    """Whether affinities predicted on the transformed array map back to ``offsets``:
    a transpose needs each offset's y-x mirror image among them, a flip that each
    offset turns into itself or its reverse (true of offsets along one axis)."""
    if transpose and _transposed_channels(offsets) is None:
        return False
    for o in offsets:
        o = np.asarray(o, int)
        f = o * [1, -1 if flip_y else 1, -1 if flip_x else 1]
        if not (np.array_equal(f, o) or np.array_equal(f, -o)):
            return False
    return True


def _transposed_channels(offsets):
    """For each channel, the channel whose offset is its y-x mirror image (None if one is missing)."""
    index = {tuple(int(v) for v in o): c for c, o in enumerate(offsets)}
    out = [index.get((int(o[0]), int(o[2]), int(o[1]))) for o in offsets]
    return None if any(c is None for c in out) else out


def untransform(aff: np.ndarray, offsets, flip_y: bool, flip_x: bool, transpose: bool, *, fallback) -> np.ndarray:
    """Affinities predicted on ``_transform(raw, flip_y, flip_x, transpose)``, in ``raw``'s frame.

    Channel ``c`` at voxel ``v`` is the affinity of ``v`` and ``v + offsets[c]``. A
    transpose swaps channels with their y-x mirror images; a flip along an axis turns
    each offset's component there around, so the affinity of ``v`` and ``v + o`` is
    read at ``v + o`` and the array shifted by ``o``. Voxels whose partner lies outside
    the array take ``fallback``'s value.
    """
    a = aff
    if transpose:
        perm = _transposed_channels(offsets)
        a = a[perm].transpose(0, 1, 3, 2)
    if flip_y:
        a = a[:, :, ::-1]
    if flip_x:
        a = a[:, :, :, ::-1]
    from ..segment._affinities import _shifted_pair

    out = np.array(fallback, dtype=np.float32, copy=True)
    for c, off in enumerate(offsets):
        here, there = _shifted_pair(a.shape[1:], (0, int(off[1]) if flip_y else 0, int(off[2]) if flip_x else 0))
        if here is not None:
            out[c][here] = a[c][there]
    return out


def predict_synapse_array(raw: np.ndarray, model, factor, precision: str | None = None) -> np.ndarray:
    """Cleft probability (channel 0) and partner vectors in nm (channels 1-3), float32."""
    from ._synapse_targets import VECTOR_SCALE_NM

    y = _logits(raw, model, factor, precision)
    y[0] = 1.0 / (1.0 + np.exp(-y[0]))
    y[1:] *= VECTOR_SCALE_NM
    return y


def _resize(x: np.ndarray, shape) -> np.ndarray:
    """Linear resampling of a (Z, Y, X) array to ``shape``, pixel edges aligned."""
    from skimage.transform import resize

    if tuple(x.shape) == tuple(shape):
        return x
    return resize(x, shape, order=1, mode="edge", anti_aliasing=False, preserve_range=True).astype(np.float32)


def at_model_resolution(raw: np.ndarray, scale, predict) -> np.ndarray:
    """Run ``predict`` on ``raw`` resampled to the model's voxel size, and bring its output back.

    ``scale`` is the data's voxel size over the model's, per axis (z y x): 0.75 means
    the data's voxels are smaller, so the array shrinks by that factor (after a
    Gaussian anti-aliasing filter) before the network sees it. Each output channel
    is resampled linearly back to ``raw``'s shape.
    """
    from scipy import ndimage

    target = tuple(max(1, int(round(n * k))) for n, k in zip(raw.shape, scale))
    x = raw.astype(np.float32)
    sigma = [max(0.0, (1.0 / k - 1.0) / 2.0) for k in scale]
    if any(s > 0 for s in sigma):
        x = ndimage.gaussian_filter(x, sigma, mode="nearest")
    y = predict(_resize(x, target))
    return np.stack([_resize(c, raw.shape) for c in y])


def predict_block(block: Block, inputs, *, model_dir: str | None, device: str = "cpu", input: str = "raw",
                  task: str = "affinities", output: str = "affinities", threads: int | None = None,
                  scale=None, precision: str | None = None, nodata_run: str | None = None,
                  tta: bool = False) -> dict:
    """Predict one block over its write region: uint8 affinities, or float16 synapse maps.

    ``scale`` (data voxel size / model voxel size, z y x) resamples the block to the
    model's resolution and the prediction back (:func:`at_model_resolution`);
    ``precision`` is the arithmetic (``float32`` or ``bfloat16``; see
    :func:`~connectomix.models._unet.inference_dtype`). ``nodata_run``: an aligned
    run whose no-data voxels (:func:`~connectomix.align.nodata_mask`) get affinity 0
    to every neighbour, so that no segment runs through the empty borders of warped
    sections. ``tta``: affinities averaged over the 8 in-plane flips and transposes
    (:func:`predict_array_tta`).
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    model, meta = _model(model_dir, device, task)
    vol = inputs[input]
    fn = predict_array if task == "affinities" else predict_synapse_array

    def predict(raw):
        if tta and task == "affinities":
            return predict_array_tta(raw, model, model.factor, meta["offsets"], precision)
        return fn(raw, model, model.factor, precision)

    y = predict(vol.data) if scale is None else at_model_resolution(vol.data, scale, predict)
    if task == "affinities":
        data = np.rint(np.clip(y, 0, 1) * 255).astype(np.uint8)
        if nodata_run is not None:
            from ..align import nodata_mask

            _cut_at_nodata(data, nodata_mask(nodata_run, vol.offset, vol.data.shape[-3:]), meta["offsets"])
    else:
        data = y.astype(np.float16)
    return {output: Volume(data, voxel_size=vol.voxel_size, offset=vol.offset)}


def _cut_at_nodata(aff: np.ndarray, nodata: np.ndarray, offsets) -> None:
    """Set to 0 (in place) every affinity between two voxels of which one shows no data."""
    from ..segment._affinities import _shifted_pair

    for c, off in enumerate(offsets):
        other = np.zeros_like(nodata)  # other[v] = nodata[v + off], False beyond the array
        here, there = _shifted_pair(nodata.shape, off)
        if here is not None:
            other[here] = nodata[there]
        aff[c][nodata | other] = 0


def predict_affinities(run, *, model_dir=None, input: str = "raw", block_shape_vx=DEFAULT_BLOCK_VX,
                       context_vx=DEFAULT_CONTEXT_VX, scheduler="synchronous", workers: int = 1,
                       device: str = "cpu", on_block_done=None, tta: bool = False):
    """Predict ``affinities`` for a run's ``raw`` (or ``aligned``) array, block-wise.

    Returns the BlockwiseResult; the output array carries the offsets in its
    ``connectomix.offsets`` attribute (channel order). ``tta`` averages the 8
    in-plane flips and transposes of each block (8x the computation).
    """
    return _predict(run, "affinities", "affinities", model_dir=model_dir, input=input, block_shape_vx=block_shape_vx,
                    context_vx=context_vx, scheduler=scheduler, workers=workers, device=device,
                    on_block_done=on_block_done, tta=tta)


def predict_synapses(run, *, model_dir=None, input: str = "raw", output: str = "synapse_pred",
                     block_shape_vx=DEFAULT_BLOCK_VX, context_vx=DEFAULT_CONTEXT_VX, scheduler="synchronous",
                     workers: int = 1, device: str = "cpu", on_block_done=None):
    """Predict the synapse maps (``synapse_pred``: cleft probability, partner vectors in nm), block-wise.

    The output is float16 (4, Z, Y, X): channel 0 the cleft probability, channels 1-3
    the vector (z, y, x, nm) from each voxel to its presynaptic partner, as the
    ``synapses`` stage reads it.
    """
    return _predict(run, "synapses", output, model_dir=model_dir, input=input, block_shape_vx=block_shape_vx,
                    context_vx=context_vx, scheduler=scheduler, workers=workers, device=device,
                    on_block_done=on_block_done)


def _predict(run, task, output, *, model_dir, input, block_shape_vx, context_vx, scheduler, workers, device,
             on_block_done, tta: bool = False):
    from ._train import load_model

    src = run.open(input)
    if src.dtype != np.uint8:
        from ..errors import VolumeError

        raise VolumeError(f"{run.volume_path(input)} is {src.dtype}; the networks read uint8 EM intensities "
                          "(re-import with a conversion to 8 bits)")
    from ._unet import check_device, precision_name

    check_device(device)

    # resolved once, here: every block of the volume computes alike (a worker on another machine too), and
    # a bad CONNECTOMIX_PRECISION stops before the output is replaced
    precision = precision_name(device)
    model, meta = load_model(model_dir, task=task)
    scale = _resampling(src.voxel_size, meta, task, run.volume_path(input))
    context_nm = Coordinate(context_vx) * (src.voxel_size if scale is None else Coordinate(meta["voxel_size"]))
    factor = Coordinate(model.factor)
    block = Coordinate(block_shape_vx).min(src.spatial_shape.ceil_div(factor) * factor)
    block = block.ceil_div(factor) * factor
    # blocks start at multiples of the network's factor (so every block sees the same pooling grid);
    # where one block covers an axis it is the volume's length there, whatever the factor, so that
    # it equals the output's chunk (a chunk never exceeds the array)
    block = Coordinate(tuple(min(b, n) for b, n in zip(block, src.spatial_shape)))
    if task == "affinities":
        channels, dtype = len(meta["offsets"]), np.uint8
        attrs = {"offsets": meta["offsets"]}
    else:
        channels, dtype = 4, np.float16
        attrs = {"channels": ["cleft_probability", "vector_z_nm", "vector_y_nm", "vector_x_nm"]}
    attrs["model"] = meta.get("name", str(model_dir or "shipped"))
    attrs["precision"] = precision
    out = create_volume(
        run.volume_path(output),
        shape=(channels,) + tuple(src.spatial_shape),
        dtype=dtype,
        voxel_size=src.voxel_size,
        offset=src.offset,
        chunks=tuple(block),
        complete=False,
        task=f"predict-{task}",
        overwrite=True,
        attrs=attrs,
    )
    # an aligned run's empty borders (filled with 0 by the warp) must not glue neurons together
    nodata_run = str(run.path) if task == "affinities" and input == "aligned" and "transforms" in run.tables() else None
    kernel = functools.partial(predict_block, model_dir=None if model_dir is None else str(model_dir),
                               device=device, input=input, task=task, output=output,
                               threads=_threads_for(workers), scale=scale, precision=precision,
                               nodata_run=nodata_run, tta=tta)
    return run_blockwise(
        kernel,
        task="predict" if task == "affinities" else "predict-synapses",
        inputs={input: Input(src.ref(), context=context_nm, boundary="clip")},
        outputs={output: out},
        block_shape=block * src.voxel_size,
        run_dir=run.path,
        scheduler=scheduler,
        workers=workers,
        config={"model": str(model_dir), "task": task, "context": list(context_vx),
                "iterations": meta.get("iterations"), "scale": None if scale is None else list(scale),
                "precision": precision, "nodata_cut": nodata_run is not None, "tta": bool(tta)},
        on_block_done=on_block_done,
    )


#: Voxel sizes within this fraction of the model's are used as they are; others are
#: resampled, within MAX_RESAMPLING of the model's voxel size per axis.
VOXEL_SIZE_TOLERANCE = 0.1
MAX_RESAMPLING = 8.0


def _resampling(voxel_size, meta: dict, task: str, where):
    """``None`` if the data's voxel size is the model's (within 10 %), else data / model per axis."""
    trained = meta.get("voxel_size")
    if trained is None:
        return None
    ratios = tuple(float(a) / float(b) for a, b in zip(voxel_size, trained))
    if all(abs(r - 1.0) <= VOXEL_SIZE_TOLERANCE for r in ratios):
        return None
    if any(r > MAX_RESAMPLING or r < 1.0 / MAX_RESAMPLING for r in ratios):
        from ..errors import ModelError

        raise ModelError(
            f"{where} has voxels of {tuple(voxel_size)} nm but the {task} model {meta.get('name', '')} was "
            f"trained on {tuple(trained)} nm: more than {MAX_RESAMPLING:g}x apart along an axis, too far to "
            "resample; train a model at this resolution (`connectomix train`)"
        )
    return ratios
