"""What a unit test needs around an ``IndexClient``: Poetry's config and a machine's markers."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from poetry.config.config import Config


if TYPE_CHECKING:
    from pathlib import Path

    import pytest

#: The marker environment of CPython 3.11 on x86_64 Linux.
LINUX_311 = {
    "python_version": "3.11",
    "implementation_name": "cpython",
    "sys_platform": "linux",
    "platform_machine": "x86_64",
}


def poetry_config(tmp_path: Path) -> Config:
    """Poetry's config with a cache under ``tmp_path`` and the keyring off."""
    config = Config()
    config.merge({"cache-dir": str(tmp_path / "cache"), "keyring": {"enabled": False}})
    return config


def authenticators_made(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every ``IndexAuthenticator`` made from now on (in this process), in order."""
    from poetry_torch_cuda.index import client

    made: list[object] = []
    init = client.IndexAuthenticator.__init__

    def counted(self: client.IndexAuthenticator, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(client.IndexAuthenticator, "__init__", counted)
    return made
