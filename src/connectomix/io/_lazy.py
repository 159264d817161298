"""Lazy, read-only array views over input files.

Each class here has ``shape``, ``dtype``, ``ndim`` and numpy basic indexing (ints and
slices) and reads only what an index asks for: a stack of TIFF pages reads the pages
of the requested sections, a folder of sections reads the requested files. They are
what an input source's ``open()`` wraps in a :class:`~connectomix.volume.Volume`, so
that a block task reads one slab and never the whole stack.

Readers that share one file handle (TIFF, HDF5) serialise their reads with a lock,
because Dask may run several block tasks of one process on threads.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["LazyArray", "PageStack", "SectionFiles", "LockedArray", "DropAxes", "XYZCArray"]


def _normalize_key(key, shape) -> tuple[tuple[slice, ...], tuple[int, ...]]:
    """Resolve a basic index into one slice per axis and the axes to drop (ints)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (len(shape) - len(key) + 1)
        key = key[:i] + fill + key[i + 1 :]
    if len(key) > len(shape):
        raise IndexError(f"too many indices ({len(key)}) for an array of shape {shape}")
    key = key + (slice(None),) * (len(shape) - len(key))
    slices, drop = [], []
    for axis, (k, n) in enumerate(zip(key, shape)):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step <= 0:
                raise IndexError("only positive slice steps are supported by lazy input arrays")
            slices.append(slice(start, max(start, stop), step))
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                raise IndexError(f"index {k} is out of bounds for axis {axis} of size {n}")
            slices.append(slice(i, i + 1, 1))
            drop.append(axis)
        else:
            raise IndexError(f"lazy input arrays support ints and slices only, got {k!r}")
    return tuple(slices), tuple(drop)


def _canonical(dtype) -> np.dtype:
    """The plain numpy dtype (e.g. ``uint64`` rather than the equivalent ``ulonglong``,
    which tifffile returns and zarr does not recognise)."""
    return np.dtype(np.dtype(dtype).str)


def _len(s: slice) -> int:
    return len(range(s.start, s.stop, s.step))


