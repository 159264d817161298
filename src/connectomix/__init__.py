"""connectomix: from serial-section EM images to an analysed connectome.

Subpackages and modules
-----------------------
geometry    Coordinate and Roi in nanometres (z, y, x)
volume      Volume: arrays placed in the world, stored as OME-Zarr 0.5 on zarr v3
blockwise   the block engine: seamless, resumable block-wise jobs on Dask
run         the run directory: arrays, DuckDB/Parquet tables, stages
config      typed YAML configuration
pipeline    stage drivers behind the command line
io          import (TIFF, PNG, HDF5, npy, MRC, precomputed, zarr) and export
synth       synthetic serial-section EM with exact ground truth
segment     affinities -> fragments -> region graph -> segments, block-wise and seamless
models      PyTorch networks (imported only when used)
graph       the Connectome object
analysis    network analysis of connectomes
datasets    real connectomes shipped offline
evaluate    metrics against ground truth
errors      the exception tree

``import connectomix`` is light: it imports neither torch nor dask.distributed nor
rich; names below load on first use.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Coordinate": "geometry",
    "Roi": "geometry",
    "Volume": "volume",
    "open_volume": "volume",
    "create_volume": "volume",
    "Block": "blockwise",
    "Input": "blockwise",
    "tile": "blockwise",
    "run_blockwise": "blockwise",
    "Run": "run",
    "Config": "config",
    "load_config": "config",
}
_SUBMODULES = {
    "geometry", "volume", "blockwise", "run", "config", "pipeline", "io", "errors",
    "evaluate", "synth", "graph", "analysis", "datasets", "testing", "segment", "models",
}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def __getattr__(name):  # PEP 562: the lazy export list of scikit-image
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'connectomix' has no attribute {name!r}")


def __dir__():
    return __all__
