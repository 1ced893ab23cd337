"""What the lock file resolves for an environment, through Poetry's own Transaction."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

from poetry_torch_cuda.errors import TorchCudaError


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from packaging.utils import NormalizedName
    from poetry.core.packages.package import Package
    from poetry.poetry import Poetry
    from poetry.utils.env import Env


@dataclass(frozen=True)
class LockedState:
    """What the lock resolves for this environment: versions and the dependency graph."""

    versions: Mapping[NormalizedName, str]
    graph: Mapping[NormalizedName, Iterable[NormalizedName]]
    #: Every package the lock resolves for the environment, at its version: what
    #: pip is held to when it must add something (empty: ``versions``).
    pins: Mapping[NormalizedName, str] = field(default_factory=dict)
    #: The project's own direct dependencies (every group): Poetry's, never the plugin's.
    direct: frozenset[NormalizedName] = frozenset()


def dependency_graph(
    packages: Iterable[Package],
) -> dict[NormalizedName, list[NormalizedName]]:
    """Name -> required names, markers ignored (a superset is what protection wants)."""
    return {
        package.name: [dep.name for dep in package.requires] for package in packages
    }


def locked_state(poetry: Poetry, env: Env) -> LockedState:
    """The versions the lock installs into ``env`` (default groups) and its graph.

    Raises:
        TorchCudaError: the project has no lock file yet.
    """
    from poetry.puzzle.transaction import Transaction

    locker = poetry.locker
    if not locker.is_locked():
        raise TorchCudaError(
            "poetry.lock does not exist yet, so the torch version to install is "
            "unknown. Run `poetry lock` (or `poetry install`) first."
        )
    repository = locker.locked_repository()
    graph = dependency_graph(repository.packages)
    direct = frozenset(dependency.name for dependency in poetry.package.all_requires)
    if not locker.is_locked_groups_and_markers():
        versions = {p.name: p.version.text for p in repository.packages}
        return LockedState(versions, graph, direct=direct)
    transaction = Transaction(
        repository.packages,
        locker.locked_packages(),
        [],
        poetry.package,
        env.marker_env,
        poetry.package.dependency_group_names(),
    )
    operations = transaction.calculate_operations(with_uninstalls=False)
    versions = {
        op.package.name: op.package.version.text for op in operations if not op.skipped
    }
    return LockedState(versions, graph, direct=direct)


#: Poetry's own words when ``poetry install`` refuses a stale lock.
STALE_LOCK = (
    "pyproject.toml changed significantly since poetry.lock was last generated. "
    "Run `poetry lock` to fix the lock file."
)


def is_stale(poetry: Poetry) -> bool:
    """Whether poetry.lock exists but no longer matches pyproject.toml (Poetry's check)."""
    locker = poetry.locker
    return locker.is_locked() and not locker.is_fresh()


def check_fresh(poetry: Poetry) -> None:
    """Refuse to act on a stale lock, as ``poetry install`` does.

    Raises:
        TorchCudaError: pyproject.toml changed since poetry.lock was generated.
    """
    if is_stale(poetry):
        raise TorchCudaError(STALE_LOCK)


def locked_packages(
    poetry: Poetry, wanted: Mapping[NormalizedName, str]
) -> list[Package]:
    """poetry.lock's packages at the ``wanted`` versions, with their files' hashes."""
    return [
        package
        for package in poetry.locker.locked_repository().packages
        if wanted.get(package.name) == package.version.text
    ]
