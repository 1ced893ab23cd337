"""At ``poetry lock`` / ``update`` time: does the variant have the torch just locked?

One cached index request (torch's page) tells the user now, not at deploy
time, that the configured variant has no build of the locked version, and
which versions it does have.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.index.client import IndexUnavailableError
from poetry_torch_cuda.index.offers import SHOWN_VERSIONS
from poetry_torch_cuda.index.urls import mask_url
from poetry_torch_cuda.output import PREFIX


if TYPE_CHECKING:
    from cleo.io.io import IO
    from poetry.poetry import Poetry

    from poetry_torch_cuda.project.config import TorchCudaConfig


def missing_builds(config: TorchCudaConfig, poetry: Poetry) -> list[str]:
    """Warnings when the variant has no build of the locked torch.

    One request: torch's page (or, without torch among the packages, the
    first configured one's); the install step names any other missing build.
    ``auto`` is checked at install time instead, where the machine is known.
    """
    from poetry_torch_cuda.machine.resolution import index_client

    variant = config.variant
    if variant.kind == "auto" or not variant.has_builds_for(sys.platform):
        return []
    locker = poetry.locker
    if not locker.is_locked():
        return []
    locked: dict[str, set[str]] = {}
    for package in locker.locked_repository().packages:
        if package.name in config.package_names:
            locked.setdefault(package.name, set()).add(package.version.text)
    if not locked:
        return []
    name = min(locked, key=lambda n: (n != "torch", n))
    url = config.index_url(variant)
    files = index_client(poetry).project(url, name)
    have = [v.public for v in files.versions(variant.local_label)]
    missing = {_public(v) for v in locked[name]} - set(have)
    if not missing:
        return []
    offered = ", ".join(have[:SHOWN_VERSIONS]) or "none"
    return [
        f"{variant} has no build of {name} {public} (locked in poetry.lock) at "
        f"{mask_url(url)}; it has {name} {offered}. Constrain {name} to one of "
        "those, or pick another variant (`poetry torch-cuda variants` lists them)."
        for public in sorted(missing, key=_key, reverse=True)
    ]


def warn_missing_builds(config: TorchCudaConfig, poetry: Poetry, io: IO) -> None:
    """Print :func:`missing_builds`' warnings on stderr."""
    from cleo.formatters.formatter import Formatter

    try:
        warnings = missing_builds(config, poetry)
    except IndexUnavailableError as error:  # a check only: one line, never a failure
        io.write_error_line(
            f"{PREFIX}: skipped the check that {config.variant} has the locked "
            f"torch: {Formatter.escape(str(error))}"
        )
        return
    for warning in warnings:
        io.write_error_line(f"<warning>{PREFIX}: {Formatter.escape(warning)}</>")


def _public(version: str) -> str:
    try:
        return Version(version).public
    except InvalidVersion:
        return version


def _key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)
