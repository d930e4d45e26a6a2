"""Headless Chromium driven over the DevTools protocol, for browser tests.

Only the ``websockets`` client (a test dependency anyway) is needed: no
Selenium, no driver download. Chromium comes from Debian's ``chromium``
package, which ``.ci/run`` installs when missing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from typing import Any

from websockets.sync.client import connect

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with a fresh profile; tabs are DevTools sessions."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="telex-chromium-")
        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = self._devtools_url(timeout=60)
        self._stack = contextlib.ExitStack()
        self.socket = self._stack.enter_context(connect(url, max_size=None, open_timeout=30))
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []

    def _devtools_url(self, timeout: float) -> str:
        found: list[str] = []

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                match = re.search(r"DevTools listening on (ws://\S+)", line)
                if match:
                    found.append(match.group(1))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            raise RuntimeError("Chromium did not start its DevTools endpoint")
        return found[0]

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict[str, Any]:
        with self._lock:
            ident = next(self._ids)
            request: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
            if session:
                request["sessionId"] = session
            self.socket.send(json.dumps(request))
            while True:  # events arrive in between; keep them for wait_event
                reply = json.loads(self.socket.recv(timeout=60))
                if "id" not in reply:
                    self._events.append(reply)
                    continue
                if reply.get("id") == ident:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]

    def wait_event(self, method: str, session: str, timeout: float = 30.0) -> dict[str, Any]:
        with self._lock:
            while True:
                for event in self._events:
                    if event.get("method") == method and event.get("sessionId") == session:
                        self._events.remove(event)
                        return event
                self._events.append(json.loads(self.socket.recv(timeout=timeout)))

    def open_tab(self, url: str) -> Tab:
        """A new tab with ``url`` loaded (its load event has fired)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", {}, session)
        self.call("Page.navigate", {"url": url}, session)
        self.wait_event("Page.loadEventFired", session)
        return Tab(self, session)

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.process.kill()
            self.process.wait(10)
            shutil.rmtree(self.profile, ignore_errors=True)


class Tab:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript (promises awaited) and return its value."""
        result = self.browser.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            self.session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def wait_for(self, condition_js: str, timeout_ms: int = 30000) -> bool:
        """Wait inside the page until ``condition_js`` is truthy (no polling from here)."""
        return self.evaluate(
            "new Promise(resolve => { const started = Date.now(); const check = () => {"
            f" let ok = false; try {{ ok = ({condition_js}); }} catch (e) {{}}"
            " if (ok) resolve(true);"
            f" else if (Date.now() - started > {timeout_ms}) resolve(false);"
            " else setTimeout(check, 20); }; check(); })"
        )

    def screenshot(self, path: str) -> None:
        import base64

        data = self.browser.call("Page.captureScreenshot", {"format": "png"}, self.session)["data"]
        with open(path, "wb") as out:
            out.write(base64.b64decode(data))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
