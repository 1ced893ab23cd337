"""URL helpers: never show credentials, know which hosts are this machine."""

from __future__ import annotations

import ipaddress
import re
from contextlib import suppress
from urllib.parse import quote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit


#: ``scheme://user:password@`` anywhere in a text, e.g. in pip's output.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")

#: Passwords seen in this process; :func:`scrub` removes them from any text.
_SECRETS: set[str] = set()


def mask_url(url: str) -> str:
    """Return ``url`` with any user name and password replaced by ``***``."""
    try:
        masked = without_credentials(url, "***@")
    except ValueError:
        return "<invalid URL>"
    # Shown, written without ``//`` (``alice:pw@host/...``): what comes before the
    # last ``@`` ahead of the first ``/`` may be credentials all the same.
    head, slash, rest = masked.partition("/")
    if "@" in head:
        return "***@" + head.rsplit("@", 1)[1] + slash + rest
    return masked


def without_credentials(url: str, userinfo: str = "") -> str:
    """``url`` with its ``user:password@`` part removed (or replaced by ``userinfo``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:  # none, or a path such as ``libs@2/x.whl``
        return url
    return urlunsplit(parts._replace(netloc=userinfo + parts.netloc.rsplit("@", 1)[1]))


def register_secret(secret: str | None) -> None:
    """Remember ``secret`` so that :func:`scrub` hides it (raw and URL-quoted)."""
    if secret:
        _SECRETS.update({secret, quote(secret, safe="")})


def scrub(text: str) -> str:
    """``text`` with URL credentials and every registered secret replaced by ``***``."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a URL's host name) can only be this machine."""
    host = (host or "").strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    with suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def plain_http_elsewhere(url: str) -> bool:
    """Whether ``url`` is plain http to a host other than this machine."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname)
