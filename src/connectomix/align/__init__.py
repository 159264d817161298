"""Alignment: stitch tiles into sections and register sections into one volume.

- :func:`align_stage`: the ``align`` stage of a run: montage (when the run has
  tiles), global rigid/affine then elastic registration, missing/damaged section
  detection (``section_quality``), block-wise warp into ``aligned``, the mesh
  transforms in the ``transforms`` table, an x-z before/after picture;
- :func:`import_tiles`: record a tiles CSV as the ``tiles`` table;
- :func:`map_points`: map nm coordinates between the aligned and the raw frame;
- kernels: :func:`register_stack` (numpy stack in, maps out), :func:`match_patches`,
  :func:`place_tiles`, :func:`blend_tiles`, :func:`transform_residuals`.
"""

from ._match import Matches, global_shift, match_patches, prefilter
from ._mesh import GridMap, jacobian_det, warp_section
from ._montage import MontageSettings, StitchWarning, blend_tiles, place_tiles, tile_offset
from ._register import RegisterSettings, damage_maps, register_stack, section_status
from ._score import labels_to_aligned, transform_residuals
from ._stage import align_stage, map_points, resolve_reference
from ._tiles import TILE_COLUMNS, import_tiles, read_tile
from ._warp import gridmap_table, load_gridmap, nodata_mask

__all__ = [
    "align_stage",
    "import_tiles",
    "map_points",
    "resolve_reference",
    "register_stack",
    "RegisterSettings",
    "section_status",
    "damage_maps",
    "GridMap",
    "jacobian_det",
    "warp_section",
    "Matches",
    "match_patches",
    "global_shift",
    "prefilter",
    "MontageSettings",
    "StitchWarning",
    "place_tiles",
    "blend_tiles",
    "tile_offset",
    "transform_residuals",
    "labels_to_aligned",
    "gridmap_table",
    "nodata_mask",
    "load_gridmap",
    "TILE_COLUMNS",
    "read_tile",
]
