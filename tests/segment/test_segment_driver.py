"""The block-wise driver: identical to the whole-array result for every block shape."""

import numpy as np
import pytest
import zarr

from connectomix.config import ClusterConfig
from connectomix.errors import BlockError, ConfigError, VolumeError, VolumeNotFoundError
from connectomix.run import Run
from connectomix.segment import SegmentConfig, segment, segment_affinities
from connectomix.testing import blobs, stored_volume
from connectomix.volume import open_volume

from segment_testdata import make_noisy_affinities

VS = (40, 8, 8)
SHAPE = (20, 64, 72)  # no block shape below divides it: edge blocks are odd-sized
CHUNKS = (4, 16, 24)
SYNC = ClusterConfig(scheduler="synchronous")


@pytest.fixture(scope="module")
def affinities():
    truth = blobs(SHAPE, n=30, seed=11)
    aff, _ = make_noisy_affinities(truth, sigma=0.15, weak_fraction=0.3, weak=0.35, merged=1, seed=11)
    return aff


@pytest.fixture(scope="module")
def reference(affinities):
    return segment(affinities, threshold=0.5)


def _run_with(tmp_path, aff, *, chunks=CHUNKS, name="affinities", attrs=None):
    run = Run.create(tmp_path / "run")
    vol = stored_volume(run.volume_path(name), aff, voxel_size=VS, chunks=(aff.shape[0],) + chunks)
    if attrs:
        zarr.open_group(vol.path, mode="r+").attrs.update(attrs)
    return run


def _read(run, name):
    return open_volume(run.volume_path(name)).to_numpy()


