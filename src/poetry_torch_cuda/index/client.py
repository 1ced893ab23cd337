"""Which files a variant index lists for a project, through Poetry's own HTTP stack.

Requests go through Poetry's ``Authenticator`` (its credentials, certificates,
retries and proxy settings); pages are parsed by Poetry's PEP 691 JSON and
PEP 503 HTML link sources. Answers are kept for :data:`CACHE_TTL_SECONDS` in
Poetry's cache directory, so repeated commands ask nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import InvalidWheelFilename
from packaging.utils import canonicalize_name
from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.credentials import UrlCredentials
from poetry_torch_cuda.index.urls import mask_url


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence

    import requests
    from poetry.config.config import Config
    from poetry.utils.authenticator import Authenticator

CACHE_TTL_SECONDS = 600.0
ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1, */*;q=0.01"
_JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_CACHE_FORMAT = 2


class IndexUnavailableError(TorchCudaError):
    """The index could not be asked (network, HTTP error, access denied)."""

    #: The HTTP status the index answered, when it answered.
    status: int | None = None
    #: Why it did not answer, in a few words (:func:`.quick.cause`), when it did not.
    cause: str | None = None


@dataclass(frozen=True)
class IndexFile:
    """One non-yanked file of a project page: absolute URL (no fragment) and hashes."""

    filename: str
    url: str
    sha256: str | None = None
    size: int | None = None
    #: PEP 658/714: the sha256 of ``<url>.metadata``, "" when served without a hash.
    metadata_sha256: str | None = None
    requires_python: str | None = None


@dataclass(frozen=True)
class ProjectFiles:
    """The non-yanked files an index lists for one project (``found`` False: 404)."""

    project: str
    found: bool
    files: tuple[str, ...] = ()
    #: The same files with their URLs and hashes, sorted by file name.
    entries: tuple[IndexFile, ...] = ()
    #: 404 or 410 when just asked and not found (``None`` from the cache).
    status: int | None = field(default=None, compare=False)

    def versions(
        self, label: str | None = None, marker_env: Mapping[str, Any] | None = None
    ) -> list[Version]:
        """Versions with a wheel, newest first; only ``+label`` ones when given.

        With ``marker_env`` only wheels that fit that environment count.
        """
        found: set[Version] = set()
        for filename in self.files:
            try:
                _, version, _, tags = parse_wheel_filename(filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if label is not None and version.local != label:
                continue
            if marker_env is not None and not any(
                tag_fits(tag.interpreter, tag.abi, tag.platform, marker_env)
                for tag in tags
            ):
                continue
            found.add(version)
        return sorted(found, reverse=True)


class IndexClient:
    """Look up projects on PEP 503/691 indexes with Poetry's authenticator and a TTL cache."""

    def __init__(
        self,
        config: Config,
        sources: Iterable[tuple[str, str]] = (),
        *,
        ttl: float = CACHE_TTL_SECONDS,
        refresh: bool = False,
        timeout: float | None = None,
        poetry_credentials: bool = True,
    ) -> None:
        """``timeout``: one attempt of that many seconds per page, and an
        unreachable host remembered for a while (:mod:`.quick`), instead of
        Poetry's retries. ``poetry_credentials`` False: only the credentials
        written in the index URLs are sent (pip's view of the index)."""
        self._config = config
        self._poetry_credentials = poetry_credentials
        self._sources = list(sources)
        self._ttl = ttl
        self._refresh = refresh
        self._timeout = timeout
        self._authenticator: Authenticator | None = None
        self._url_credentials = UrlCredentials()
        self._memory: dict[tuple[str, str], ProjectFiles] = {}
        #: ``(scheme, host)`` -> credentials taken out of a URL: Poetry logs URLs.
        self.cache_dir = (
            Path(str(config.get("cache-dir"))).expanduser()
            / "poetry-torch-cuda"
            / "index"
        )

    def project(self, index_url: str, project: str) -> ProjectFiles:
        """The files ``index_url`` lists for ``project``.

        Raises:
            IndexUnavailableError: the index did not answer usefully.
        """
        name = canonicalize_name(project)
        # Poetry logs URLs' netlocs: credentials go to the authenticator instead.
        index_url = self._url_credentials.take_off(index_url)
        key = (index_url.rstrip("/"), name)
        if key not in self._memory:
            cached = None if self._refresh else self._read_cache(key)
            self._memory[key] = cached or self._fetch(key)
        return self._memory[key]

    def projects(
        self, wanted: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ProjectFiles | IndexUnavailableError]:
        """Look up several ``(index_url, project)`` pairs at once, in parallel."""
        results: dict[tuple[str, str], ProjectFiles | IndexUnavailableError] = {}
        if wanted:
            self._session_for(self._url_credentials.take_off(wanted[0][0]))

        def one(pair: tuple[str, str]) -> ProjectFiles | IndexUnavailableError:
            try:
                return self.project(*pair)
            except IndexUnavailableError as error:
                return error

        with ThreadPoolExecutor(max_workers=min(8, len(wanted) or 1)) as pool:
            for pair, result in zip(wanted, pool.map(one, wanted)):
                results[pair] = result
        return results

    def _session_for(self, url: str) -> Authenticator:
        if self._authenticator is None:
            from poetry_torch_cuda.index.session import IndexAuthenticator

            self._authenticator = IndexAuthenticator(
                self._config,
                self._sources,
                self._url_credentials,
                poetry_credentials=self._poetry_credentials,
            )
        self._authenticator.get_session(url)
        return self._authenticator

    def ask_once(
        self, index_url: str, project: str, *, verify: str | None = None
    ) -> ProjectFiles:
        """What the index answers for ``project`` right now: one attempt of the
        client's timeout, past the page cache and the memory of unreachable
        hosts, and remembered by neither (the diagnosis of a pip failure).

        ``verify``: a CA bundle instead of the one Poetry has for the index.

        Raises:
            IndexUnavailableError: with ``status`` when the index answered an
                HTTP error, with ``cause`` when it did not answer.
        """
        import requests

        from poetry_torch_cuda.index import quick

        index_url = self._url_credentials.take_off(index_url)
        key = (index_url.rstrip("/"), canonicalize_name(project))
        timeout = quick.TIMEOUT if self._timeout is None else self._timeout

        def get(
            url: str, *, raise_for_status: bool, headers: Mapping[str, str]
        ) -> requests.Response:
            try:
                return quick.get_once(
                    self._session_for(url), url, headers, timeout, verify=verify
                )
            except (requests.RequestException, OSError) as error:
                failed = IndexUnavailableError(quick.in_words(error, url, timeout))
                failed.cause = quick.cause(error)
                raise failed from None

        return self._read(key, get)

    def _fetch(self, key: tuple[str, str]) -> ProjectFiles:
        url = f"{key[0]}/{key[1]}/"
        get = self._session_for(url).get if self._timeout is None else self._get_once
        result = self._read(key, get)
        self._write_cache(key, result)
        return result

    def _read(self, key: tuple[str, str], get: Callable[..., Any]) -> ProjectFiles:
        """The page for ``key`` asked with ``get``, parsed by Poetry's link sources."""
        import requests
        from cleo.exceptions import CleoError
        from poetry.exceptions import PoetryError
        from poetry.repositories.link_sources.html import HTMLPage
        from poetry.repositories.link_sources.json import SimpleJsonPage

        index_url, name = key
        url = f"{index_url}/{name}/"
        shown = mask_url(url)
        try:
            response = get(url, raise_for_status=False, headers={"Accept": ACCEPT})
        except IndexUnavailableError:
            raise
        except (requests.RequestException, PoetryError, CleoError, OSError) as error:
            # Poetry reports exhausted retries as a CleoError naming the host,
            # credentials included: say it again without them.
            raise _unreachable(error, url, self._timeout) from None
        status = response.status_code
        if status in (404, 410):
            result = ProjectFiles(name, False, status=status)
        elif status in (401, 403):
            refused = IndexUnavailableError(
                f"{shown} refused access (HTTP {status}); configure credentials "
                "for its source with `poetry config http-basic.<source> USER`"
            )
            refused.status = status
            raise refused
        elif status >= 400:
            failed = IndexUnavailableError(f"{shown} answered HTTP {status}")
            failed.status = status
            raise failed
        else:
            content_type = response.headers.get("Content-Type", "")
            try:
                if content_type.split(";")[0].strip() == _JSON_TYPE:
                    content = response.json()
                    page: Any = SimpleJsonPage(response.url, content)
                    entries = _with_json_hashes(
                        _entries(page.links, response.url), content
                    )
                else:
                    page = HTMLPage(response.url, response.text)
                    entries = _entries(page.links, response.url)
            except (ValueError, KeyError, TypeError):
                raise IndexUnavailableError(
                    f"{shown} answered with a page that is not a simple index"
                ) from None
            files = tuple(sorted({entry.filename for entry in entries}))
            result = ProjectFiles(name, True, files, entries)
        return result

    def _get_once(
        self, url: str, *, raise_for_status: bool, headers: Mapping[str, str]
    ) -> requests.Response:
        """One short attempt; a host that failed a moment ago is not asked again."""
        import requests

        from poetry_torch_cuda.index import quick

        assert self._timeout is not None
        if not self._refresh:
            remembered = quick.recall(self.cache_dir, url)
            if remembered is not None:
                raise IndexUnavailableError(remembered)
        try:
            response = quick.get_once(
                self._session_for(url), url, headers, self._timeout
            )
        except (requests.RequestException, OSError) as error:
            reason = quick.in_words(error, url, self._timeout)
            quick.remember(self.cache_dir, url, reason)
            raise IndexUnavailableError(reason) from None
        if self._refresh:
            quick.forget(self.cache_dir, url)
        return response

    def download(self, url: str) -> bytes:
        """The bytes at ``url`` (a file an index page links), with Poetry's session.

        Raises:
            IndexUnavailableError: the file could not be fetched.
        """
        import requests
        from cleo.exceptions import CleoError
        from poetry.exceptions import PoetryError

        url = self._url_credentials.take_off(url)
        shown = mask_url(url)
        try:
            response = self._session_for(url).get(url, raise_for_status=False)
        except (requests.RequestException, PoetryError, CleoError, OSError) as error:
            raise _unreachable(error, url, None) from None
        if response.status_code >= 400:
            raise IndexUnavailableError(f"{shown} answered HTTP {response.status_code}")
        return bytes(response.content)

    def _cache_path(self, key: tuple[str, str]) -> Path:
        digest = hashlib.sha256("\n".join(key).encode()).hexdigest()[:32]
        return self.cache_dir / f"{digest}.json"

    def _read_cache(self, key: tuple[str, str]) -> ProjectFiles | None:
        try:
            data = json.loads(self._cache_path(key).read_text(encoding="utf-8"))
            if (
                data.get("format") != _CACHE_FORMAT
                or data.get("project") != key[1]
                or time.time() - float(data["fetched"]) > self._ttl
            ):
                return None
            entries = tuple(IndexFile(**entry) for entry in data["entries"])
            return ProjectFiles(
                key[1], bool(data["found"]), tuple(data["files"]), entries
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_cache(self, key: tuple[str, str], result: ProjectFiles) -> None:
        data = {
            "format": _CACHE_FORMAT,
            "index": mask_url(key[0]),
            "project": key[1],
            "fetched": time.time(),
            "found": result.found,
            "files": list(result.files),
            "entries": [dataclasses.asdict(entry) for entry in result.entries],
        }
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream)
            Path(temporary).replace(self._cache_path(key))
        except OSError:
            pass  # a cache that cannot be written only costs a request next time


