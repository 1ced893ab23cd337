"""Which locked files an environment needs, and the one message for a refused file.

The torch family's files come from torch-cuda.lock; the Poetry packages the
family needs and the environment lacks, from poetry.lock (its sha256, the URL
from the package's source). Nothing is installed that no lock hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.model import LockedFile


if TYPE_CHECKING:
    from collections.abc import Mapping
    from collections.abc import Sequence
    from typing import Any

    from packaging.utils import NormalizedName
    from poetry.core.packages.package import Package
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.lockfile.model import VariantLock

#: Where Poetry's own packages are locked.
POETRY_LOCK = "poetry.lock"


@dataclass(frozen=True)
class PoetryLockedFile(LockedFile):
    """A file of a Poetry package, checked against poetry.lock's sha256."""

    lock: str = POETRY_LOCK


#: The words every refusal of a file with other bytes than locked carries.
DIFFERENT_BYTES = "the index or mirror now serves different bytes for the same file"


def _fits(filename: str, marker_env: Mapping[str, Any]) -> bool:
    from packaging.utils import InvalidWheelFilename

    from poetry_torch_cuda.index.client import tag_fits

    try:
        tags = parse_wheel_filename(filename)[3]
    except (InvalidWheelFilename, InvalidVersion):
        return False
    return any(tag_fits(t.interpreter, t.abi, t.platform, marker_env) for t in tags)


def refusal_message(files: Sequence[str]) -> str:
    """The one message for files whose bytes differ from torch-cuda.lock."""
    return (
        f"refused {'; '.join(files)}: {DIFFERENT_BYTES}.\n"
        "A published file never changes: treat this as a compromised or broken "
        "mirror and tell whoever runs it. pyproject.toml, poetry.lock and "
        f"{LOCK_NAME} are left as they were."
    )


def locked_files(lock: VariantLock, plan: Plan, env: Env) -> list[LockedFile]:
    """Of the closure of ``plan``'s targets in ``lock``, the wheel pip prefers here of each
    package not installed at its locked version (unless forced) nor the project's own.

    Raises:
        TorchCudaError: the lock lacks a package, or has no file for this env.
    """
    roots = [
        (t.name, None if t.version is None else str(t.version)) for t in plan.install
    ]
    try:
        packages = lock.closure(roots, env.marker_env)
    except KeyError as missing:
        raise TorchCudaError(
            f"{LOCK_NAME} has no {missing.args[0]} for {plan.variant}; run "
            "`poetry torch-cuda lock` and then the command again."
        ) from None
    asked = {target.name for target in plan.install}
    files = []
    for package in packages:
        present = plan.installed.get(package.name)
        if package.name in plan.own or (
            not plan.force
            and package.name not in asked
            and present is not None
            and _same(present.version, package.version)
        ):
            continue
        files.append(
            _best_file(lock.files(package), package.name, package.version, env)
        )
    return files


def poetry_files(
    poetry: Poetry, env: Env, wanted: Mapping[NormalizedName, str]
) -> list[LockedFile]:
    """Of each ``wanted`` package (name: version), poetry.lock's wheel for this env: the URL
    from its source's page (Poetry's repository), the sha256 poetry.lock's.

    Raises:
        TorchCudaError: poetry.lock or the source has no such wheel.
    """
    from poetry_torch_cuda.project.locked import locked_packages

    found = []
    for package in locked_packages(poetry, wanted):
        hashes = {f["file"]: str(f["hash"]) for f in package.files}
        version = package.version.text
        candidates = []
        for link in _repository(poetry, package).find_links_for_package(package):
            algorithm, _, digest = hashes.get(link.filename, "").partition(":")
            if algorithm == "sha256" and link.is_wheel:
                candidates.append(
                    PoetryLockedFile(
                        package.name,
                        version,
                        link.filename,
                        link.url_without_fragment,
                        digest,
                    )
                )
        found.append(_best_file(candidates, package.name, version, env, POETRY_LOCK))
    return found


def _repository(poetry: Poetry, package: Package) -> Any:
    """Where Poetry's installer fetches ``package`` from (as its ``Chooser`` does)."""
    pool = poetry.pool
    if package.source_type and package.source_reference:
        return pool.repository(package.source_reference)
    return (
        pool.repository("pypi") if pool.has_repository("pypi") else pool.repositories[0]
    )


def _best_file(
    files: Sequence[LockedFile],
    name: str,
    version: str,
    env: Env,
    lock: str = LOCK_NAME,
) -> LockedFile:
    """Of ``files``, the wheel that fits ``env`` best: markers first (no process), pip's tag
    order only when several fit."""
    fitting = [file for file in files if _fits(file.filename, env.marker_env)]
    if len(fitting) > 1:
        ranks = {tag: rank for rank, tag in enumerate(env.supported_tags)}
        unranked = len(ranks)

        def rank(file: LockedFile) -> int:
            tags = parse_wheel_filename(file.filename)[3]
            return min((ranks.get(tag, unranked) for tag in tags), default=unranked)

        fitting.sort(key=rank)
    if not fitting:
        markers = env.marker_env
        raise TorchCudaError(
            f"{lock} has no wheel of {name} {version} for this environment (Python "
            f"{markers.get('python_full_version')}, {markers.get('sys_platform')} "
            f"{markers.get('platform_machine')}). Add this platform to the project's "
            f"supported ones and run `poetry {'lock' if lock == POETRY_LOCK else 'torch-cuda lock'}`."
        )
    return fitting[0]


def _same(installed: str, locked: str) -> bool:
    try:
        return Version(installed) == Version(locked)
    except InvalidVersion:
        return installed == locked
