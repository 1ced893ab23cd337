"""URL helpers: never show credentials."""

from __future__ import annotations

from urllib.parse import urlsplit
from urllib.parse import urlunsplit


def mask_url(url: str) -> str:
    """Return ``url`` with any user name and password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
