"""The package index through Poetry's HTTP stack: the one client, its credentials, its wording.

Credentials come from :class:`IndexAuthenticator` (Poetry's rules, never https ones
over http, plus those written in an ``index-url``, never printed). A page is asked once
with :data:`TIMEOUT`, a host that could not be reached not again for
:data:`REMEMBER_SECONDS`; a file waits for a Retry-After up to :data:`WAIT`.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict
from dataclasses import dataclass
from email.utils import mktime_tz
from email.utils import parsedate_tz
from pathlib import Path
from typing import IO
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import unquote
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests
from packaging.utils import InvalidWheelFilename
from packaging.utils import canonicalize_name
from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion
from packaging.version import Version
from poetry.core.packages.utils.link import Link
from poetry.utils import constants
from poetry.utils.authenticator import Authenticator
from poetry.utils.cache import ArtifactCache
from poetry.utils.password_manager import HTTPAuthCredential
from requests.exceptions import SSLError
from urllib3.exceptions import HTTPError

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.project.config import ENV_INDEX_URL
from poetry_torch_cuda.project.config import per_run
from poetry_torch_cuda.project.variants import arch
from poetry_torch_cuda.tempfiles import read_json
from poetry_torch_cuda.tempfiles import write_json
from poetry_torch_cuda.urls import mask_url
from poetry_torch_cuda.urls import register_secret
from poetry_torch_cuda.urls import without_credentials


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence

    from poetry.config.config import Config
    from poetry.poetry import Poetry
    from poetry.utils.authenticator import AuthenticatorRepositoryConfig

    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant

_JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_CACHE_FORMAT = 5
#: What a page request accepts: PEP 691 JSON first, then HTML.
ACCEPT = f"{_JSON_TYPE}, text/html;q=0.1, */*;q=0.01"
#: Seconds to connect, and to wait for each answer, on the one attempt.
TIMEOUT = 4.0
#: How long a page read, or a host that could not be reached, is not asked again.
REMEMBER_SECONDS = 600.0
#: Seconds one request waits in all as Retry-After asks (429, 5xx); longer: said.
WAIT = 60.0
_UNREACHABLE = "unreachable.json"
#: Where the index cannot be reached from this machine directly, or at all.
_MIRROR = (
    "Behind a proxy, set HTTPS_PROXY (and NO_PROXY) as for pip; if the index cannot "
    "be reached from here, use a mirror: index-url or source in "
    "[tool.poetry-torch-cuda], or POETRY_TORCH_CUDA_INDEX_URL for one run."
)
_CHECK_NETWORK = (
    "Check the network and the index URL (index-url, or the url of the source "
    f"named by source). {_MIRROR}"
)
#: Where the mirror this run's variable names is what cannot be reached.
_UNSET = (
    f"Check the network and {ENV_INDEX_URL} (this run's mirror), or unset it to use "
    "the configured index."
)
_LATER = "Run the command again later, or tell whoever runs the index."
_DNS = (
    "name or service not known|name resolution|nodename nor servname|"
    "getaddrinfo failed|no address associated"
)
_SLOW = (
    "The index is slow or unreachable. Run the command again later, or give "
    f"it more time with POETRY_REQUESTS_TIMEOUT=<seconds>. {_MIRROR}"
)
#: A request that got no answer: (what its error chain says, the failure in words,
#: what to do about it), the first that matches; a timeout first.
_NO_ANSWER = (
    ("under 64 kib", "{host} sent under 64 KiB in {timeout:g} s", _SLOW),
    ("timed out|timeout", "{host} did not answer within {timeout:g} s", _SLOW),
    (_DNS, "{host} could not be found (DNS lookup failed)", _CHECK_NETWORK),
    ("refused", "{host} refused the connection", _CHECK_NETWORK),
    ("broken", "the connection to {host} broke off", "Run the command again."),
    ("redirects", "{host} redirected in a loop", _CHECK_NETWORK),
    # Poetry's own retry (poetry.lock's source) raises on a Retry-After date.
    ("string to float", "{host} failed and said when to retry (Retry-After)", _LATER),
    (
        "ssl|certificate",
        "the TLS handshake with {host} failed (certificate or proxy)",
        (
            "Check the certificates Poetry has for the index "
            "(`poetry config certificates.<source>.cert`)."
        ),
    ),
    ("", "could not connect to {host}", _CHECK_NETWORK),
)


class IndexUnavailableError(TorchCudaError):
    """The index could not be asked: ``words`` and ``advice`` in this module's wording."""

    words: str | None = None
    advice: str = ""


