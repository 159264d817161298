"""Neural networks (PyTorch): imported only by the stages that need them.

UNet3D              compact anisotropic 3D U-Net predicting affinities
train               resumable training with checkpoints, validation and a loss curve
load_model          a trained model (weights only), the shipped one by default
predict_affinities  block-wise prediction into a run's ``affinities`` array
make_volumes        training/validation volumes from the synthetic generator
local_shape_descriptors  the auxiliary training target ``train(aux="lsd")``
defect_probability  damaged pixels of a section between its neighbours (defect network)
"""

from ._defects import (
    DEFECT_TRAIN_SEEDS,
    DEFECT_VAL_SEEDS,
    DefectPatchSampler,
    defect_loss,
    defect_probability,
    make_defect_volumes,
)
from ._data import TRAIN_SEEDS, VAL_SEEDS, make_synapse_volumes, make_volumes
from ._predict import predict_affinities, predict_array, predict_synapse_array, predict_synapses
from ._synapse_targets import VECTOR_SCALE_NM, synapse_targets
from ._lsd import LSD_CHANNELS, local_shape_descriptors
from ._train import AUX_TARGETS, TASKS, affinity_loss, load_model, lsd_loss, synapse_loss, train
from ._unet import DEFAULT_OFFSETS, UNet3D

__all__ = [
    "UNet3D",
    "DEFAULT_OFFSETS",
    "train",
    "load_model",
    "affinity_loss",
    "lsd_loss",
    "local_shape_descriptors",
    "LSD_CHANNELS",
    "AUX_TARGETS",
    "predict_affinities",
    "predict_array",
    "predict_synapses",
    "predict_synapse_array",
    "make_volumes",
    "make_synapse_volumes",
    "synapse_targets",
    "synapse_loss",
    "VECTOR_SCALE_NM",
    "TASKS",
    "TRAIN_SEEDS",
    "VAL_SEEDS",
    "DEFECT_TRAIN_SEEDS",
    "DEFECT_VAL_SEEDS",
    "DefectPatchSampler",
    "defect_loss",
    "defect_probability",
    "make_defect_volumes",
]
