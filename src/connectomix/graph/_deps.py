"""Import optional packages inside functions, with one clear message when missing."""

from __future__ import annotations

import importlib

from ..errors import MissingDependencyError

__all__ = ["require"]

# Which pip requirement brings each optional module, for the error message.
_PIP_NAMES = {
    "igraph": "python-igraph",
    "matplotlib": "matplotlib",
    "networkx": "networkx",
    "cect": "cect",
    "navis": "navis",
}


def require(module: str, *, feature: str):
    """Import an optional module or raise :class:`MissingDependencyError`.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"igraph"``.
    feature : str
        What needs it, for the message (``"Leiden modules"``).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingDependencyError
        If the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pip_name = _PIP_NAMES.get(module, module)
        raise MissingDependencyError(
            f"{feature} needs the optional package {pip_name!r}, which is not installed "
            f"({exc}); install it with `pip install {pip_name}` or "
            "`pip install connectomix[analysis]`"
        ) from exc