class IndexAuthenticator(Authenticator):
    """Poetry's ``Authenticator`` that also knows credentials written in index URLs."""

    def __init__(
        self, config: Config | None, sources: Iterable[tuple[str | None, str]] = ()
    ) -> None:
        super().__init__(config, cache_id="poetry-torch-cuda", disable_cache=True)
        self.config = self._config  #: Poetry's configuration the requests follow.
        self._in_url: dict[str, HTTPAuthCredential] = {}
        for name, url in sources:
            if url:
                self.take_off(url, name)

    def take_off(self, url: str, name: str | None = None) -> str:
        """``url`` without ``user:password@``; requests that Poetry's rules match
        to it (scheme, host, path) get those credentials. ``name``: a source."""
        parts, bare = urlsplit(url), without_credentials(url)
        if parts.username is not None:  # percent-decoded, never shown
            password = None if parts.password is None else unquote(parts.password)
            register_secret(password)
            name = f"<index-url {bare}>"
            self._in_url[name] = HTTPAuthCredential(unquote(parts.username), password)
        if name is not None and name not in self.configured_repositories:
            # A URL with {variant} in its path stands for every variant's: Poetry
            # ranks sources on a host by the path they share with a request.
            head, placeholder, _ = bare.partition("{variant}")
            if placeholder and urlsplit(head).path:
                head = head.rpartition("/")[0] + "/"
            self.add_repository(name, head)
        return bare

    def source(self, url: str) -> str | None:
        """The name of the source whose credentials requests to ``url`` carry."""
        found = self._get_repository_config_for_url(url)
        return None if found is None or found.name in self._in_url else found.name

    def sends_credentials(self, url: str) -> bool:
        """Whether requests to ``url`` carry credentials."""
        return self.get_credentials_for_url(url) != HTTPAuthCredential()

    def withheld(self, url: str, answered: str | None = None) -> bool:
        """Whether the request to ``url`` ended (at ``answered``) on plain http without
        the credentials https would carry: none due there, or a redirect from https."""
        end = answered or url
        return (
            end[:5].lower() == "http:"
            and (url[:6].lower() == "https:" or not self.sends_credentials(end))
            and self.sends_credentials("https:" + end[5:])
        )

    def create_session(self) -> requests.Session:
        """Poetry's session, whose requests to plain http carry only the credentials
        Poetry's rules give (requests adds ~/.netrc's for a host, any scheme)."""
        session = super().create_session()
        send = session.send

        def checked(request: Any, **kwargs: Any) -> requests.Response:
            url = str(request.url)
            if url[:5].lower() == "http:" and not self.sends_credentials(url):
                request.headers.pop("Authorization", None)
            return send(request, **kwargs)

        session.send = checked  # type: ignore[method-assign]  # redirects too
        return session

    def _get_backoff(self, response: requests.Response | None, attempt: int) -> float:
        """Poetry's pause before its next attempt (a Retry-After date too); past
        :data:`WAIT` in all, the answer is final (HTTPError)."""
        said = retry_after(response)
        delay = 0.5 * attempt if said is None else said
        if response is not None and attempt * delay > WAIT:
            raise requests.HTTPError(response=response)
        return delay

    def _get_repository_config_for_url(
        self, url: str, exact_match: bool = False
    ) -> AuthenticatorRepositoryConfig | None:
        """Poetry 2.5's match on any Poetry: a host's sources, no https one for plain http
        (2.0-2.4 send it), by whole path segments in common, then the one holding the
        request, then their order (2.0-2.4 rank by characters in common instead)."""
        parts = urlsplit(url)
        hosted = [
            r
            for r in self.configured_repositories.values()
            if r.netloc == parts.netloc
            and (not r.url.lower().startswith("https:") or parts.scheme == "https")
            and (r.path == parts.path or not exact_match)
        ]
        return max(hosted, key=lambda r: _path_rank(r.path, parts.path), default=None)

    def _get_credentials_for_repository(
        self, repository: AuthenticatorRepositoryConfig
    ) -> HTTPAuthCredential:
        found = self._in_url.get(repository.name)
        return found or super()._get_credentials_for_repository(repository)


