"""Where pip fetches a variant's wheels, with the credentials Poetry already has.

Credentials come from Poetry's own machinery, never from a file of ours:
``poetry config http-basic.<source>``, ``POETRY_HTTP_BASIC_<SOURCE>_USERNAME``
and ``..._PASSWORD``, Poetry's keyring, or a ``user:password@`` already in
the URL. They reach pip only through its environment and are scrubbed from
everything the plugin prints.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote
from urllib.parse import unquote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from poetry_torch_cuda.index.urls import is_loopback
from poetry_torch_cuda.index.urls import mask_url
from poetry_torch_cuda.index.urls import register_secret
from poetry_torch_cuda.index.urls import without_credentials


if TYPE_CHECKING:
    from poetry.config.config import Config

    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant


@dataclass(frozen=True)
class IndexAccess:
    """A variant's index URL (without credentials) and the credentials for it."""

    url: str
    username: str | None = None
    password: str | None = None
    #: Plain http to another host, which the user allowed explicitly.
    insecure_host: str | None = None
    #: The Poetry source the URL comes from (``source = "<name>"``).
    source: str | None = None

    @classmethod
    def from_url(cls, url: str, *, allow_insecure_http: bool = False) -> IndexAccess:
        """Split ``user:password@`` off ``url`` (percent-decoded), if it has one."""
        parts = urlsplit(url)
        username = None if parts.username is None else unquote(parts.username)
        password = None if parts.password is None else unquote(parts.password)
        register_secret(password)
        insecure = None
        if (
            allow_insecure_http
            and parts.scheme == "http"
            and not is_loopback(parts.hostname)
        ):
            insecure = parts.netloc.rsplit("@", 1)[-1]
        return cls(without_credentials(url), username, password, insecure)

    @property
    def has_credentials(self) -> bool:
        """Whether a user name or a password goes with the URL."""
        return self.username is not None or self.password is not None

    @property
    def shown(self) -> str:
        """The URL as messages show it: never with credentials."""
        return mask_url(self.url)

    @property
    def pip_url(self) -> str:
        """The URL with ``user:password@`` in it, for pip's environment only."""
        if not self.has_credentials:
            return self.url
        userinfo = quote(self.username or "", safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password, safe="")
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))

    @property
    def authorization(self) -> str | None:
        """An HTTP basic ``Authorization`` header value, or ``None``."""
        if not self.has_credentials:
            return None
        pair = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def __repr__(self) -> str:
        hidden = "***" if self.has_credentials else None
        return f"IndexAccess(url={self.shown!r}, credentials={hidden!r})"


def index_access(
    config: TorchCudaConfig, variant: Variant, poetry_config: Config | None = None
) -> IndexAccess:
    """The index for ``variant`` with the credentials Poetry holds for it.

    With ``source = "<name>"`` they are the ones Poetry has for that source.
    With ``index-url`` they come from the URL itself or, as Poetry does for its
    own downloads, from a project source or configured repository on the same
    host (credentials configured for https are never sent over http).
    """
    url = config.index_url(variant)
    access = IndexAccess.from_url(url, allow_insecure_http=config.allow_insecure_http)
    access = dataclasses.replace(access, source=config.source)
    if access.has_credentials:
        return access
    credential = _poetry_credentials(config, access.url, poetry_config)
    if credential is None:
        return access
    username, password = credential
    register_secret(password)
    return dataclasses.replace(access, username=username, password=password)


def _poetry_credentials(
    config: TorchCudaConfig, url: str, poetry_config: Config | None
) -> tuple[str | None, str | None] | None:
    from poetry.config.config import Config
    from poetry.utils.authenticator import Authenticator

    authenticator = Authenticator(
        poetry_config if poetry_config is not None else Config.create(),
        disable_cache=True,
    )
    if config.source is not None:
        authenticator.add_repository(config.source, url)
        credential = authenticator.get_http_auth(config.source)
    else:
        for name, source_url in config.project_sources:
            if "{" not in source_url:
                authenticator.add_repository(name, source_url)
        repository = authenticator.get_repository_config_for_url(url)
        if repository is None:
            return None  # no source on this host: no keyring look-ups either
        if (
            urlsplit(repository.url).scheme == "https"
            and urlsplit(url).scheme != "https"
        ):
            return None  # never send credentials meant for https in the clear
        credential = authenticator.get_credentials_for_url(url)
    if credential is None or (
        credential.username is None and credential.password is None
    ):
        return None
    return credential.username, credential.password


class UrlCredentials:
    """Credentials taken off index URLs, kept for the requests under each URL.

    Poetry's HTTP stack logs the netloc of a URL (``user:password@`` included)
    at debug level, so URLs reach it bare and the credentials reach it through
    :meth:`lookup` (see :mod:`poetry_torch_cuda.index.session`).
    """

    def __init__(self) -> None:
        self._by_prefix: dict[str, tuple[str | None, str | None]] = {}

    def take_off(self, url: str) -> str:
        """``url`` without ``user:password@``; requests under it get those credentials."""
        access = IndexAccess.from_url(url)
        if access.has_credentials:
            prefix = access.url.rstrip("/") + "/"
            self._by_prefix[prefix] = (access.username, access.password)
        return access.url

    def lookup(self, url: str) -> tuple[str | None, str | None] | None:
        """The credentials stripped off the longest URL ``url`` lies under, if any."""
        for prefix in sorted(self._by_prefix, key=len, reverse=True):
            if url.startswith(prefix) or url == prefix[:-1]:
                return self._by_prefix[prefix]
        return None
