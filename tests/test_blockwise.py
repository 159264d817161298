import functools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectomix.blockwise import Input, run_blockwise, tile, dask_client
from connectomix.errors import BlockError, IncompleteVolumeError, RoiError, SchedulerError
from connectomix.geometry import Coordinate, Roi
from connectomix.pipeline import _gaussian, gaussian_context_vx, gaussian_kernel
from connectomix.run import Run
from connectomix.testing import (
    failing, fill_block_id, random_volume, slow_gaussian, stored_volume, two_in_two_out,
)
from connectomix.volume import create_volume, open_volume

VS = Coordinate(40, 8, 8)


# ----------------------------------------------------------------------- tiling
@given(
    st.lists(st.integers(1, 40), min_size=3, max_size=3),
    st.lists(st.integers(1, 12), min_size=3, max_size=3),
    st.lists(st.integers(0, 3), min_size=3, max_size=3),
)
@settings(max_examples=60, deadline=None)
def test_shrink_tiling_covers_write_area_exactly_once(total, write, context):
    total_roi = Roi((0, 0, 0), total)
    write, context = Coordinate(write), Coordinate(context)
    blocks = tile(total_roi, write + context * 2, write, fit="shrink")
    area = total_roi.grow(-context)
    count = np.zeros(tuple(max(0, s) for s in area.shape), np.int32) if not area.empty else None
    for b in blocks:
        assert area.contains(b.write_roi)
        assert b.read_roi == b.write_roi.grow(context)
        count[b.write_roi.shift(-area.offset).to_slices()] += 1
    if count is not None:
        assert (count == 1).all()
    assert [b.id for b in blocks] == list(range(len(blocks)))


def test_tile_fit_modes():
    total = Roi((0,), (11,))  # context 1: write area [1, 10)
    valid = tile(total, Coordinate(6), Coordinate(4), fit="valid")
    assert [b.write_roi for b in valid] == [Roi((1,), (4,)), Roi((5,), (4,))]
    assert all(total.contains(b.read_roi) for b in valid)
    shrink = tile(total, Coordinate(6), Coordinate(4), fit="shrink")
    assert [b.write_roi for b in shrink] == [Roi((1,), (4,)), Roi((5,), (4,)), Roi((9,), (1,))]
    over = tile(total, Coordinate(6), Coordinate(4), fit="overhang")
    assert over[-1].write_roi == Roi((9,), (4,)) and over[-1].read_roi.end == Coordinate(14)
    with pytest.raises(RoiError):
        tile(total, Coordinate(5), Coordinate(4))


# ----------------------------------------------------------------------- helpers
def _run(tmp_path, data, *, chunks=(4, 16, 16), shards=None, name="raw"):
    run = Run.create(tmp_path / "run")
    vol = stored_volume(run.volume_path(name), data, voxel_size=VS, chunks=chunks, shards=shards)
    return run, vol


def _smooth(run, src, sigma, block_vx, chunks, *, scheduler="synchronous", workers=1, task="smooth", delay=None, log=None):
    out = create_volume(run.volume_path("out"), shape=src.shape, dtype=src.dtype, voxel_size=VS, chunks=chunks, overwrite=True)
    if delay is None:
        kernel = functools.partial(gaussian_kernel, sigma=sigma, output="out", input="raw")
    else:
        kernel = functools.partial(slow_gaussian, sigma=sigma, delay=delay, log=log)
    return run_blockwise(
        kernel,
        task=task,
        inputs={"raw": Input(src.ref(), context=gaussian_context_vx(sigma) * VS)},
        outputs={"out": out},
        block_shape=Coordinate(block_vx) * VS,
        scheduler=scheduler,
        workers=workers,
        config={"sigma": sigma},
    )


# ----------------------------------------------------------------------- seamless
@pytest.mark.parametrize("block_vx", [(4, 16, 16), (8, 32, 16), (12, 48, 32), (24, 80, 96)])
def test_blockwise_gaussian_equals_whole_array(tmp_path, block_vx):
    # 21 x 75 x 83 voxels: no block shape divides it, so edge blocks are odd-sized
    data = random_volume((21, 75, 83), seed=1)
    run, src = _run(tmp_path, data)
    sigma = (1.0, 3.0, 3.0)
    res = _smooth(run, src, sigma, block_vx, (4, 16, 16))
    assert res.n_blocks > 1 or block_vx == (24, 80, 96)
    got = open_volume(run.volume_path("out")).to_numpy()
    np.testing.assert_array_equal(got, _gaussian(data, sigma))