def _path_rank(own: str, request: str) -> tuple[int, bool]:
    segments = [part for part in own.split("/") if part]
    asked = [part for part in request.split("/") if part]
    same = [mine == theirs for mine, theirs in zip(segments, asked)]
    shared = [*same, False].index(False)  # segments in common from the start
    return shared, shared == len(segments)


def variant_authenticator(
    config: TorchCudaConfig, variant: Variant, poetry_config: Config | None = None
) -> IndexAuthenticator:
    """The authenticator every request for ``variant``'s index goes through: the
    project's sources, the one ``source`` names at the variant's URL, and
    credentials written in that URL."""
    others = [(n, u) for n, u in config.project_sources if n != config.source]
    url = config.index_url(variant)
    return IndexAuthenticator(poetry_config, [*others, (config.source, url)])


def retry_after(response: requests.Response | None) -> float | None:
    """Seconds ``response``'s Retry-After asks to wait (RFC 9110: seconds or a date)."""
    said = "" if response is None else response.headers.get("Retry-After", "").strip()
    if said.isdigit():
        return float(said)
    date = parsedate_tz(said)
    return None if date is None else max(0.0, mktime_tz(date) - time.time())


def artifact(config: Config, url: str, sha256: str, filename: str) -> Path:
    """Where Poetry's artifact cache keeps ``url``'s file of ``sha256``: what an
    install fetches into, and where a lock leaves a wheel it read (absolute: pip
    gets links to it from another folder, whatever ``cache-dir`` says)."""
    cache = ArtifactCache(cache_dir=Path(config.artifacts_cache_directory).absolute())
    return cache.get_cache_directory_for_link(Link(f"{url}#sha256={sha256}")) / filename


def no_answer(
    error: BaseException, url: str, timeout: float = TIMEOUT
) -> tuple[str, str]:
    """``(cause, advice)`` when ``url`` gave no answer, as :func:`http_failure` for a
    status, from what its error chain says: the host in words, never credentials."""
    seen: list[str] = []
    current: BaseException | None = error
    while current is not None and len(seen) < 10:
        seen.append(f"{type(current).__name__} {current}".lower())
        current = current.__cause__ or current.__context__
    words, fix = next((w, f) for p, w, f in _NO_ANSWER if re.search(p, " ".join(seen)))
    if _host(url) == _host(per_run("index-url") or "-"):  # not index-url's advice
        fix = _UNSET if fix == _CHECK_NETWORK else fix.replace(_MIRROR, _UNSET)
    host = urlsplit(mask_url(url)).netloc.rsplit("@", 1)[-1] or mask_url(url)
    return words.format(host=host, timeout=timeout), fix


def new_bytes(accept: bool = False) -> str:
    """The one wording of a file served with other bytes than it was published
    (listed, locked) with; ``accept``: re-locking can take the new ones."""
    way = (
        "; if the change is legitimate, re-lock trusting the index as it is now: "
        "`poetry torch-cuda lock --accept-drift`"
    )
    return (
        "the index or mirror now serves different bytes for the same file.\nA "
        "published file never changes: treat this as a compromised or broken mirror "
        f"and tell whoever runs it{way if accept else ''}."
    )


def missing(
    status: int, auth: IndexAuthenticator | None, url: str, answered: str | None
) -> bool:
    """Whether the index lacks what was asked: 404, 410, and with no credentials due
    the 403 download.pytorch.org answers for it (pip and Poetry agree)."""
    due = not auth or auth.withheld(url, answered) or auth.sends_credentials(url)
    return status in (403, 404, 410)[due:]