class LazyArray:
    """Base class: subclasses set ``shape`` and ``dtype`` and implement ``_read``."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        slices, drop = _normalize_key(key, self.shape)
        out = self._read(slices)
        expected = tuple(_len(s) for s in slices)
        if out.shape != expected:  # an internal invariant, not user input
            raise AssertionError(f"{type(self).__name__} read {out.shape}, expected {expected}")
        return out.reshape(tuple(n for a, n in enumerate(expected) if a not in drop)) if drop else out

    def __array__(self, dtype=None, copy=None):
        a = self[...]
        return a if dtype is None else a.astype(dtype)

    def _read(self, slices: tuple[slice, ...]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release file handles (reads after this reopen nothing and fail)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


class PageStack(LazyArray):
    """The pages of a TIFF as a (Z, Y, X) array, read page by page.

    Parameters
    ----------
    tif : tifffile.TiffFile
        An open TIFF of 2D single-channel pages; the PageStack owns it from now on.
    whole_file : bool
        Read the file's pages in order (a stack written page by page, which tifffile
        sees as one series per page) instead of the pages of its first series.
    """

    def __init__(self, tif, *, whole_file: bool = False):
        self._tif = tif
        self._series = None if whole_file else 0
        if whole_file:
            page = tif.pages.first
            self.n_pages = len(tif.pages)
            dtype = page.dtype
        else:
            series = tif.series[0]
            page = series.pages[0]
            self.n_pages = len(series.pages)
            dtype = series.dtype
        self.page_shape = tuple(int(s) for s in page.shape)
        self.shape = (self.n_pages,) + self.page_shape
        self.dtype = _canonical(dtype)
        self._lock = threading.Lock()

    def _read(self, slices):
        zs, rest = slices[0], slices[1:]
        out = np.empty((_len(zs),) + tuple(_len(s) for s in rest), self.dtype)
        for i, z in enumerate(range(zs.start, zs.stop, zs.step)):
            with self._lock:
                page = self._tif.asarray(key=z, series=self._series)
            out[i] = page.reshape(self.page_shape)[rest]
        return out

    def close(self) -> None:
        self._tif.close()


class SectionFiles(LazyArray):
    """One 2D image file per section, stacked along z; reads only the files asked for.

    Parameters
    ----------
    files : sequence of str
        Section files in z order (TIFF or PNG), all of ``section_shape`` and ``dtype``.
    """

    def __init__(self, files, section_shape, dtype):
        self.files = tuple(files)
        self.section_shape = tuple(section_shape)
        self.shape = (len(self.files),) + self.section_shape
        self.dtype = _canonical(dtype)

    def _read(self, slices):
        zs, rest = slices[0], slices[1:]
        out = np.empty((_len(zs),) + tuple(_len(s) for s in rest), self.dtype)
        for i, z in enumerate(range(zs.start, zs.stop, zs.step)):
            image = read_section(self.files[z])
            if image.shape != self.section_shape or image.dtype != self.dtype:
                from ..errors import VolumeError

                raise VolumeError(
                    f"section {self.files[z]} changed: it is now {image.shape} {image.dtype}, "
                    f"expected {self.section_shape} {self.dtype}"
                )
            out[i] = image[rest]
        return out


def read_section(path: str) -> np.ndarray:
    """Read one 2D section image (TIFF through tifffile, anything else through imageio)."""
    if path.lower().endswith((".tif", ".tiff")):
        import tifffile

        return tifffile.imread(path, key=0)
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


class LockedArray(LazyArray):
    """Any sliceable array (an h5py dataset, a memory map) behind a lock."""

    def __init__(self, array, *, keep=None, lock: bool = True):
        self._array = array
        self._keep = keep  # the open file object the array lives in
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = _canonical(array.dtype)
        self._lock = threading.Lock() if lock else None

    @property
    def chunks(self):
        return getattr(self._array, "chunks", None)

    def _read(self, slices):
        if self._lock is None:
            return np.asarray(self._array[slices])
        with self._lock:
            return np.asarray(self._array[slices])

    def close(self) -> None:
        if self._keep is not None and hasattr(self._keep, "close"):
            self._keep.close()


class DropAxes(LazyArray):
    """A view that drops leading singleton axes (e.g. OME's ``t`` of length 1)."""

    def __init__(self, array, n_drop: int):
        if any(s != 1 for s in array.shape[:n_drop]):
            raise AssertionError(f"cannot drop non-singleton axes of shape {array.shape}")
        self._array = array
        self._n = n_drop
        self.shape = tuple(int(s) for s in array.shape[n_drop:])
        self.dtype = _canonical(array.dtype)

    @property
    def chunks(self):
        chunks = getattr(self._array, "chunks", None)
        return None if chunks is None else tuple(chunks[self._n :])

    def _read(self, slices):
        return np.asarray(self._array[(0,) * self._n + tuple(slices)])


class XYZCArray(LazyArray):
    """A tensorstore array indexed (x, y, z, channel) seen as ([C,] Z, Y, X).

    Neuroglancer precomputed volumes are x-fastest with a trailing channel axis; inside
    connectomix every array is channel-first and z, y, x.
    """

    def __init__(self, store):
        self._store = store  # already translated to a zero origin
        x, y, z, c = (int(s) for s in store.shape)
        self._channels = c
        self.shape = ((c,) if c > 1 else ()) + (z, y, x)
        self.dtype = _canonical(store.dtype.numpy_dtype)

    def _read(self, slices):
        if self._channels > 1:
            cs, zs, ys, xs = slices
        else:
            (zs, ys, xs), cs = slices, slice(0, 1, 1)
        data = np.asarray(self._store[xs, ys, zs, cs].read().result())  # (X, Y, Z, C)
        data = data.transpose(3, 2, 1, 0)  # (C, Z, Y, X)
        if self._channels == 1:
            data = data[0]
        return np.ascontiguousarray(data)
