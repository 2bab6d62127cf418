"""``blockqnn report RUN --serve``: the report page served live on 127.0.0.1.

``/`` is the page (:func:`blockqnn.report.html.report_html` with ``live=True``), whose
script fetches ``/data.json`` every two seconds (less often for pages that take long to
render); the runs are read again whenever a database file (``run.db`` or its write-ahead
log) changed, so the page follows a search that is still writing. The server only reads
(it calls no write method of the store) and binds to the loopback interface only.

Hostile clients are bounded: each connection is served by its own thread and dropped after
``TIMEOUT_S`` seconds of silence, so an idle connection blocks nobody; a request whose
``Host`` header is not ``127.0.0.1`` or ``localhost`` (with the served port) is refused
with 403, so a page of another site that rebinds its DNS name to 127.0.0.1 cannot read the
run's data; a run database that becomes unreadable (removed, corrupt) is answered with 503
and a JSON ``{"error": ...}`` saying what is wrong, and serving goes on; a client that
hangs up early is no error.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from blockqnn.errors import UserError
from blockqnn.report.html import RunDirs, as_list, payload, report_html
from blockqnn.search import DB_NAME

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Names a request may give in its ``Host`` header (with or without the served port).
LOCAL_NAMES = frozenset({HOST, "localhost"})
#: Seconds a connection may stay silent before it is dropped.
TIMEOUT_S = 10.0
#: What a route's body may raise when the runs cannot be read; answered with 503.
_UNREADABLE = (UserError, sqlite3.Error, OSError)


class ServeError(OSError, UserError):
    """The report cannot be served (the port is taken or not allowed)."""


class _Server(ThreadingHTTPServer):
    """One thread per connection; a client's hang-up or silence is logged, not printed."""

    daemon_threads = True
    #: The last unreadable-run message logged (each is logged once, not at every poll).
    last_error: str | None = None

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            logger.debug("report server: %s hung up", client_address[0])
        else:
            logger.exception("report server: request from %s failed", client_address[0])


def make_server(run_dirs: RunDirs, port: int = 0) -> ThreadingHTTPServer:
    """A server of the live report of ``run_dirs`` on ``127.0.0.1:port`` (0: any free
    port; ``server.server_address`` tells which). Checks the runs can be read first
    (StoreError otherwise) and the port (ServeError if it is not in 0-65535, in use or not
    allowed). Call ``serve_forever()`` and, from another thread, ``shutdown()``;
    ``server_close()`` frees the port."""
    if not 0 <= port <= 65535:
        raise ServeError(f"cannot serve on {HOST}:{port} (--port must be in 0-65535)")
    dirs = as_list(run_dirs)
    page = report_html(dirs, live=True).encode()
    data = _DataCache(dirs)
    data.get()  # fail now, not on the first request, if a run is unreadable
    routes: dict[str, tuple[str, Callable[[], bytes]]] = {
        "/": ("text/html; charset=utf-8", lambda: page),
        "/data.json": ("application/json", data.get),
    }
    try:
        return _Server((HOST, port), _handler(routes))
    except OSError as exc:
        raise ServeError(f"cannot serve on {HOST}:{port} ({exc.strerror or exc})") from exc


class _DataCache:
    """``/data.json``'s body, read again only when a run database's files changed."""

    def __init__(self, dirs: list[Path]) -> None:
        self._dirs = dirs
        self._stamp: tuple | None = None
        self._body = b""
        self._lock = threading.Lock()  # requests arrive on several threads

    def _files_stamp(self) -> tuple:
        files = (d / DB_NAME for d in self._dirs)
        return tuple(_stat(p) for f in files for p in (f, f.with_name(f.name + "-wal")))

    def get(self) -> bytes:
        """The JSON body; StoreError (or another of ``_UNREADABLE``) if a run cannot be read."""
        with self._lock:
            stamp = self._files_stamp()
            if stamp != self._stamp:
                self._body = json.dumps(payload(self._dirs)).encode()
                self._stamp = stamp
            return self._body


def _stat(path: Path) -> tuple[int, int] | None:
    """Modification time and size of ``path``, or None if it does not exist."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return (found.st_mtime_ns, found.st_size)


def _local_host(header: str | None, port: int) -> bool:
    """Whether a ``Host`` header names this server by a loopback name, with its port or
    none (the guard against DNS rebinding: another site's name resolving to 127.0.0.1)."""
    name, _, given = (header or "").strip().lower().partition(":")
    return name in LOCAL_NAMES and given in ("", str(port))


def _handler(routes: dict[str, tuple[str, Callable[[], bytes]]]) -> type:
    class Handler(BaseHTTPRequestHandler):
        timeout = TIMEOUT_S  # a silent connection is dropped, freeing its thread

        def do_GET(self) -> None:
            port = self.server.server_address[1]
            if not _local_host(self.headers.get("Host"), port):
                message = f"Host not allowed: open http://{HOST}:{port}/\n"
                self._reply(403, "text/plain; charset=utf-8", message.encode())
                return
            path = self.path.split("?", 1)[0]
            if path not in routes:
                self.send_error(404)
                return
            kind, body = routes[path]
            try:
                data = body()
            except _UNREADABLE as exc:
                if str(exc) != self.server.last_error:
                    logger.warning("report server: %s", exc)
                self.server.last_error = str(exc)
                self._reply(503, "application/json", json.dumps({"error": str(exc)}).encode())
                return
            self.server.last_error = None
            self._reply(200, kind, data)

        def _reply(self, status: int, kind: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)  # a client that hung up: see _Server.handle_error

        def log_message(self, format: str, *args) -> None:
            logger.debug("%s " + format, self.address_string(), *args)

    return Handler


def serve(run_dirs: RunDirs, port: int) -> None:
    """Serve the live report until Ctrl-C (KeyboardInterrupt), then free the port.

    Raises ServeError when the port cannot be bound (out of range, in use, not allowed)."""
    server = make_server(run_dirs, port)
    host, bound = server.server_address[:2]
    print(f"serving the live report on http://{host}:{bound}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("report server stopped")
    finally:
        server.server_close()
