"""The static file server serves its folder and nothing outside it."""

import http.client
import os
import warnings

import pytest

from connectomix.errors import ConfigError
from connectomix.viewer import serve_static
from connectomix.viewer._server import resolve_request


@pytest.fixture()
def served(tmp_path):
    root = tmp_path / "export"
    (root / "seg" / "mesh").mkdir(parents=True)
    (root / "seg" / "info").write_text('{"type": "segmentation"}')
    (root / "seg" / "mesh" / "12:0").write_text('{"fragments": ["12:0:0"]}')
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", root / "link-out")
    os.symlink(root / "seg" / "info", root / "link-in")
    with serve_static(root) as server:
        yield server, root


def _get(server, path, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    # send the path exactly as given (no client-side normalisation)
    conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    headers = dict(r.getheaders())
    conn.close()
    return r.status, body, headers


def test_serves_files_with_cors(served):
    server, _ = served
    assert server.url.startswith("http://127.0.0.1:")
    status, body, headers = _get(server, "/seg/info")
    assert status == 200 and body == b'{"type": "segmentation"}'
    assert headers["Access-Control-Allow-Origin"] == "*"
    # neuroglancer asks for mesh manifests with an escaped colon
    assert _get(server, "/seg/mesh/12%3A0")[0] == 200
    assert _get(server, "/seg/info?x=1#frag")[0] == 200
    assert _get(server, "/link-in")[0] == 200
    assert _get(server, "/seg/info", method="HEAD")[:2] == (200, b"")


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/seg/../../secret.txt", "/%2e%2e/secret.txt", "/seg/%2E%2E/%2e%2e/secret.txt",
    "/..%2fsecret.txt", "/seg/..%5c..%5csecret.txt", "//etc/passwd", "/%2fetc%2fpasswd", "/link-out",
    "/seg", "/", "/missing", "/seg/info%00", "/%252e%252e/secret.txt",
])
def test_nothing_outside_the_folder_and_no_listings(served, path):
    server, _ = served
    status, body, _ = _get(server, path)
    assert status == 404
    assert b"outside" not in body and b"root:" not in body


def test_resolve_request_unit(tmp_path):
    root = tmp_path.resolve()
    (root / "a").write_text("x")
    assert resolve_request(root, "/a") == root / "a"
    assert resolve_request(root, "/./a") == root / "a"
    for bad in ("/../a", "/a/..", "/%2e%2e/a", "/a\\b", "/\x00"):
        assert resolve_request(root, bad) is None


def test_public_bind_warns_and_bad_root_is_refused(tmp_path):
    with pytest.warns(UserWarning, match="not 127.0.0.1"):
        server = serve_static(tmp_path, bind="0.0.0.0")
    server.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        serve_static(tmp_path).close()
    with pytest.raises(ConfigError, match="not a folder"):
        serve_static(tmp_path / "nope")