def _with_json_hashes(
    entries: tuple[IndexFile, ...], content: Mapping[str, Any]
) -> tuple[IndexFile, ...]:
    """``entries`` with the sha256 a PEP 691 page lists for each file.

    Poetry before 2.1 builds its links from such a page without the hashes.
    """
    listed: dict[str, str] = {}
    for file in content.get("files") or []:
        digest = (file.get("hashes") or {}).get("sha256")
        if isinstance(digest, str) and isinstance(file.get("filename"), str):
            listed[file["filename"]] = digest
    return tuple(
        entry
        if entry.sha256 or entry.filename not in listed
        else dataclasses.replace(entry, sha256=listed[entry.filename])
        for entry in entries
    )


def _entries(links: Iterable[Any], page_url: str) -> tuple[IndexFile, ...]:
    """The non-yanked links of a page as :class:`IndexFile`, one per file name.

    URLs are made absolute against the page (Poetry before 2.1 leaves a PEP 691
    page's relative ones as they are).
    """
    from urllib.parse import urljoin

    found: dict[str, IndexFile] = {}
    for link in links:
        if link.yanked or link.filename in found:
            continue
        metadata: str | None = None
        if link.has_metadata:
            metadata = dict(link.metadata_hashes or {}).get("sha256", "")
        found[link.filename] = IndexFile(
            filename=link.filename,
            url=urljoin(page_url, link.url_without_fragment),
            sha256=dict(link.hashes or {}).get("sha256"),
            size=getattr(link, "size", None),
            metadata_sha256=metadata,
            requires_python=link.requires_python or None,
        )
    return tuple(found[name] for name in sorted(found))


