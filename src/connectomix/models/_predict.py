"""Block-wise affinity prediction with a trained U-Net (the ``predict`` step of ``segment``).

Each block reads its write region plus a context margin (a multiple of the network's
downsampling factor, so pooling grids line up with the whole-volume pass), pads the
border of the volume by reflection, predicts, and keeps the write region. The model is
loaded once per worker process.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..blockwise import Block, Input, run_blockwise
from ..geometry import Coordinate
from ..volume import Volume, create_volume

__all__ = ["predict_block", "predict_affinities", "DEFAULT_CONTEXT_VX"]

#: Context (voxels, z y x) each block reads beyond its write region: the U-Net's
#: receptive-field radius (about 14 x 56 x 56 for the default architecture) rounded up
#: to its downsampling factor (2, 8, 8), so padding never reaches a kept voxel.
DEFAULT_CONTEXT_VX = (16, 64, 64)

_MODELS: dict = {}


def _model(model_dir: str | None, device: str):
    key = (model_dir, device)
    if key not in _MODELS:
        import torch

        from ._train import load_model

        torch.set_num_threads(1)
        _MODELS[key] = load_model(model_dir, device=device)
    return _MODELS[key]


def predict_array(raw: np.ndarray, model, factor) -> np.ndarray:
    """Affinities (C, Z, Y, X) float32 in 0..1 for a uint8 array, padded to ``factor``."""
    import torch

    pad = [(0, (-s) % f) for s, f in zip(raw.shape, factor)]
    x = np.pad(raw.astype(np.float32) / 255.0, pad, mode="reflect" if all(s > 1 for s in raw.shape) else "edge")
    with torch.no_grad():
        y = torch.sigmoid(model(torch.from_numpy(x[None, None]))).numpy()[0]
    return y[(slice(None),) + tuple(slice(0, s) for s in raw.shape)]


def predict_block(block: Block, inputs, *, model_dir: str | None, device: str = "cpu", input: str = "raw") -> dict:
    """Predict one block; returns uint8 affinities over the block's write region."""
    model, meta = _model(model_dir, device)
    vol = inputs[input]
    aff = predict_array(vol.data, model, model.factor)
    out = Volume(np.rint(aff * 255).astype(np.uint8), voxel_size=vol.voxel_size, offset=vol.offset)
    return {"affinities": out}


def predict_affinities(run, *, model_dir=None, input: str = "raw", block_shape_vx=(32, 256, 256),
                       context_vx=DEFAULT_CONTEXT_VX, scheduler="synchronous", workers: int = 1,
                       device: str = "cpu", on_block_done=None):
    """Predict ``affinities`` for a run's ``raw`` (or ``aligned``) array, block-wise.

    Returns the BlockwiseResult; the output array carries the offsets in its
    ``connectomix.offsets`` attribute (channel order).
    """
    from ._train import load_model

    src = run.open(input)
    model, meta = load_model(model_dir)
    offsets = meta["offsets"]
    factor = Coordinate(model.factor)
    block = Coordinate(block_shape_vx).min(src.spatial_shape.ceil_div(factor) * factor)
    block = block.ceil_div(factor) * factor
    out = create_volume(
        run.volume_path("affinities"),
        shape=(len(offsets),) + tuple(src.spatial_shape),
        dtype=np.uint8,
        voxel_size=src.voxel_size,
        offset=src.offset,
        chunks=tuple(block),
        complete=False,
        task="predict",
        overwrite=True,
        attrs={"offsets": offsets, "model": meta.get("name", str(model_dir or "shipped"))},
    )
    kernel = functools.partial(predict_block, model_dir=None if model_dir is None else str(model_dir),
                               device=device, input=input)
    return run_blockwise(
        kernel,
        task="predict",
        inputs={input: Input(src.ref(), context=Coordinate(context_vx) * src.voxel_size, boundary="clip")},
        outputs={"affinities": out},
        block_shape=block * src.voxel_size,
        run_dir=run.path,
        scheduler=scheduler,
        workers=workers,
        config={"model": str(model_dir), "context": list(context_vx), "iterations": meta.get("iterations")},
        on_block_done=on_block_done,
    )
