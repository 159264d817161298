"""``view``: a local neuroglancer viewer of a run.

The run is exported once to ``RUN/precomputed/`` (reused while the run is
unchanged), served by :class:`StaticServer`, and opened in a neuroglancer viewer
whose client the ``neuroglancer`` package bundles (nothing is fetched from the
internet). Both servers bind to 127.0.0.1 unless ``bind`` says otherwise.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ..errors import ConfigError
from ._export import export_precomputed, run_fingerprint
from ._server import StaticServer, warn_if_public

__all__ = ["view", "ViewerSession"]

logger = logging.getLogger(__name__)


class ViewerSession:
    """A running viewer: its URL, the neuroglancer ``Viewer`` and the data server.

    Call :meth:`wait` to block until interrupted (Ctrl+C), :meth:`close` to stop.
    """

    def __init__(self, viewer, server: StaticServer, export_dir: Path, state: dict):
        self.viewer = viewer
        self.server = server
        self.export_dir = export_dir
        self.state = state
        self.url = viewer.get_viewer_url()

    @property
    def data_url(self) -> str:
        return self.server.url

    def wait(self) -> None:
        """Block until Ctrl+C (KeyboardInterrupt), then stop the servers."""
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def close(self) -> None:
        import neuroglancer

        self.server.close()
        neuroglancer.stop()

    def __enter__(self) -> "ViewerSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ViewerSession({self.url!r}, data at {self.data_url})"


def _export_dir(run, neurons, export_dir):
    """Reuse ``RUN/precomputed`` when it was made from this run's current state."""
    out = Path(export_dir) if export_dir is not None else run.path / "precomputed"
    ids = None if neurons is None else sorted({int(n) for n in neurons})
    manifest = out / "export.json"
    if manifest.exists():
        try:
            m = json.loads(manifest.read_text())
        except ValueError:
            m = {}
        if m.get("fingerprint") == run_fingerprint(run) and m.get("neurons") == ids:
            return out
    return export_precomputed(run.path, out, neurons=ids)


def view(run_path, *, bind: str = "127.0.0.1", port: int = 0, neurons=None, data_port: int = 0,
         export_dir=None) -> ViewerSession:
    """Start a local neuroglancer viewer of a run.

    Parameters
    ----------
    run_path : str or Path
        A run directory.
    bind : str
        Address both servers listen on (127.0.0.1 by default; anything else warns).
    port : int
        The viewer's port (0: a free one).
    neurons : iterable of int, optional
        Segments to select (their meshes and skeletons show in 3D); default all.
    data_port : int
        The data server's port (0: a free one).
    export_dir : str or Path, optional
        Where the precomputed copy goes (default ``RUN/precomputed``).

    Returns
    -------
    ViewerSession
        ``.url`` is the address to open; ``.wait()`` blocks until Ctrl+C.

    Layers: the image (``aligned`` or ``raw``), ``segmentation`` with meshes, ``ground
    truth`` when present, ``skeletons``, ``synapses`` (annotations linked to the
    segmentation through their ``pre`` and ``post`` relationships: select a synapse to
    see its partners, or a neuron to list its synapses). Scales are the voxel size in
    nm, anisotropic.
    """
    try:
        import neuroglancer
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError("the viewer needs the 'neuroglancer' package: pip install neuroglancer") from e
    from ..run import Run

    run = Run(run_path)
    warn_if_public(bind, "the neuroglancer viewer")
    out = _export_dir(run, neurons, export_dir)
    server = StaticServer(out, bind=bind, port=data_port)
    try:
        neuroglancer.set_server_bind_address(bind, int(port))
        viewer = neuroglancer.Viewer()
        template = json.loads((out / "state.json").read_text())
        state = json.loads(json.dumps(template).replace("precomputed://http://127.0.0.1:8000",
                                                         f"precomputed://{server.url}"))
        if neurons is not None:
            for layer in state["layers"]:
                if "segments" in layer:
                    layer["segments"] = [str(int(n)) for n in neurons]
        viewer.set_state(neuroglancer.ViewerState(state))
    except BaseException:
        server.close()
        raise
    session = ViewerSession(viewer, server, out, state)
    logger.info("neuroglancer viewer of %s at %s (data from %s)", run.path, session.url, server.url)
    return session