def http_failure(
    response: requests.Response,
    url: str,
    project: str | None = None,
    auth: IndexAuthenticator | None = None,
    answered: str | None = None,
    listed: bool = False,
) -> tuple[str, str]:
    """``(cause, advice)`` for ``response``'s HTTP error status; ``project``: what was
    asked; ``auth``: the authenticator the request to ``url`` went through (none: not
    known; ``answered``: where it ended); ``listed``: a page lists it (a lock)."""
    status, about = response.status_code, f" for {project}" if project else ""
    if missing(status, auth, url, answered):
        return f"the index has no such file (HTTP {status}){about}", (
            "The index lists it but does not serve it: tell whoever runs the index, "
            "or choose another version or variant."
            if listed
            else "Check the index URL and the variant; if the index moved its files, "
            "run `poetry torch-cuda lock` again."
        )
    if status == 429 or status >= 500:
        cause = "too many requests" if status == 429 else "a server error"
        wait = retry_after(response)
        asks = f", asking to wait {wait:.0f} s (Retry-After)" if wait else ""
        return f"the index failed with HTTP {status} ({cause}){asks}", _LATER
    if status not in (401, 403):
        fix = "Check the index URL, then run the command again."
        return f"the index answered HTTP {status}{about}", fix
    if auth and auth.withheld(url, answered):
        fix = (
            "The request went to plain http (its URL, or where the index "
            "redirected it) on a host whose credentials are for https only, and "
            "credentials never go out in the clear: it must stay https (the URL "
            "in the index's page, in torch-cuda.lock or in "
            "POETRY_TORCH_CUDA_INDEX_URL, and the index's redirects)."
        )
    elif auth and auth.sends_credentials(url):
        name = (source := auth.source(url)) or "<source>"
        variable = "POETRY_HTTP_BASIC_" + (
            re.sub(r"\W", "_", name.upper()) if source else "<SOURCE>"
        )
        fix = (
            "Check the credentials Poetry has for it: `poetry config "
            f"http-basic.{name} <user> <password>` or {variable}_USERNAME "
            f"and {variable}_PASSWORD."
        )
    elif auth:
        fix = (
            "It wants credentials: declare it as a [[tool.poetry.source]], set "
            'source = "<name>" in [tool.poetry-torch-cuda] and give them with '
            "`poetry config http-basic.<name> <user> <password>`."
        )
    else:
        fix = (
            "Check the credentials Poetry has for the index's source: "
            "`poetry config http-basic.<source> <user> <password>`."
        )
    return f"the index refused access (HTTP {status})", fix


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


def recall(cache_dir: Path, url: str, since: float) -> IndexUnavailableError | None:
    """Why ``url``'s host was not reachable a short while ago (with ``words`` and
    ``advice`` as when it happened; when before ``since``, a run's start, said so)."""
    try:
        words, fix, at = read_json(cache_dir / _UNREACHABLE, {})[_host(url)]
        age = time.time() - float(at)
    except (KeyError, TypeError, ValueError):
        return None
    if not 0 <= age <= REMEMBER_SECONDS:
        return None
    later = f" (noted {age:.0f} s ago; asked again in {REMEMBER_SECONDS - age:.0f} s)"
    error = IndexUnavailableError(f"{words}{later * (float(at) < since)}. {fix}")
    error.words, error.advice = str(words), str(fix)
    return error


def remember(
    cache_dir: Path, url: str, error: BaseException | None, timeout: float = TIMEOUT
) -> None:
    """Note why ``url``'s host could not be reached just now (``None``: it answered)."""
    data = read_json(cache_dir / _UNREACHABLE, {})
    data = data if isinstance(data, dict) else {}
    if error is not None:
        data[_host(url)] = [*no_answer(error, url, timeout), time.time()]
    elif data.pop(_host(url), None) is None:
        return
    write_json(cache_dir / _UNREACHABLE, data)


@dataclass(frozen=True)
class IndexFile:
    """One non-yanked file of a project page: absolute URL (no fragment) and hashes."""

    filename: str
    url: str
    sha256: str | None = None
    size: int | None = None
    #: PEP 658/714: the sha256 of ``<url>.metadata``, "" when served without a hash.
    metadata_sha256: str | None = None


@dataclass(frozen=True)
class ProjectFiles:
    """The non-yanked files an index lists for one project, sorted by name (``found``
    False: 404, 410, or 403 without credentials); ``skipped``: PEP 825 files;
    ``yanked``: the names it lists only yanked (PEP 592)."""

    project: str
    found: bool
    entries: tuple[IndexFile, ...] = ()
    skipped: tuple[str, ...] = ()
    yanked: tuple[str, ...] = ()

    def versions(
        self, label: str | None = None, marker_env: Mapping[str, Any] | None = None
    ) -> list[Version]:
        """Versions with a wheel, newest first; only ``+label`` ones and wheels that
        fit ``marker_env`` when given."""
        found: set[Version] = set()
        for entry in self.entries:
            with suppress(InvalidWheelFilename, InvalidVersion):  # sdists, other files
                version = parse_wheel_filename(entry.filename)[1]
                fits = marker_env is None or wheel_fits(entry.filename, marker_env)
                if fits and label in (None, version.local):
                    found.add(version)
        return sorted(found, reverse=True)


