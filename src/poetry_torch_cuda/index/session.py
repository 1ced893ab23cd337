"""Poetry's ``Authenticator`` for the plugin's index requests, never a URL with credentials.

Poetry logs the netloc of every new session at debug level (``-vvv``), and
its connection errors name it too, so no URL with ``user:password@`` may
reach it. Credentials written in the index URL are taken off it
(:class:`~poetry_torch_cuda.index.credentials.UrlCredentials`) and handed to
the authenticator's own credential lookup, the one Poetry's configured
sources get theirs from; everything else (``http-basic.<source>``, keyring,
certificates, retries, proxies) stays Poetry's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from poetry.utils.authenticator import Authenticator
from poetry.utils.password_manager import HTTPAuthCredential

from poetry_torch_cuda.index.urls import without_credentials


if TYPE_CHECKING:
    from collections.abc import Iterable

    from poetry.config.config import Config

    from poetry_torch_cuda.index.credentials import UrlCredentials


class IndexAuthenticator(Authenticator):
    """An ``Authenticator`` that also knows the credentials taken off index URLs."""

    def __init__(
        self,
        config: Config,
        sources: Iterable[tuple[str, str]],
        url_credentials: UrlCredentials,
        *,
        poetry_credentials: bool = True,
    ) -> None:
        """``poetry_credentials`` False: only those taken off the URLs (what pip gets)."""
        super().__init__(config, cache_id="poetry-torch-cuda", disable_cache=True)
        self._url_credentials = url_credentials
        self._poetry_credentials = poetry_credentials
        # The project's sources carry the credentials (http-basic.<name>)
        # Poetry matches by host; register them like Poetry's own pool does.
        for name, url in sources:
            if url:
                self.add_repository(name, without_credentials(url))

    def get_credentials_for_url(self, url: str) -> HTTPAuthCredential:
        """The credentials from the index URL itself first, else Poetry's."""
        found = self._url_credentials.lookup(url)
        if found is not None:
            return HTTPAuthCredential(username=found[0], password=found[1])
        if not self._poetry_credentials:
            return HTTPAuthCredential()
        return super().get_credentials_for_url(url)
