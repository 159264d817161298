"""Import and export: input formats to OME-Zarr, arrays and tables to files.

import_volume   copy a TIFF stack, section folder, HDF5, npy, MRC, precomputed or
                zarr/OME-Zarr volume into a run, block-wise, in bounded memory
write_pyramid   fill the downsampled levels s1, s2, ... of a stored image
downsample      the numpy kernel behind it (mean for images, mode/pick for labels)
export_array    a run's array to .tif or .npy
export_table    a run's table to .csv or .parquet
info            what a run holds (arrays, tables) as a dict
demo_volume     a small EM-like test volume, made from a seed
input_source    describe an input file as its format's source (picklable, lazy)
"""

from ._demo import demo_volume
from ._export import export_array, export_table
from ._import import import_volume
from ._info import info
from ._pyramid import downsample, write_pyramid
from ._sources import (
    HDF5Source,
    InputSource,
    MrcSource,
    NpySource,
    PrecomputedSource,
    SectionFolderSource,
    TiffStackSource,
    ZarrSource,
    input_source,
)

__all__ = [
    "import_volume",
    "write_pyramid",
    "downsample",
    "export_array",
    "export_table",
    "info",
    "demo_volume",
    "input_source",
    "InputSource",
    "TiffStackSource",
    "SectionFolderSource",
    "HDF5Source",
    "NpySource",
    "MrcSource",
    "PrecomputedSource",
    "ZarrSource",
]
