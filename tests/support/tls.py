"""An https front for :class:`~tests.support.index.IndexServer`, with a self-signed certificate.

``TlsFront(index, directory)`` listens on one port of 127.0.0.1 and answers
both TLS (``https://127.0.0.1:PORT``) and plain HTTP (``http://127.0.0.1:PORT``,
the same host and port, as a TLS-terminating proxy with a wrong
X-Forwarded-Proto makes it look). Each request is passed to the index with
its headers; :attr:`records` says which scheme it came over and whether it
carried an ``Authorization`` header. With ``require_auth`` (user, password)
everything under /whl/ but the PEP 658 metadata files needs HTTP basic auth
(a 401 otherwise). With ``links_over_http`` the project pages link their
files as ``http://127.0.0.1:PORT/...``.

The certificate (``ca``) is made with the ``openssl`` binary for
``IP:127.0.0.1``; tell Poetry to trust it with
``POETRY_CERTIFICATES_<SOURCE>_CERT`` or ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING
from typing import Any

from tests.support.lifetime import StartStop


if TYPE_CHECKING:
    from pathlib import Path

    from typing_extensions import Self

    from tests.support.index import IndexServer

_FORWARDED = ("Accept", "Authorization", "Range", "User-Agent")


@dataclass(frozen=True)
class Seen:
    """One request the front passed on: scheme, path and its ``Authorization``."""

    scheme: str
    path: str
    authorization: str | None
    status: int


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (``openssl``, no shell)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    front: TlsFront

    def get_request(self) -> tuple[Any, Any]:
        connection, address = super().get_request()
        connection.settimeout(30)
        try:
            first = connection.recv(1, socket.MSG_PEEK)
        except OSError:
            first = b""
        if first == b"\x16":  # a TLS ClientHello
            connection = self.front.context.wrap_socket(connection, server_side=True)
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.front.forward(self)


class TlsFront(StartStop):
    """https and http on one port of 127.0.0.1, in front of ``index``."""

    def __init__(self, index: IndexServer, directory: Path) -> None:
        self.index = index
        self.ca, key = make_certificate(directory)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.ca, key)
        self.links_over_http = False
        #: Answer https requests for wheels with a redirect to plain http.
        self.redirect_files_over_http = False
        #: Answer https requests for index pages with a redirect to plain http.
        self.redirect_pages_over_http = False
        self.require_auth: tuple[str, str] | None = None
        self.records: list[Seen] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None

    def start(self) -> Self:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.front = self
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def plain_url(self) -> str:
        """``http://127.0.0.1:PORT``: the same host and port, in the clear."""
        return f"http://127.0.0.1:{self.port}"

    def over_http(self) -> list[Seen]:
        """The requests that came in the clear."""
        with self._lock:
            return [seen for seen in self.records if seen.scheme == "http"]

    def forward(self, handler: _Handler) -> None:
        scheme = "https" if isinstance(handler.connection, ssl.SSLSocket) else "http"
        headers = {
            name: value
            for name in _FORWARDED
            if (value := handler.headers.get(name)) is not None
        }
        headers["Accept"] = "text/html"  # pages we can rewrite
        page = handler.path.startswith("/whl/") and handler.path.endswith("/")
        if scheme == "https" and (
            (self.redirect_files_over_http and handler.path.endswith(".whl"))
            or (self.redirect_pages_over_http and page)
        ):
            location = [("Location", f"{self.plain_url}{handler.path}")]
            self._answer(handler, scheme, 302, location, b"")
            return
        if self._refused(handler):
            self._answer(handler, scheme, 401, [], b"401 Unauthorized\n")
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.index.port, timeout=60)
        try:
            upstream.request("GET", handler.path, headers=headers)
            response = upstream.getresponse()
            body = response.read()
            answer = [(k, v) for k, v in response.getheaders() if k != "Content-Length"]
            status = response.status
        finally:
            upstream.close()
        if self.links_over_http and handler.path.endswith("/") and status == 200:
            base = f"{self.plain_url}{handler.path}"
            body = re.sub(rb'href="(?!https?:)', f'href="{base}'.encode(), body)
        self._answer(handler, scheme, status, answer, body)

    def _refused(self, handler: _Handler) -> bool:
        if self.require_auth is None or not handler.path.startswith("/whl/"):
            return False
        if handler.path.endswith(".metadata"):
            return False
        pair = ":".join(self.require_auth).encode()
        wanted = "Basic " + base64.b64encode(pair).decode()
        return handler.headers.get("Authorization") != wanted

    def _answer(
        self,
        handler: _Handler,
        scheme: str,
        status: int,
        answer: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        with self._lock:
            self.records.append(
                Seen(scheme, handler.path, handler.headers.get("Authorization"), status)
            )
        handler.send_response(status)
        for name, value in answer:
            if name.lower() not in ("connection", "transfer-encoding"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
