"""Which credentials a request carries: the one place, Poetry's ``Authenticator`` rules.

Pages, metadata, locked files and pip's index URL all take theirs from
:func:`authenticator`: Poetry's ``Authenticator`` with the project's sources
(``http-basic.<source>``, ``POETRY_HTTP_BASIC_*``, keyring, certificates; by
host and path, never https credentials over http), plus what Poetry lacks:
credentials written in an ``index-url``, taken off the URL and never printed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote
from urllib.parse import urlsplit

from poetry.utils.authenticator import Authenticator
from poetry.utils.password_manager import HTTPAuthCredential

from poetry_torch_cuda.urls import mask_url
from poetry_torch_cuda.urls import register_secret
from poetry_torch_cuda.urls import without_credentials


if TYPE_CHECKING:
    from collections.abc import Iterable

    from poetry.config.config import Config
    from poetry.utils.authenticator import AuthenticatorRepositoryConfig

    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant

#: Repository names given to index URLs that carry their own credentials.
_IN_URL = "<index-url {}>"


@dataclass(frozen=True)
class IndexAccess:
    """A variant's index URL (without credentials) and the credentials for it."""

    url: str
    username: str | None = None
    password: str | None = None
    #: The Poetry source the URL comes from (``source = "<name>"``).
    source: str | None = None

    @classmethod
    def from_url(cls, url: str) -> IndexAccess:
        """Split ``user:password@`` off ``url`` (percent-decoded), if it has one."""
        parts = urlsplit(url)
        username = None if parts.username is None else unquote(parts.username)
        password = None if parts.password is None else unquote(parts.password)
        register_secret(password)
        return cls(without_credentials(url), username, password)

    @property
    def has_credentials(self) -> bool:
        """Whether a user name or a password goes with the URL."""
        return self.username is not None or self.password is not None

    @property
    def shown(self) -> str:
        """The URL as messages show it: never with credentials."""
        return mask_url(self.url)

    def __repr__(self) -> str:
        hidden = "***" if self.has_credentials else None
        return f"IndexAccess(url={self.shown!r}, credentials={hidden!r})"


class IndexAuthenticator(Authenticator):
    """Poetry's ``Authenticator`` that also knows credentials written in index URLs."""

    def __init__(
        self, config: Config | None, sources: Iterable[tuple[str, str]], pool_size: int
    ) -> None:
        super().__init__(
            config,
            cache_id="poetry-torch-cuda",
            disable_cache=True,
            pool_size=pool_size,
        )
        #: Poetry's configuration the requests follow.
        self.config = self._config
        self._in_url: dict[str, HTTPAuthCredential] = {}
        for name, url in sources:
            if url:
                self.take_off(url, name)

    def take_off(self, url: str, name: str | None = None) -> str:
        """``url`` without ``user:password@``; requests that Poetry's rules match
        to it (scheme, host, path) get those credentials. ``name``: a source."""
        access = IndexAccess.from_url(url)
        if access.has_credentials:
            name = _IN_URL.format(access.url)
            self._in_url[name] = HTTPAuthCredential(access.username, access.password)
        if name is not None and name not in self.configured_repositories:
            self.add_repository(name, access.url)
        return access.url

    def _get_repository_config_for_url(
        self, url: str, exact_match: bool = False
    ) -> AuthenticatorRepositoryConfig | None:
        """Poetry's match, but https credentials never go out over plain http
        (Poetry itself decides so only from 2.1 on)."""
        found = super()._get_repository_config_for_url(url, exact_match)
        if found is not None and found.url.lower().startswith("https://"):
            return found if url.lower().startswith("https://") else None
        return found

    def _get_credentials_for_repository(
        self, repository: AuthenticatorRepositoryConfig
    ) -> HTTPAuthCredential:
        found = self._in_url.get(repository.name)
        if found is not None:
            return found
        return super()._get_credentials_for_repository(repository)


def authenticator(
    config: Config | None, sources: Iterable[tuple[str, str]] = (), pool_size: int = 10
) -> IndexAuthenticator:
    """The authenticator every request of the plugin goes through."""
    return IndexAuthenticator(config, sources, pool_size)


def variant_authenticator(
    config: TorchCudaConfig,
    variant: Variant,
    poetry_config: Config | None = None,
    pool_size: int = 10,
) -> IndexAuthenticator:
    """:func:`authenticator` for ``variant``'s index: the project's sources, the one
    ``source`` names at the variant's URL, and credentials written in that URL."""
    url = config.index_url(variant)
    sources = [(n, u) for n, u in config.project_sources if n != config.source]
    if config.source is not None:
        sources.append((config.source, url))
    found = authenticator(poetry_config, sources, pool_size)
    found.take_off(url)
    return found


def index_access(
    config: TorchCudaConfig, variant: Variant, poetry_config: Config | None = None
) -> IndexAccess:
    """The index for ``variant`` with the credentials :func:`authenticator` gives it."""
    access = IndexAccess.from_url(config.index_url(variant))
    access = dataclasses.replace(access, source=config.source)
    if access.has_credentials:
        return access
    auth = variant_authenticator(config, variant, poetry_config)
    found = auth.get_credentials_for_url(access.url)
    if found.username is None and found.password is None:
        return access
    register_secret(found.password)
    return dataclasses.replace(access, username=found.username, password=found.password)
