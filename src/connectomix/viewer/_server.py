"""A static file server for one folder: an exported precomputed dataset.

It serves files below its root and nothing else: request paths are normalised,
``..`` and absolute components are refused, symbolic links that lead outside the
root are refused, and there are no directory listings. It adds CORS headers so a
neuroglancer client on another port can read the data. It binds to 127.0.0.1 unless
told otherwise, and warns when told otherwise.
"""

from __future__ import annotations

import collections
import http.server
import logging
import os
import threading
import urllib.parse
import warnings
from pathlib import Path

from ..errors import ConfigError

__all__ = ["StaticServer", "serve_static", "LOCAL_HOSTS", "warn_if_public"]

logger = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def warn_if_public(bind: str, what: str) -> None:
    """Warn that a server bound to ``bind`` is reachable from other machines."""
    if bind not in LOCAL_HOSTS:
        warnings.warn(
            f"{what} binds to {bind!r}, not 127.0.0.1: anyone who can reach this machine on that "
            "address can read the run's data", UserWarning, stacklevel=3)


def resolve_request(root: Path, url_path: str) -> Path | None:
    """The file a request path names inside ``root``, or None if it names none there.

    ``root`` must be resolved (absolute, no links). Query strings and fragments are
    ignored; percent-escapes are decoded once; any ``..``, empty-drive or absolute
    component, NUL byte or backslash makes the request invalid.
    """
    path = urllib.parse.urlsplit(url_path).path
    path = urllib.parse.unquote(path, errors="strict") if "%" in path else path
    if "\x00" in path or "\\" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." or ":" in p and os.name == "nt" for p in parts):
        return None
    candidate = root.joinpath(*parts) if parts else root
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if real != root and root not in real.parents:
        return None
    if not real.is_file():
        return None
    return real


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "connectomix-static"
    root: Path  # set on the subclass made per server
    requested: "collections.deque"  # (path, status) of recent requests, ditto

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        logger.debug("static %s: " + format, self.address_string(), *args)

    def _cors(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Range, Content-Type")

    def do_OPTIONS(self):  # noqa: N802 - http.server naming
        self.send_response(204)
        self._cors()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, body: bool):
        target = resolve_request(self.root, self.path)
        self.requested.append((self.path, 200 if target is not None else 404))
        if target is None:
            self.send_response(404)
            self._cors()
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            msg = b"not found\n"
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            if body:
                self.wfile.write(msg)
            return
        data = target.read_bytes()
        self.send_response(200)
        self._cors()
        ctype = "application/json" if target.name.endswith(".json") or target.name == "info" else \
            "application/octet-stream"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._serve(True)

    def do_HEAD(self):  # noqa: N802
        self._serve(False)


class StaticServer:
    """A running static server (use as a context manager, or call :meth:`close`).

    Attributes
    ----------
    root : Path
        The folder served.
    url : str
        ``http://HOST:PORT`` (no trailing slash).
    """

    def __init__(self, root, *, bind: str = "127.0.0.1", port: int = 0):
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"cannot serve {root}: it is not a folder")
        warn_if_public(bind, "the static file server")
        self.root = root.resolve(strict=True)
        #: (request path, status) of the most recent requests, oldest first
        self.requested: collections.deque = collections.deque(maxlen=10000)
        handler = type("Handler", (_Handler,), {"root": self.root, "requested": self.requested})
        cls = http.server.ThreadingHTTPServer
        if ":" in bind:
            cls = type("Server6", (http.server.ThreadingHTTPServer,), {"address_family": __import__("socket").AF_INET6})
        self._httpd = cls((bind, int(port)), handler)
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        shown = "127.0.0.1" if bind in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
        self.url = f"http://{shown}:{port}"
        self.port = int(port)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="connectomix-static", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "StaticServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StaticServer({str(self.root)!r} at {self.url})"


def serve_static(root, *, bind: str = "127.0.0.1", port: int = 0) -> StaticServer:
    """Serve the files below ``root`` over HTTP in a background thread.

    Parameters
    ----------
    root : str or Path
        The folder (an export made by :func:`export_precomputed`).
    bind : str
        Address to listen on; anything but 127.0.0.1/localhost/::1 warns.
    port : int
        0 picks a free port.

    Returns
    -------
    StaticServer
    """
    return StaticServer(root, bind=bind, port=port)