def tag_fits(
    interpreter: str, abi: str, platform: str, marker_env: Mapping[str, Any]
) -> bool:
    """Whether a wheel tag fits the environment the PEP 508 ``marker_env`` describes.

    An approximation of pip's tag check from marker values alone, so it needs
    no process in the environment: Python version and implementation, abi3,
    operating system and machine.
    """
    major, minor = (str(marker_env.get("python_version", "3.0")) + ".0").split(".")[:2]
    implementation = {"cpython": "cp", "pypy": "pp"}.get(
        str(marker_env.get("implementation_name", "cpython")), "cp"
    )
    if interpreter not in ("py3", f"py{major}", f"py{major}{minor}"):
        if not interpreter.startswith(implementation):
            return False
        version = interpreter[len(implementation) :]
        if version != f"{major}{minor}" and not (
            abi == "abi3"
            and version.startswith(major)
            and version[1:].isdigit()
            and int(version[1:] or 0) <= int(minor)
        ):
            return False
    return platform_fits(platform, marker_env)


def platform_fits(platform: str, marker_env: Mapping[str, Any]) -> bool:
    """Whether a wheel platform tag fits the environment's OS and machine."""
    if platform == "any":
        return True
    system = str(marker_env.get("sys_platform", ""))
    machine = str(marker_env.get("platform_machine", "")).lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if system.startswith("linux"):
        return platform.startswith(("manylinux", "musllinux", "linux")) and (
            platform.endswith(machine) or not machine
        )
    if system.startswith("win"):
        wanted = {"x86_64": "win_amd64", "aarch64": "win_arm64"}.get(machine, "win32")
        return platform == wanted
    if system == "darwin":
        mac = {"aarch64": "arm64"}.get(machine, machine)
        return platform.startswith("macosx") and platform.endswith((mac, "universal2"))
    return False


def _unreachable(
    error: BaseException, url: str, timeout: float | None
) -> IndexUnavailableError:
    """Why ``url`` could not be read, in words (Poetry reports exhausted retries
    as an error that names the host, credentials included: say it again without)."""
    from poetry_torch_cuda.index import quick

    if timeout is None:
        from poetry.utils import constants

        timeout = float(getattr(constants, "REQUESTS_TIMEOUT", 15))
    return IndexUnavailableError(
        f"could not read {mask_url(url)}: {quick.in_words(error, url, timeout)}"
    )
