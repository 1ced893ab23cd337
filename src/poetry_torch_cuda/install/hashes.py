"""Install a locked build with pip's hash checking, and explain a refused file."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from poetry_torch_cuda.lockfile.model import LOCK_NAME


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence
    from typing import Any

    from poetry_torch_cuda.install.planning import Target
    from poetry_torch_cuda.lockfile.model import LockedFile
    from poetry_torch_cuda.lockfile.model import LockedPackage
    from poetry_torch_cuda.lockfile.model import VariantLock

#: The words every refusal of a file with other bytes than locked carries.
DIFFERENT_BYTES = "the index or mirror now serves different bytes for the same file"
_EXPECTED = re.compile(r"Expected sha256 (?P<hash>[0-9a-f]{64})")
_OR = re.compile(r"^\s*Or:\s+(?P<hash>[0-9a-f]{64})")
_GOT = re.compile(r"Got\s+(?P<hash>[0-9a-f]{64})")
_FROM = re.compile(r" from (?P<url>[a-z][a-z0-9+.-]*://\S+?)(?: \(|:?$)")


def locked_closure(
    lock: VariantLock, targets: Iterable[Target], marker_env: Mapping[str, Any]
) -> list[LockedPackage]:
    """The locked packages ``targets`` need in this environment, the targets first.

    Raises:
        KeyError: a target is not in the lock (the lock is stale).
    """
    roots = [
        (target.name, None if target.version is None else str(target.version))
        for target in targets
    ]
    order = {name: number for number, (name, _) in enumerate(roots)}
    packages = lock.closure(roots, marker_env)
    return sorted(packages, key=lambda p: order.get(p.name, len(order)))


def installable_files(
    lock: VariantLock, packages: Iterable[LockedPackage], marker_env: Mapping[str, Any]
) -> list[LockedFile]:
    """For each package, the locked files whose wheel tags fit ``marker_env``.

    What a downloader fetches (and checks against ``LockedFile.sha256``) before
    handing pip local files; pip still picks among them by its own tag order.
    """
    from packaging.utils import InvalidWheelFilename
    from packaging.utils import parse_wheel_filename
    from packaging.version import InvalidVersion

    from poetry_torch_cuda.index.client import tag_fits

    chosen = []
    for package in packages:
        for locked in lock.files(package):
            try:
                tags = parse_wheel_filename(locked.filename)[3]
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if any(
                tag_fits(t.interpreter, t.abi, t.platform, marker_env) for t in tags
            ):
                chosen.append(locked)
    return chosen


def requirement_lines(packages: Iterable[LockedPackage]) -> list[str]:
    """``name==version --hash=sha256:…`` per package, for ``pip --require-hashes``."""
    return [
        f"{package.name}=={package.version} "
        + " ".join(f"--hash=sha256:{digest}" for digest in package.hashes)
        for package in packages
    ]


def refused_files(lines: Sequence[str]) -> list[str]:
    """From pip's output: one sentence per file whose bytes differ from the lock."""
    found = []
    current = "a file"
    expected: list[str] = []
    for line in lines:
        stripped = line.strip()
        if (source := _FROM.search(stripped)) is not None and stripped.endswith(":"):
            current = _file_name(source["url"])
            expected = []
        elif (match := _EXPECTED.search(stripped)) is not None:
            expected = [match["hash"]]
        elif (match := _OR.search(line)) is not None:
            expected.append(match["hash"])
        elif (match := _GOT.search(stripped)) is not None:
            found.append(
                f"{current}: expected sha256 {' or '.join(expected) or '?'} "
                f"({LOCK_NAME}), received sha256 {match['hash']}"
            )
    return found


def refusal_message(files: Sequence[str]) -> str:
    """The one message for files whose bytes differ from torch-cuda.lock."""
    return (
        f"refused {'; '.join(files)}: {DIFFERENT_BYTES}.\n"
        "A published file never changes: treat this as a compromised or broken "
        "mirror and tell whoever runs it. pyproject.toml, poetry.lock and "
        f"{LOCK_NAME} are left as they were."
    )


def _file_name(url: str) -> str:
    return unquote(url.split("#", 1)[0].rsplit("/", 1)[-1]) or "a file"
