"""A local package index for tests: PEP 503 HTML, PEP 691 JSON, PEP 658 metadata.

``IndexServer(root)`` serves a tree built by :func:`tests.support.catalog.build_universe`::

    /simple/                      project list of root/pypi
    /simple/<project>/            links to root/pypi/<project>/*.whl
    /simple/<project>/<file>      the wheel (and <file>.metadata, PEP 658)
    /whl/                         list of variants (convenience, not a standard page)
    /whl/<variant>/               project list of root/whl/<variant>
    /whl/<variant>/<project>/     links, files and metadata as above

Project names in URLs are PEP 503-normalised before lookup, so
``/simple/Nvidia_Cublas/`` works. The tree is read on every request, so wheels
added while the server runs are visible at once.
"""

from __future__ import annotations

import base64
import dataclasses
import email.parser
import hashlib
import html
import json
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal
from urllib.parse import quote
from urllib.parse import unquote
from urllib.parse import urlsplit

from tests.support.lifetime import StartStop
from tests.support.wheels import canonical_name
from tests.support.wheels import read_wheel_metadata


if TYPE_CHECKING:
    from typing_extensions import Self


__all__ = ["JSON_TYPE", "IndexServer", "RequestRecord"]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"


@dataclass
class RequestRecord:
    """One request as the server saw it; ``status`` is 0 until it was answered."""

    method: str
    path: str
    accept: str
    authorization: str | None
    user_agent: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    content_type: str = ""
    #: ``time.monotonic()`` when the request arrived and when its answer was sent.
    started: float = 0.0
    finished: float = 0.0


@dataclass(frozen=True)
class _FileInfo:
    sha256: str
    size: int
    metadata: bytes
    metadata_sha256: str
    requires_python: str | None


def _negotiate(accept: str) -> str | None:
    """Pick a content type for a simple-API page from an Accept header.

    Returns ``JSON_TYPE``, ``HTML_V1_TYPE`` or ``TEXT_HTML``, or ``None`` if
    the client accepts none (406). A bare ``*/*`` (or no header) gets HTML, as
    PEP 691 asks; an explicit type beats a wildcard match at equal quality.
    """
    ranges: list[tuple[str, float]] = []
    for item in (accept or "*/*").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            param_name, _, value = param.partition("=")
            if param_name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))

    best: tuple[float, int, int] | None = None
    choice: str | None = None
    for preference, candidate in enumerate((TEXT_HTML, HTML_V1_TYPE, JSON_TYPE)):
        major = candidate.split("/")[0]
        match: tuple[int, float] | None = None  # (specificity, q) of best range
        for media, quality in ranges:
            if media == candidate:
                specificity = 2
            elif media == f"{major}/*":
                specificity = 1
            elif media == "*/*":
                specificity = 0
            else:
                continue
            if match is None or specificity > match[0]:
                match = (specificity, quality)
        if match is None or match[1] <= 0:
            continue
        exact = 1 if match[0] == 2 else 0
        rank = (match[1], exact, preference if exact else 0)
        if best is None or rank > best:
            best, choice = rank, candidate
    return choice


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: IndexServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response (timeouts, cancelled downloads) are
        # expected in tests; keep stderr quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "FakeIndex/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.owner._handle(self, head=False)

    def do_HEAD(self) -> None:
        self.server.owner._handle(self, head=True)


