"""Input sources: small, picklable descriptions of an input volume on disk.

A source names a file (and, for containers, a dataset inside it) plus the voxel size
and offset to place it in the world. It holds no data and no open file, so block
tasks can carry it to Dask workers; ``source.open()`` opens the input there and
returns a :class:`~connectomix.volume.Volume` over a lazy array that reads only the
voxels a block asks for.

:func:`input_source` is the one place that decides which format an input is, from
its extension, then its first bytes. Each source class reads exactly one format and
never guesses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConnectomixError, InputFormatError, VolumeError, VolumeNotFoundError
from ..volume import Volume
from ._lazy import DropAxes, LockedArray, PageStack, SectionFiles, XYZCArray, read_section

__all__ = [
    "InputSource",
    "TiffStackSource",
    "SectionFolderSource",
    "HDF5Source",
    "NpySource",
    "MrcSource",
    "PrecomputedSource",
    "ZarrSource",
    "input_source",
    "natural_key",
]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
SECTION_SUFFIXES = (".tif", ".tiff", ".png")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".rec", ".st", ".ali", ".ccp4")
IMAGE_2D_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
SUPPORTED = (
    "a multi-page TIFF (.tif), a folder of 2D TIFF/PNG sections, an HDF5 dataset "
    "(file.h5:/path), a .npy file, an MRC file (.mrc), a neuroglancer precomputed "
    "folder, or a zarr / OME-Zarr array"
)
#: Length units of OME-Zarr and ImageJ metadata, in nanometres.
_UNIT_NM = {
    "nanometer": 1.0, "nm": 1.0,
    "micrometer": 1000.0, "micron": 1000.0, "um": 1000.0, "\u00b5m": 1000.0, "\u03bcm": 1000.0,
    "angstrom": 0.1, "picometer": 0.001, "millimeter": 1e6,
}


@dataclass(frozen=True)
class Native:
    """What an input file says about itself: geometry in nm (z, y, x) and axis names."""

    voxel_size: tuple[int, ...] | None = None
    offset: tuple[int, ...] | None = None
    axis_names: tuple[str, ...] | None = None
    note: str = ""  # why the voxel size is unknown, when the file has a hint

    @property
    def n_channel(self) -> int:
        return 0 if self.axis_names is None else len(self.axis_names) - 3


# ------------------------------------------------------------------------- base class
@dataclass(frozen=True)
class InputSource:
    """Base class of input descriptions; subclasses read one format each.

    Parameters
    ----------
    path : str
        The input file or folder.
    voxel_size, offset : tuple of int, optional
        Where the input goes in the world (nm, z, y, x); required by :meth:`open`.
    """

    path: str
    voxel_size: tuple[int, ...] | None = None
    offset: tuple[int, ...] | None = None

    format: ClassVar[str] = "input"
    #: Whether reading any voxel of a section decodes the whole section.
    whole_sections: ClassVar[bool] = False

    def describe(self) -> str:
        """The input as a user names it, for messages."""
        return self.path

    def open(self) -> Volume:
        """Open the input as a read-only, lazily read :class:`Volume`.

        Raises
        ------
        VolumeError
            If the source has no voxel size yet.
        InputFormatError
            If the file cannot be read as this format.
        """
        if self.voxel_size is None:
            raise VolumeError(f"{self.describe()}: no voxel size; pass voxel_size=(z, y, x) in nm")
        array, native = self.probe()
        return Volume(array, voxel_size=self.voxel_size, offset=self.offset, axis_names=native.axis_names)

    def probe(self) -> tuple[Any, Native]:
        """Open the lazy array and read what the file says about its geometry."""
        try:
            return self._probe()
        except ConnectomixError:
            raise
        except Exception as e:
            raise InputFormatError(
                f"cannot read {self.describe()} as {self.format}: {type(e).__name__}: {e}"
            ) from e

    def _probe(self) -> tuple[Any, Native]:  # pragma: no cover - abstract
        raise NotImplementedError

    def placed(self, voxel_size, offset) -> "InputSource":
        """The same source placed at ``voxel_size`` and ``offset`` (nm)."""
        return dataclasses.replace(
            self, voxel_size=tuple(int(v) for v in voxel_size), offset=tuple(int(o) for o in offset)
        )

    def fingerprint(self) -> list:
        """Sizes and modification times: a re-import of a changed input starts afresh."""
        st = os.stat(self.path)
        return [st.st_size, st.st_mtime_ns]


def _dir_fingerprint(path: str, names) -> list:
    out = []
    for n in names:
        p = os.path.join(path, n)
        if os.path.exists(p):
            st = os.stat(p)
            out.append([n, st.st_size, st.st_mtime_ns])
    return out


# ----------------------------------------------------------------------------- TIFF
@dataclass(frozen=True)
class TiffStackSource(InputSource):
    """A multi-page TIFF: one 2D single-channel page per section, read page by page."""

    format: ClassVar[str] = "a multi-page TIFF"
    whole_sections: ClassVar[bool] = True

    def _probe(self):
        import tifffile

        try:
            tif = tifffile.TiffFile(self.path)
        except (tifffile.TiffFileError, ValueError, OSError) as e:
            raise InputFormatError(f"{self.path} is not a readable TIFF file ({e})") from e
        try:
            series = tif.series
            if not series or not len(series[0].pages):
                raise InputFormatError(f"{self.path} holds no images")
            if len(series) > 1:  # e.g. written page by page: one series per page
                return self._probe_pages(tif)
            s = series[0]
            page = s.pages[0]
            if getattr(page, "samplesperpixel", 1) > 1 and len(page.shape) == 3:
                raise InputFormatError(
                    f"{self.path} has {page.samplesperpixel} samples per pixel (colour); "
                    "EM sections must be single-channel grayscale"
                )
            if len(page.shape) != 2:
                raise InputFormatError(
                    f"{self.path} has pages of shape {tuple(page.shape)}; expected 2D single-channel pages"
                )
            squeezed = tuple(n for n in s.shape if n != 1)
            n_pages = len(s.pages)
            if n_pages == 1:
                raise VolumeError(
                    f"{self.path} is a single 2D image of shape {tuple(page.shape)}; a 3D volume "
                    "(z, y, x) is needed: use a multi-page TIFF or a folder of sections"
                )
            if len(squeezed) > 3:
                raise InputFormatError(
                    f"{self.path} is a {len(squeezed)}D TIFF (axes {s.axes}, shape {tuple(s.shape)}); "
                    "connectomix reads a TIFF as one z-stack of 2D pages: save channels or time "
                    "points as separate stacks, or use .npy / zarr for channel arrays"
                )
            if math.prod(squeezed) != n_pages * math.prod(page.shape):
                raise InputFormatError(
                    f"{self.path} has an unsupported layout (axes {s.axes}, shape {tuple(s.shape)}); "
                    "expected a stack of 2D pages"
                )
            native = _tiff_native(tif)
        except BaseException:
            tif.close()
            raise
        return PageStack(tif), native

    def _probe_pages(self, tif):
        pages = tif.pages
        first = pages.first
        for i in range(1, len(pages)):
            page = pages[i]
            if tuple(page.shape) != tuple(first.shape) or page.dtype != first.dtype:
                raise VolumeError(
                    f"{self.path} has pages of different shapes or types: page 0 is "
                    f"{tuple(first.shape)} {first.dtype} but page {i} is {tuple(page.shape)} {page.dtype}; "
                    "every page of a TIFF stack must have the same shape"
                )
        if len(first.shape) != 2:
            raise InputFormatError(
                f"{self.path} has pages of shape {tuple(first.shape)}; expected 2D single-channel pages"
            )
        return PageStack(tif, whole_file=True), _tiff_native(tif)


def _tiff_native(tif) -> Native:
    """Voxel size from connectomix/tifffile JSON metadata or ImageJ metadata, if any."""
    meta = tif.shaped_metadata[0] if tif.shaped_metadata else None
    if meta and "voxel_size_nm" in meta:
        vs = _whole_nm(meta["voxel_size_nm"])
        off = _whole_nm(meta.get("offset_nm", [0, 0, 0]), positive=False)
        return Native(voxel_size=vs, offset=off)
    ij = tif.imagej_metadata
    if ij and ij.get("unit") and ij.get("spacing"):
        scale = _UNIT_NM.get(str(ij["unit"]).lower())
        tags = tif.pages[0].tags
        try:
            xr, yr = tags["XResolution"].value, tags["YResolution"].value
            sizes = [float(ij["spacing"]), yr[1] / yr[0], xr[1] / xr[0]]
        except (KeyError, ZeroDivisionError, TypeError):
            return Native()
        if scale is not None:
            return Native(voxel_size=_whole_nm([v * scale for v in sizes]))
    return Native()


def _whole_nm(values, *, positive: bool = True) -> tuple[int, ...] | None:
    """Values in nm as ints when every one is (very nearly) whole, else None."""
    try:
        vals = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if len(vals) != 3 or any(not math.isfinite(v) or abs(v - round(v)) > 1e-3 for v in vals):
        return None
    ints = tuple(int(round(v)) for v in vals)
    if positive and any(v <= 0 for v in ints):
        return None
    return ints


# --------------------------------------------------------------------- section folder
def natural_key(name: str):
    """Sort key that orders ``sec2`` before ``sec10`` (digits compare as numbers)."""
    parts = re.split(r"(\d+)", name)
    return [(0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts], name


@dataclass(frozen=True, repr=False)
class SectionFolderSource(InputSource):
    """A folder of 2D TIFF/PNG sections, one file per section, in natural order.

    Build it with :meth:`from_folder`, which lists and checks the sections once.
    """

    files: tuple[str, ...] = ()
    section_shape: tuple[int, ...] | None = None
    dtype: str | None = None

    format: ClassVar[str] = "a folder of 2D sections"
    whole_sections: ClassVar[bool] = True

    @classmethod
    def from_folder(cls, path) -> "SectionFolderSource":
        """List the TIFF/PNG files of ``path`` naturally sorted and check they match.

        Raises
        ------
        InputFormatError
            If the folder holds no sections, or a section is colour or multi-page.
        VolumeError
            If sections differ in shape or type.
        """
        path = str(path)
        names = sorted(
            (n for n in os.listdir(path)
             if n.lower().endswith(SECTION_SUFFIXES) and not n.startswith(".")
             and os.path.isfile(os.path.join(path, n))),
            key=natural_key,
        )
        if not names:
            raise InputFormatError(
                f"{path} is a folder without image sections (.tif, .tiff, .png) and is neither "
                f"zarr nor neuroglancer precomputed; expected {SUPPORTED}"
            )
        files = tuple(os.path.join(path, n) for n in names)
        first = read_section(files[0])
        _check_section_image(files[0], first.shape, first.dtype)
        for f in files[1:]:
            shape, dtype = _section_header(f)
            if shape != first.shape:
                raise VolumeError(
                    f"sections in {path} differ in shape: {names[0]} is {first.shape} (y, x) "
                    f"but {os.path.basename(f)} is {shape}; all sections must have one shape"
                )
            if dtype is not None and np.dtype(dtype) != first.dtype:
                raise VolumeError(
                    f"sections in {path} differ in type: {names[0]} is {first.dtype} "
                    f"but {os.path.basename(f)} is {np.dtype(dtype)}"
                )
        if len(files) == 1:
            raise VolumeError(
                f"{path} holds a single section ({names[0]}, {first.shape}); a 3D volume needs "
                "at least two sections"
            )
        return cls(path, files=files, section_shape=tuple(first.shape), dtype=first.dtype.str)

    def _probe(self):
        if self.section_shape is None:
            return SectionFolderSource.from_folder(self.path)._probe()
        return SectionFiles(self.files, self.section_shape, np.dtype(self.dtype)), Native()

    def fingerprint(self) -> list:
        return _dir_fingerprint(self.path, [os.path.basename(f) for f in self.files])

    def __repr__(self) -> str:  # a short, unique repr: block tasks key open files by it
        digest = hashlib.sha1("\n".join(self.files).encode()).hexdigest()[:12]
        return (
            f"SectionFolderSource(path={self.path!r}, files={len(self.files)} [{digest}], "
            f"voxel_size={self.voxel_size}, offset={self.offset})"
        )


_PIL_DTYPES = {"L": "u1", "I;16": "<u2", "I;16B": ">u2", "I;16L": "<u2", "I": "<i4", "F": "<f4", "1": "|b1"}


def _check_section_image(path, shape, dtype) -> None:
    if len(shape) == 3 and shape[-1] in (2, 3, 4):
        raise InputFormatError(
            f"section {path} is a colour image of shape {tuple(shape)}; EM sections must be "
            "single-channel grayscale"
        )
    if len(shape) != 2:
        raise InputFormatError(f"section {path} has shape {tuple(shape)}; each section must be one 2D image")


def _section_header(path) -> tuple[tuple[int, ...], Any]:
    """Shape and dtype of a section from its header, without decoding the pixels."""
    if path.lower().endswith((".tif", ".tiff")):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                if len(tif.pages) > 1:
                    raise InputFormatError(
                        f"section {path} has {len(tif.pages)} pages; each section must be one 2D image"
                    )
                shape, dtype = tuple(page.shape), page.dtype
        except tifffile.TiffFileError as e:
            raise InputFormatError(f"section {path} is not a readable TIFF ({e})") from e
        _check_section_image(path, shape, dtype)
        return shape, dtype
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            shape, mode = (im.size[1], im.size[0]), im.mode
    except (UnidentifiedImageError, OSError) as e:
        raise InputFormatError(f"section {path} is not a readable image ({e})") from e
    if mode not in _PIL_DTYPES:
        raise InputFormatError(
            f"section {path} is a {mode} image; EM sections must be single-channel grayscale"
        )
    return shape, _PIL_DTYPES[mode]


# ----------------------------------------------------------------------------- HDF5
@dataclass(frozen=True)
class HDF5Source(InputSource):
    """One dataset of an HDF5 file (``file.h5:/path/in/file``)."""

    dataset: str = ""
    format: ClassVar[str] = "HDF5"

    def describe(self) -> str:
        return f"{self.path}:{self.dataset}"

    def _probe(self):
        import h5py

        f = _h5_open(self.path)
        try:
            obj = f.get(self.dataset)
            if obj is None:
                raise VolumeNotFoundError(
                    f"HDF5 file {self.path} has no dataset '{self.dataset}' "
                    f"(datasets: {_h5_listing(f) or 'none'})"
                )
            if not isinstance(obj, h5py.Dataset):
                raise InputFormatError(
                    f"'{self.dataset}' in {self.path} is a group, not a dataset "
                    f"(datasets: {_h5_listing(f) or 'none'})"
                )
            attrs = dict(obj.attrs)
            vs = off = None
            note = ""
            if "resolution" in attrs:  # CREMI convention: z, y, x in nm
                vs = _whole_nm(np.ravel(attrs["resolution"]))
                note = "" if vs else f"its 'resolution' attribute {attrs['resolution']} is not whole nm"
            elif "element_size_um" in attrs:  # ilastik / Fiji: z, y, x in µm
                vs = _whole_nm(np.ravel(attrs["element_size_um"]) * 1000.0)
            if "offset" in attrs:
                off = _whole_nm(np.ravel(attrs["offset"]), positive=False)
            return LockedArray(obj, keep=f), Native(voxel_size=vs, offset=off, note=note)
        except BaseException:
            f.close()
            raise


def _h5_open(path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise InputFormatError(f"{path} is not a readable HDF5 file ({e})") from e


def _h5_datasets(f) -> list[tuple[str, tuple, str]]:
    import h5py

    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found.append(("/" + name, tuple(obj.shape), str(obj.dtype)))

    f.visititems(visit)
    return found


def _h5_listing(f) -> str:
    return ", ".join(f"{n} {s} {d}" for n, s, d in _h5_datasets(f)[:20])


def _pick_h5_dataset(path: str) -> str:
    """The only volume-like dataset of an HDF5 file, or a clear error."""
    with _h5_open(path) as f:
        datasets = _h5_datasets(f)
        volumes = [d for d in datasets if len(d[1]) >= 3]
        if len(volumes) == 1:
            return volumes[0][0]
        if not datasets:
            raise InputFormatError(f"HDF5 file {path} holds no datasets")
        if not volumes and len(datasets) == 1:
            return datasets[0][0]  # the 2D check gives the clear message
        raise InputFormatError(
            f"HDF5 file {path} holds {len(volumes) or len(datasets)} datasets ({_h5_listing(f)}); "
            f"name one as {path}:/path/in/file or with dataset="
        )


# ------------------------------------------------------------------------------ npy
@dataclass(frozen=True)
class NpySource(InputSource):
    """A ``.npy`` file, memory-mapped."""

    format: ClassVar[str] = "a .npy file"

    def _probe(self):
        try:
            data = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise InputFormatError(f"{self.path} is not a readable .npy array ({e})") from e
        return LockedArray(data, lock=False), Native()


# ------------------------------------------------------------------------------ MRC
@dataclass(frozen=True)
class MrcSource(InputSource):
    """An MRC/CCP4 file (EMPIAR's format), memory-mapped."""

    format: ClassVar[str] = "an MRC file"

    def _probe(self):
        import mrcfile

        try:
            mrc = mrcfile.mmap(self.path, mode="r")
        except (ValueError, OSError) as e:
            raise InputFormatError(f"{self.path} is not a readable MRC file ({e})") from e
        try:
            h = mrc.header
            axes = (int(h.mapc), int(h.mapr), int(h.maps))
            if axes != (1, 2, 3):
                raise InputFormatError(
                    f"{self.path} stores its axes in the order (mapc, mapr, maps) = {axes}; "
                    "only the standard order (1, 2, 3) (x fastest, then y, then z) is supported"
                )
            vs_a = mrc.voxel_size  # x, y, z in ångström
            vs = _whole_nm([vs_a.z / 10.0, vs_a.y / 10.0, vs_a.x / 10.0])
            note = ""
            if vs is None and float(vs_a.x) > 0:
                note = f"its header voxel size ({float(vs_a.z)}, {float(vs_a.y)}, {float(vs_a.x)}) Å is not whole nm"
            return LockedArray(mrc.data, keep=mrc, lock=False), Native(voxel_size=vs, note=note)
        except BaseException:
            mrc.close()
            raise


# ---------------------------------------------------------------------- precomputed
@dataclass(frozen=True)
class PrecomputedSource(InputSource):
    """A local neuroglancer precomputed volume, read with tensorstore (scale 0)."""

    scale_index: int = 0
    format: ClassVar[str] = "a neuroglancer precomputed volume"

    def _probe(self):
        import tensorstore as ts

        info_path = os.path.join(self.path, "info")
        try:
            with open(info_path) as f:
                info = json.load(f)
            scale = info["scales"][self.scale_index]
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            raise InputFormatError(f"{self.path} has no valid precomputed 'info' file ({e})") from e
        url = "file://" + os.path.abspath(self.path).rstrip("/") + "/"
        store = ts.open(
            {"driver": "neuroglancer_precomputed", "kvstore": url, "scale_index": self.scale_index},
            read=True,
        ).result()
        res = [float(r) for r in scale["resolution"]][::-1]  # x, y, z -> z, y, x
        vs = _whole_nm(res)
        offset_vx = [int(v) for v in scale.get("voxel_offset", [0, 0, 0])][::-1]
        off = _whole_nm([o * r for o, r in zip(offset_vx, res)], positive=False)
        channels = int(info.get("num_channels", 1))
        names = (("c",) if channels > 1 else ()) + ("z", "y", "x")
        note = "" if vs else f"its resolution {scale['resolution']} (x, y, z) is not whole nm"
        return XYZCArray(store.translate_to[0]), Native(voxel_size=vs, offset=off, axis_names=names, note=note)

    def fingerprint(self) -> list:
        return _dir_fingerprint(self.path, ["info"])


# ----------------------------------------------------------------------------- zarr
@dataclass(frozen=True)
class ZarrSource(InputSource):
    """A zarr array (v2 or v3), an OME-Zarr image (level 0), or an array in a group.

    ``dataset`` is a path inside ``path`` (an array, an OME-Zarr image group, or an
    OME-Zarr level such as ``raw/s1``).
    """

    dataset: str = ""
    format: ClassVar[str] = "zarr"

    def describe(self) -> str:
        return f"{self.path}:{self.dataset}" if self.dataset else self.path

    def _probe(self):
        import zarr

        target = os.path.join(self.path, self.dataset.strip("/")) if self.dataset else self.path
        if not os.path.exists(target):
            raise VolumeNotFoundError(
                f"zarr {self.path} has no array '{self.dataset}' (arrays: {_zarr_listing(self.path) or 'none'})"
            )
        node = zarr.open(target, mode="r")
        native = Native()
        if isinstance(node, zarr.Group):
            ms = _ome_multiscales(dict(node.attrs))
            if ms is not None:
                ds = ms["datasets"][0]
                array = zarr.open_array(os.path.join(target, ds["path"]), mode="r")
                native = _ome_native(ms, ds, target)
            else:
                arrays = [(k, a) for k, a in node.members(max_depth=None) if isinstance(a, zarr.Array)]
                volumes = [(k, a) for k, a in arrays if a.ndim >= 3]
                if len(volumes) != 1:
                    raise InputFormatError(
                        f"zarr group {self.describe()} holds {len(volumes) or len(arrays)} arrays "
                        f"({_zarr_listing(target) or 'none'}); name one with {self.path}:/path or dataset="
                    )
                array = volumes[0][1]
                native = _funlib_native(dict(array.attrs), array.ndim)
        else:
            array = node
            parent = os.path.dirname(os.path.normpath(target))
            ms = _parent_multiscales(parent)
            name = os.path.basename(os.path.normpath(target))
            level = next((d for d in ms["datasets"] if d["path"] == name), None) if ms else None
            if level is not None:
                native = _ome_native(ms, level, parent)
            else:
                native = _funlib_native(dict(array.attrs), array.ndim)
        n_drop = 0
        if native.axis_names is not None and len(native.axis_names) != array.ndim:
            raise InputFormatError(
                f"{self.describe()}: OME axes {native.axis_names} do not match the array shape {array.shape}"
            )
        if native.axis_names is not None:
            names = list(native.axis_names)
            while len(names) > 3 and names[0] not in ("c",) and array.shape[n_drop] == 1:
                names.pop(0)
                n_drop += 1
            extra = [(n, s) for n, s in zip(names[:-3], array.shape[n_drop:]) if n != "c"]
            if extra:
                raise InputFormatError(
                    f"{self.describe()} has non-spatial axes {extra} besides a channel axis; "
                    "import one time point (a z, y, x or c, z, y, x array)"
                )
            if len(names) > 3 and names[0] == "c" and array.shape[n_drop] == 1:
                names.pop(0)
                n_drop += 1
            native = dataclasses.replace(native, axis_names=tuple(names))
        lazy = DropAxes(array, n_drop) if n_drop else LockedArray(array, lock=False)
        return lazy, native

    def fingerprint(self) -> list:
        target = os.path.join(self.path, self.dataset.strip("/")) if self.dataset else self.path
        return _dir_fingerprint(target, ["zarr.json", ".zarray", ".zattrs", ".zgroup"])


def _zarr_listing(path) -> str:
    import zarr

    try:
        node = zarr.open(path, mode="r")
    except Exception:
        return ""
    if not isinstance(node, zarr.Group):
        return ""
    return ", ".join(
        f"{k} {tuple(a.shape)} {a.dtype}" for k, a in node.members(max_depth=None) if isinstance(a, zarr.Array)
    )


def _ome_multiscales(attrs: dict) -> dict | None:
    ome = attrs.get("ome", attrs)  # 0.5 nests under "ome"; 0.4 is top-level
    ms = ome.get("multiscales") if isinstance(ome, dict) else None
    if isinstance(ms, list) and ms and isinstance(ms[0], dict) and ms[0].get("datasets"):
        return ms[0]
    return None


def _parent_multiscales(parent: str) -> dict | None:
    import zarr

    try:
        node = zarr.open(parent, mode="r")
    except Exception:
        return None
    return _ome_multiscales(dict(node.attrs)) if isinstance(node, zarr.Group) else None


def _ome_native(ms: dict, ds: dict, where: str) -> Native:
    """Voxel size, offset and axis names of one OME-Zarr level, converted to nm."""
    axes = ms.get("axes") or [{"name": n} for n in ("z", "y", "x")]
    axes = [a if isinstance(a, dict) else {"name": a} for a in axes]
    names = tuple(str(a.get("name")) for a in axes)
    spatial = [i for i, a in enumerate(axes) if a.get("type") == "space" or a.get("name") in ("z", "y", "x")]
    if len(spatial) == 2:
        raise VolumeError(
            f"{where} is a 2D image (OME axes {list(names)}); a 3D volume (z, y, x) is needed"
        )
    if len(spatial) != 3 or spatial != list(range(len(axes) - 3, len(axes))) or names[-3:] != ("z", "y", "x"):
        raise InputFormatError(
            f"{where}: OME axes {list(names)} are not supported; the last three must be spatial z, y, x"
        )
    names = tuple("c" if a.get("type") == "channel" or n == "c" else n for a, n in zip(axes, names))
    scale, translation = _transforms(ds.get("coordinateTransformations", []), len(axes))
    gscale, gtranslation = _transforms(ms.get("coordinateTransformations", []), len(axes))
    scale = [s * g for s, g in zip(scale, gscale)]
    translation = [t * g + gt for t, g, gt in zip(translation, gscale, gtranslation)]
    units = [axes[i].get("unit") for i in spatial]
    if any(u is None for u in units):
        return Native(axis_names=names, note="its OME axes give no unit for the scale")
    factors = [_UNIT_NM.get(str(u).lower()) for u in units]
    if any(f is None for f in factors):
        return Native(axis_names=names, note=f"its OME axes use units {units} that are not lengths connectomix knows")
    vs = _whole_nm([scale[i] * f for i, f in zip(spatial, factors)])
    off = _whole_nm([translation[i] * f for i, f in zip(spatial, factors)], positive=False)
    note = "" if vs else "its OME scale is not a whole number of nanometres"
    return Native(voxel_size=vs, offset=off, axis_names=names, note=note)


def _transforms(transforms, n: int) -> tuple[list[float], list[float]]:
    scale, translation = [1.0] * n, [0.0] * n
    for t in transforms or []:
        if t.get("type") == "scale" and "scale" in t:
            scale = [float(v) for v in t["scale"]]
        elif t.get("type") == "translation" and "translation" in t:
            translation = [float(v) for v in t["translation"]]
    return scale, translation


def _funlib_native(attrs: dict, ndim: int) -> Native:
    """funlib/daisy convention: ``resolution`` and ``offset`` attributes in nm (z, y, x)."""
    if "resolution" not in attrs:
        return Native()
    vs = _whole_nm(attrs["resolution"])
    off = _whole_nm(attrs.get("offset", [0, 0, 0]), positive=False)
    names = (("c",) if ndim == 4 else ()) + ("z", "y", "x") if ndim in (3, 4) else None
    return Native(voxel_size=vs, offset=off, axis_names=names)


# -------------------------------------------------------------------------- detection
def _split_inner(text: str) -> tuple[str, str | None]:
    """Split ``file.h5:/path/in/file`` at the last ':' whose left part exists."""
    if os.path.exists(text):
        return text, None
    idx = text.rfind(":")
    while idx > 0:
        left = text[:idx]
        if os.path.exists(left):
            return left, text[idx + 1 :] or None
        idx = text.rfind(":", 0, idx)
    m = re.match(r"^(.*\.\w+):(/.*)$", text)  # name the missing file, not the whole spec
    if m:
        return m.group(1), m.group(2)
    return text, None


def _sniff(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return None
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff":
        return "image2d"
    if head[208:212] in (b"MAP ", b"MAP\x00"):
        return "mrc"
    return None


def _is_zarr_dir(p: Path) -> bool:
    return p.suffix.lower() == ".zarr" or any((p / m).exists() for m in ("zarr.json", ".zarray", ".zgroup"))


def _is_precomputed_dir(p: Path) -> bool:
    info = p / "info"
    if not info.is_file():
        return False
    try:
        with open(info) as f:
            return "scales" in json.load(f)
    except (OSError, ValueError, TypeError):
        return False


def input_source(input, *, dataset: str | None = None) -> InputSource:
    """Describe ``input`` as the source of the format it holds.

    Parameters
    ----------
    input : str or Path
        A file or folder, optionally with a dataset path after a colon
        (``file.h5:/volumes/raw``, ``data.zarr:raw``), or ``precomputed://PATH``.
    dataset : str, optional
        The dataset inside an HDF5 file or zarr group (instead of the colon form).

    Returns
    -------
    InputSource
        Without voxel size or offset yet; see :meth:`InputSource.placed`.

    Raises
    ------
    VolumeNotFoundError
        If the input does not exist.
    InputFormatError
        If the format is not one connectomix reads.
    VolumeError
        If the input is a single 2D image.
    """
    text = os.fspath(input) if isinstance(input, os.PathLike) else str(input)
    for prefix in ("precomputed://", "file://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            if text.startswith("file://"):
                text = text[len("file://") :]
    path, inner = _split_inner(text)
    if dataset is not None and inner is not None and dataset.strip("/") != inner.strip("/"):
        raise InputFormatError(f"input {text} names dataset '{inner}' but dataset='{dataset}' was also given")
    inner = dataset if dataset is not None else inner
    p = Path(path)
    if not p.exists():
        raise VolumeNotFoundError(f"input {path} does not exist")
    if p.is_dir():
        if _is_zarr_dir(p) or (inner and _is_zarr_dir(p / inner.strip("/"))):
            return ZarrSource(str(p), dataset=(inner or "").strip("/"))
        if _is_precomputed_dir(p):
            _no_dataset(text, inner, "neuroglancer precomputed volume")
            return PrecomputedSource(str(p))
        _no_dataset(text, inner, "folder of sections")
        return SectionFolderSource.from_folder(p)
    suffix = p.suffix.lower()
    kind = (
        "tiff" if suffix in TIFF_SUFFIXES
        else "hdf5" if suffix in HDF5_SUFFIXES
        else "npy" if suffix == ".npy"
        else "mrc" if suffix in MRC_SUFFIXES
        else "image2d" if suffix in IMAGE_2D_SUFFIXES
        else _sniff(str(p))
    )
    if kind == "hdf5":
        name = inner if inner is not None else _pick_h5_dataset(str(p))
        return HDF5Source(str(p), dataset="/" + name.strip("/"))
    if kind == "image2d":
        shape = _section_header(str(p))[0] if suffix in SECTION_SUFFIXES else None
        what = f" of shape {shape}" if shape else ""
        raise VolumeError(
            f"{p} is a single 2D image{what}; a 3D volume (z, y, x) is needed: put the sections "
            "in one folder (sorted by name) or in a multi-page TIFF"
        )
    if kind is None:
        raise InputFormatError(f"{p}: unsupported input format ('{suffix or 'no extension'}'); expected {SUPPORTED}")
    names = {"tiff": "TIFF file", "npy": ".npy file", "mrc": "MRC file"}
    _no_dataset(text, inner, names[kind])
    return {"tiff": TiffStackSource, "npy": NpySource, "mrc": MrcSource}[kind](str(p))


def _no_dataset(text, inner, what) -> None:
    if inner:
        raise InputFormatError(f"input {text}: a {what} holds no datasets, but '{inner}' was named")