def project_client(
    poetry: Poetry, *, refresh: bool = False, auth: IndexAuthenticator | None = None
) -> IndexClient:
    """The index client for checks and choices in a project: its Poetry config and
    sources (``auth``: an install's authenticator instead), no cache with ``--no-cache``."""
    sources = [(source.name, source.url) for source in poetry.get_sources()]
    refresh = refresh or poetry.disable_cache
    return IndexClient(poetry.config, sources, refresh=refresh, auth=auth)


class IndexClient:
    """Look up projects on PEP 503/691 indexes with Poetry's authenticator and a TTL cache."""

    def __init__(
        self,
        config: Config | None,
        sources: Iterable[tuple[str, str]] = (),
        *,
        refresh: bool = False,
        auth: IndexAuthenticator | None = None,
    ) -> None:
        """``config``: Poetry's (``None``: the user's). A page waits :data:`TIMEOUT` or
        ``POETRY_REQUESTS_TIMEOUT`` seconds (the advice a timeout gives)."""
        self.auth = auth or IndexAuthenticator(config, sources)
        self._refresh, self._since = refresh, time.time()
        self._timeout = float(os.environ.get("POETRY_REQUESTS_TIMEOUT") or TIMEOUT)
        self._memory: dict[tuple[str, str], ProjectFiles] = {}
        cache = Path(str(self.auth.config.get("cache-dir"))).expanduser()
        self.cache_dir = cache / "poetry-torch-cuda" / "index"

    def project(self, index_url: str, project: str) -> ProjectFiles:
        """The files ``index_url`` lists for ``project`` (:class:`IndexUnavailableError`
        when the index does not answer usefully)."""
        key = (self.auth.take_off(index_url).rstrip("/"), canonicalize_name(project))
        if key not in self._memory:
            sent = str(self.auth.sends_credentials(index_url))  # 403: missing, or not
            digest = hashlib.sha256("\n".join((*key, sent)).encode()).hexdigest()[:32]
            path = self.cache_dir / f"{digest}.json"
            cached = None if self._refresh else _cached(key[1], read_json(path, None))
            if cached is None:
                cached = self._read(key)
                data = {"format": _CACHE_FORMAT, "fetched": time.time()}
                write_json(path, {**data, "index": mask_url(key[0]), **asdict(cached)})
            self._memory[key] = cached
        return self._memory[key]

    def projects(
        self, wanted: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ProjectFiles | IndexUnavailableError]:
        """:meth:`project` for several ``(index_url, project)`` pairs, in parallel,
        or the error that says why the index could not be asked."""
        if not wanted:
            return {}
        for index_url in {url for url, _ in wanted}:
            self.auth.take_off(index_url)

        def answer(pair: tuple[str, str]) -> ProjectFiles | IndexUnavailableError:
            try:
                return self.project(*pair)
            except IndexUnavailableError as error:
                return error

        with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
            return dict(zip(wanted, pool.map(answer, wanted)))

    def skipped(self) -> list[str]:
        """The PEP 825 variant files the pages asked so far listed (left out)."""
        return sorted({name for page in self._memory.values() for name in page.skipped})

    def _get(
        self, url: str, *, page: bool = True, listed: bool = False
    ) -> requests.Response:
        """``url``'s answer (a missing page's too): a page's in one short attempt (not
        to a host that failed a moment ago), a file's by Poetry's request with its
        retries (``listed``: by a page)."""
        timeout = self._timeout if page else None
        if page and not self._refresh:
            remembered = recall(self.cache_dir, url, self._since)
            if remembered is not None:
                raise remembered
        try:
            if page:  # as Authenticator.request, without its retries
                found = self.auth.get_credentials_for_url(url)
                pair = (found.username or "", found.password or "")
                certs = self.auth.get_certs_for_url(url)
                trusted = certs.cert or certs.verify
                response = self.auth.get_session(url=url).get(
                    url,
                    headers={"Accept": ACCEPT},
                    auth=None if found == HTTPAuthCredential() else pair,
                    timeout=timeout,
                    verify=str(trusted) if isinstance(trusted, Path) else trusted,
                    cert=None if certs.client_cert is None else str(certs.client_cert),
                )
            else:
                # A new dict each time: Poetry 2.0 writes the Authorization header
                # into the dict it is given, which would then go to every host.
                sent = {"Accept-Encoding": "identity"}
                response = self.auth.request(
                    "get", url, raise_for_status=False, headers=sent, stream=True
                )
        except requests.HTTPError as later:  # asked to wait past WAIT: final now
            assert later.response is not None  # _get_backoff's, with its answer
            response = later.response
        except Exception as error:  # noqa: BLE001 - requests', Poetry's "all attempts"
            # Remembered: no answer; not one broken off, a loop, TLS failing.
            silent = isinstance(error, (requests.ConnectionError, requests.Timeout))
            if silent and timeout and not isinstance(error, SSLError):
                remember(self.cache_dir, url, error, timeout)
            raise unavailable(url, error, timeout) from None
        if page and self._refresh:
            remember(self.cache_dir, url, None)
        if (status := response.status_code) >= 400:
            answered = response.url or url
            if not page or not missing(status, self.auth, url, answered):
                raise unavailable(
                    url, response, auth=self.auth, answered=answered, listed=listed
                )
        return response

    def _read(self, key: tuple[str, str]) -> ProjectFiles:
        from poetry.repositories.link_sources.html import HTMLPage
        from poetry.repositories.link_sources.json import SimpleJsonPage

        index_url, name = key
        url = f"{index_url}/{name}/"
        response = self._get(url)
        if response.status_code >= 400:  # what _get lets through: a missing page
            return ProjectFiles(name, False)
        try:
            if _JSON_TYPE in response.headers.get("Content-Type", "").lower():
                content = response.json()
                links = tuple(SimpleJsonPage(response.url, content).links)
            else:
                content, links = {}, tuple(HTMLPage(response.url, response.text).links)
            entries = _entries(links, response.url, content)
        except (ValueError, KeyError, TypeError, AttributeError):  # not its shape
            raise IndexUnavailableError(
                f"{mask_url(url)} answered with a page that is not a simple index"
            ) from None
        skipped = tuple(sorted(e.filename for e in entries if _is_variant(e.filename)))
        entries = tuple(e for e in entries if e.filename not in skipped)
        yanked = {x.filename for x in links if x.yanked} - {e.filename for e in entries}
        return ProjectFiles(name, True, entries, skipped, tuple(sorted(yanked)))

    def download(
        self,
        url: str,
        into: IO[bytes],
        size: int | None = None,
        listed: bool = True,
        tick: Callable[[int], None] | None = None,
    ) -> str:
        """Write ``url``'s bytes (a file a page, ``listed``, or a lock lists) to ``into``
        as they come, telling ``tick`` each chunk's length; their sha256. Stops past
        ``size`` bytes or when under 64 KiB came in the timeout (a dripping mirror)."""
        timeout, chunk = float(constants.REQUESTS_TIMEOUT), 64 * 1024
        digest, count, since = hashlib.sha256(), 0, time.monotonic()
        with self._get(self.auth.take_off(url), page=False, listed=listed) as response:
            read = getattr(response.raw, "read1", response.raw.read)
            try:
                while into.tell() <= (size or float("inf")) and (data := read(chunk)):
                    into.write(data)
                    digest.update(data)
                    count += len(data)
                    if tick is not None:
                        tick(len(data))
                    if count >= chunk:
                        since, count = time.monotonic(), 0
                    elif time.monotonic() - since > timeout:
                        raise TimeoutError("under 64 KiB")
                if into.tell() < (size or 0):  # closed early, no length said
                    raise HTTPError("Connection broken")
            except (requests.RequestException, HTTPError, TimeoutError) as error:
                after = f" after {into.tell()} bytes"
                raise unavailable(url, error, timeout, after) from None
        return digest.hexdigest()


