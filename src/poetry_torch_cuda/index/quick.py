"""One short attempt at an index page, and the memory of a host that did not answer.

The plugin asks an index only to check or to choose (the lock-time check,
``auto``, ``variants``, ``status``): never worth Poetry's retry budget, which
is six attempts of 15 s each on a server that accepts and never answers. So a
page is asked for once, with :data:`TIMEOUT`, through Poetry's authenticator
(its credentials, certificates and proxies), and a host that could not be
reached is remembered for :data:`REMEMBER_SECONDS` in Poetry's cache
directory, so the next runs do not wait for it again.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from poetry_torch_cuda.index.urls import mask_url


if TYPE_CHECKING:
    from collections.abc import Mapping

    import requests
    from poetry.utils.authenticator import Authenticator

#: Seconds to connect, and to wait for each answer, on the one attempt.
TIMEOUT = 4.0
#: How long a host that could not be reached is not asked again.
REMEMBER_SECONDS = 600.0
_FILE = "unreachable.json"


def get_once(
    authenticator: Authenticator,
    url: str,
    headers: Mapping[str, str],
    timeout: float = TIMEOUT,
    *,
    verify: str | None = None,
) -> requests.Response:
    """GET ``url`` once, as ``Authenticator.request`` would but without its retries.

    ``verify``: a CA bundle to use instead of the one Poetry has for the URL.

    Raises:
        requests.RequestException: no answer (see :func:`in_words`).
        OSError: likewise, from below requests.
    """
    import requests

    credential = authenticator.get_credentials_for_url(url)
    auth = None
    if credential.username is not None or credential.password is not None:
        auth = requests.auth.HTTPBasicAuth(
            credential.username or "", credential.password or ""
        )
    session = authenticator.get_session(url=url)
    prepared = session.prepare_request(
        requests.Request("get", url, headers=dict(headers), auth=auth)
    )
    certs = authenticator.get_certs_for_url(url)
    trusted = verify or certs.cert or certs.verify
    cert = certs.client_cert
    settings = session.merge_environment_settings(
        prepared.url or url,
        {},
        None,
        str(trusted) if isinstance(trusted, Path) else trusted,
        None if cert is None else str(cert),
    )
    return session.send(prepared, timeout=timeout, allow_redirects=True, **settings)


def in_words(error: BaseException, url: str, timeout: float = TIMEOUT) -> str:
    """What went wrong, in words, with the host but never credentials."""
    host = urlsplit(mask_url(url)).netloc.rsplit("@", 1)[-1] or mask_url(url)
    kind = cause(error)
    if kind == TIMED_OUT:
        return f"{host} did not answer within {timeout:g} s"
    if kind == _DNS:
        return f"{host} could not be found (DNS lookup failed)"
    if kind == _REFUSED:
        return f"{host} refused the connection"
    if kind == _TLS:
        return f"the TLS handshake with {host} failed (certificate or proxy)"
    return f"could not connect to {host}"


#: What :func:`cause` says of an attempt that got no answer in time.
TIMED_OUT = "timed out"
_DNS = "DNS lookup failed"
_REFUSED = "connection refused"
_TLS = "TLS handshake failed: certificate or proxy"


def cause(error: BaseException) -> str:
    """Why no answer came, in a few words without host or credentials:
    :data:`TIMED_OUT`, ``DNS lookup failed``, ``connection refused``…"""
    text = _chain_text(error)
    if "timed out" in text or "timeout" in text:
        return TIMED_OUT
    if any(
        needle in text
        for needle in (
            "name or service not known",
            "temporary failure in name resolution",
            "nodename nor servname",
            "getaddrinfo failed",
            "no address associated",
            "name resolution",
        )
    ):
        return _DNS
    if "refused" in text:
        return _REFUSED
    if "ssl" in text or "certificate" in text:
        return _TLS
    return "no connection"


def _chain_text(error: BaseException) -> str:
    seen: list[str] = []
    current: BaseException | None = error
    while current is not None and len(seen) < 10:
        seen.append(f"{type(current).__name__} {current}".lower())
        current = current.__cause__ or current.__context__
    return " ".join(seen)


def _key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


def recall(cache_dir: Path, url: str, now: float | None = None) -> str | None:
    """Why ``url``'s host was not reachable a short while ago, or ``None``."""
    try:
        data = json.loads((cache_dir / _FILE).read_text(encoding="utf-8"))
        entry = data[_key(url)]
        age = (time.time() if now is None else now) - float(entry["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not 0 <= age <= REMEMBER_SECONDS:
        return None
    return (
        f"{entry['reason']} (noted {age:.0f} s ago; asked again in "
        f"{REMEMBER_SECONDS - age:.0f} s)"
    )


def remember(cache_dir: Path, url: str, reason: str) -> None:
    """Note that ``url``'s host could not be reached just now (best effort)."""
    path = cache_dir / _FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[_key(url)] = {"at": time.time(), "reason": reason}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream)
        Path(temporary).replace(path)
    except OSError:
        pass


def forget(cache_dir: Path, url: str) -> None:
    """Forget a remembered failure of ``url``'s host (it answered)."""
    path = cache_dir / _FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.pop(_key(url), None) is not None:
            path.write_text(json.dumps(data), encoding="utf-8")
    except (OSError, ValueError):
        pass
