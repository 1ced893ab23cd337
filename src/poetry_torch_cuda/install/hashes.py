"""Which locked files an environment needs, and the one message for a refused file."""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def refusal_message(files: Sequence[str]) -> str:
    """The one message for files whose bytes differ from torch-cuda.lock."""
    return (
        f"refused {'; '.join(files)}: {DIFFERENT_BYTES}.\n"
        "A published file never changes: treat this as a compromised or broken "
        "mirror and tell whoever runs it. pyproject.toml, poetry.lock and "
        f"{LOCK_NAME} are left as they were."
    )