def _cached(project: str, data: Any) -> ProjectFiles | None:
    """A page :meth:`IndexClient.project` wrote a while ago (damaged: ``None``)."""
    with suppress(ValueError, KeyError, TypeError):
        if (
            data["format"] == _CACHE_FORMAT
            and data["project"] == project
            and time.time() - float(data["fetched"]) <= REMEMBER_SECONDS
        ):
            entries = tuple(IndexFile(**entry) for entry in data["entries"])
            skipped, yanked = tuple(data["skipped"]), tuple(data["yanked"])
            return ProjectFiles(project, bool(data["found"]), entries, skipped, yanked)
    return None


def _entries(
    links: Iterable[Any], page_url: str, content: Mapping[str, Any]
) -> tuple[IndexFile, ...]:
    """The non-yanked links of a page as :class:`IndexFile`, one per file name, with
    URLs absolute and the sha256 and size a PEP 691 page (``content``) lists: Poetry
    before 2.1 leaves the URLs relative and the hashes out, 2.2 the sizes. Hashes in
    any case (PEP 503; Poetry reads an HTML page's lowercase ones alone), lowercase."""
    listed = {f.get("filename"): f for f in content.get("files") or []}
    found: dict[str, IndexFile] = {}
    digest = r"(?i)sha256\W{1,4}([0-9a-f]{64})\b"  # in {"sha256": …} and sha256=…
    for link in links:
        if link.yanked or link.filename in found:
            continue
        metadata: str | None = None
        if link.has_metadata:
            sha = re.search(digest, str(link._metadata))
            metadata = sha[1].lower() if sha else ""
        info = listed.get(link.filename) or {}
        sha = re.search(digest, f"{info.get('hashes')} {link.url}")
        found[link.filename] = IndexFile(
            filename=link.filename,
            url=urljoin(page_url, link.url_without_fragment),
            sha256=sha[1].lower() if sha else None,
            size=n if type(n := info.get("size")) is int and n >= 0 else None,
            metadata_sha256=metadata,
        )
    return tuple(found[name] for name in sorted(found))


