"""A mirror with a layout of its own (Artifactory-like), in front of an :class:`IndexServer`.

Pages are served at ``/api/pypi/<variant>/simple/<project>/`` and link their
files at ``/artifactory/<variant>/<project>/<file>`` (and ``<file>.metadata``),
so a URL re-based from the origin's layout finds nothing here: files can only
be found by name on the mirror's own pages. :attr:`requests` lists the paths
asked. Use a second ``IndexServer`` over the same tree as ``backend`` when the
origin itself must stay silent.
"""

from __future__ import annotations

import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING
from typing import Any

from tests.support.lifetime import StartStop


if TYPE_CHECKING:
    from typing_extensions import Self

    from tests.support.index import IndexServer

_PAGE = re.compile(r"^/api/pypi/(?P<variant>[^/]+)/simple/(?P<project>[^/]+)/$")
_FILE = re.compile(r"^/artifactory/(?P<variant>[^/]+)/(?P<rest>[^/]+/[^/]+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.mirror.answer(self)


class ArtifactoryMirror(StartStop):
    """Serves ``backend``'s variant pages and files under its own layout."""

    def __init__(self, backend: IndexServer) -> None:
        self.backend = backend
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.mirror = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/api/pypi/{variant}/simple`` (a template)."""
        assert self._server is not None
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/api/pypi/{{variant}}/simple"

    def answer(self, handler: _Handler) -> None:
        self.requests.append(handler.path)
        page, file = _PAGE.match(handler.path), _FILE.match(handler.path)
        if page:
            status, body = self._get(f"/whl/{page['variant']}/{page['project']}/")
            prefix = f"/artifactory/{page['variant']}/{page['project']}/"
            body = re.sub(rb'href="', f'href="{prefix}'.encode(), body)
            kind = "text/html"
        elif file:
            status, body = self._get(f"/whl/{file['variant']}/{file['rest']}")
            kind = "application/octet-stream"
        else:
            status, body, kind = 404, b"not here\n", "text/plain"
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _get(self, path: str) -> tuple[int, bytes]:
        upstream = http.client.HTTPConnection(
            "127.0.0.1", self.backend.port, timeout=60
        )
        try:
            upstream.request("GET", path, headers={"Accept": "text/html"})
            response = upstream.getresponse()
            return response.status, response.read()
        finally:
            upstream.close()