class IndexServer(StartStop):
    """A threaded HTTP index on 127.0.0.1 (random port) serving ``root``.

    Use as a context manager (or call :meth:`start` / :meth:`stop`). Fault
    injection attributes may be changed at any time, also while running:

    ``fail_paths``
        path prefix -> HTTP status returned instead of the content.
    ``delay_seconds``
        path prefix -> seconds to sleep before answering.
    ``held_paths``
        exact paths: requests for them wait (up to 120 s) until the path is
        removed, so a test decides when a download may go on.
    ``require_auth``
        ``(user, password)``: HTTP basic auth needed for paths under any of
        ``auth_paths`` (default: everything), else 401 with WWW-Authenticate.
    ``serve_json``
        answer PEP 691 JSON when the Accept header prefers it (default True).
        False: HTML only, like a static mirror.
    ``serve_metadata``
        advertise and serve PEP 658/714 ``<file>.metadata`` (default True).
        Without it Poetry falls back to HTTP range requests ("lazy wheel").
    ``serve_ranges``
        honour single ``Range: bytes=...`` requests on wheels with 206
        (default True, like PyPI's CDN). False: always 200 with the whole file.
    ``bad_hash_paths``
        path prefixes: files under them (e.g. ``/whl/cu130/torch/``) are listed
        with a ``sha256`` that does not match their bytes, like a corrupt mirror.
    ``tampered_paths``
        path prefixes: files under them are served with other bytes (a zip
        comment added) under the same name, and listed with the sha256 of those
        bytes: a compromised mirror, which only a lock of the old hash can tell.
    ``fail_retry_after``
        if set, injected failures carry ``Retry-After: <value>``. Poetry retries
        429/500/501/502/503/504 five times, sleeping Retry-After seconds (else
        0.5 s, 1 s, ... 2.5 s = 7.5 s in all), so ``"0"`` keeps such tests fast.
    ``bytes_per_second``
        if set, every response body is sent at most this fast on its connection,
        like a CDN capping each flow (default None: as fast as possible).
    ``gather(prefix, count, suffix="", wait=10.0)``
        requests under ``prefix`` ending in ``suffix`` wait (up to ``wait``
        seconds, less than Poetry's timeout, 15 s unless raised, so no retry
        counts) until ``count`` distinct paths have been asked for: a client
        that fetches them at once provably overlaps them, one that fetches one
        after another waits out ``wait`` once and overlaps fewer. A loaded
        machine may start a client's threads seconds apart: raise both to be safe.
    ``immutable_files``
        send ``Cache-Control: max-age=31536000, immutable`` with wheels and
        metadata files, as PyPI's and PyTorch's CDNs do, so pip's HTTP cache
        keeps them (default False).
    ``corrupt_paths``
        path prefixes: wheels under them are served with their last byte
        changed while the page lists the true sha256 (a transfer corrupted on
        the way, unlike ``tampered_paths``).
    ``hashless_paths``
        path prefixes: files under them are listed without a sha256.
    ``upper_hashes``
        list every sha256 (files and metadata) in uppercase, as PEP 503 allows
        and some mirrors do (default False).

    Prefixes are matched against the URL-decoded request path.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.fail_paths: dict[str, int] = {}
        self.delay_seconds: dict[str, float] = {}
        self.held_paths: set[str] = set()
        self.require_auth: tuple[str, str] | None = None
        self.auth_paths: tuple[str, ...] = ("/",)
        self.serve_json = True
        self.serve_metadata = True
        self.serve_ranges = True
        self.fail_retry_after: str | None = None
        self.bad_hash_paths: set[str] = set()
        self.tampered_paths: set[str] = set()
        self.bytes_per_second: float | None = None
        self.immutable_files = False
        self.corrupt_paths: set[str] = set()
        self.hashless_paths: set[str] = set()
        self.upper_hashes = False
        self._gather: tuple[str, str, int, float] | None = None
        self._gathered: set[str] = set()
        self._arrived = threading.Condition()
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._file_cache: dict[tuple[Path, int, int], _FileInfo] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"IndexServer:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def reset(self) -> None:
        """Forget requests and switch every fault injection and option off."""
        self.clear_requests()
        self.fail_paths.clear()
        self.delay_seconds.clear()
        self.held_paths.clear()
        self.require_auth = None
        self.auth_paths = ("/",)
        self.serve_json = True
        self.serve_metadata = True
        self.serve_ranges = True
        self.fail_retry_after = None
        self.bad_hash_paths.clear()
        self.tampered_paths.clear()
        self.bytes_per_second = None
        self._gather = None
        self.immutable_files = False
        self.corrupt_paths.clear()
        self.hashless_paths.clear()
        self.upper_hashes = False

    def gather(
        self, prefix: str, count: int, suffix: str = "", wait: float = 10.0
    ) -> None:
        """Hold requests under ``prefix`` (ending in ``suffix``) until ``count``
        arrived; one that waited ``wait`` seconds lets them all pass."""
        with self._arrived:
            self._gather, self._gathered = (prefix, suffix, count, wait), set()

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("IndexServer is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pypi_url(self) -> str:
        """The fake PyPI's simple index, ``http://127.0.0.1:PORT/simple/``."""
        return f"{self.url}/simple/"

    def whl_url(self, variant: str) -> str:
        """A variant index like ``https://download.pytorch.org/whl/cu129`` (no slash)."""
        return f"{self.url}/whl/{variant}"

    # -- request log ---------------------------------------------------------

    @property
    def requests(self) -> list[str]:
        """URL-decoded paths of all requests so far (a snapshot, oldest first)."""
        with self._lock:
            return [record.path for record in self._records]

    @property
    def records(self) -> list[RequestRecord]:
        """Full records of all requests so far (a snapshot, oldest first)."""
        with self._lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

    def max_overlap(self, prefix: str = "/", suffix: str = "") -> int:
        """The most requests under ``prefix`` (ending in ``suffix``) answered at one time;
        one whose thread has not yet noted its end (the client may have read the
        whole answer first) is still being answered now."""
        events: list[tuple[float, int]] = []
        now = time.monotonic()
        for record in self.records:
            if record.path.startswith(prefix) and record.path.endswith(suffix):
                events += [(record.started, 1), (record.finished or now, -1)]
        most = current = 0
        for _, step in sorted(events):
            current += step
            most = max(most, current)
        return most

    # -- serving -----------------------------------------------------------

    def _handle(self, handler: _Handler, *, head: bool) -> None:
        raw_path = urlsplit(handler.path).path
        path = unquote(raw_path)
        record = RequestRecord(
            method=handler.command,
            path=path,
            accept=handler.headers.get("Accept", ""),
            authorization=handler.headers.get("Authorization"),
            user_agent=handler.headers.get("User-Agent", ""),
            headers=dict(handler.headers.items()),
            started=time.monotonic(),
        )
        with self._lock:
            self._records.append(record)
        gather = self._gather
        if gather and path.startswith(gather[0]) and path.endswith(gather[1]):
            with self._arrived:
                self._gathered.add(path)
                self._arrived.notify_all()

                def over() -> bool:
                    return len(self._gathered) >= gather[2] or self._gather != gather

                if not self._arrived.wait_for(over, gather[3]):
                    self._gather = None  # waited out: the rest pass at once
                    self._arrived.notify_all()

        delay = _match_prefix(dict(self.delay_seconds), path)
        if delay:
            time.sleep(delay)
        held_until = time.monotonic() + 120
        while path in self.held_paths:
            if time.monotonic() > held_until:
                break
            time.sleep(0.02)

        auth = self.require_auth
        if (
            auth is not None
            and any(path.startswith(prefix) for prefix in self.auth_paths)
            and record.authorization != _basic(*auth)
        ):
            self._send(
                handler,
                record,
                HTTPStatus.UNAUTHORIZED,
                b"401 Unauthorized\n",
                "text/plain",
                head=head,
                headers={"WWW-Authenticate": 'Basic realm="fake-index"'},
            )
            return

        status = _match_prefix(dict(self.fail_paths), path)
        if status:
            body = f"{status} injected failure\n".encode()
            retry_after = self.fail_retry_after
            self._send(
                handler,
                record,
                status,
                body,
                "text/plain",
                head=head,
                headers={"Retry-After": retry_after} if retry_after else None,
            )
            return

        try:
            self._route(handler, record, raw_path, path, head=head)
        except _NotFound:
            self._send(
                handler, record, 404, b"404 Not Found\n", "text/plain", head=head
            )

    def _route(
        self,
        handler: _Handler,
        record: RequestRecord,
        raw_path: str,
        path: str,
        *,
        head: bool,
    ) -> None:
        parts = path.split("/")[1:]  # "/simple/x/" -> ["simple", "x", ""]
        if parts == [""]:
            body = _html_list("Fake index", ["simple/", "whl/"])
            self._send(handler, record, 200, body, TEXT_HTML, head=head)
            return
        if parts[0] == "simple":
            directory, rest = self.root / "pypi", parts[1:]
        elif parts[0] == "whl" and len(parts) >= 2:
            if parts[1] == "":
                if len(parts) != 2:
                    raise _NotFound
                whl = self.root / "whl"
                names = sorted(p.name for p in whl.iterdir() if p.is_dir())
                body = _html_list("Variants", [f"{n}/" for n in names])
                self._send(handler, record, 200, body, TEXT_HTML, head=head)
                return
            directory, rest = self.root / "whl" / parts[1], parts[2:]
            if not rest:  # /whl/cu129 -> /whl/cu129/
                self._redirect(handler, record, raw_path + "/", head=head)
                return
        else:
            raise _NotFound
        if not directory.is_dir():
            raise _NotFound

        if not rest:  # "/simple" -> "/simple/"
            self._redirect(handler, record, raw_path + "/", head=head)
        elif rest == [""]:
            self._root_page(handler, record, directory, head=head)
        elif len(rest) == 1:  # "/simple/torch" -> "/simple/torch/"
            self._redirect(handler, record, raw_path + "/", head=head)
        elif len(rest) == 2 and rest[1] == "":
            self._project_page(handler, record, directory, rest[0], head=head)
        elif len(rest) == 2:
            self._file(handler, record, directory, rest[0], rest[1], head=head)
        else:
            raise _NotFound

    def _root_page(
        self, handler: _Handler, record: RequestRecord, directory: Path, *, head: bool
    ) -> None:
        names = sorted(p.name for p in directory.iterdir() if p.is_dir())
        content_type = self._content_type(handler)
        if content_type is None:
            self._send(
                handler, record, 406, b"406 Not Acceptable\n", "text/plain", head=head
            )
            return
        if content_type == JSON_TYPE:
            data = {
                "meta": {"api-version": "1.1"},
                "projects": [{"name": n} for n in names],
            }
            body = json.dumps(data).encode()
        else:
            body = _html_list("Simple index", [f"{n}/" for n in names], names)
        self._send(handler, record, 200, body, content_type, head=head, page=True)

    def _project_page(
        self,
        handler: _Handler,
        record: RequestRecord,
        directory: Path,
        project: str,
        *,
        head: bool,
    ) -> None:
        name = canonical_name(project)
        project_dir = directory / name
        if not project_dir.is_dir():
            raise _NotFound
        content_type = self._content_type(handler)
        if content_type is None:
            self._send(
                handler, record, 406, b"406 Not Acceptable\n", "text/plain", head=head
            )
            return
        wheels = sorted(project_dir.glob("*.whl"))
        infos = [(path.name, self._file_info(path)) for path in wheels]
        tampered = tuple(self.tampered_paths)
        infos = [
            (
                name,
                _tampered_info(info, path.read_bytes())
                if (record.path + name).startswith(tampered)
                else info,
            )
            for (name, info), path in zip(infos, wheels)
        ]
        bad = tuple(self.bad_hash_paths)
        infos = [
            (name, _wrong_hash(info) if (record.path + name).startswith(bad) else info)
            for name, info in infos
        ]
        none = tuple(self.hashless_paths)
        infos = [
            (
                name,
                dataclasses.replace(info, sha256="")
                if (record.path + name).startswith(none)
                else info,
            )
            for name, info in infos
        ]
        if self.upper_hashes:
            infos = [
                (
                    n,
                    dataclasses.replace(
                        i,
                        sha256=i.sha256.upper(),
                        metadata_sha256=i.metadata_sha256.upper(),
                    ),
                )
                for n, i in infos
            ]
        if content_type == JSON_TYPE:
            body = self._json_page(name, infos)
        else:
            body = self._html_page(name, infos)
        self._send(handler, record, 200, body, content_type, head=head, page=True)

    def _json_page(self, name: str, infos: list[tuple[str, _FileInfo]]) -> bytes:
        files: list[dict[str, Any]] = []
        versions: list[str] = []
        for filename, info in infos:
            entry: dict[str, Any] = {
                "filename": filename,
                "url": quote(filename),
                "hashes": {"sha256": info.sha256} if info.sha256 else {},
                "size": info.size,
                "yanked": False,
            }
            if info.requires_python:
                entry["requires-python"] = info.requires_python
            if self.serve_metadata:
                entry["core-metadata"] = {"sha256": info.metadata_sha256}
                entry["dist-info-metadata"] = {"sha256": info.metadata_sha256}
            files.append(entry)
            version = filename.split("-")[1]
            if version not in versions:
                versions.append(version)
        data = {
            "meta": {"api-version": "1.1"},
            "name": name,
            "versions": versions,
            "files": files,
        }
        return json.dumps(data).encode()

    def _html_page(self, name: str, infos: list[tuple[str, _FileInfo]]) -> bytes:
        lines = [
            "<!DOCTYPE html>",
            "<html><head>",
            '<meta name="pypi:repository-version" content="1.1">',
            f"<title>Links for {html.escape(name)}</title>",
            "</head><body>",
            f"<h1>Links for {html.escape(name)}</h1>",
        ]
        for filename, info in infos:
            fragment = f"#sha256={info.sha256}" if info.sha256 else ""
            attrs = f'href="{quote(filename)}{fragment}"'
            if info.requires_python:
                attrs += f' data-requires-python="{html.escape(info.requires_python)}"'
            if self.serve_metadata:
                value = f"sha256={info.metadata_sha256}"
                attrs += (
                    f' data-core-metadata="{value}" data-dist-info-metadata="{value}"'
                )
            lines.append(f"<a {attrs}>{html.escape(filename)}</a><br/>")
        lines.append("</body></html>")
        return ("\n".join(lines) + "\n").encode()

    def _file(
        self,
        handler: _Handler,
        record: RequestRecord,
        directory: Path,
        project: str,
        filename: str,
        *,
        head: bool,
    ) -> None:
        project_dir = directory / canonical_name(project)
        if "/" in filename or filename.startswith("."):
            raise _NotFound
        if filename.endswith(".metadata"):
            wheel = project_dir / filename[: -len(".metadata")]
            if not self.serve_metadata or not wheel.is_file():
                raise _NotFound
            body = self._file_info(wheel).metadata
            self._send(
                handler,
                record,
                200,
                body,
                "application/octet-stream",
                head=head,
                headers=self._file_headers(),
            )
            return
        path = project_dir / filename
        if not path.is_file():
            raise _NotFound
        data = path.read_bytes()
        if record.path.startswith(tuple(self.tampered_paths)):
            data = tamper_bytes(data)
        if record.path.startswith(tuple(self.corrupt_paths)):
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        headers = self._file_headers()
        if self.serve_ranges:
            headers["Accept-Ranges"] = "bytes"
        wanted = _parse_range(handler.headers.get("Range"), len(data))
        status: int
        if wanted is None or not self.serve_ranges:
            status = 200
        elif wanted == "unsatisfiable":
            status = HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
            headers["Content-Range"] = f"bytes */{len(data)}"
            data = b""
        else:
            status = HTTPStatus.PARTIAL_CONTENT
            start, end = wanted
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data = data[start : end + 1]
        self._send(
            handler,
            record,
            status,
            data,
            "application/octet-stream",
            head=head,
            headers=headers,
        )

    # -- helpers -----------------------------------------------------------

    def _file_headers(self) -> dict[str, str]:
        if self.immutable_files:
            return {"Cache-Control": "max-age=31536000, immutable"}
        return {}

    def _content_type(self, handler: _Handler) -> str | None:
        chosen = _negotiate(handler.headers.get("Accept", ""))
        if chosen == JSON_TYPE and not self.serve_json:
            # A static HTML-only mirror ignores the Accept header.
            return TEXT_HTML
        return chosen

    def _file_info(self, path: Path) -> _FileInfo:
        stat = path.stat()
        key = (path, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._file_cache.get(key)
        if cached is not None:
            return cached
        data = path.read_bytes()
        metadata = read_wheel_metadata(path)
        parsed = email.parser.BytesParser().parsebytes(metadata, headersonly=True)
        info = _FileInfo(
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            metadata=metadata,
            metadata_sha256=hashlib.sha256(metadata).hexdigest(),
            requires_python=parsed.get("Requires-Python"),
        )
        with self._lock:
            self._file_cache[key] = info
        return info

    def _redirect(
        self, handler: _Handler, record: RequestRecord, location: str, *, head: bool
    ) -> None:
        self._send(
            handler,
            record,
            HTTPStatus.MOVED_PERMANENTLY,
            b"",
            "text/plain",
            head=head,
            headers={"Location": location},
        )

    def _send(
        self,
        handler: _Handler,
        record: RequestRecord,
        status: int,
        body: bytes,
        content_type: str,
        *,
        head: bool = False,
        headers: dict[str, str] | None = None,
        page: bool = False,
    ) -> None:
        if content_type == TEXT_HTML:
            content_type = "text/html; charset=utf-8"
        record.status = int(status)
        record.content_type = content_type
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        if page:
            handler.send_header("Cache-Control", "max-age=0")
            handler.send_header("Vary", "Accept")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        if status >= 400:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if not head:
            try:
                self._write_body(handler, body)
            except (BrokenPipeError, ConnectionResetError):
                handler.close_connection = True
        record.finished = time.monotonic()

    def _write_body(self, handler: _Handler, body: bytes) -> None:
        """Write ``body``, no faster than ``bytes_per_second`` when that is set."""
        rate = self.bytes_per_second
        if not rate or len(body) <= 64 * 1024:
            handler.wfile.write(body)
            return
        step = max(int(rate / 50), 16 * 1024)  # about 50 writes a second
        begun = time.monotonic()
        for offset in range(0, len(body), step):
            handler.wfile.write(body[offset : offset + step])
            ahead = (offset + step) / rate - (time.monotonic() - begun)
            if ahead > 0:
                time.sleep(ahead)


class _NotFound(Exception):
    pass


def tamper_bytes(data: bytes) -> bytes:
    """A wheel's bytes with a zip comment added: still a valid zip, another sha256."""
    comment = b"tampered"
    return data[:-2] + len(comment).to_bytes(2, "little") + comment


def _tampered_info(info: _FileInfo, data: bytes) -> _FileInfo:
    changed = tamper_bytes(data)
    return dataclasses.replace(
        info, sha256=hashlib.sha256(changed).hexdigest(), size=len(changed)
    )


def _wrong_hash(info: _FileInfo) -> _FileInfo:
    """``info`` with a sha256 that belongs to other bytes."""
    wrong = hashlib.sha256(info.sha256.encode()).hexdigest()
    return dataclasses.replace(info, sha256=wrong)


def _match_prefix(table: dict[str, Any], path: str) -> Any:
    """Value of the longest prefix of ``path`` in ``table``, or None."""
    best: str | None = None
    for prefix in table:
        if path.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return table[best] if best is not None else None


def _parse_range(
    header: str | None, size: int
) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """Inclusive (start, end) of a single ``bytes=`` range; None: serve all."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[len("bytes=") :].strip().partition("-")
    if not sep:
        return None
    try:
        if not first:  # bytes=-N: the last N bytes
            length = int(last)
            if length <= 0:
                return "unsatisfiable"
            return max(size - length, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)


def _basic(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _html_list(title: str, hrefs: list[str], labels: list[str] | None = None) -> bytes:
    items = [
        f'<a href="{quote(href)}">{html.escape(label)}</a><br/>'
        for href, label in zip(hrefs, labels or hrefs)
    ]
    body = (
        "<!DOCTYPE html>\n<html><head>"
        '<meta name="pypi:repository-version" content="1.1">'
        f"<title>{html.escape(title)}</title></head><body>\n"
        + "\n".join(items)
        + "\n</body></html>\n"
    )
    return body.encode()
