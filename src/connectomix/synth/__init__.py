"""Synthetic serial-section EM with exact ground truth.

:func:`synthesize` writes a volume into a run directory: the image ``raw`` and the
ground truth (``gt_segmentation``, ``gt_clefts``, ``gt_neurons``, ``gt_synapses``,
``gt_edges``, ``gt_transforms``, ``gt_section_quality``; ``tiles`` and ``gt_tiles``
for tiled presets). Dense neuropil is grown from procedural neurites (axons with
boutons, dendrites with spines, glial sheets), optionally around real SWC
morphologies; it is rendered as stained tissue with membranes, mitochondria, vesicles
and synapses, and imaged with blur, noise, uneven staining and section artifacts.
Real morphologies: ``synthesize(..., morphology="hemibrain")`` places the five hemibrain
DA1 neurons shipped with navis, ``morphology=FOLDER`` any SWC files (:func:`read_swc`).
See ``_artifacts`` for the frames and the transform table.
"""

from ._artifacts import map_points, unwarp_section
from ._generate import generate, resolve_settings, synthesize
from ._swc import load_morphologies, read_swc
from ._settings import (
    EVAL_SEEDS,
    PRESETS,
    SynthSettings,
    eval_settings_hash,
    preset_settings,
    settings_hash,
)

__all__ = [
    "synthesize",
    "generate",
    "resolve_settings",
    "SynthSettings",
    "PRESETS",
    "EVAL_SEEDS",
    "preset_settings",
    "settings_hash",
    "eval_settings_hash",
    "map_points",
    "unwarp_section",
    "read_swc",
    "load_morphologies",
]
