"""Look at a run: a local neuroglancer viewer, a static precomputed export, a file server.

view                start a neuroglancer viewer of a run (127.0.0.1 by default)
ViewerSession       what ``view`` returns: its URL; ``wait()`` until Ctrl+C, ``close()``
export_precomputed  write a run as neuroglancer precomputed data + a viewer state
serve_static        serve one folder (an export) over HTTP, nothing outside it
StaticServer        the running server ``serve_static`` returns
"""

from ._export import export_precomputed
from ._server import StaticServer, serve_static
from ._view import ViewerSession, view

__all__ = ["view", "ViewerSession", "export_precomputed", "serve_static", "StaticServer"]