def test_two_inputs_two_outputs_and_a_table(tmp_path):
    run = Run.create(tmp_path / "run")
    a_data = random_volume((12, 40, 40), seed=2)
    b_data = random_volume((12, 40, 40), seed=3)
    a = stored_volume(run.volume_path("a"), a_data, voxel_size=VS, chunks=(4, 8, 8))
    b = stored_volume(run.volume_path("b"), b_data, voxel_size=VS, chunks=(4, 8, 8))
    out = create_volume(run.volume_path("sum"), shape=a.shape, dtype="float64", voxel_size=VS, chunks=(4, 8, 8))
    res = run_blockwise(
        two_in_two_out,
        task="general",
        inputs={"a": Input(a.ref(), context=VS * 1), "b": Input(b.ref(), context=VS * 2, boundary="pad")},
        outputs={"sum": out},
        tables=["stats"],
        block_shape=Coordinate(4, 16, 16) * VS,
        scheduler="synchronous",
    )
    from scipy import ndimage

    expected = ndimage.uniform_filter(a_data.astype(np.float64), 3, mode="constant") * 27
    shifted = np.zeros_like(b_data, dtype=np.float64)
    shifted[..., :-2] = b_data[..., 2:]
    np.testing.assert_allclose(open_volume(run.volume_path("sum")).to_numpy(), expected + shifted)
    # one row per block, loaded into DuckDB by the driver; Parquet parts on disk
    assert res.table_rows["stats"] == res.n_blocks == 3 * 3 * 3
    stats = run.read_table("stats")
    assert sorted(stats["block"]) == list(range(res.n_blocks))
    assert stats["a_sum"].sum() == a_data.astype(np.int64).sum()
    assert len(list((run.path / "tables" / "stats").glob("block-*.parquet"))) == res.n_blocks


# ----------------------------------------------------------------------- errors
def test_block_shape_must_be_a_multiple_of_shards(tmp_path):
    run, src = _run(tmp_path, random_volume((8, 32, 32)))
    out = create_volume(run.volume_path("ids"), shape=src.shape, dtype="uint64", voxel_size=VS, chunks=(4, 8, 8), shards=(8, 16, 16))
    with pytest.raises(RoiError, match="shard"):
        run_blockwise(fill_block_id, task="t", inputs={"ref": Input(src.ref())}, outputs={"ids": out},
                      block_shape=Coordinate(8, 8, 8) * VS)


def test_block_failure_names_the_block(tmp_path):
    run, src = _run(tmp_path, random_volume((8, 32, 32)))
    out = create_volume(run.volume_path("out"), shape=src.shape, dtype="uint8", voxel_size=VS, chunks=(8, 16, 16))
    with pytest.raises(BlockError, match="block 1 .*deliberate failure") as exc:
        run_blockwise(failing, task="f", inputs={"raw": Input(src.ref())}, outputs={"out": out},
                      block_shape=Coordinate(8, 16, 16) * VS)
    assert exc.value.block_id == 1
    assert exc.value.write_roi == Roi((0, 0, 128), (320, 128, 128))
    # the failed run left its output flagged incomplete: later stages refuse it
    with pytest.raises(IncompleteVolumeError, match="incomplete"):
        open_volume(run.volume_path("out"))


def test_unreachable_scheduler_fails_fast():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(SchedulerError, match=f"127.0.0.1:{port}.*did not answer"):
        dask_client(f"tcp://127.0.0.1:{port}", timeout=2)
    assert time.monotonic() - t0 < 15


# ----------------------------------------------------------------------- sharding
def test_concurrent_sharded_writes_from_two_workers(tmp_path):
    run, src = _run(tmp_path, random_volume((16, 64, 64)))
    out = create_volume(run.volume_path("ids"), shape=src.shape, dtype="uint64", voxel_size=VS,
                        chunks=(4, 8, 8), shards=(8, 16, 16))
    res = run_blockwise(fill_block_id, task="shards", inputs={"ref": Input(src.ref())}, outputs={"ids": out},
                        block_shape=Coordinate(8, 16, 32) * VS, scheduler=None, workers=2)
    got = open_volume(run.volume_path("ids")).to_numpy()
    expected = np.zeros(src.shape, np.uint64)
    from connectomix.blockwise import tile as _tile

    for b in _tile(src.roi, Coordinate(8, 16, 32) * VS, Coordinate(8, 16, 32) * VS, fit="shrink"):
        expected[b.write_roi.to_slices(VS)] = b.id + 1
    assert res.n_blocks == 16
    np.testing.assert_array_equal(got, expected)


