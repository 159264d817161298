"""Skeletons and meshes per segment, in nm with anisotropic voxels."""

import numpy as np
import pytest

from connectomix.errors import VolumeError
from connectomix.shapes import Skeleton, mesh, read_shapes, shapes_stage, skeletonize, write_ply, write_swc

VS = (40, 8, 8)


def _tube(shape=(12, 40, 120), *, offset_vx=(0, 0, 0)):
    """A straight tube along x: label 7, radius 5 voxels in plane, voxels 10..109 in x."""
    labels = np.zeros(shape, np.uint32)
    zz, yy = np.mgrid[: shape[0], : shape[1]]
    disk = ((zz - 6) * VS[0]) ** 2 + ((yy - 20) * VS[1]) ** 2 <= (5 * 8 + 1) ** 2
    labels[:, :, 10:110][disk] = 7
    return labels


def test_skeleton_of_a_tube_runs_along_it_in_nm():
    labels = _tube()
    off = (400, 80, 800)
    skels = skeletonize(labels, voxel_size=VS, offset=off, dust_threshold=10)
    assert list(skels) == [7]
    sk = skels[7]
    # along x (last axis), from about voxel 10 to voxel 109 (centres), in world nm
    x = sk.vertices[:, 2]
    assert x.min() <= off[2] + 12 * 8 and x.max() >= off[2] + 107 * 8
    # centred on the tube's axis: z = 6.5 voxels, y = 20.5 voxels (voxel centres)
    assert np.allclose(np.median(sk.vertices[:, 0]), off[0] + 6.5 * 40, atol=40)
    assert np.allclose(np.median(sk.vertices[:, 1]), off[1] + 20.5 * 8, atol=8)
    assert 0.85 * 99 * 8 <= sk.cable_length <= 1.15 * 100 * 8
    assert np.all(sk.radii > 0)


def test_mesh_bounds_match_the_voxels_in_world_nm():
    labels = np.zeros((10, 30, 30), np.uint16)
    labels[2:6, 3:13, 5:25] = 3
    off = (80, 16, 0)
    ms = mesh(labels, voxel_size=VS, offset=off, reduction_factor=0)
    m = ms[3]
    lo, hi = m.vertices.min(axis=0), m.vertices.max(axis=0)
    # voxel i spans [i, i + 1) * vs + offset: the surface lies on the object's faces (within half a voxel)
    expect_lo = np.array([2, 3, 5]) * VS + off
    expect_hi = np.array([6, 13, 25]) * VS + off
    assert np.all(np.abs(lo - expect_lo) <= np.array(VS) / 2 + 1e-3)
    assert np.all(np.abs(hi - expect_hi) <= np.array(VS) / 2 + 1e-3)
    assert m.faces.max() < len(m.vertices)


def test_mesh_is_closed_at_the_volume_border():
    labels = np.ones((4, 10, 10), np.uint8)
    m = mesh(labels, voxel_size=VS, reduction_factor=0)[1]
    # closed surface: every edge is shared by exactly two faces
    e = np.sort(np.concatenate([m.faces[:, [0, 1]], m.faces[:, [1, 2]], m.faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert np.all(counts == 2)


def test_swc_and_ply_round_trip(tmp_path):
    sk = Skeleton(5, np.array([[0, 0, 0], [0, 0, 10], [0, 10, 10], [0, 0, 20]], np.float32),
                  np.array([[0, 1], [1, 2], [1, 3]], np.uint32), np.array([1, 2, 3, 4], np.float32))
    p = write_swc(sk, tmp_path / "skeletons" / "5.swc")
    rows = np.loadtxt(p, comments="#")
    assert rows.shape == (4, 7)
    assert rows[0, 6] == -1 and np.all(rows[1:, 6] >= 1)
    # x y z columns: x is the package's last axis
    assert sorted(rows[:, 2].tolist()) == [0, 10, 10, 20]
    ms = mesh(_tube(), voxel_size=VS)
    write_ply(ms[7], tmp_path / "meshes" / "7.ply")
    skels, meshes = read_shapes(tmp_path)
    assert skels[5].cable_length == pytest.approx(sk.cable_length)
    assert np.allclose(meshes[7].vertices, ms[7].vertices)
    assert np.array_equal(meshes[7].faces, ms[7].faces)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 4)), "3-D"),
    (np.zeros((4, 4, 4), np.float32), "integer"),
    (-np.ones((4, 4, 4), np.int32), "non-negative"),
])
def test_bad_labels_are_refused(bad, match):
    with pytest.raises(VolumeError, match=match):
        skeletonize(bad, voxel_size=VS)


def test_bad_voxel_size_is_refused():
    with pytest.raises(VolumeError, match="voxel size"):
        mesh(np.zeros((4, 4, 4), np.uint8), voxel_size=(0, 8, 8))


def test_shapes_stage_writes_files_and_table(tmp_path):
    from connectomix.run import Run
    from connectomix.testing import stored_volume

    run = Run.create(tmp_path / "run")
    labels = _tube().astype(np.uint64)
    labels[:, 30:38, 20:60] = 9
    stored_volume(run.volume_path("segmentation"), labels, voxel_size=VS)
    df = shapes_stage(run.path)
    assert set(df["segment_id"]) == {7, 9}
    assert {"segment_id", "cable_length_nm", "n_nodes"} <= set(df.columns)
    assert (run.path / "skeletons" / "7.swc").exists() and (run.path / "meshes" / "9.ply").exists()
    stored = run.read_table("skeletons")
    assert len(stored) == 2 and stored["cable_length_nm"].gt(0).all()
    # skipped when done with the same configuration
    assert len(shapes_stage(run.path)) == 2
