"""A headless Chromium driven over its DevTools protocol, for tests that look at a rendered JS app.

`--dump-dom` takes one snapshot after a fixed (virtual) time; the Prefect UI fetches its data after
it loads, so on a busy machine a snapshot can come too early. Here a test waits until the text it
expects is on the page (or a deadline passes) and then reads the DOM or takes a screenshot. The
flags are the ones known to work on this closed network (no background connections, no GPU).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

INSTALL_HINT = "apt-get install -y chromium-headless-shell"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--hide-scrollbars"]


def find_chromium() -> str | None:
    return shutil.which("chromium-headless-shell") or shutil.which("chromium")


class Page:
    """One browser tab: navigate, wait for text, read the DOM, screenshot."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._socket.recv(timeout=60))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}: {reply['error']}")
                return reply.get("result", {})

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def html(self) -> str:
        return self.evaluate("document.documentElement ? document.documentElement.outerHTML : ''") or ""

    def wait_for_text(self, *needles: str, timeout_s: float = 60) -> str:
        """The page's visible text once every needle is in it; AssertionError with what is there after the deadline."""
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.5)
        missing = [n for n in needles if n not in text]
        raise AssertionError(f"page {self.evaluate('location.href')} never showed {missing} in {timeout_s:.0f} s; "
                             f"it shows:\n{text[:3000]}")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path


@contextmanager
def headless_chromium(chromium: str, profile_dir: Path, width: int = 1400, height: int = 1000) -> Iterator[Page]:
    """A fresh Chromium (its own empty profile) with one page of `width` x `height`; stopped on exit."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    # Its own process group: Debian's chromium-headless-shell is a shell script that runs the browser as a child,
    # so stopping the script alone would leave the browser (and its helpers) running after the tests.
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        port_file = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{chromium} did not start (exit {proc.poll()}): {proc.stderr.read().decode()[-2000:]}"
                                   if proc.poll() is not None else f"{chromium} wrote no DevToolsActivePort in 60 s")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        with connect(page_url, max_size=None, open_timeout=30) as socket:
            page = Page(socket)
            page.call("Page.enable")
            page.resize(width, height)
            yield page
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the browser's whole process group, SIGKILL to what is left after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        proc.poll()  # reap the script itself, or the group never empties
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
