"""``blockqnn report RUN --serve``: the report page served live on 127.0.0.1.

``/`` is the page (:func:`blockqnn.report.html.report_html` with ``live=True``), whose
script fetches ``/data.json`` every two seconds (less often for pages that take long to
render); the runs are read again whenever a database file (``run.db`` or its write-ahead
log) changed, so the page follows a search that is still writing. The server only reads
(it calls no write method of the store) and binds to the loopback interface only. One
request at a time: a report has one viewer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from blockqnn.errors import UserError
from blockqnn.report.html import RunDirs, as_list, payload, report_html
from blockqnn.search import DB_NAME

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


class ServeError(OSError, UserError):
    """The report cannot be served (the port is taken or not allowed)."""


def make_server(run_dirs: RunDirs, port: int = 0) -> HTTPServer:
    """A server of the live report of ``run_dirs`` on ``127.0.0.1:port`` (0: any free
    port; ``server.server_address`` tells which). Checks the runs can be read first
    (StoreError otherwise). Call ``serve_forever()`` and, from another thread,
    ``shutdown()``; ``server_close()`` frees the port."""
    dirs = as_list(run_dirs)
    page = report_html(dirs, live=True).encode()
    data = _DataCache(dirs)
    data.get()  # fail now, not on the first request, if a run is unreadable
    routes: dict[str, tuple[str, Callable[[], bytes]]] = {
        "/": ("text/html; charset=utf-8", lambda: page),
        "/data.json": ("application/json", data.get),
    }
    return HTTPServer((HOST, port), _handler(routes))


class _DataCache:
    """``/data.json``'s body, read again only when a run database's files changed."""

    def __init__(self, dirs: list[Path]) -> None:
        self._dirs = dirs
        self._stamp: tuple | None = None
        self._body = b""

    def _files_stamp(self) -> tuple:
        files = (d / DB_NAME for d in self._dirs)
        return tuple(_stat(p) for f in files for p in (f, f.with_name(f.name + "-wal")))

    def get(self) -> bytes:
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


def _handler(routes: dict[str, tuple[str, Callable[[], bytes]]]) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path not in routes:
                self.send_error(404)
                return
            kind, body = routes[path]
            data = body()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            logger.debug("%s " + format, self.address_string(), *args)

    return Handler


def serve(run_dirs: RunDirs, port: int) -> None:
    """Serve the live report until Ctrl-C (KeyboardInterrupt), then free the port.

    Raises ValueError when the port cannot be bound (in use, or not allowed)."""
    try:
        server = make_server(run_dirs, port)
    except OSError as exc:
        raise ServeError(f"cannot serve on {HOST}:{port} ({exc.strerror or exc})") from exc
    host, bound = server.server_address[:2]
    print(f"serving the live report on http://{host}:{bound}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("report server stopped")
    finally:
        server.server_close()
