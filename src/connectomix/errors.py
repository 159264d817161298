"""The connectomix exception tree.

Every error that bad input can cause derives from :class:`ConnectomixError` and also
from the matching built-in exception, so ``except ValueError`` keeps working. The CLI
prints ``str(error)`` of these as one line and exits non-zero; anything else is a bug
and shows its traceback.
"""

from __future__ import annotations

__all__ = [
    "ConnectomixError",
    "RoiError",
    "VolumeError",
    "VolumeNotFoundError",
    "IncompleteVolumeError",
    "CorruptDataError",
    "InputFormatError",
    "ConfigError",
    "RunDirectoryError",
    "TableNotFoundError",
    "SchedulerError",
    "BlockError",
    "DatasetNotFoundError",
    "TableFormatError",
    "MissingDependencyError",
]


class ConnectomixError(Exception):
    """Root of every error connectomix raises on purpose."""


class RoiError(ConnectomixError, ValueError):
    """A region of interest does not fit the grid, the volume or another Roi."""


class VolumeError(ConnectomixError, ValueError):
    """An array has the wrong shape, dtype, voxel size or values."""


class VolumeNotFoundError(ConnectomixError, FileNotFoundError):
    """A named array or input file does not exist."""


class IncompleteVolumeError(ConnectomixError, RuntimeError):
    """An array exists but the run that writes it has not finished."""


class CorruptDataError(ConnectomixError, OSError):
    """Stored data (a chunk, a file) cannot be decoded."""


class InputFormatError(ConnectomixError, ValueError):
    """An input file has an unsupported or malformed format."""


class ConfigError(ConnectomixError, ValueError):
    """A configuration file or option is invalid."""


class RunDirectoryError(ConnectomixError, FileNotFoundError):
    """A path is not a connectomix run directory."""


class TableNotFoundError(ConnectomixError, KeyError):
    """A named table does not exist in the run."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class SchedulerError(ConnectomixError, ConnectionError):
    """A Dask scheduler cannot be reached or the cluster cannot start."""


class BlockError(ConnectomixError, RuntimeError):
    """A block function failed; carries the block's id and Rois.

    Parameters
    ----------
    message : str
        What went wrong.
    block_id : int
        The id of the failing block.
    read_roi, write_roi : Roi
        The block's regions, in nm.
    """

    def __init__(self, message: str, *, block_id: int, read_roi=None, write_roi=None):
        self.block_id = block_id
        self.read_roi = read_roi
        self.write_roi = write_roi
        super().__init__(
            f"block {block_id} (write {write_roi}, read {read_roi}) failed: {message}"
        )

    def __reduce__(self):
        # Keep the keyword-only fields when the error travels back from a Dask worker.
        return (_rebuild_block_error, (self.args[0], self.block_id, self.read_roi, self.write_roi))


def _rebuild_block_error(full_message, block_id, read_roi, write_roi):
    err = BlockError.__new__(BlockError)
    err.block_id, err.read_roi, err.write_roi = block_id, read_roi, write_roi
    Exception.__init__(err, full_message)
    return err


class DatasetNotFoundError(ConnectomixError, KeyError):
    """A named shipped dataset does not exist; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class TableFormatError(ConnectomixError, ValueError):
    """A table (neurons, edges, synapses, an edge list) has bad columns or values."""


class MissingDependencyError(ConnectomixError, ImportError):
    """An optional package that this feature needs is not installed."""


class ModelError(ConnectomixError, ValueError):
    """A trained model is missing, unreadable, for another task or does not fit its architecture."""
