"""Ideal network outputs made from ground truth, to test detection without a network.

:func:`ideal_predictions` turns the generator's true clefts (``gt_clefts``: voxels of
each synapse, on both sides of the contact), the true segmentation and the
``gt_synapses`` table into what a perfect synapse network would predict: cleft
probability 1 on every true cleft voxel (0 elsewhere) and, on each cleft voxel, the
vector to a presynaptic point of its synapse: the presynaptic cleft voxel nearest to
the centroid of the cleft's presynaptic side, so the vector's tip lies inside the
presynaptic segment.
"""

from __future__ import annotations

import numpy as np

from ..errors import TableFormatError, VolumeError

__all__ = ["ideal_predictions", "write_ideal_predictions", "PREDICTION_CHANNELS"]

#: Channel meaning of the combined prediction array (channel-first, float32).
PREDICTION_CHANNELS = ("cleft_probability", "partner_z_nm", "partner_y_nm", "partner_x_nm")


def ideal_predictions(gt_clefts, gt_segmentation, gt_synapses, *, voxel_size):
    """Make perfect cleft-probability and partner-vector arrays from ground truth.

    Parameters
    ----------
    gt_clefts : ndarray, (Z, Y, X) integer
        Cleft voxels labelled with their ``synapse_id`` (0 = no cleft).
    gt_segmentation : ndarray, (Z, Y, X) integer
        True segment ids.
    gt_synapses : DataFrame
        At least ``synapse_id`` and ``pre_id``.
    voxel_size : sequence of int
        nm, z y x.

    Returns
    -------
    prob : ndarray, (Z, Y, X) float32
        1 on the clefts of listed synapses, 0 elsewhere.
    vectors : ndarray, (3, Z, Y, X) float32
        On cleft voxels: the vector in nm (z, y, x) from the voxel's centre to the
        centre of a presynaptic voxel of its synapse (post -> pre); 0 elsewhere.

    Raises
    ------
    VolumeError
        If the arrays differ in shape or are not integer.
    TableFormatError
        If ``gt_synapses`` lacks ``synapse_id`` or ``pre_id``.
    """
    from scipy import ndimage as ndi

    clefts = np.asarray(gt_clefts)
    seg = np.asarray(gt_segmentation)
    if clefts.shape != seg.shape or clefts.ndim != 3:
        raise VolumeError(f"gt_clefts {clefts.shape} and gt_segmentation {seg.shape} must be equal (Z, Y, X) shapes")
    if not (np.issubdtype(clefts.dtype, np.integer) and np.issubdtype(seg.dtype, np.integer)):
        raise VolumeError(f"gt_clefts and gt_segmentation must be integer labels; got {clefts.dtype}, {seg.dtype}")
    missing = [c for c in ("synapse_id", "pre_id") if c not in gt_synapses.columns]
    if missing:
        raise TableFormatError(f"gt_synapses lacks column(s) {missing}; found {list(gt_synapses.columns)}")
    vs = np.asarray(voxel_size, np.float64)
    prob = np.zeros(clefts.shape, np.float32)
    vectors = np.zeros((3,) + clefts.shape, np.float32)
    pre_of = dict(zip(np.asarray(gt_synapses["synapse_id"], np.int64).tolist(),
                      np.asarray(gt_synapses["pre_id"], np.int64).tolist()))
    if not clefts.any():
        return prob, vectors
    boxes = ndi.find_objects(clefts.astype(np.int64, copy=False))
    for index, box in enumerate(boxes):
        sid = index + 1
        if box is None or sid not in pre_of:
            continue
        sub = clefts[box] == sid
        vox = np.argwhere(sub) + np.array([s.start for s in box])
        on_pre = seg[tuple(vox.T)] == pre_of[sid]
        if not on_pre.any():
            continue  # no presynaptic voxel in view: no partner a network could see
        pre_vox = vox[on_pre]
        centre = pre_vox.mean(axis=0)
        tip = pre_vox[np.argmin(((pre_vox - centre) ** 2).sum(axis=1))]
        prob[tuple(vox.T)] = 1.0
        vec = ((tip - vox) * vs).astype(np.float32)
        for c in range(3):
            vectors[c][tuple(vox.T)] = vec[:, c]
    return prob, vectors


def write_ideal_predictions(run_path, *, name: str = "synapse_pred", clefts: str = "gt_clefts",
                            segmentation: str = "gt_segmentation", synapses: str = "gt_synapses", chunks=None):
    """Write :func:`ideal_predictions` of a synthetic run as a prediction array.

    Parameters
    ----------
    run_path : path
        A run made by :func:`connectomix.synth.synthesize`.
    name : str
        The array written: float32 ``(4, Z, Y, X)``, channels
        :data:`PREDICTION_CHANNELS`, chunked like ``clefts``.
    clefts, segmentation, synapses : str
        The ground-truth arrays and table to read.
    chunks : sequence of int, optional
        Spatial chunk shape in voxels; default that of ``clefts``.

    Returns
    -------
    Volume
        The written array.
    """
    from ..run import Run
    from ..volume import create_volume

    run = Run(run_path)
    cv = run.open(clefts)
    sv = run.open(segmentation)
    if cv.roi != sv.roi or cv.voxel_size != sv.voxel_size:
        raise VolumeError(f"'{clefts}' ({cv.roi}, {tuple(cv.voxel_size)}) and '{segmentation}' "
                          f"({sv.roi}, {tuple(sv.voxel_size)}) do not cover the same voxels")
    prob, vec = ideal_predictions(cv.to_numpy(), sv.to_numpy(), run.read_table(synapses), voxel_size=cv.voxel_size)
    chunks = tuple(chunks or cv.chunks or prob.shape)
    out = create_volume(run.volume_path(name), shape=(4,) + prob.shape, dtype=np.float32,
                        voxel_size=tuple(cv.voxel_size), offset=tuple(cv.offset), chunks=(4,) + tuple(chunks[-3:]),
                        overwrite=True, attrs={"channels": list(PREDICTION_CHANNELS), "source": "ideal (ground truth)"})
    out[out.roi] = np.concatenate([prob[None], vec], axis=0)
    return out
