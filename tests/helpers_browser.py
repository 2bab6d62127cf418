"""A real headless Chromium driven over the DevTools protocol, for tests of web pages.

Chromium runs with ``--remote-debugging-pipe``: commands go in on its file descriptor 3
and replies come out on 4, as JSON messages ended by a NUL byte, so no websocket client
(and no port) is needed. :class:`Browser` opens one page, evaluates JavaScript in it and
records console errors, uncaught exceptions and every network request the page makes.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_S = 60.0


class BrowserError(RuntimeError):
    """A DevTools command failed, or the page threw while evaluating an expression."""


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900) -> None:
        if not CHROMIUM.exists():
            pytest.fail(f"{CHROMIUM} is missing: the test setup installs Debian's chromium")
        commands_in, self._commands = os.pipe()
        self._replies, replies_out = os.pipe()
        # bash puts the pipe ends on descriptors 3 and 4, where Chromium expects them
        redirect = f'exec "$0" "$@" 3<&{commands_in} 4>&{replies_out}'
        command = [
            "bash", "-c", redirect, str(CHROMIUM), "--headless", "--no-sandbox",
            "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-quic", f"--user-data-dir={profile}", f"--window-size={width},{height}",
            "about:blank",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(commands_in, replies_out),
        )
        os.close(commands_in)
        os.close(replies_out)
        self._inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next_id = 0
        self._session: str | None = None
        self.errors: list[str] = []
        self.requests: list[str] = []
        self._loaded = threading.Event()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop this Chromium (politely, then by force)."""
        with contextlib.suppress(BrowserError, OSError):
            self.send("Browser.close", session=False)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)

    # -- protocol ---------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._replies, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._inbox.put(json.loads(message))
        os.close(self._replies)

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        """Send one command (to the page's session unless ``session`` is False); its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session is not None:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply["result"]
            self._event(reply)

    def _event(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description", details["text"]))
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value")) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Page.loadEventFired":
            self._loaded.set()

    def _drain(self) -> None:
        while True:
            try:
                self._event(self._inbox.get_nowait())
            except queue.Empty:
                return

    # -- page -------------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Open ``url`` in a fresh page and wait for its load event."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self._session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable")
        self._loaded.clear()
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + TIMEOUT_S
        while not self._loaded.is_set():
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not load in {TIMEOUT_S} s")
            self._event(self._inbox.get(timeout=TIMEOUT_S))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        self._drain()
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 20.0) -> Any:
        """Evaluate ``expression`` until it is truthy; its value (BrowserError on timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise BrowserError(f"{expression!r} stayed false for {timeout_s} s")