@pytest.mark.parametrize("block_vx", [(8, 32, 24), (12, 48, 48), SHAPE])
def test_blockwise_equals_whole_array_label_for_label(tmp_path, affinities, reference, block_vx):
    run = _run_with(tmp_path, affinities)
    calls = []
    res = segment_affinities(run, SegmentConfig(block_shape=block_vx), cluster=SYNC,
                             on_block_done=lambda d, n: calls.append((d, n)))
    expected_blocks = int(np.prod([-(-s // b) for s, b in zip(SHAPE, block_vx)]))
    assert res.n_blocks == expected_blocks
    np.testing.assert_array_equal(_read(run, "fragments"), reference.fragments)
    np.testing.assert_array_equal(_read(run, "segmentation"), reference.segmentation)
    edges = run.read_table("fragments_edges").sort_values(["u", "v"]).reset_index(drop=True)
    assert list(edges.columns) == ["u", "v", "score", "area_vx"]
    np.testing.assert_array_equal(edges.to_numpy(), reference.edges.to_numpy())
    assert (res.n_fragments, res.n_segments, res.n_edges) == (
        reference.fragments.max(), reference.segmentation.max(), len(reference.edges))
    assert calls[-1] == (3 * res.n_blocks, 3 * res.n_blocks)


XY = SegmentConfig(fragments_in_xy=True, seed_sigma=(0, 1, 1), seed_radius=(0, 2, 2), seed_threshold=0.3)


def _with_a_z_only_voxel(aff, z):
    """A voxel at section ``z`` whose only non-zero affinity is its edge to section ``z - 1``.

    No in-plane growth reaches it, so it is a leftover fragment of its own: block-wise,
    only a grow pass that reads section ``z - 1`` (two sections before a block starting
    at ``z + 1``) sees that edge and keeps it out of the background.
    """
    aff = aff.copy()
    y, x = 10, 10
    aff[:, z, y, x] = 0  # its edges to -z, -y, -x ...
    aff[1, z, y + 1, x] = aff[2, z, y, x + 1] = aff[0, z + 1, y, x] = 0  # ... and to +y, +x, +z
    aff[0, z, y, x] = 0.9
    return aff


@pytest.mark.parametrize("config, block_vx", [
    (XY, (8, 32, 24)),
    (XY, (4, 16, 48)),
    (SegmentConfig(fragments_in_xy=True), (8, 32, 24)),  # seeds smoothed along z as well
])
def test_blockwise_fragments_in_xy_equal_the_whole_array(tmp_path, affinities, config, block_vx):
    aff = _with_a_z_only_voxel(affinities, block_vx[0] - 1)
    reference = segment(aff, threshold=0.5, config=config)
    assert reference.fragments[block_vx[0] - 1, 10, 10] != 0  # the planted voxel is a fragment
    run = _run_with(tmp_path, aff)
    res = segment_affinities(run, config.replace(block_shape=block_vx), threshold=0.5, cluster=SYNC)
    assert res.n_blocks > 4
    fragments = _read(run, "fragments")
    np.testing.assert_array_equal(fragments, reference.fragments)
    segmentation = _read(run, "segmentation")
    np.testing.assert_array_equal(segmentation, reference.segmentation)
    edges = run.read_table("fragments_edges").sort_values(["u", "v"]).reset_index(drop=True)
    np.testing.assert_array_equal(edges.to_numpy(), reference.edges.to_numpy())
    # no fragment spans two sections ...
    per_section = [set(np.unique(fragments[z][fragments[z] > 0]).tolist()) for z in range(fragments.shape[0])]
    assert all(not (a & b) for a, b in zip(per_section, per_section[1:]))
    # ... and segments do: most objects of the truth span all sections
    z_span = [len(np.unique(np.nonzero(segmentation == s)[0])) for s in np.unique(segmentation)[:20]]
    assert max(z_span) == segmentation.shape[0]


def test_two_dask_workers_give_the_same_result(tmp_path, affinities, reference):
    run = _run_with(tmp_path, affinities)
    segment_affinities(run, SegmentConfig(block_shape=(8, 32, 48)), cluster=ClusterConfig(scheduler=None, workers=2))
    np.testing.assert_array_equal(_read(run, "segmentation"), reference.segmentation)


def test_stage_is_recorded_skipped_and_leaves_no_scratch(tmp_path, affinities):
    run = _run_with(tmp_path, affinities)
    cfg = SegmentConfig(block_shape=(12, 48, 48))
    assert segment_affinities(run, cfg, cluster=SYNC) is not None
    stages = run.stages()
    assert stages.loc[stages["stage"] == "segment", "status"].tolist() == ["finished"]
    assert run.read_config()["segment"]["threshold"] == 0.5
    assert segment_affinities(run, cfg, cluster=SYNC) is None  # same configuration: skipped
    assert not (run.path / ".scratch").exists()
    assert {"fragments_edges", "stages"} <= set(run.tables())
    assert not {"edges", "sizes", "seed_pairs"} & set(run.tables())  # block parts stay private
    assert list((run.path / "tables" / "fragments_edges").glob("*.parquet"))
    assert {"affinities", "fragments", "segmentation"} == set(run.arrays())


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, affinities, reference):
    run = _run_with(tmp_path, affinities)
    cfg = SegmentConfig(block_shape=(8, 32, 24))  # 3 x 2 x 3 = 18 blocks

    def stop_in_second_pass(done, total):
        if done == total // 3 + 4:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        segment_affinities(run, cfg, cluster=SYNC, on_block_done=stop_in_second_pass)
    assert run.stages().set_index("stage").loc["segment", "status"] == "failed"
    res = segment_affinities(run, cfg, cluster=SYNC)
    assert res.blocks_run == {"seeds": 0, "grow": 18 - 4, "relabel": 18}
    np.testing.assert_array_equal(_read(run, "segmentation"), reference.segmentation)


def test_uint8_affinities(tmp_path, affinities):
    aff8 = np.rint(affinities * 255).astype(np.uint8)
    run = _run_with(tmp_path, aff8)
    segment_affinities(run, SegmentConfig(block_shape=(12, 48, 48)), cluster=SYNC)
    np.testing.assert_array_equal(_read(run, "segmentation"), segment(aff8).segmentation)


def test_nan_affinities_name_the_block_and_leave_nothing_behind(tmp_path, affinities):
    bad = affinities.copy()
    bad[1, 15, 40, 60] = np.nan
    run = _run_with(tmp_path, bad)
    with pytest.raises(BlockError, match=r"block \d+ .*NaN") as exc:
        segment_affinities(run, SegmentConfig(block_shape=(12, 48, 48)), cluster=SYNC)
    # the first block whose read region (write region + context) holds the NaN
    assert "read at" in str(exc.value) and exc.value.block_id in range(8)
    assert set(run.arrays()) == {"affinities"}
    assert not (run.path / ".scratch" / "segment").exists()
    assert run.stages().set_index("stage").loc["segment", "status"] == "failed"


def test_bad_layouts_and_options_are_refused_before_anything_runs(tmp_path, affinities):
    run = _run_with(tmp_path, affinities[0], name="mask")  # no channel axis
    with pytest.raises(VolumeError, match=r"channel-first .* \(20, 64, 72\)"):
        segment_affinities(run, affinities="mask", cluster=SYNC)
    with pytest.raises(VolumeNotFoundError, match="no array 'affinities'.*mask"):
        segment_affinities(run, cluster=SYNC)
    with pytest.raises(ConfigError, match="threshold must lie in"):
        segment_affinities(run, threshold=1.5, cluster=SYNC)
    run2 = _run_with(tmp_path / "b", affinities, attrs={"offsets": [[0, 0, -1], [0, -1, 0], [-1, 0, 0]]})
    with pytest.raises(VolumeError, match="nearest neighbours at -1 along z, y, x"):
        segment_affinities(run2, cluster=SYNC)
    run3 = _run_with(tmp_path / "c", affinities)
    with pytest.raises(ConfigError, match="multiple of the affinities' chunks"):
        segment_affinities(run3, SegmentConfig(block_shape=(5, 16, 24)), cluster=SYNC)
    assert "segment" not in set(run3.stages()["stage"])


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"seed_sigma": (1, 1)}, "seed_sigma"),
        ({"seed_radius": (1, 2.5, 2)}, "seed_radius"),
        ({"grow_levels": (0.5, 0.9)}, "high to low"),
        ({"grow_rounds": 0}, "grow_rounds"),
        ({"min_size": -1}, "min_size"),
        ({"block_shape": (0, 16, 16)}, "block_shape"),
        ({"fragments": "a/b"}, "array name"),
    ],
)
def test_config_validation(changes, match):
    with pytest.raises(ConfigError, match=match):
        SegmentConfig(**changes)
