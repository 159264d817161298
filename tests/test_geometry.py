import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectomix.errors import RoiError
from connectomix.geometry import Coordinate, Roi

coords = st.lists(st.integers(-1000, 1000), min_size=3, max_size=3).map(Coordinate)
shapes = st.lists(st.integers(0, 500), min_size=3, max_size=3).map(Coordinate)
rois = st.builds(Roi, coords, shapes)
voxel_sizes = st.lists(st.integers(1, 50), min_size=3, max_size=3).map(Coordinate)


def test_coordinate_arithmetic():
    c = Coordinate(40, 8, 8)
    assert c * 2 == Coordinate(80, 16, 16)
    assert c + Coordinate(1, 2, 3) == Coordinate(41, 10, 11)
    assert Coordinate(10, 10, 10) // c == Coordinate(0, 1, 1)
    assert Coordinate(81, 9, 8).ceil_div(c) == Coordinate(3, 2, 1)
    assert -c == Coordinate(-40, -8, -8)
    assert Coordinate((1, 2, 3)) == Coordinate(1, 2, 3)


def test_coordinate_refuses_plain_tuples_and_floats():
    with pytest.raises(TypeError, match="plain tuple"):
        Coordinate(1, 2, 3) + (1, 2, 3)
    with pytest.raises(TypeError):
        Coordinate(1.5, 2, 3)
    with pytest.raises(TypeError):
        Coordinate(1, 2, 3) / 2
    with pytest.raises(TypeError):
        Coordinate(1, 2) + Coordinate(1, 2, 3)


def test_coordinate_is_immutable():
    c = Coordinate(1, 2, 3)
    with pytest.raises(TypeError):
        c[0] = 5


def test_roi_basics():
    r = Roi((0, 0, 0), (400, 80, 80))
    assert r.end == Coordinate(400, 80, 80)
    assert r.to_slices(Coordinate(40, 8, 8)) == (slice(0, 10), slice(0, 10), slice(0, 10))
    assert r.grow(Coordinate(40, 8, 8)) == Roi((-40, -8, -8), (480, 96, 96))
    assert r.shift(Coordinate(40, 0, 0)).begin == Coordinate(40, 0, 0)
    assert Roi((0, 0, 0), (0, 5, 5)).empty
    assert Roi((3, 3, 3), (0, 5, 5)) == Roi.empty_like(3)
    with pytest.raises(RoiError):
        Roi((0, 0, 0), (-1, 1, 1))
    with pytest.raises(RoiError, match="not aligned"):
        Roi((0, 0, 4), (40, 8, 8)).to_slices(Coordinate(40, 8, 8))
    with pytest.raises(dataclass_error()):
        r.offset = Coordinate(1, 1, 1)


def dataclass_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_snap_modes():
    r = Roi((5, 5, 5), (30, 30, 30))
    vs = Coordinate(10, 10, 10)
    assert r.snap(vs, "grow") == Roi((0, 0, 0), (40, 40, 40))
    assert r.snap(vs, "shrink") == Roi((10, 10, 10), (20, 20, 20))
    assert r.snap(vs, "closest") == Roi((10, 10, 10), (30, 30, 30))
    with pytest.raises(RoiError):
        r.snap(vs, "bogus")


@given(rois, rois)
def test_intersection_is_commutative(a, b):
    assert a.intersect(b) == b.intersect(a)


@given(rois, rois)
def test_intersection_is_contained_in_both(a, b):
    i = a.intersect(b)
    assert a.contains(i) and b.contains(i)


@given(rois, rois)
def test_union_contains_both(a, b):
    u = a.union(b)
    assert u.contains(a) and u.contains(b)


@given(rois, voxel_sizes)
def test_snap_grow_contains_and_shrink_is_contained(r, vs):
    g = r.snap(vs, "grow")
    s = r.snap(vs, "shrink")
    assert g.contains(r)
    assert r.contains(s)
    assert g.is_aligned(vs) and s.is_aligned(vs)


@given(rois, coords)
def test_grow_then_shrink_round_trips(r, amount):
    amount = abs(amount)
    if r.empty:
        return
    assert r.grow(amount).grow(-amount) == r


@given(rois, voxel_sizes)
@settings(max_examples=50)
def test_to_slices_shape_matches(r, vs):
    g = r.snap(vs, "grow")
    slices = g.to_slices(vs)
    assert tuple(s.stop - s.start for s in slices) == tuple(g.shape // vs)
