"""The generated neuropil: determinism, density, shapes, synapses, tables."""

import cc3d
import numpy as np
import pytest

from connectomix.synth import SynthSettings, generate
from connectomix.synth._settings import TRANSMITTERS

VS = np.array([40.0, 8.0, 8.0])


@pytest.fixture(scope="module")
def volume():
    # 1.9 x 2.6 x 2.6 um: large enough that the volume's faces do not dominate
    return generate(SynthSettings(shape=(48, 320, 320)), 3)


def test_same_seed_same_volume_other_seed_other_volume():
    s = SynthSettings(shape=(12, 160, 160))
    a, b, c = generate(s, 5), generate(s, 5), generate(s, 6)
    assert np.array_equal(a["raw"], b["raw"]) and np.array_equal(a["gt"], b["gt"])
    assert a["synapses"].equals(b["synapses"]) and a["neurons"].equals(b["neurons"])
    assert not np.array_equal(a["gt"], c["gt"])


def test_dense_every_voxel_belongs_to_a_cell(volume):
    gt = volume["gt"]
    assert (gt == 0).mean() < 0.01
    assert volume["raw"].dtype == np.uint8 and volume["raw"].shape == gt.shape


def test_hundreds_of_objects_per_2um_cube(volume):
    gt = volume["gt"]
    um3 = gt.size * VS.prod() / 1e9
    n = len(np.unique(gt[gt > 0]))
    assert n / um3 * 8 >= 200, (n, um3)


def test_segments_are_connected(volume):
    gt = volume["gt"]
    _, n_cc = cc3d.connected_components(gt, connectivity=6, return_N=True)
    assert n_cc == len(np.unique(gt[gt > 0]))


def _length_and_diameter(gt):
    from scipy import ndimage as ndi

    lengths, diameters = [], []
    for i, sl in enumerate(ndi.find_objects(gt), start=1):
        if sl is None:
            continue
        c = (np.argwhere(gt[sl] == i) + [s.start for s in sl] + 0.5) * VS
        if len(c) < 10:
            continue
        _, vec = np.linalg.eigh(np.cov(c.T))
        proj = c @ vec[:, -1]
        length = proj.max() - proj.min() + VS.min()  # extent along the principal axis
        lengths.append(length)
        diameters.append(2 * np.sqrt(len(c) * VS.prod() / (np.pi * length)))
    return np.array(lengths), np.array(diameters)


def test_neurites_are_elongated(volume):
    length, diameter = _length_and_diameter(volume["gt"])
    assert np.median(length) >= 5 * np.median(diameter), (np.median(length), np.median(diameter))
    # calibres: thin axons to thick dendrites
    assert np.percentile(diameter, 10) < 120 and diameter.max() > 400


def test_cells_have_classes_types_and_transmitters(volume):
    nt = volume["neurons"]
    assert set(nt.cell_class) == {"neuron", "glia"}
    assert {"axon", "dendrite", "glia"} <= set(nt.cell_type)
    neurons = nt[nt.cell_class == "neuron"]
    assert set(neurons.transmitter) <= {t for t, _ in TRANSMITTERS}
    assert nt[nt.cell_class == "glia"].transmitter.isna().all()
    for col in ("segment_id", "size_vx", "centroid_z", "centroid_y", "centroid_x", "bbox_z0", "bbox_x1", "n_pre",
                "n_post", "cell_type", "source"):
        assert col in nt.columns
    gt = volume["gt"]
    sizes = np.bincount(gt.ravel())
    assert (sizes[nt.segment_id.to_numpy()] == nt.size_vx.to_numpy()).all()


def test_every_synapse_touches_its_pre_and_post(volume):
    syn, gt, clefts = volume["synapses"], volume["gt"], volume["clefts"]
    assert len(syn) >= 30
    for r in syn.itertuples():
        v = np.floor(np.array([r.z, r.y, r.x]) / VS).astype(int)
        lo, hi = np.maximum(v - 1, 0), np.minimum(v + 2, gt.shape)
        near = set(np.unique(gt[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]).tolist())
        assert {r.pre_id, r.post_id} <= near, r
        assert r.pre_id != r.post_id
        assert (clefts == r.synapse_id).sum() == r.size_vx > 0
    assert (syn.score == 1.0).all() and (syn.kind == "chemical").all()
    # partners are neurons, presynaptic ones axons
    cls = volume["neurons"].set_index("segment_id")
    assert (cls.loc[syn.pre_id, "cell_type"] == "axon").all()
    assert (cls.loc[syn.post_id, "cell_class"] == "neuron").all()


def test_edges_are_derived_from_synapses(volume):
    syn, edges = volume["synapses"], volume["edges"]
    counts = syn.groupby(["pre_id", "post_id"]).size()
    assert len(edges) == len(counts)
    for e in edges.itertuples():
        assert counts[(e.pre_id, e.post_id)] == e.n_synapses == e.weight
    assert (edges.n_synapses >= 3).any()  # fasciculated axons make strong connections
    nt = volume["neurons"].set_index("segment_id")
    assert nt.loc[syn.pre_id.unique(), "n_pre"].sum() == len(syn)
