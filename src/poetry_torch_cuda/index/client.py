"""Which files a variant index lists for a project, through Poetry's own HTTP stack.

:class:`IndexClient` is the one client: requests go through
:func:`~poetry_torch_cuda.index.credentials.authenticator` (Poetry's credentials
rules, certificates, retries, proxies); pages are parsed by Poetry's PEP 691 JSON
and PEP 503 HTML link sources and kept for :data:`CACHE_TTL_SECONDS` in Poetry's
cache directory. PEP 825 variant wheels and ``*-variants.json`` are left out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import InvalidWheelFilename
from packaging.utils import canonicalize_name
from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index import quick
from poetry_torch_cuda.tempfiles import write_json
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence

    import requests
    from poetry.config.config import Config
    from poetry.poetry import Poetry

    from poetry_torch_cuda.index.credentials import IndexAuthenticator

CACHE_TTL_SECONDS = 600.0
_JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_CACHE_FORMAT = 4


class IndexUnavailableError(TorchCudaError):
    """The index could not be asked: ``status`` the HTTP status it answered, else
    ``cause`` (:func:`.quick.cause`); ``words`` and ``advice`` in :mod:`.quick`'s wording."""

    status: int | None = None
    cause: str | None = None
    words: str | None = None
    advice: str = ""


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
    """The non-yanked files an index lists for one project, sorted by name (``found``
    False: 404 or 410); ``skipped``: PEP 825 files."""

    project: str
    found: bool
    entries: tuple[IndexFile, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        """The file names."""
        return tuple(entry.filename for entry in self.entries)

    def versions(
        self, label: str | None = None, marker_env: Mapping[str, Any] | None = None
    ) -> list[Version]:
        """Versions with a wheel, newest first; only ``+label`` ones and wheels that
        fit ``marker_env`` when given."""
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


def project_client(poetry: Poetry, *, refresh: bool = False) -> IndexClient:
    """The index client for checks and choices in a project: its Poetry config and
    sources, one attempt of :data:`.quick.TIMEOUT` per page, never Poetry's retries."""
    sources = [(source.name, source.url) for source in poetry.get_sources()]
    return IndexClient(poetry.config, sources, refresh=refresh, timeout=quick.TIMEOUT)


class IndexClient:
    """Look up projects on PEP 503/691 indexes with Poetry's authenticator and a TTL cache."""

    def __init__(
        self,
        config: Config | None,
        sources: Iterable[tuple[str, str]] = (),
        *,
        refresh: bool = False,
        timeout: float | None = None,
        authenticator: IndexAuthenticator | None = None,
    ) -> None:
        """``config``: Poetry's (``None``: the user's); ``timeout``: one attempt of that
        many seconds per page, and an unreachable host remembered for a while
        (:mod:`.quick`), instead of Poetry's retries."""
        from poetry.config.config import Config

        from poetry_torch_cuda.index.credentials import authenticator as make

        config = config if config is not None else Config.create()
        self.auth = authenticator or make(config, sources)
        self._refresh = refresh
        self._timeout = timeout
        self._memory: dict[tuple[str, str], ProjectFiles] = {}
        self.cache_dir = (
            Path(str(config.get("cache-dir"))).expanduser()
            / "poetry-torch-cuda"
            / "index"
        )

    def project(self, index_url: str, project: str) -> ProjectFiles:
        """The files ``index_url`` lists for ``project`` (:class:`IndexUnavailableError`
        when the index does not answer usefully)."""
        key = (self.auth.take_off(index_url).rstrip("/"), canonicalize_name(project))
        if key not in self._memory:
            cached = None if self._refresh else self._read_cache(key)
            if cached is None:
                cached = self._read(key)
                self._write_cache(key, cached)
            self._memory[key] = cached
        return self._memory[key]

    def projects(
        self, wanted: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ProjectFiles | IndexUnavailableError]:
        """Look up several ``(index_url, project)`` pairs at once, in parallel."""

        def one(pair: tuple[str, str]) -> ProjectFiles | IndexUnavailableError:
            try:
                return self.project(*pair)
            except IndexUnavailableError as error:
                return error

        for index_url in {url for url, _ in wanted}:
            self.auth.take_off(index_url)
        with ThreadPoolExecutor(max_workers=min(8, len(wanted) or 1)) as pool:
            return dict(zip(wanted, pool.map(one, wanted)))

    def skipped(self) -> list[str]:
        """The PEP 825 variant files the pages asked so far listed (left out)."""
        return sorted({name for page in self._memory.values() for name in page.skipped})

    def _get(self, url: str) -> requests.Response:
        """Poetry's request with its retries, or one short attempt with a timeout
        (a host that failed a moment ago is not asked again)."""
        if self._timeout is None:
            # A new dict each time: Poetry 2.0 writes the Authorization header
            # into the dict it is given, which would then go to every host.
            headers = {"Accept": quick.ACCEPT}
            return self.auth.request(
                "get", url, raise_for_status=False, headers=headers
            )
        if not self._refresh:
            remembered = quick.recall(self.cache_dir, url)
            if remembered is not None:
                raise IndexUnavailableError(remembered)
        try:
            response = quick.get_once(self.auth, url, self._timeout)
        except Exception as error:
            quick.remember(
                self.cache_dir, url, quick.in_words(error, url, self._timeout)
            )
            raise
        if self._refresh:
            quick.remember(self.cache_dir, url, None)
        return response

    def _read(self, key: tuple[str, str]) -> ProjectFiles:
        """The page for ``key``, parsed by Poetry's link sources."""
        from poetry.repositories.link_sources.html import HTMLPage
        from poetry.repositories.link_sources.json import SimpleJsonPage

        index_url, name = key
        url = f"{index_url}/{name}/"
        try:
            response = self._get(url)
        except IndexUnavailableError:
            raise
        except Exception as error:  # noqa: BLE001 - requests', Poetry's "all attempts"
            raise _unavailable(url, error, self._timeout) from None
        if response.status_code in (404, 410):
            return ProjectFiles(name, False)
        if response.status_code >= 400:
            raise _unavailable(url, response.status_code)
        try:
            if response.headers.get("Content-Type", "").split(";")[0] == _JSON_TYPE:
                content = response.json()
                links = SimpleJsonPage(response.url, content).links
            else:
                content, links = {}, HTMLPage(response.url, response.text).links
            entries = _entries(links, response.url, content)
        except (ValueError, KeyError, TypeError):
            raise IndexUnavailableError(
                f"{mask_url(url)} answered with a page that is not a simple index"
            ) from None
        skipped = tuple(sorted(e.filename for e in entries if _is_variant(e.filename)))
        entries = tuple(e for e in entries if e.filename not in skipped)
        return ProjectFiles(name, True, entries, skipped=skipped)

    def download(self, url: str) -> bytes:
        """The bytes at ``url`` (a file an index page links), with Poetry's session."""
        url = self.auth.take_off(url)
        try:
            response = self.auth.request("get", url, raise_for_status=False)
        except Exception as error:  # noqa: BLE001 - requests', Poetry's "all attempts"
            raise _unavailable(url, error) from None
        if response.status_code >= 400:
            raise _unavailable(url, response.status_code)
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
                or time.time() - float(data["fetched"]) > CACHE_TTL_SECONDS
            ):
                return None
            entries = tuple(IndexFile(**entry) for entry in data["entries"])
            return ProjectFiles(
                key[1], bool(data["found"]), entries, skipped=tuple(data["skipped"])
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
            "entries": [dataclasses.asdict(entry) for entry in result.entries],
            "skipped": list(result.skipped),
        }
        write_json(self._cache_path(key), data)


