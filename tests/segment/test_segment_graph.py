import numpy as np
import pandas as pd
import pytest

from connectomix.segment import region_graph
from connectomix.segment._affinities import LEVELS
from connectomix.segment._graph import compact_ids, edge_contributions, face_pairs, reduce_edges, union_ids


def _random_case(seed, shape=(4, 6, 7)):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, shape).astype(np.uint64)
    q = rng.integers(0, LEVELS + 1, (3,) + shape).astype(np.uint16)
    return labels, q


def _brute_force(labels, q):
    stats = {}
    for v in np.ndindex(labels.shape):
        for d in range(3):
            if v[d] == 0:
                continue
            w = list(v)
            w[d] -= 1
            a, b = int(labels[v]), int(labels[tuple(w)])
            if a != b and a and b:
                s = stats.setdefault((min(a, b), max(a, b)), [0, 0])
                s[0] += int(q[(d,) + v])
                s[1] += 1
    return stats


def test_edge_contributions_match_a_brute_force_count():
    labels, q = _random_case(1)
    g = edge_contributions(labels, q)
    got = {(int(u), int(v)): [int(s), int(c)] for u, v, s, c in zip(g["u"], g["v"], g["aff_sum"], g["area_vx"])}
    assert got == _brute_force(labels, q)
    assert list(zip(g["u"], g["v"])) == sorted(zip(g["u"], g["v"]))  # sorted rows


def test_regions_that_tile_the_array_add_up_to_the_whole():
    labels, q = _random_case(2, (6, 8, 9))
    parts = []
    for z in (slice(0, 2), slice(2, 6)):
        for x in (slice(0, 5), slice(5, 9)):
            parts.append(edge_contributions(labels, q, region=(z, slice(0, 8), x)))
    total = reduce_edges(*(np.concatenate([p[k] for p in parts]) for k in ("u", "v", "aff_sum", "area_vx")))
    whole = edge_contributions(labels, q)
    for k in whole:
        np.testing.assert_array_equal(total[k], whole[k])


def test_region_graph_scores_are_mean_affinities():
    labels = np.array([[[1, 1, 2, 2]]], np.uint64)
    aff = np.ones((3, 1, 1, 4), np.float32)
    aff[2, 0, 0, 2] = 0.25
    g = region_graph(labels, aff)
    assert isinstance(g, pd.DataFrame) and list(g.columns) == ["u", "v", "score", "area_vx"]
    assert g[["u", "v", "area_vx"]].to_dict("records") == [{"u": 1, "v": 2, "area_vx": 1}]
    assert g["score"].iloc[0] == pytest.approx(0.25, abs=0.5 / LEVELS)  # affinities count in 1/65535


def test_face_pairs_look_across_lower_faces_only():
    labels = np.zeros((3, 3, 3), np.uint64)
    labels[0, 1, 1], labels[1, 1, 1] = 5, 6  # across the z face of region [1:, :, :]
    labels[1, 0, 2], labels[1, 1, 2] = 7, 8  # inside the region: not a face pair
    labels[2, 2, 0] = 9  # touches nothing outside
    a, b = face_pairs(labels, (slice(1, 3), slice(0, 3), slice(0, 3)))
    assert list(zip(a, b)) == [(5, 6)]
    a, b = face_pairs(labels, (slice(0, 3), slice(0, 3), slice(0, 3)))  # region at the array start
    assert len(a) == 0


def test_union_ids_name_each_set_by_its_smallest_id():
    ids = np.array([3, 5, 8, 13, 21], np.uint64)
    rep = union_ids(ids, np.array([21, 8], np.uint64), np.array([5, 21], np.uint64))
    np.testing.assert_array_equal(rep, [3, 5, 5, 13, 5])
    np.testing.assert_array_equal(union_ids(ids, np.zeros(0, np.uint64), np.zeros(0, np.uint64)), ids)


def test_compact_ids_round_trip():
    labels = np.array([[[0, 2**40, 7], [7, 0, 2**40 + 3]]], np.uint64)
    lut, local = compact_ids(labels)
    assert local.dtype == np.uint32 and local.flags.c_contiguous
    np.testing.assert_array_equal(lut[local], labels)
    assert lut[0] == 0 and sorted(np.unique(local)) == [0, 1, 2, 3]
    # compact ids give the same graph, named back through the table
    q = np.full((3,) + labels.shape, 1000, np.uint16)
    g_local, g = edge_contributions(local, q), edge_contributions(labels, q)
    got = sorted(zip(np.minimum(lut[g_local["u"]], lut[g_local["v"]]).tolist(),
                     np.maximum(lut[g_local["u"]], lut[g_local["v"]]).tolist(), g_local["area_vx"].tolist()))
    assert got == sorted(zip(g["u"].tolist(), g["v"].tolist(), g["area_vx"].tolist()))


@pytest.mark.parametrize("shape", [(1, 6, 7), (4, 1, 7), (4, 6, 1), (5, 6, 7)])
def test_whole_array_edges_equal_the_region_path_for_any_shape_and_dtype(shape):
    # the whole array takes a flat shortcut; a region (even the whole one) takes slices
    labels, q = _random_case(3, shape)
    whole = edge_contributions(labels, q)
    full = tuple(slice(0, n) for n in shape)
    for other in (edge_contributions(labels, q, region=full), edge_contributions(labels.astype(np.uint32), q)):
        for k in whole:
            np.testing.assert_array_equal(other[k], whole[k])