# ----------------------------------------------------------------------- resume
_KILL_SCRIPT = """
import sys
from connectomix.run import Run
from connectomix.volume import open_volume
sys.path.insert(0, {tests!r})
from test_blockwise import _smooth
run = Run({run!r})
src = open_volume(run.volume_path("raw"))
_smooth(run, src, (1.0, 2.0, 2.0), (4, 16, 16), (4, 16, 16), delay=0.15, log={log!r})
"""


@pytest.mark.slow
def test_killed_run_resumes_with_only_missing_blocks(tmp_path):
    data = random_volume((16, 64, 64), seed=4)
    run, src = _run(tmp_path, data)
    log = tmp_path / "calls.txt"
    script = tmp_path / "job.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(Path(__file__).parent), run=str(run.path), log=str(log)))
    proc = subprocess.Popen([sys.executable, str(script)])
    done_dir = run.path / ".blocks" / "smooth" / "done"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if done_dir.is_dir() and len(os.listdir(done_dir)) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(os.listdir(done_dir))
    assert 5 <= n_before < 64, n_before
    # what was killed is not readable as complete
    with pytest.raises(IncompleteVolumeError):
        open_volume(run.volume_path("out"))
    done_ids = {int(p) for p in os.listdir(done_dir)}
    log.write_text("")
    # re-run: reuse the existing output (do not recreate it) and resume
    out = open_volume(run.volume_path("out"), mode="r+", require_complete=False)
    kernel = functools.partial(slow_gaussian, sigma=(1.0, 2.0, 2.0), delay=0.0, log=str(log))
    res = run_blockwise(
        kernel, task="smooth", inputs={"raw": Input(src.ref(), context=gaussian_context_vx((1.0, 2.0, 2.0)) * VS)},
        outputs={"out": out}, block_shape=Coordinate(4, 16, 16) * VS, scheduler="synchronous",
        config={"sigma": (1.0, 2.0, 2.0)},
    )
    recomputed = {int(x) for x in log.read_text().split()}
    assert res.n_skipped == n_before and res.n_run == 64 - n_before
    assert recomputed == set(range(64)) - done_ids
    np.testing.assert_array_equal(open_volume(run.volume_path("out")).to_numpy(), _gaussian(data, (1.0, 2.0, 2.0)))


def test_changed_config_discards_done_records(tmp_path):
    data = random_volume((8, 32, 32), seed=5)
    run, src = _run(tmp_path, data)
    _smooth(run, src, (1.0, 1.0, 1.0), (4, 16, 16), (4, 16, 16))
    res = _smooth(run, src, (1.0, 2.0, 2.0), (4, 16, 16), (4, 16, 16))
    assert res.n_skipped == 0
    np.testing.assert_array_equal(open_volume(run.volume_path("out")).to_numpy(), _gaussian(data, (1.0, 2.0, 2.0)))


# ----------------------------------------------------------------------- distributed
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_real_scheduler_and_two_workers_match_local_run(tmp_path):
    data = random_volume((16, 64, 64), seed=6)
    sigma = (1.0, 2.0, 2.0)
    local_run, src = _run(tmp_path / "local", data)
    _smooth(local_run, src, sigma, (4, 32, 32), (4, 16, 16), scheduler="synchronous")
    expected = open_volume(local_run.volume_path("out")).to_numpy()

    port = _free_port()
    bindir = Path(sys.executable).parent
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    sched = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    workers = [
        subprocess.Popen([str(bindir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                          "--no-dashboard", "--host", "127.0.0.1"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env)
        for _ in range(2)
    ]
    try:
        import distributed

        client = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                client = distributed.Client(f"tcp://127.0.0.1:{port}", timeout="2s")
                break
            except OSError:
                time.sleep(0.5)
        assert client is not None, "dask scheduler did not start"
        client.wait_for_workers(2, timeout=60)
        client.close()
        dist_run, src2 = _run(tmp_path / "dist", data)
        # through the CLI, as a user would
        from connectomix.cli import main

        rc = main(["--quiet", "smooth", str(dist_run.path), "--sigma", "1", "2", "2", "--output", "out",
                   "--block-shape", "4", "32", "32", "--scheduler", f"tcp://127.0.0.1:{port}"])
        assert rc == 0
        got = open_volume(dist_run.volume_path("out")).to_numpy()
        np.testing.assert_array_equal(got, expected)
        # both worker processes really did work
        client = distributed.Client(f"tcp://127.0.0.1:{port}", timeout="5s")
        assert len(client.scheduler_info()["workers"]) == 2
        client.close()
    finally:
        for p in workers + [sched]:
            p.terminate()
        for p in workers + [sched]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
