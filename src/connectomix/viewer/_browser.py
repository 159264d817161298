"""Drive a headless Chromium through the DevTools protocol (for tests and screenshots).

Only the system browser is used (never a download): ``$CONNECTOMIX_BROWSER``, else
``chromium``, ``chromium-browser``, ``google-chrome`` or ``google-chrome-stable`` on
``PATH``. WebGL works without a GPU through SwiftShader. The DevTools endpoint binds
to 127.0.0.1 only. Needs the ``websocket-client`` package.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from ..errors import ConnectomixError

__all__ = ["find_browser", "Browser", "BROWSER_FLAGS"]

#: Flags for a headless, sandbox-less (root), offline-quiet Chromium with software WebGL.
BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-background-networking", "--no-first-run",
    "--no-default-browser-check", "--disable-gpu-sandbox", "--use-gl=angle", "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader", "--disable-extensions", "--disable-component-update",
    "--disable-sync", "--mute-audio", "--hide-scrollbars", "--allow-file-access-from-files",
)


def find_browser() -> str | None:
    """The path of a Chromium-family browser, or None."""
    env = os.environ.get("CONNECTOMIX_BROWSER")
    if env:
        return env if shutil.which(env) or os.path.exists(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(ConnectomixError, RuntimeError):
    """The browser did not start, or a DevTools command failed."""


class Browser:
    """A headless Chromium with one page, driven over the DevTools protocol.

    Use as a context manager. ``console_errors`` collects console errors and uncaught
    exceptions of the page.
    """

    def __init__(self, *, executable: str | None = None, width: int = 1280, height: int = 900,
                 timeout: float = 30.0):
        import websocket

        exe = executable or find_browser()
        if exe is None:
            raise BrowserError("no Chromium browser found (set CONNECTOMIX_BROWSER or install 'chromium')")
        self._profile = tempfile.mkdtemp(prefix="connectomix-chromium-")
        args = [exe, *BROWSER_FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.console_errors: list[str] = []
        self.events: list[dict] = []
        self._id = 0
        try:
            port = self._devtools_port(timeout)
            page = self._page_target(port, timeout)
            self._ws = websocket.create_connection(page, timeout=timeout, suppress_origin=True)
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout) -> int:
        deadline = time.monotonic() + timeout
        active = os.path.join(self._profile, "DevToolsActivePort")
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrowserError(f"the browser exited with status {self._proc.returncode}: "
                                   f"{(self._proc.stderr.read() or '')[-2000:]}")
            if os.path.exists(active):
                lines = open(active).read().split()
                if lines:
                    return int(lines[0])
            time.sleep(0.05)
        raise BrowserError(f"the browser did not open its DevTools port within {timeout} s")

    def _page_target(self, port, timeout) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    targets = json.load(r)
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            time.sleep(0.1)
        raise BrowserError("the browser has no page to drive")

    # ------------------------------------------------------------------ protocol
    def _record(self, msg: dict) -> None:
        method = msg.get("method")
        if method is None:
            return
        self.events.append(msg)
        p = msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.console_errors.append(f"console.{p['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console_errors.append(
                f"uncaught: {d.get('exception', {}).get('description') or d.get('text')}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.console_errors.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}")

    def _recv(self, timeout: float) -> dict | None:
        import websocket

        self._ws.settimeout(timeout)
        try:
            return json.loads(self._ws.recv())
        except websocket.WebSocketTimeoutException:
            return None

    def send(self, method: str, *, timeout: float = 30.0, **params) -> dict:
        """Send one DevTools command and return its result."""
        self._id += 1
        mid = self._id
        self._ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"DevTools command {method} got no answer within {timeout} s")
            msg = self._recv(left)
            if msg is None:
                continue
            if msg.get("id") == mid:
                if "error" in msg:
                    raise BrowserError(f"DevTools {method} failed: {msg['error']}")
                return msg.get("result", {})
            self._record(msg)

    def pump(self, seconds: float) -> None:
        """Collect events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self._recv(min(left, 0.2))
            if msg is not None:
                self._record(msg)

    # ------------------------------------------------------------------ page
    def goto(self, url: str, *, timeout: float = 30.0) -> None:
        """Navigate and wait for the load event."""
        n0 = len(self.events)
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events[n0:]):
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not finish loading within {timeout} s")
            self.pump(0.1)

    def evaluate(self, expression: str, *, timeout: float = 30.0):
        """Evaluate a JavaScript expression in the page; return its value (JSON-able)."""
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True,
                        timeout=timeout)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise BrowserError(f"JavaScript failed: {d.get('exception', {}).get('description') or d.get('text')}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, *, timeout: float = 30.0, interval: float = 0.25):
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout} s waiting for: {expression}")
            self.pump(interval)

    def screenshot(self, *, full_page: bool = False) -> bytes:
        """A PNG of the page (the viewport, or the whole page)."""
        params = {"format": "png"}
        if full_page:
            m = self.send("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        return base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        if self._proc.stderr:
            self._proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