def wheel_fits(filename: str, marker_env: Mapping[str, Any]) -> bool:
    """Whether the wheel ``filename`` (not a wheel: no) fits the PEP 508 ``marker_env``."""
    with suppress(InvalidWheelFilename, InvalidVersion):
        tags = parse_wheel_filename(filename)[3]
        return any(tag_fits(t.interpreter, t.abi, t.platform, marker_env) for t in tags)
    return False


def tag_fits(
    interpreter: str, abi: str, platform: str, marker_env: Mapping[str, Any]
) -> bool:
    """Whether a wheel tag fits the PEP 508 ``marker_env``: pip's tag check
    approximated from marker values alone (no process in the environment)."""
    major, minor = (str(marker_env.get("python_version", "3.0")) + ".0").split(".")[:2]
    implementation = {"cpython": "cp", "pypy": "pp"}.get(
        str(marker_env.get("implementation_name", "cpython")), "cp"
    )
    version = interpreter[2:] if interpreter[:2] == implementation else ""
    abi3 = abi == "abi3" and version.startswith(major) and version[1:].isdigit()
    if interpreter not in ("py3", f"py{major}", f"py{major}{minor}") and not (
        version == f"{major}{minor}" or (abi3 and int(version[1:]) <= int(minor))
    ):
        return False
    if platform == "any":
        return True
    system = str(marker_env.get("sys_platform", ""))
    machine = arch(str(marker_env.get("platform_machine", "")))
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
    label = len(parts) == 7 or (len(parts) == 6 and not parts[2][:1].isdigit())
    return label or filename.endswith("-variants.json")  # 6, digit: a build tag


def unavailable(
    url: str,
    failure: BaseException | requests.Response,
    timeout: float | None = None,
    after: str = "",
    **asked: Any,
) -> IndexUnavailableError:
    """The one wording of an HTTP error answer (``asked``: :func:`http_failure`'s) or
    of no answer from ``url`` (``after``: how far its body came): cause and way on."""
    head = mask_url(url)
    if isinstance(failure, requests.Response):
        words, fix = http_failure(failure, url, **asked)
    else:
        words, fix = no_answer(failure, url, timeout or constants.REQUESTS_TIMEOUT)
        words, head = words + after, f"could not read {head}"
    error = IndexUnavailableError(f"{head}: {words}. {fix}")
    error.words, error.advice = words, fix
    return error
