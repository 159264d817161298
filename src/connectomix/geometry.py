"""World-coordinate geometry: :class:`Coordinate` and :class:`Roi`, in nanometres.

Everything here is immutable and numpy-free at the interface: a ``Coordinate`` is a
tuple of ints in z, y, x order (any number of dimensions), and a ``Roi`` is an
``(offset, shape)`` pair of Coordinates. Arithmetic between a Coordinate and a plain
tuple is refused on purpose, so that voxels and nanometres cannot be mixed by accident.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Iterable, Literal

from .errors import RoiError

__all__ = ["Coordinate", "Roi"]


class Coordinate(tuple):
    """An immutable point or extent: a tuple of ints with element-wise arithmetic.

    Parameters
    ----------
    *values : int or iterable of int
        ``Coordinate(1, 2, 3)`` or ``Coordinate((1, 2, 3))``.

    Examples
    --------
    >>> Coordinate(40, 8, 8) * 2
    Coordinate(80, 16, 16)
    >>> Coordinate(10, 10, 10) // Coordinate(40, 8, 8)
    Coordinate(0, 1, 1)
    """

    def __new__(cls, *values):
        if len(values) == 1 and not isinstance(values[0], (int,)) and hasattr(values[0], "__iter__"):
            values = tuple(values[0])
        out = []
        for v in values:
            if isinstance(v, bool) or not _is_integral(v):
                raise TypeError(f"Coordinate values must be integers, got {v!r} in {values!r}")
            out.append(int(v))
        return super().__new__(cls, out)

    @property
    def dims(self) -> int:
        """Number of dimensions."""
        return len(self)

    def _binary(self, other, op, name):
        if isinstance(other, Coordinate):
            if len(other) != len(self):
                raise TypeError(f"cannot {name} Coordinates of {len(self)} and {len(other)} dimensions")
            return Coordinate(op(a, b) for a, b in zip(self, other))
        if _is_integral(other) and not isinstance(other, bool):
            return Coordinate(op(a, int(other)) for a in self)
        if isinstance(other, tuple):
            raise TypeError(
                f"cannot {name} a Coordinate and a plain tuple {other!r}; wrap it in Coordinate()"
            )
        return NotImplemented

    def __add__(self, other):
        return self._binary(other, operator.add, "add")

    def __radd__(self, other):
        return self._binary(other, operator.add, "add")

    def __sub__(self, other):
        return self._binary(other, operator.sub, "subtract")

    def __rsub__(self, other):
        return self._binary(other, lambda a, b: b - a, "subtract")

    def __mul__(self, other):
        return self._binary(other, operator.mul, "multiply")

    def __rmul__(self, other):
        return self._binary(other, operator.mul, "multiply")

    def __floordiv__(self, other):
        return self._binary(other, operator.floordiv, "divide")

    def __mod__(self, other):
        return self._binary(other, operator.mod, "take the modulo of")

    def __truediv__(self, other):
        raise TypeError("Coordinates hold integers; use // for division")

    def __neg__(self):
        return Coordinate(-a for a in self)

    def __abs__(self):
        return Coordinate(abs(a) for a in self)

    def ceil_div(self, other) -> "Coordinate":
        """Divide element-wise, rounding up."""
        return self._binary(other, lambda a, b: -(-a // b), "divide")

    def round_to(self, other, mode: Literal["floor", "ceil"] = "floor") -> "Coordinate":
        """Round each value down (or up) to a multiple of ``other``."""
        if mode == "floor":
            return (self // other) * other
        if mode == "ceil":
            return self.ceil_div(other) * other
        raise ValueError(f"mode must be 'floor' or 'ceil', got {mode!r}")

    def is_multiple_of(self, other) -> bool:
        """Whether every value is a whole multiple of ``other``."""
        return all(v == 0 for v in self % other)

    def min(self, other: "Coordinate") -> "Coordinate":
        """Element-wise minimum."""
        return self._binary(other, min, "compare")

    def max(self, other: "Coordinate") -> "Coordinate":
        """Element-wise maximum."""
        return self._binary(other, max, "compare")

    def prod(self) -> int:
        """Product of all values (the number of voxels of a shape)."""
        return math.prod(self)

    def __repr__(self) -> str:
        return f"Coordinate({', '.join(map(str, self))})"

    def __str__(self) -> str:
        return "(" + ", ".join(map(str, self)) + ")"


def _is_integral(v) -> bool:
    try:
        return operator.index(v) == v
    except TypeError:
        return False


@dataclass(frozen=True)
class Roi:
    """A box in world units (nm): ``offset`` (its begin) and ``shape``.

    Parameters
    ----------
    offset : Coordinate or iterable of int
        The first corner, in nm.
    shape : Coordinate or iterable of int
        The extent, in nm; every value must be >= 0.

    Notes
    -----
    A Roi with any zero extent is *empty*. All empty Rois of one dimensionality compare
    equal to ``Roi.empty_like(dims)``, so intersections that miss can be tested with
    ``roi.empty``.

    Examples
    --------
    >>> a = Roi((0, 0, 0), (400, 800, 800))
    >>> b = Roi((200, 0, 0), (400, 800, 800))
    >>> a.intersect(b)
    Roi(offset=(200, 0, 0), shape=(200, 800, 800))
    >>> a.to_slices(Coordinate(40, 8, 8))
    (slice(0, 10, None), slice(0, 100, None), slice(0, 100, None))
    """

    offset: Coordinate
    shape: Coordinate

    def __post_init__(self):
        offset = self.offset if isinstance(self.offset, Coordinate) else Coordinate(self.offset)
        shape = self.shape if isinstance(self.shape, Coordinate) else Coordinate(self.shape)
        if len(offset) != len(shape):
            raise RoiError(f"Roi offset {offset} and shape {shape} differ in dimensions")
        if any(s < 0 for s in shape):
            raise RoiError(f"Roi shape must be non-negative, got {shape}")
        if any(s == 0 for s in shape):  # one canonical empty Roi per dimensionality
            offset, shape = Coordinate((0,) * len(shape)), Coordinate((0,) * len(shape))
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "shape", shape)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_bounds(cls, begin: Iterable[int], end: Iterable[int]) -> "Roi":
        """Make the Roi ``[begin, end)``; an end before its begin gives the empty Roi."""
        begin, end = Coordinate(begin), Coordinate(end)
        return cls(begin, (end - begin).max(Coordinate((0,) * len(begin))))

    @classmethod
    def empty_like(cls, dims: int) -> "Roi":
        """The empty Roi of ``dims`` dimensions."""
        return cls((0,) * dims, (0,) * dims)

    # ------------------------------------------------------------------ properties
    @property
    def dims(self) -> int:
        return len(self.shape)

    @property
    def begin(self) -> Coordinate:
        return self.offset

    @property
    def end(self) -> Coordinate:
        return self.offset + self.shape

    @property
    def empty(self) -> bool:
        return any(s == 0 for s in self.shape)

    @property
    def size(self) -> int:
        """Volume of the box in nm^dims."""
        return self.shape.prod()

    @property
    def center(self) -> Coordinate:
        return self.offset + self.shape // 2

    # ------------------------------------------------------------------ algebra
    def _check_dims(self, other: "Roi") -> None:
        if other.dims != self.dims:
            raise RoiError(f"Rois of different dimensions: {self} and {other}")

    def contains(self, other: "Roi | Coordinate") -> bool:
        """Whether ``other`` (a Roi or a point) lies inside this Roi.

        The empty Roi is contained in every Roi.
        """
        if isinstance(other, Roi):
            self._check_dims(other)
            if other.empty:
                return True
            return all(b0 <= b1 for b0, b1 in zip(self.begin, other.begin)) and all(
                e1 <= e0 for e0, e1 in zip(self.end, other.end)
            )
        point = other if isinstance(other, Coordinate) else Coordinate(other)
        return all(b <= p < e for b, p, e in zip(self.begin, point, self.end))

    def intersect(self, other: "Roi") -> "Roi":
        """The overlap of two Rois (empty if they do not overlap)."""
        self._check_dims(other)
        if self.empty or other.empty:
            return Roi.empty_like(self.dims)
        return Roi.from_bounds(self.begin.max(other.begin), self.end.min(other.end))

    def intersects(self, other: "Roi") -> bool:
        return not self.intersect(other).empty

    def union(self, other: "Roi") -> "Roi":
        """The smallest Roi containing both."""
        self._check_dims(other)
        if self.empty:
            return other
        if other.empty:
            return self
        return Roi.from_bounds(self.begin.min(other.begin), self.end.max(other.end))

    def grow(self, amount_neg, amount_pos=None) -> "Roi":
        """Grow by ``amount_neg`` before the begin and ``amount_pos`` after the end.

        ``amount_pos`` defaults to ``amount_neg``. Negative amounts shrink.
        """
        neg = _as_coord(amount_neg, self.dims)
        pos = neg if amount_pos is None else _as_coord(amount_pos, self.dims)
        return Roi.from_bounds(self.begin - neg, self.end + pos)

    def shift(self, by) -> "Roi":
        """Move by ``by`` (nm)."""
        return Roi(self.offset + _as_coord(by, self.dims), self.shape)

    def snap(self, voxel_size, mode: Literal["grow", "shrink", "closest"] = "grow") -> "Roi":
        """Snap begin and end to multiples of ``voxel_size``.

        ``grow`` gives the smallest grid-aligned Roi containing this one, ``shrink`` the
        largest one inside it, ``closest`` rounds both ends to the nearest grid point.
        """
        vs = _as_coord(voxel_size, self.dims)
        if mode == "grow":
            return Roi.from_bounds(self.begin.round_to(vs, "floor"), self.end.round_to(vs, "ceil"))
        if mode == "shrink":
            return Roi.from_bounds(self.begin.round_to(vs, "ceil"), self.end.round_to(vs, "floor"))
        if mode == "closest":
            half = vs // 2
            return Roi.from_bounds(
                (self.begin + half).round_to(vs, "floor"), (self.end + half).round_to(vs, "floor")
            )
        raise RoiError(f"snap mode must be 'grow', 'shrink' or 'closest', got {mode!r}")

    def is_aligned(self, voxel_size) -> bool:
        """Whether begin and shape are whole multiples of ``voxel_size``."""
        vs = _as_coord(voxel_size, self.dims)
        return self.begin.is_multiple_of(vs) and self.shape.is_multiple_of(vs)

    def to_slices(self, voxel_size=None) -> tuple[slice, ...]:
        """Slices of this Roi in voxels of ``voxel_size`` (origin at world 0).

        Raises
        ------
        RoiError
            If the Roi is not aligned to ``voxel_size``.
        """
        vs = Coordinate((1,) * self.dims) if voxel_size is None else _as_coord(voxel_size, self.dims)
        if not self.is_aligned(vs):
            raise RoiError(f"{self} is not aligned to voxel size {vs}; snap() it first")
        b, e = self.begin // vs, self.end // vs
        return tuple(slice(int(i), int(j)) for i, j in zip(b, e))

    def to_voxels(self, voxel_size) -> "Roi":
        """The same box counted in voxels."""
        vs = _as_coord(voxel_size, self.dims)
        if not self.is_aligned(vs):
            raise RoiError(f"{self} is not aligned to voxel size {vs}; snap() it first")
        return Roi(self.begin // vs, self.shape // vs)

    def __str__(self) -> str:
        if self.empty:
            return "[empty]"
        return "[" + ", ".join(f"{b}:{e}" for b, e in zip(self.begin, self.end)) + f"] ({self.shape})"

    def __repr__(self) -> str:
        return f"Roi(offset={self.offset}, shape={self.shape})"


def _as_coord(v, dims: int) -> Coordinate:
    if isinstance(v, Coordinate):
        if len(v) != dims:
            raise RoiError(f"expected {dims} dimensions, got {v}")
        return v
    if _is_integral(v) and not isinstance(v, bool):
        return Coordinate((int(v),) * dims)
    c = Coordinate(v)
    if len(c) != dims:
        raise RoiError(f"expected {dims} dimensions, got {c}")
    return c
