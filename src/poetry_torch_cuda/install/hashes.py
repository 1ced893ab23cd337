"""Which locked files an environment needs, and the one message for a refused file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.lockfile.model import LOCK_NAME


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence
    from typing import Any

    from poetry.utils.env import Env

    from poetry_torch_cuda.install.installed import InstalledEnvironment
    from poetry_torch_cuda.install.planning import Plan
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


def locked_files(
    lock: VariantLock,
    plan: Plan,
    env: Env,
    installed: InstalledEnvironment,
    *,
    force: bool = False,
) -> list[LockedFile]:
    """The one file per locked package that this environment needs and lacks.

    The closure of ``plan``'s targets in ``lock`` (markers evaluated for
    ``env``), without what is installed at the locked version already (unless
    ``force``); of each package's files, the wheel whose tags pip prefers here.

    Raises:
        TorchCudaError: the lock lacks a package, or has no file for this env.
    """
    try:
        packages = locked_closure(lock, plan.install, env.marker_env)
    except KeyError as missing:
        raise TorchCudaError(
            f"{LOCK_NAME} has no {missing.args[0]} for {plan.variant}; run "
            "`poetry torch-cuda lock` and then the command again."
        ) from None
    asked = {target.name for target in plan.install}
    files = []
    for package in packages:
        present = installed.get(package.name)
        if (
            not force
            and package.name not in asked
            and present is not None
            and _same(present.version, package.version)
        ):
            continue
        files.append(_best_file(lock, package, env))
    return files


def _best_file(lock: VariantLock, package: LockedPackage, env: Env) -> LockedFile:
    """The wheel of ``package`` that fits ``env`` best (pip's tag order).

    The files whose tags fit the environment's markers come first (no process);
    only when several fit does Poetry ask the environment for its tag order.
    """
    fitting = installable_files(lock, [package], env.marker_env)
    if len(fitting) > 1:
        ranks = {tag: rank for rank, tag in enumerate(env.supported_tags)}
        unranked = len(ranks)

        def rank(file: LockedFile) -> int:
            tags = parse_wheel_filename(file.filename)[3]
            return min((ranks.get(tag, unranked) for tag in tags), default=unranked)

        fitting.sort(key=rank)
    if not fitting:
        raise TorchCudaError(
            f"{LOCK_NAME} has no wheel of {package.name} {package.version} for this "
            f"environment (Python {env.marker_env.get('python_full_version')}, "
            f"{env.marker_env.get('sys_platform')} "
            f"{env.marker_env.get('platform_machine')}). Add this platform to the "
            "project's supported ones and run `poetry torch-cuda lock`."
        )
    return fitting[0]


def _same(installed: str, locked: str) -> bool:
    try:
        return Version(installed) == Version(locked)
    except InvalidVersion:
        return installed == locked