def _entries(
    links: Iterable[Any], page_url: str, content: Mapping[str, Any]
) -> tuple[IndexFile, ...]:
    """The non-yanked links of a page as :class:`IndexFile`, one per file name, with
    URLs absolute and the sha256 a PEP 691 page (``content``) lists: Poetry before
    2.1 leaves the URLs relative and the hashes out."""
    from urllib.parse import urljoin

    listed: dict[str, str] = {}
    for file in content.get("files") or []:
        digest = (file.get("hashes") or {}).get("sha256")
        if isinstance(digest, str) and isinstance(file.get("filename"), str):
            listed[file["filename"]] = digest
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
            sha256=dict(link.hashes or {}).get("sha256") or listed.get(link.filename),
            size=getattr(link, "size", None),
            metadata_sha256=metadata,
            requires_python=link.requires_python or None,
        )
    return tuple(found[name] for name in sorted(found))


def tag_fits(
    interpreter: str, abi: str, platform: str, marker_env: Mapping[str, Any]
) -> bool:
    """Whether a wheel tag fits the PEP 508 ``marker_env``: pip's tag check
    approximated from marker values alone (no process in the environment)."""
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


def _is_variant(filename: str) -> bool:
    """A PEP 825 variant wheel (``…-<platform>-<label>.whl``) or a ``*-variants.json``."""
    parts = filename[:-4].split("-") if filename.endswith(".whl") else []
    return (
        filename.endswith("-variants.json")
        or len(parts) == 7
        or (
            len(parts) == 6 and not parts[2][:1].isdigit()  # else: a build tag
        )
    )


def _unavailable(
    url: str, failure: BaseException | int, timeout: float | None = None
) -> IndexUnavailableError:
    """The one wording (:mod:`.quick`) of an HTTP status or of no answer from ``url``."""
    from poetry.utils import constants

    if isinstance(failure, int):
        cause, advice = quick.http_failure(failure)
        error = IndexUnavailableError(f"{mask_url(url)}: {cause}; {advice}")
        error.status, error.words, error.advice = failure, cause, advice
        return error
    words = quick.in_words(failure, url, timeout or float(constants.REQUESTS_TIMEOUT))
    error = IndexUnavailableError(f"could not read {mask_url(url)}: {words}")
    error.cause, error.words = quick.cause(failure), words
    error.advice = quick.advice(failure)
    return error
