"""One wording of HTTP and network failures, one short attempt, the memory of dead hosts.

Every failed request of the plugin (a page, a metadata file, a locked file, the
diagnosis of a pip failure) is worded here: :func:`in_words` and :func:`advice`
for no answer, :func:`http_failure` for an HTTP error status. Checks and choices
ask a page once with :data:`TIMEOUT` (:func:`get_once`), never Poetry's retry
budget, and a host that could not be reached is remembered for
:data:`REMEMBER_SECONDS` in Poetry's cache directory.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

from poetry_torch_cuda.tempfiles import write_json
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    import requests
    from poetry.utils.authenticator import Authenticator

    from poetry_torch_cuda.index.credentials import IndexAccess

#: What a page request accepts: PEP 691 JSON first, then HTML.
ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1, */*;q=0.01"
#: Seconds to connect, and to wait for each answer, on the one attempt.
TIMEOUT = 4.0
#: How long a host that could not be reached is not asked again.
REMEMBER_SECONDS = 600.0
_FILE = "unreachable.json"
#: What :func:`cause` says of an attempt that got no answer in time.
TIMED_OUT = "timed out"
_DNS = "DNS lookup failed"
_TLS = "TLS handshake failed: certificate or proxy"
_DNS_WORDS = re.compile(
    "name or service not known|name resolution|nodename nor servname|getaddrinfo "
    "failed|no address associated"
)
_IN_WORDS = {
    TIMED_OUT: "{host} did not answer within {timeout:g} s",
    _DNS: "{host} could not be found (DNS lookup failed)",
    "connection refused": "{host} refused the connection",
    _TLS: "the TLS handshake with {host} failed (certificate or proxy)",
}


def get_once(
    authenticator: Authenticator, url: str, timeout: float = TIMEOUT
) -> requests.Response:
    """GET a page once with Poetry's credentials, session and certificates for it, as
    ``Authenticator.request`` does but without its retries. Raises what requests raises."""
    credential = authenticator.get_credentials_for_url(url)
    auth = None
    if credential.username is not None or credential.password is not None:
        auth = (credential.username or "", credential.password or "")
    certs = authenticator.get_certs_for_url(url)
    trusted = certs.cert or certs.verify
    return authenticator.get_session(url=url).get(
        url,
        headers={"Accept": ACCEPT},
        auth=auth,
        timeout=timeout,
        verify=str(trusted) if isinstance(trusted, Path) else trusted,
        cert=None if certs.client_cert is None else str(certs.client_cert),
    )


def host_in_words(url: str) -> str:
    """``url``'s host (and port) as a message names it: never credentials."""
    return urlsplit(mask_url(url)).netloc.rsplit("@", 1)[-1] or mask_url(url)


def in_words(error: BaseException, url: str, timeout: float = TIMEOUT) -> str:
    """What went wrong, in words, with the host but never credentials."""
    words = _IN_WORDS.get(cause(error), "could not connect to {host}")
    return words.format(host=host_in_words(url), timeout=timeout)


def advice(error: BaseException) -> str:
    """What to do about ``error`` (no answer), in one sentence."""
    kind = cause(error)
    if kind == TIMED_OUT:
        return (
            "The index is slow or unreachable. Run the command again later, or give "
            "it more time with POETRY_REQUESTS_TIMEOUT=<seconds>."
        )
    if kind == _TLS:
        return (
            "Check the certificates Poetry has for the index "
            "(`poetry config certificates.<source>.cert`)."
        )
    return (
        "Check the network, any proxy settings, and the index URL "
        "(index-url, or the url of the source named by source)."
    )


def http_failure(
    status: int, project: str | None = None, index: IndexAccess | None = None
) -> tuple[str, str]:
    """``(cause, advice)`` for an HTTP error status; ``project`` and ``index``: the
    page asked, for advice that names the page, the source and its variables."""
    if status in (401, 403):
        fix = (
            "Check the credentials Poetry has for the index's source: "
            "`poetry config http-basic.<source> <user> <password>`."
        )
        if index is not None and index.has_credentials:
            name = index.source or "<source>"
            variable = "POETRY_HTTP_BASIC_" + (
                re.sub(r"\W", "_", name.upper()) if index.source else "<SOURCE>"
            )
            fix = (
                "Check the credentials Poetry has for it: `poetry config "
                f"http-basic.{name} <user> <password>` or {variable}_USERNAME "
                f"and {variable}_PASSWORD."
            )
        elif index is not None:
            fix = (
                "It wants credentials: declare it as a [[tool.poetry.source]], set "
                'source = "<name>" in [tool.poetry-torch-cuda] and give them with '
                "`poetry config http-basic.<name> <user> <password>`."
            )
        return f"the index refused access (HTTP {status})", fix
    about = f" for {project}" if project else ""
    if status == 404 and index is not None:
        return (
            f"the index has no page for {project} (HTTP 404)",
            (
                "Check the index URL and the variant: "
                f"{index.shown.rstrip('/')}/{project}/ should list its wheels."
            ),
        )
    if status in (404, 410):
        return (
            f"the index has no such file (HTTP {status}){about}",
            (
                "Check the index URL and the variant; if the index moved its files, "
                "run `poetry torch-cuda lock` again."
            ),
        )
    if status >= 500:
        return (
            f"the index failed with HTTP {status} (a server error)",
            "Run the command again later, or tell whoever runs the index.",
        )
    return (
        f"the index answered HTTP {status}{about}",
        "Check the index URL, then run the command again.",
    )


def cause(error: BaseException) -> str:
    """Why no answer came, in a few words without host or credentials:
    :data:`TIMED_OUT`, ``DNS lookup failed``, ``connection refused``…"""
    seen: list[str] = []
    current: BaseException | None = error
    while current is not None and len(seen) < 10:
        seen.append(f"{type(current).__name__} {current}".lower())
        current = current.__cause__ or current.__context__
    text = " ".join(seen)
    if "timed out" in text or "timeout" in text:
        return TIMED_OUT
    if _DNS_WORDS.search(text):
        return _DNS
    if "refused" in text:
        return "connection refused"
    if "ssl" in text or "certificate" in text:
        return _TLS
    return "no connection"


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


def _hosts(cache_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((cache_dir / _FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recall(cache_dir: Path, url: str, now: float | None = None) -> str | None:
    """Why ``url``'s host was not reachable a short while ago, or ``None``."""
    try:
        entry = _hosts(cache_dir)[_host(url)]
        age = (time.time() if now is None else now) - float(entry["at"])
    except (KeyError, TypeError, ValueError):
        return None
    if not 0 <= age <= REMEMBER_SECONDS:
        return None
    return (
        f"{entry['reason']} (noted {age:.0f} s ago; asked again in "
        f"{REMEMBER_SECONDS - age:.0f} s)"
    )


def remember(cache_dir: Path, url: str, reason: str | None) -> None:
    """Note that ``url``'s host could not be reached just now (``None``: it answered)."""
    data = _hosts(cache_dir)
    if reason is None and data.pop(_host(url), None) is None:
        return
    if reason is not None:
        data[_host(url)] = {"at": time.time(), "reason": reason}
    write_json(cache_dir / _FILE, data)
